"""Bad input to the playbooks, refused before anything changes: each case is a real ansible-playbook
run against an inventory of local hosts whose Admin APIs nobody serves (a refusal that came only after
contacting a node would fail on that instead). Every case asserts the run failed, the message names
the variable and the fix, no traceback was printed, no node was observed and the cluster's work
directory holds only the earlier run's journal. The modules' options have their own table in
tests/unit/plugins/modules/test_bad_module_input.py."""

from __future__ import annotations

import os

import pytest

from tests.integration.ansible_run import run_playbook
from tests.integration.test_safety_playbooks import (
    IN_PLACE,
    REPO,
    ROLLING,
    base_vars,
    failure_messages,
    finished_journal,
    inventory,
    ran,
)

HYBRID = os.path.join(REPO, "playbooks", "hybrid_upgrade.yml")
BACKUP = os.path.join(REPO, "playbooks", "backup.yml")
DEAD = "http://127.0.0.1:9"  # nothing listens there: contacting a node would fail differently
ROLLING_GROUPS = {"kong_x": {"x1": {"kong_admin_url": DEAD}}, "kong_y": {"y1": {}}, "kong_lb": {"lb": {}}}
IN_PLACE_GROUPS = {"kong_x": {"x1": {"kong_admin_url": DEAD}}}

# id: (playbook, groups, variables of [all:vars] (None drops one of base_vars), what the message must say)
CASES = {
    "target missing": (ROLLING, ROLLING_GROUPS, {"kong_version_target": None}, ["missing required arguments: kong_version_target"]),
    "target not a version": (ROLLING, ROLLING_GROUPS, {"kong_version_target": "latest"}, ["kong_version_target: latest is not a Kong version", "X.Y.Z"]),
    "target of two parts": (ROLLING, ROLLING_GROUPS, {"kong_version_target": "3.9"}, ["kong_version_target: 3.9 is not a Kong version"]),
    "current not a version": (ROLLING, ROLLING_GROUPS, {"kong_version_current": "3.8.x"}, ["kong_version_current: 3.8.x is not a Kong version"]),
    "target older than current": (
        ROLLING,
        ROLLING_GROUPS,
        {"kong_version_current": "3.9.3", "kong_version_target": "3.8.1"},
        ["kong_version_target: 3.8.1 is older than kong_version_current 3.9.3", "rollback"],
    ),
    "target equal to current": (
        ROLLING,
        ROLLING_GROUPS,
        {"kong_version_current": "3.9.3"},
        ["kong_version_target: 3.9.3 is the version kong_version_current says"],
    ),
    "steps falling": (ROLLING, ROLLING_GROUPS, {"kong_traffic_steps": [50, 10, 100]}, ["kong_traffic_steps must be rising percentages"]),
    "steps not ending at 100": (
        ROLLING,
        ROLLING_GROUPS,
        {"kong_traffic_steps": [10, 50]},
        ["kong_traffic_steps must be rising percentages", "ending with 100"],
    ),
    "step above 100": (ROLLING, ROLLING_GROUPS, {"kong_traffic_steps": [10, 150, 100]}, ["kong_traffic_steps must be rising percentages between 0 and 100"]),
    "steps not numbers": (ROLLING, ROLLING_GROUPS, {"kong_traffic_steps": ["ten"]}, ["kong_traffic_steps", "unable to convert to int"]),
    "empty kong_x": (ROLLING, {"kong_x": {}, "kong_y": {"y1": {}}, "kong_lb": {"lb": {}}}, {}, ["kong_x: the group has no hosts"]),
    "no load balancer": (ROLLING, {"kong_x": ROLLING_GROUPS["kong_x"], "kong_y": {"y1": {}}}, {}, ["kong_lb: the group has no hosts"]),
    "same host in kong_x and kong_y": (
        ROLLING,
        {"kong_x": {"n1": {}}, "kong_y": {"n1": {}}, "kong_lb": {"lb": {}}},
        {},
        ["n1 also in kong_x", "kong_rolling_topology=replace"],
    ),
    "unknown topology": (ROLLING, ROLLING_GROUPS, {"kong_rolling_topology": "sideways"}, ["kong_rolling_topology must be one of: beside, replace"]),
    "unknown mode": (ROLLING, ROLLING_GROUPS, {"kong_mode": "cloud"}, ["kong_mode must be one of"]),
    # the preflight's own default (dbless) must not decide how an upgrade treats the nodes
    "mode not set": (ROLLING, ROLLING_GROUPS, {"kong_mode": None}, ["missing required arguments: kong_mode"]),
    "drain serial 0": (ROLLING, ROLLING_GROUPS, {"kong_drain_serial": 0}, ["kong_drain_serial: 0 is neither a number of nodes (1 or more) nor a percentage"]),
    "drain serial 150 %": (ROLLING, ROLLING_GROUPS, {"kong_drain_serial": "150%"}, ["kong_drain_serial: 150% is neither"]),
    "drain timeout 0": (ROLLING, ROLLING_GROUPS, {"kong_drain_timeout": 0}, ["kong_drain_timeout: must be 1 second or more"]),
    "failure budget below 0": (ROLLING, ROLLING_GROUPS, {"kong_max_failed_nodes": -1}, ["kong_max_failed_nodes: must be 0 or more"]),
    "error rate above 100 %": (ROLLING, ROLLING_GROUPS, {"kong_gate_max_error_rate": 150}, ["kong_gate_max_error_rate: a percentage from 0 to 100"]),
    "soak below 0": (ROLLING, ROLLING_GROUPS, {"kong_gate_soak_seconds": -5}, ["kong_gate_soak_seconds", "0 seconds or more"]),
    "gate interval 0": (ROLLING, ROLLING_GROUPS, {"kong_gate_interval_seconds": 0}, ["kong_gate_interval_seconds: 1 second or more"]),
    "unknown load balancer of one host": (
        ROLLING,
        {"kong_x": ROLLING_GROUPS["kong_x"], "kong_y": {"y1": {}}, "kong_lb": {"lb": {"kong_lb_backend": "f5"}}},
        {},
        ["kong_lb_backend: lb has f5", "haproxy or nginx"],
    ),
    "not confirmed": (ROLLING, ROLLING_GROUPS, {"kong_upgrade_confirm": False}, ["kong_upgrade_confirm=true", "--check"]),
    "in place: DB-less node": (IN_PLACE, IN_PLACE_GROUPS, {"kong_mode": "dbless"}, ["kong_mode: x1 is dbless", "playbooks/rolling_upgrade.yml"]),
    "in place: data plane in the group": (
        IN_PLACE,
        {"kong_x": {"x1": {"kong_admin_url": DEAD, "kong_mode": "hybrid_dp"}}},
        {"kong_mode": "traditional"},
        ["kong_mode: x1 is hybrid_dp"],
    ),
    "in place: mode not set": (IN_PLACE, IN_PLACE_GROUPS, {"kong_mode": None}, ["missing required arguments: kong_mode"]),
    "in place: target missing": (
        IN_PLACE,
        IN_PLACE_GROUPS,
        {"kong_mode": "traditional", "kong_version_target": None},
        ["missing required arguments: kong_version_target"],
    ),
    "in place: target older than current": (
        IN_PLACE,
        IN_PLACE_GROUPS,
        {"kong_mode": "traditional", "kong_version_current": "3.4.2", "kong_version_target": "2.8.5"},
        ["kong_version_target: 2.8.5 is older than kong_version_current 3.4.2"],
    ),
    "in place: rollback flag not a boolean": (
        IN_PLACE,
        IN_PLACE_GROUPS,
        {"kong_mode": "traditional", "kong_inplace_rollback_on_failure": "maybe"},
        ["kong_inplace_rollback_on_failure", "not a valid boolean"],
    ),
    "in place: two nodes share a gate URL": (
        IN_PLACE,
        {
            "kong_x": {
                "x1": {"kong_admin_url": DEAD, "kong_admin_gate_url": "http://10.0.0.1:8001"},
                "x2": {"kong_admin_url": DEAD, "kong_admin_gate_url": "http://10.0.0.1:8001"},
            }
        },
        {"kong_mode": "traditional"},
        ["kong_admin_gate_url", "x1 and x2 share the gate URL"],
    ),
    "in place: not confirmed": (IN_PLACE, IN_PLACE_GROUPS, {"kong_mode": "traditional", "kong_upgrade_confirm": False}, ["kong_upgrade_confirm=true"]),
    "hybrid: no control plane": (HYBRID, ROLLING_GROUPS, {}, ["the inventory group 'kong_cp' has no hosts"]),
    "backup: empty kong_x": (BACKUP, {"kong_x": {}}, {}, ["kong_x: the group has no hosts"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_playbook_input_is_refused_before_anything_changes(tmp_path, case):
    playbook, groups, variables, expected = CASES[case]
    journal = finished_journal(tmp_path)
    all_vars = {k: v for k, v in {**base_vars(tmp_path, kong_mode="dbless"), **variables}.items() if v is not None}
    # in [all:vars], as an operator's group_vars: a host's own kong_mode (or kong_lb_backend) still wins
    run = run_playbook(playbook, inventory=inventory(groups, **{k: _ini(v) for k, v in all_vars.items()}))
    msg = failure_messages(run)
    assert run.rc != 0, f"{case}: the run was not refused\n{msg}"
    assert all(text in msg for text in expected), f"{case}: expected {expected} in\n{msg}"
    assert "Traceback" not in run.stdout + run.stderr
    assert not ran(run, "Observe the node"), f"{case}: a node was contacted before the refusal"
    assert os.listdir(os.path.dirname(journal)) == ["journal.json"], f"{case}: the work directory changed"


def _ini(value) -> str:
    """A value as an INI inventory line gives it to Ansible (lists as JSON, booleans as true/false)."""
    import json

    return json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)
