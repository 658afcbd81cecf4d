"""_kong_node directly: mode and readiness derived from GET / and GET /status."""

from __future__ import annotations

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_node import detect_mode, ready_from_status


def test_detect_mode_is_the_admin_clients():
    assert detect_mode({"configuration": {"database": "off", "role": "data_plane"}}) == "hybrid_dp"
    assert detect_mode({"configuration": {"database": "postgres", "role": "control_plane"}}) == "hybrid_cp"


@pytest.mark.parametrize(
    "mode, status, ready",
    [
        ("traditional", {"database": {"reachable": True}}, True),
        ("traditional", {"database": {"reachable": False}}, False),
        ("dbless", {"configuration_hash": "0" * 32}, False),
        ("dbless", {"configuration_hash": "a" * 32}, True),
        ("hybrid_dp", {}, False),
        ("hybrid_dp", {"configuration_hash": "b" * 32}, True),
    ],
)
def test_readiness_from_status(mode, status, ready):
    got, reason = ready_from_status(mode, status)
    assert got is ready and "derived from GET /status" in reason


class _Planes:
    """KongNodeInfo with a scripted data-plane list, one answer per poll."""

    def __init__(self, *answers):
        from ansible_collections.kongops.upgrade.plugins.module_utils._kong_node import KongNodeInfo

        self.info = KongNodeInfo(admin=None)
        self.answers = list(answers)
        self.info.data_planes = self._next

    def _next(self):
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


ROW = {"id": "dp-1", "version": "3.9.3", "sync_status": "normal", "config_hash": "a" * 32}


def test_wait_data_plane_returns_once_the_row_is_in_sync():
    planes = _Planes([], [dict(ROW, sync_status="unknown")], [dict(ROW, config_hash="b" * 32)], [ROW])
    clock = [0.0]
    got = planes.info.wait_data_plane(
        {"id": "dp-1", "version": "3.9.3", "config_hash": "a" * 32}, 60, sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0]
    )
    assert got == {"synced": True, "data_plane": ROW, "waited_seconds": 3.0, "reason": None}


def test_wait_data_plane_is_bounded_and_says_what_differs():
    stale = dict(ROW, version="3.8.1")
    planes = _Planes([stale])
    clock = [0.0]
    got = planes.info.wait_data_plane({"id": "dp-1", "version": "3.9.3"}, 5, sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0])
    assert got["synced"] is False and got["waited_seconds"] == 5.0
    assert got["reason"] == "version 3.8.1 (expected 3.9.3)" and got["data_plane"] == stale


def test_a_data_plane_not_listed_is_not_in_sync():
    from ansible_collections.kongops.upgrade.plugins.module_utils._kong_node import data_plane_out_of_sync

    assert data_plane_out_of_sync({}, {"id": "x"}) == "not listed"
    assert data_plane_out_of_sync(ROW, {"id": "dp-1", "config_hash": "a" * 32}) is None


def _gone(status=None):
    from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import KongAdminError

    return KongAdminError(
        "GET http://cp:8001/clustering/data-planes?size=1000 failed: ConnectionError: refused", status=status, url="http://cp:8001/clustering/data-planes"
    )


def test_a_control_plane_away_for_a_while_is_waited_for():
    """The control plane restarts (or is lost for a while) during the wait: its data planes keep serving, the
    wait goes on and ends in sync once it answers again."""
    planes = _Planes([dict(ROW, sync_status="unknown")], _gone(), _gone(502), [ROW])
    clock = [0.0]
    got = planes.info.wait_data_plane({"id": "dp-1", "version": "3.9.3"}, 60, sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0])
    assert got["synced"] is True and got["waited_seconds"] == 3.0


def test_a_control_plane_that_stays_away_ends_the_wait_bounded_and_named():
    planes = _Planes([dict(ROW, sync_status="unknown")], _gone())
    clock = [0.0]
    got = planes.info.wait_data_plane({"id": "dp-1", "version": "3.9.3"}, 5, sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0])
    assert got["synced"] is False and got["waited_seconds"] == 5.0
    assert got["reason"].startswith("the control plane at http://cp:8001/clustering/data-planes did not answer (GET ")
    assert got["data_plane"] == dict(ROW, sync_status="unknown")
    conf_hash, problems = _Planes(_gone()).info.wait_config_sync(
        2, 90, sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0], now=lambda: 0
    )
    assert conf_hash is None and problems and "did not answer" in problems[0]


def test_the_first_read_of_a_wait_goes_on_through_an_outage_bounded_and_stops_at_once_on_4xx():
    """A wait's first read (GET / and /status of the control plane) meets it restarting: read again
    within the wait's time; when the time is up the last error names the control plane; a 4xx stops at once."""
    from ansible_collections.kongops.upgrade.plugins.module_utils._kong_node import KongNodeInfo

    class Admin:
        def __init__(self, *answers):
            self.answers = list(answers)

        def node(self):
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            if isinstance(answer, Exception):
                raise answer
            return {"version": "3.9.3", "node_id": "cp-1", "configuration": {"role": "control_plane", "database": "postgres"}}

        def status(self):
            return {"database": {"reachable": True}, "server": {}}

        def paged(self, path):
            return iter([ROW])

    clock = [0.0]
    ticks = {"sleep": lambda s: clock.__setitem__(0, clock[0] + s), "clock": lambda: clock[0]}
    facts, waited = KongNodeInfo(Admin(_gone(), _gone(503), "up")).gather_through_outage(60, **ticks)
    assert facts["mode"] == "hybrid_cp" and facts["data_planes"][0]["id"] == "dp-1" and waited == 2.0
    clock[0] = 0.0
    with pytest.raises(Exception, match="refused") as away:
        KongNodeInfo(Admin(_gone())).gather_through_outage(5, **ticks)
    assert away.value.url == "http://cp:8001/clustering/data-planes" and clock[0] == 5.0
    clock[0] = 0.0
    with pytest.raises(Exception, match="refused"):
        KongNodeInfo(Admin(_gone(401), "up")).gather_through_outage(60, **ticks)
    assert clock[0] == 0.0


def test_a_control_plane_that_refuses_the_request_stops_the_wait_at_once():
    planes = _Planes(_gone(401), [ROW])
    with pytest.raises(Exception, match="refused"):
        planes.info.wait_data_plane({"id": "dp-1"}, 60, sleep=lambda s: None, clock=lambda: 0.0)
