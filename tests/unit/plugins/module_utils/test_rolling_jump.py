"""rolling_jump: whether nodes without a database take a path of several hops in one rolling upgrade
(kong_upgrade_hops=auto in the rolling flow), and that the scan still evaluates every hop's rules."""

from __future__ import annotations

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._upgrade_rules import (
    evaluate,
    plan_path,
    rolling_jump,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._versions import (
    KongVersion,
)
from ansible_collections.kongops.upgrade.tests.unit.conftest import run_module
from ansible_collections.kongops.upgrade.plugins.modules import kong_upgrade_check

# a 2.x regex path (needs `~` on 3.x) and a key-auth plugin: rules of two different hops of 2.8.5 -> 3.6.1
CONFIG = {
    "_format_version": "2.1",
    "services": [{"name": "s", "url": "http://u:80", "routes": [{"name": "r", "paths": ["/users/\\d+"], "plugins": [{"name": "key-auth"}]}]}],
}


def test_dbless_path_of_two_hops_is_one_rolling_upgrade_with_kong_sources():
    r = evaluate(current_versions=["3.6.1"], target_version="3.8.1", mode="dbless")
    assert r["supported"] is False and r["reachable"] is True
    jump = r["rolling_jump"]
    assert jump["allowed"] is True and (jump["from"], jump["to"]) == ("3.6.1", "3.8.1")
    assert jump["covers"] == ["3.6.1 -> 3.7.x", "3.7.x -> 3.8.1"] and jump["chain"] == ["3.7.x", "3.8.1"]
    assert "kong/db/strategies/off/connector.lua" in jump["reason"]
    assert "declarative_config.lua" in jump["reason"]


def test_the_jump_scans_the_configuration_against_every_hop():
    r = evaluate(current_versions=["2.8.5"], target_version="3.6.1", mode="dbless", config=CONFIG)
    assert r["rolling_jump"]["allowed"] is True
    assert r["rolling_jump"]["covers"] == ["2.8.5 -> 3.4.x", "3.4.x -> 3.5.x", "3.5.x -> 3.6.1"]
    hops = {f["hop"] for f in r["findings"]}
    # the regex path is a 2.8 -> 3.x finding; nothing of the later hops is dropped by the jump
    assert "2.8.5 -> 3.4.x" in hops
    assert any("/users/" in w for f in r["findings"] for w in f["where"])


@pytest.mark.parametrize("current,target", [("3.8.1", "3.9.3"), ("3.9.3", "3.9.3"), ("2.8.5", "3.4.2")])
def test_no_jump_for_a_path_of_one_hop(current, target):
    assert evaluate(current_versions=[current], target_version=target, mode="dbless")["rolling_jump"] is None


@pytest.mark.parametrize("mode", ["traditional", "hybrid_cp"])
def test_no_jump_for_nodes_with_a_database(mode):
    r = evaluate(current_versions=["3.6.1"], target_version="3.8.1", mode=mode, cp_version="3.6.1")
    assert r["rolling_jump"] is None


def test_data_planes_jump_behind_a_control_plane_on_the_target():
    r = evaluate(current_versions=["3.6.1"], target_version="3.8.1", mode="hybrid_dp", cp_version="3.8.1")
    assert r["rolling_jump"]["allowed"] is True and r["reachable"] is True
    assert "kong/clustering/compat/init.lua" in r["rolling_jump"]["reason"]


def test_data_planes_do_not_jump_past_their_control_plane():
    r = evaluate(current_versions=["3.6.1"], target_version="3.8.1", mode="hybrid_dp", cp_version="3.7.1")
    assert r["reachable"] is False and r["rolling_jump"]["allowed"] is False
    assert "The control plane runs 3.7.1" in r["rolling_jump"]["reason"]
    assert "Upgrade the control planes first" in r["rolling_jump"]["reason"]


def test_hybrid_wire_protocol_step_is_never_jumped():
    plan = plan_path(KongVersion("3.1.1.1"), KongVersion("3.3.0.0"), "hybrid_dp", "off")
    jump = rolling_jump(plan, "hybrid_dp", KongVersion("3.3.0.0"))
    assert jump["allowed"] is False and "3.1.1.2" in jump["reason"]


def test_unsourced_target_formats_say_unconfirmed():
    plan = plan_path(KongVersion("3.9.3"), KongVersion("3.11.0.1"), "dbless", "off")
    jump = rolling_jump(plan, "dbless")
    assert jump["allowed"] is True and "UNCONFIRMED" in jump["reason"]


def test_module_returns_the_jump(capsys):
    rc, r = run_module(
        kong_upgrade_check.main, capsys, {"current_versions": ["3.6.1"], "target_version": "3.8.1", "mode": "dbless", "fail_on_unsupported": False}
    )[:2]
    assert rc == 0 and r["rolling_jump"]["allowed"] is True
    assert r["rolling_jump"]["covers"] == ["3.6.1 -> 3.7.x", "3.7.x -> 3.8.1"]
