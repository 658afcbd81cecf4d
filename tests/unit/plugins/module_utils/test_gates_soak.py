"""The gate's soak loop and judgment (plugins/module_utils/_gates.py), with a fake load balancer and clock."""

from __future__ import annotations

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._gates import judge, soak

P = dict(soak_seconds=10.0, interval_seconds=2.0, max_error_rate=1.0, max_response_ms=2000, min_requests=0, servers=["y1", "y2"], label="step 10 %")


def srv(sessions, h5=0, weight=10, status="UP"):
    return {
        "total_sessions": sessions,
        "http_5xx": h5,
        "connection_errors": 0,
        "response_errors": 0,
        "weight": weight,
        "status": status,
        "health": "up",
        "response_time_ms": 5,
    }


class Clock:
    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.t += seconds


def reader(readings):
    it = iter(readings)
    return lambda: next(it)


def test_a_healthy_soak_checks_every_interval_for_the_whole_window():
    clock = Clock()
    readings = [{"y1": srv(100 * i), "y2": srv(100 * i)} for i in range(7)]
    verdict = soak(reader(readings), P, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [2.0] * 5 and verdict["soaked_seconds"] == 10.0
    assert [p["at"] for p in verdict["polls"]] == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert verdict["failed"] is False and verdict["requests"] == 1000 and verdict["errors"] == 0
    assert all(not p["failed"] for p in verdict["polls"])


def test_the_soak_stops_at_the_first_crossed_gate_with_the_evidence():
    clock = Clock()
    readings = [{"y1": srv(0), "y2": srv(0)}, {"y1": srv(100), "y2": srv(100)}, {"y1": srv(200, weight=10, status="DOWN"), "y2": srv(200)}, {"never": {}}]
    verdict = soak(reader(readings), P, clock=clock, sleep=clock.sleep)
    assert len(verdict["polls"]) == 2 and clock.t == 4.0
    assert verdict["failed"] and verdict["reasons"] == ["y1 is DOWN while in rotation"]
    assert verdict["polls"][-1]["reasons"] == ["y1 is DOWN while in rotation"]


def test_min_requests_is_judged_over_the_whole_soak_only():
    clock = Clock()
    readings = [{"y1": srv(0)}, {"y1": srv(1)}, {"y1": srv(2)}]
    verdict = soak(reader(readings), dict(P, soak_seconds=4.0, min_requests=50, servers=["y1"]), clock=clock, sleep=clock.sleep)
    assert len(verdict["polls"]) == 2, "a young soak is not failed for too few requests"
    assert verdict["reasons"] == ["only 2 requests reached the servers (< 50): the step is not proven"]


def test_without_counters_the_soak_only_waits():
    clock = Clock()
    verdict = soak(None, P, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [10.0] and verdict == dict(failed=False, reasons=[], polls=[], soaked_seconds=10.0, lb_counters=False)


@pytest.mark.parametrize(
    "after, reasons",
    [
        ({"y1": {"ready": True}, "y2": {"ready": True}}, []),
        ({"y1": {"ready": True}, "y2": {"ready": False}, "y3": {"failed": True, "msg": "refused"}}, ["y2, y3 not ready"]),
    ],
)
def test_judge_adds_readiness(after, reasons):
    verdict = judge({"failed": False, "reasons": [], "requests": 10}, dict(P, nodes_after=after, nodes_before={}))
    assert verdict["reasons"] == reasons and verdict["failed"] is bool(reasons) and verdict["requests"] == 10


def test_judge_adds_each_nodes_own_error_rate_and_keeps_the_lb_reasons():
    before = {"y1": {"ready": True, "metrics": {"available": True, "requests": 100, "errors": 0}}, "y2": {"ready": True, "metrics": {"available": False}}}
    after = {"y1": {"ready": True, "metrics": {"available": True, "requests": 300, "errors": 20}}, "y2": {"ready": True, "metrics": {"available": False}}}
    lb = {"failed": True, "reasons": ["error rate 5.0% (10 of 200) > 1.0%"]}
    verdict = judge(lb, dict(P, nodes_before=before, nodes_after=after))
    assert verdict["reasons"] == ["error rate 5.0% (10 of 200) > 1.0%", "y1 answered 20 of 200 requests with a 5xx (10.0%) by its own /metrics > 1.0%"]
    assert verdict["nodes"]["y1"]["error_rate"] == 10.0 and verdict["nodes_without_metrics"] == ["y2"]
    assert lb["reasons"] == ["error rate 5.0% (10 of 200) > 1.0%"], "the given verdict is not changed"


def since(sessions, at, h5=0):
    """An lb_weight result: its view of the servers after the change, their counters, when they were read."""
    view = {name: {"weight": 10, "status": "UP", "health": "up"} for name in ("y1", "y2")}
    stats = {name: {"total_sessions": sessions, "http_5xx": h5, "connection_errors": 0, "response_errors": 0} for name in ("y1", "y2")}
    return {"after": view, "stats": stats, "stats_at": at}


def test_a_soak_since_the_weight_change_counts_its_seconds_and_requests_from_that_reading():
    # the weights were set 3 s before the soak task started: 7 s of the 10 are left, the first reading is the change's
    clock = Clock()
    readings = [{"y1": srv(100 * i), "y2": srv(100 * i)} for i in range(1, 5)]
    verdict = soak(reader(readings), dict(P, since=since(0, at=997.0)), clock=clock, sleep=clock.sleep, wall=lambda: 1000.0)
    assert clock.sleeps == [2.0, 2.0, 2.0, 1.0] and clock.t == 7.0
    assert [p["at"] for p in verdict["polls"]] == [5.0, 7.0, 9.0, 10.0] and verdict["soaked_seconds"] == 10.0
    # every request since the change counts: 400 per server, none lost to the time before the task
    assert verdict["requests"] == 800 and not verdict["failed"]


def test_errors_between_the_change_and_the_soak_task_fail_the_gate():
    clock = Clock()
    readings = [{"y1": srv(100, h5=40), "y2": srv(100)}]
    verdict = soak(reader(readings), dict(P, soak_seconds=2.0, since=since(0, at=999.0)), clock=clock, sleep=clock.sleep, wall=lambda: 1000.0)
    assert verdict["failed"] and verdict["errors"] == 40


@pytest.mark.parametrize("at, slept", [(900.0, []), (1005.0, [2.0] * 5)])
def test_a_change_older_than_the_soak_is_judged_at_once_and_a_clock_stepped_back_soaks_in_full(at, slept):
    clock = Clock()
    readings = [{"y1": srv(100 * i), "y2": srv(100 * i)} for i in range(1, 7)]
    verdict = soak(reader(readings), dict(P, since=since(0, at=at)), clock=clock, sleep=clock.sleep, wall=lambda: 1000.0)
    assert clock.sleeps == slept and len(verdict["polls"]) == max(len(slept), 1)
    assert not verdict["failed"]


def test_a_soak_closes_with_its_last_reading_and_the_next_gate_watches_from_it():
    # the first gate: its last reading (and when it was taken) is the closing one, in the shape since takes
    clock = Clock()
    first = [{"y1": srv(100 * i), "y2": srv(100 * i)} for i in range(6)]
    verdict = soak(reader(first), P, clock=clock, sleep=clock.sleep, wall=lambda: 2000.0 + clock.t)
    assert verdict["closing"] == {"after": first[5], "stats": {}, "stats_at": 2010.0}
    closing = verdict["closing"]
    # the next gate starts 4 s later: only the 6 s left of its 10 are waited for, and the requests the
    # servers answered in between count
    clock = Clock()
    later = [{"y1": srv(700 + 100 * i), "y2": srv(700 + 100 * i)} for i in range(1, 4)]
    verdict = soak(reader(later), dict(P, since=closing), clock=clock, sleep=clock.sleep, wall=lambda: 2014.0 + clock.t)
    assert clock.sleeps == [2.0, 2.0, 2.0] and verdict["soaked_seconds"] == 10.0
    assert verdict["requests"] == 1000 and not verdict["failed"]
    # errors in between (while an X node left) fail it at its first check
    clock = Clock()
    verdict = soak(reader([{"y1": srv(800, h5=30), "y2": srv(800)}]), dict(P, since=closing), clock=clock, sleep=clock.sleep, wall=lambda: 2014.0)
    assert verdict["failed"] and verdict["reasons"] == ["error rate 5.0% (30 of 600) > 1.0%"] and len(verdict["polls"]) == 1


def test_a_soak_without_counters_has_no_closing_reading():
    clock = Clock()
    assert "closing" not in soak(None, P, clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize(
    "value",
    [{"after": {}, "stats": {}}, {"after": {}, "stats": {}, "stats_at": "soon"}, {"after": {}, "stats": {}, "stats_at": True}, {"changed": True}],
)
def test_a_since_that_is_not_an_lb_weight_reading_is_refused_naming_the_option(value):
    from ansible_collections.kongops.upgrade.plugins.module_utils._gates import GateParamError, check_params

    with pytest.raises(GateParamError) as err:
        check_params(dict(P, backend="haproxy", haproxy_backend="kong", since=value))
    assert err.value.param == "since" and "lb_weight" in str(err.value)
