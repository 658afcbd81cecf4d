"""kong_upgrade_check main(): pure planning, so the tests drive the module with its arguments only."""

from __future__ import annotations


import pytest
from ansible_collections.kongops.upgrade.tests.unit.conftest import run_module
from ansible_collections.kongops.upgrade.plugins.modules import kong_upgrade_check

CONFIG_28 = """_format_version: "2.1"
services:
- name: users
  url: http://users.internal:8080
  routes:
  - name: user-by-id
    paths: ["/users/\\\\d+"]
  plugins:
  - name: legacy-auth-header
"""


def run(capsys, args):
    return run_module(kong_upgrade_check.main, capsys, args)[:2]


def test_supported_hop_exits_ok_unchanged(capsys):
    rc, r = run(capsys, {"current_versions": ["3.8.1", "3.8.1"], "target_version": "3.9.3", "mode": "dbless"})
    assert rc == 0 and r["changed"] is False and r["supported"] is True
    assert r["path"] == ["3.8.1", "3.9.3"] and r["strategy"]["name"] == "rolling"


def test_unsupported_jump_fails_and_names_the_path(capsys):
    rc, r = run(capsys, {"current_versions": ["3.4.2"], "target_version": "3.7.1", "mode": "traditional"})
    assert rc == 1 and r["failed"] is True
    assert "take the path 3.4.2 -> 3.5.x -> 3.6.x -> 3.7.1" in r["msg"]
    assert r["path"] == ["3.4.2", "3.5.x", "3.6.x", "3.7.1"] and r["reachable"] is True


def test_unsupported_jump_reported_without_failing_when_asked(capsys):
    rc, r = run(capsys, {"current_versions": ["3.4.2"], "target_version": "3.7.1", "mode": "traditional", "fail_on_unsupported": False, "spare_capacity": True})
    assert rc == 0 and r["supported"] is False and len(r["hops"]) == 3
    assert r["strategy"]["name"] == "dual_cluster"


def test_strategy_option_chooses_and_is_checked_against_the_mode(capsys):
    base = {"current_versions": ["3.6.1"], "target_version": "3.7.1", "mode": "traditional"}
    rc, r = run(capsys, dict(base, spare_capacity=True))
    assert rc == 0 and r["strategy"]["name"] == "dual_cluster" and r["strategy"]["chosen_by"] == "planner"
    rc, r = run(capsys, dict(base, strategy="dual_cluster"))
    assert rc == 0 and r["strategy"]["name"] == "dual_cluster" and r["strategy"]["recommended"] == "in_place"
    assert r["strategy"]["chosen_by"] == "operator"
    rc, r = run(capsys, dict(base, strategy="rolling"))
    assert rc == 1 and r["failed"] is True and "rolling does not upgrade traditional nodes" in r["msg"]
    assert "Traceback" not in r["msg"]
    rc, r = run(capsys, dict(base, strategy="sideways"))
    assert rc == 1 and "strategy" in r["msg"] and "auto" in r["msg"]


def test_downgrade_fails_without_a_path(capsys):
    rc, r = run(capsys, {"current_versions": ["3.9.3"], "target_version": "3.7.1", "mode": "dbless"})
    assert rc == 1 and "3.9.3 -> 3.7.1 cannot be upgraded" in r["msg"] and "downgrade" in r["msg"]
    assert r["path"] == []


def test_versions_from_kong_node_info_results(capsys):
    nodes = [{"version": "2.8.5", "mode": "traditional"}, {"version": "2.8.5", "mode": "traditional"}]
    rc, r = run(capsys, {"current_versions": nodes, "target_version": "3.4.2", "mode": "traditional"})
    assert rc == 0 and r["hops"] == [{"from": "2.8.5", "to": "3.4.2", "kind": "lts"}]


def test_config_file_scan_and_fail_on_severity(capsys, tmp_path):
    path = tmp_path / "kong.yml"
    path.write_text(CONFIG_28)
    args = {"current_versions": ["2.8.5"], "target_version": "3.4.2", "mode": "traditional", "config_file": str(path)}
    rc, r = run(capsys, args)
    assert rc == 0 and r["scanned"] is True
    ids = {f["id"] for f in r["findings"]}
    assert {"route-regex-path-tilde", "plugin-not-bundled"} <= ids
    assert r["findings_by_severity"]["high"] >= 2
    rc, r = run(capsys, dict(args, fail_on_severity="high"))
    assert rc == 1 and "route-regex-path-tilde (high, 2.8.5 -> 3.4.2)" in r["msg"]
    assert "plugin-not-bundled (high, 2.8.5 -> 3.4.2)" in r["msg"]


def test_config_as_dict(capsys):
    rc, r = run(
        capsys,
        {"current_versions": ["3.5.0"], "target_version": "3.6.1", "mode": "dbless", "config": {"_format_version": "3.0", "plugins": [{"name": "key-auth"}]}},
    )
    assert rc == 0
    assert [f["id"] for f in r["findings"] if f["id"].startswith("key-auth")] == ["key-auth-invalid-key-message"]


def test_hybrid_dp_ahead_of_cp_fails_with_kongs_message(capsys):
    rc, r = run(capsys, {"mode": "hybrid_dp", "cp_version": "3.8.1", "dp_versions": ["3.8.1"], "target_version": "3.9.3"})
    assert rc == 1
    assert "data plane version 3.9.3 is incompatible with older control plane version 3.8.1" in r["msg"]
    assert r["hybrid"]["compatible"] is False


@pytest.mark.parametrize(
    "args,needle",
    [
        ({"current_versions": ["three"], "target_version": "3.4.2", "mode": "dbless"}, "current_versions: 'three'"),
        (
            {"current_versions": ["3.4.2"], "target_version": "3.5.0", "mode": "dbless", "config_file": "/nonexistent.yml"},
            "config_file: cannot read /nonexistent.yml",
        ),
        ({"current_versions": ["3.4.2"], "target_version": "3.5.0", "mode": "dbless", "config": "a: [b"}, "config: neither JSON nor YAML"),
        ({"current_versions": ["3.4.2"], "target_version": "3.5.0", "mode": "dbless", "config": "{}", "config_file": "/x.yml"}, "mutually exclusive"),
        ({"mode": "hybrid", "cp_version": "3.4.2", "target_version": "3.5.0"}, "cp_version and dp_versions"),
    ],
)
def test_bad_input_fails_clearly_without_traceback(capsys, args, needle):
    rc, r = run(capsys, args)
    assert rc == 1 and needle in r["msg"] and "exception" not in r
