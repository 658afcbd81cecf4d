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
