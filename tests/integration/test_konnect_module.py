"""kong_node_info on a Konnect data plane: Konnect's data-plane node records read from the stand-in
(tests/services/konnect.py) over HTTP, the data plane's own Admin API faked in memory. Kept beside the
end-to-end suites: the stand-in lives in tests/services, which the sanity copy of the collection leaves out."""

from __future__ import annotations

import time

import pytest
from ansible_collections.kongops.upgrade.tests.unit.conftest import run_module
from ansible_collections.kongops.upgrade.plugins.modules import kong_node_info
from tests.services.konnect import KonnectStandIn

TOKEN = "kpat_test-token-value"
CP_ID = "9524ec7d-36d9-465d-a8c5-83a3c9390458"
SELF_ID = "6a0e6ab4-3c3d-4cd0-a2c3-9c6d7ee5c3f1"
HASH, OLD_HASH = "a" * 32, "b" * 32


def _row(node_id, host, version, conf_hash=HASH, age=2):
    now = int(time.time())
    return {
        "id": node_id,
        "hostname": host,
        "version": version,
        "last_ping": now - age,
        "type": "kong-proxy",
        "created_at": now - 100,
        "updated_at": now - age,
        "config_hash": conf_hash,
        "compatibility_status": {"state": "COMPATIBILITY_STATE_FULLY_COMPATIBLE", "issues": []},
    }


@pytest.fixture(scope="module")
def konnect():
    box = KonnectStandIn(TOKEN, CP_ID).start()
    yield box
    box.stop()


@pytest.fixture
def dp(monkeypatch, konnect):
    """This data plane's own facts (a Konnect data plane on 3.7.1 serving HASH) and a clean stand-in."""
    konnect.extra, konnect.patch, konnect.expected = [], {}, None
    facts = {
        "version": "3.7.1",
        "node_id": SELF_ID,
        "hostname": "y1",
        "mode": "konnect_dp",
        "role": "data_plane",
        "database": "off",
        "configuration_hash": HASH,
        "cluster_control_plane": "abc.us.cp0.konghq.com:443",
        "ready": True,
        "data_planes": [],
    }
    monkeypatch.setattr(kong_node_info.KongNodeInfo, "gather", lambda self, **kw: dict(facts))
    return facts


def _args(konnect, **extra):
    args = {
        "admin_url": "http://127.0.0.1:8001",
        "stale_after": 90,
        "wait_timeout": 2,
        "konnect": {"api_url": konnect.url, "token": TOKEN, "control_plane_id": CP_ID},
    }
    args.update(extra)
    return args


def test_lists_nodes_and_waits_for_the_group_hash(capsys, konnect, dp):
    konnect.extra = [_row(SELF_ID, "y1", "3.7.1"), _row("x-1", "x1", "3.6.1"), _row("gone", "old", "3.4.2", OLD_HASH, age=4000)]
    konnect.expected = HASH
    rc, result, out = run_module(
        kong_node_info.main,
        capsys,
        _args(
            konnect,
            wait_data_plane={"id": SELF_ID, "version": "3.7.1", "config_hash": HASH},
            wait_config_sync=True,
            skew={"target_version": "3.7.1"},
            cluster_control_plane="abc.us.cp0.konghq.com:443",
        ),
    )
    assert rc == 0, result["msg"]
    assert result["cp_config_hash"] == HASH
    assert {r["id"] for r in result["konnect_nodes"]} == {SELF_ID, "x-1", "gone"}
    assert result["data_plane"]["id"] == SELF_ID
    assert any(s.startswith("old ") for s in result["data_planes_stale"])
    assert TOKEN not in out
    assert "/v2/control-planes/%s/nodes" % CP_ID in konnect.requests


def test_a_data_plane_that_never_reaches_the_hash_stops_the_run_named(capsys, konnect, dp):
    konnect.extra = [_row(SELF_ID, "y1", "3.7.1"), _row("x-2", "x2", "3.6.1", OLD_HASH)]
    konnect.expected = HASH
    rc, result, out = run_module(kong_node_info.main, capsys, _args(konnect, wait_config_sync=True))
    assert rc == 1
    assert "x2 (id x-2" in result["msg"] and OLD_HASH in result["msg"] and "expects " + HASH in result["msg"]
    assert TOKEN not in out


def test_a_data_plane_newer_than_its_control_plane_is_refused_named(capsys, konnect, dp):
    konnect.extra = [_row(SELF_ID, "y1", "3.7.1"), _row("x-3", "x3", "3.8.1")]
    args = _args(konnect, skew={"target_version": "3.7.1", "inventory_ids": {"x-3": "edge-3"}})
    args["konnect"]["control_plane_version"] = "3.7.1"
    rc, result, _out = run_module(kong_node_info.main, capsys, args)
    assert rc == 1
    assert "edge-3 = x3 (id x-3" in result["msg"] and "newer than its Konnect control plane on 3.7.1" in result["msg"]
    assert result["skew"]["blocking"] and len(result["skew"]["blocking"]) == 1


def test_a_target_newer_than_konnect_supports_is_refused(capsys, konnect, dp):
    konnect.extra = [_row(SELF_ID, "y1", "3.7.1")]
    rc, result, _out = run_module(kong_node_info.main, capsys, _args(konnect, skew={"target_version": "3.99.0"}))
    assert rc == 1
    assert "would run Kong 3.99.0" in result["msg"] and "compatibility" in result["msg"]


def test_a_data_plane_konnect_does_not_list_live_is_named(capsys, konnect, dp):
    konnect.extra = [_row(SELF_ID, "y1", "3.7.1", age=4000)]
    rc, result, _out = run_module(kong_node_info.main, capsys, _args(konnect, wait_data_plane={"id": SELF_ID}, wait_timeout=1))
    assert rc == 1
    assert "Konnect does not list data plane y1" in result["msg"] and "last ping" in result["msg"]


@pytest.mark.parametrize(
    "change, variable",
    [
        ({"token": None}, "kong_konnect_token"),
        ({"token": "wrong"}, "kong_konnect_token"),
        ({"api_url": "us.api.konghq.com"}, "kong_konnect_api_url"),
        ({"control_plane_id": "not-a-uuid"}, "kong_konnect_control_plane_id"),
    ],
)
def test_bad_konnect_input_is_refused_naming_the_variable(capsys, konnect, dp, change, variable):
    args = _args(konnect)
    args["konnect"].update(change)
    rc, result, out = run_module(kong_node_info.main, capsys, args)
    assert rc == 1 and variable in result["msg"]
    assert change.get("token") != "wrong" or "wrong" not in out


def test_a_data_plane_configured_with_another_control_plane_is_named(capsys, konnect, dp):
    rc, result, _out = run_module(kong_node_info.main, capsys, {"admin_url": "http://127.0.0.1:8001", "cluster_control_plane": "other.us.cp0.konghq.com:443"})
    assert rc == 1
    assert "other.us.cp0.konghq.com:443" in result["msg"] and "abc.us.cp0.konghq.com:443" in result["msg"]


def test_konnect_options_on_a_node_that_is_no_data_plane_are_refused(capsys, konnect, dp, monkeypatch):
    monkeypatch.setattr(kong_node_info.KongNodeInfo, "gather", lambda self, **kw: dict(dp, mode="dbless"))
    rc, result, _out = run_module(kong_node_info.main, capsys, _args(konnect))
    assert rc == 1 and "konnect:" in result["msg"] and "not a data plane" in result["msg"]


def test_a_peer_data_plane_on_another_configuration_is_named(capsys, konnect, dp, monkeypatch):
    seen = {"http://x1:8001": HASH, "http://x2:8001": OLD_HASH}
    monkeypatch.setattr(kong_node_info, "_peer_hash", lambda p: seen.get)
    rc, result, _out = run_module(
        kong_node_info.main,
        capsys,
        {"admin_url": "http://127.0.0.1:8001", "wait_timeout": 1, "same_config_as": {"x1": "http://x1:8001", "x2": "http://x2:8001"}},
    )
    assert rc == 1
    assert "x2 (http://x2:8001): configuration hash " + OLD_HASH in result["msg"] and "x1 (" not in result["msg"]
    seen["http://x2:8001"] = HASH
    rc, result, _out = run_module(
        kong_node_info.main, capsys, {"admin_url": "http://127.0.0.1:8001", "same_config_as": {"x1": "http://x1:8001", "x2": "http://x2:8001"}}
    )
    assert rc == 0, result.get("msg")
