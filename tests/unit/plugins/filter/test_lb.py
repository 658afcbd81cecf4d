"""lb_servers: each host's kong_lb_server, or its inventory name."""

from __future__ import annotations

from ansible_collections.kongops.upgrade.plugins.filter.lb import lb_servers


def test_each_host_by_its_server_name_or_its_own():
    hostvars = {"x1": {"kong_lb_server": "kong-a"}, "x2": {"kong_lb_server": ""}, "x3": {}}
    assert lb_servers(["x1", "x2", "x3"], hostvars) == ["kong-a", "x2", "x3"]


def test_a_host_unknown_to_hostvars_keeps_its_name_and_nothing_is_empty():
    assert lb_servers(["y9"], {}) == ["y9"]
    assert lb_servers([], {}) == []
    assert lb_servers(None, {}) == []


def test_drain_failure_is_the_servers_own_or_every_servers():
    from ansible_collections.kongops.upgrade.plugins.filter.lb import drain_failure

    batch = ["x1", "x2"]
    ok = {"_lb": "lb1", "changed": True, "drained": True}
    timed_out = {
        "_lb": "lb2",
        "failed": True,
        "msg": "wait_drained: still open after drain_timeout=30s: x2 (1 sessions, 0 queued)",
        "still_open": {"x2": "1 sessions"},
    }
    assert drain_failure([ok], "x1", batch) == ""
    # x2 still held a session on lb2: x2 fails there, x1 drained
    assert drain_failure([ok, timed_out], "x1", batch) == ""
    assert drain_failure([ok, timed_out], "x2", batch) == "lb2: " + timed_out["msg"]
    # nginx names its old workers: every server of the batch waited on them
    nginx = {"_lb": "web", "failed": True, "msg": "still open", "still_open": {"nginx workers from before the reload": "1 still finishing"}}
    assert drain_failure([nginx], "x1", batch) == "web: still open"
    # a load balancer that failed otherwise (its socket): every server
    gone = {"_lb": "lb1", "failed": True, "msg": "socket gone"}
    assert drain_failure([gone, timed_out], "x1", batch) == "lb1: socket gone"
    assert drain_failure([gone, timed_out], "x2", batch) == "lb1: socket gone; lb2: " + timed_out["msg"]
    assert drain_failure(None, "x1", batch) == ""
