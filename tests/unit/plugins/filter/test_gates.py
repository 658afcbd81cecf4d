from __future__ import annotations

from ansible_collections.kongops.upgrade.plugins.filter.gates import FilterModule, gate_eval, node_gate_eval


def _srv(sessions, h5=0, econ=0, eresp=0, weight=10, status="UP", health="", rtime=0):
    return {
        "total_sessions": sessions,
        "http_5xx": h5,
        "connection_errors": econ,
        "response_errors": eresp,
        "weight": weight,
        "status": status,
        "health": health,
        "response_time_ms": rtime,
    }


def test_gate_eval_counts_errors_over_the_soak_only():
    before = {"y1": _srv(1000, h5=50), "y2": _srv(0)}
    after = {"y1": _srv(1100, h5=51), "y2": _srv(100, econ=1)}
    verdict = gate_eval(after, before, ["y1", "y2"], max_error_rate=1.0)
    assert (verdict["requests"], verdict["errors"], verdict["error_rate"]) == (200, 2, 1.0)
    assert verdict["failed"] is False
    verdict = gate_eval(after, before, ["y1", "y2"], max_error_rate=0.5)
    assert verdict["failed"] and verdict["reasons"] == ["error rate 1.0% (2 of 200) > 0.5%"]


def test_gate_eval_counts_from_zero_after_the_load_balancer_restarted():
    # HAProxy reloaded between the readings: y1's counters start again; its 5xx since then count, not a negative
    before = {"y1": _srv(5000, h5=10), "y2": _srv(100)}
    after = {"y1": _srv(40, h5=4), "y2": _srv(150)}
    verdict = gate_eval(after, before, ["y1", "y2"], max_error_rate=1.0)
    assert (verdict["requests"], verdict["errors"]) == (90, 4)
    assert verdict["failed"] and verdict["servers"]["y1"]["requests"] == 40


def test_gate_eval_fails_a_down_server_in_rotation_slow_answers_and_an_unproven_step():
    after = {"y1": _srv(10, status="DOWN", weight=5), "y2": _srv(10, status="MAINT", weight=0, rtime=2500)}
    verdict = gate_eval(after, {}, ["y1", "y2"], max_response_ms=2000, min_requests=50)
    assert verdict["reasons"] == [
        "y1 is DOWN while in rotation",
        "y2 average response time 2500 ms > 2000 ms",
        "only 20 requests reached the servers (< 50): the step is not proven",
    ]


def test_gate_eval_leaves_out_hosts_the_load_balancer_does_not_know():
    verdict = gate_eval({"x1": _srv(500)}, {"x1": _srv(0)}, ["cp"], min_requests=50)
    assert verdict["failed"] is False and verdict["requests"] == 0 and verdict["not_in_lb"] == ["cp"]
    verdict = gate_eval({"y1": _srv(10)}, {}, ["y1", "cp"], min_requests=50)
    assert verdict["reasons"] == ["only 10 requests reached the servers (< 50): the step is not proven"]


def test_node_gate_eval_per_node_rate_restart_and_unavailable():
    before = {"y1": {"available": True, "requests": 500, "errors": 0}, "y2": {"available": True, "requests": 900, "errors": 2}, "y3": {"available": False}}
    after = {
        "y1": {"available": True, "requests": 700, "errors": 10},
        "y2": {"available": True, "requests": 40, "errors": 0},
        "y3": {"available": False, "reason": "no counters"},
    }
    verdict = node_gate_eval(after, before, max_error_rate=1.0)
    assert verdict["nodes"]["y1"] == {"requests": 200, "errors": 10, "error_rate": 5.0, "restarted": False}
    assert verdict["nodes"]["y2"] == {"requests": 40, "errors": 0, "error_rate": 0.0, "restarted": True}
    assert verdict["unavailable"] == ["y3"]
    assert verdict["failed"] and verdict["reasons"] == ["y1 answered 10 of 200 requests with a 5xx (5.0%) by its own /metrics > 1.0%"]
    assert node_gate_eval(after, before, max_error_rate=5.0)["failed"] is False


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {"gate_eval", "node_gate_eval", "gate_urls"}


def test_gate_urls_all_or_nothing():
    from ansible_collections.kongops.upgrade.plugins.filter.gates import gate_urls

    hostvars = {
        "y1": {"kong_status_gate_url": "http://10.0.0.1:8100"},
        "y2": {"kong_status_gate_url": "http://10.0.0.2:8100"},
        "y3": {"kong_status_gate_url": ""},
        "y4": {},
    }
    assert gate_urls(["y1", "y2"], hostvars) == {"y1": "http://10.0.0.1:8100", "y2": "http://10.0.0.2:8100"}
    # one node without (empty, unset, unknown to hostvars): every node reads its own on its host
    assert gate_urls(["y1", "y3"], hostvars) == {}
    assert gate_urls(["y1", "y4"], hostvars) == {}
    assert gate_urls(["y1", "y9"], hostvars) == {}
    assert gate_urls([], hostvars) == {} and gate_urls(None, hostvars) == {}
