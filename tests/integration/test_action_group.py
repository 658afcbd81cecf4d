"""`module_defaults: {group/kongops.upgrade.kong: {admin_url: ...}}` runs every module of the group.

One simulated DB-less node (tests/kongsim) on free loopback ports: no task names admin_url, so each
module can only reach the node through the group defaults (the built-in default, 127.0.0.1:8001,
is not where the node listens).
"""

from __future__ import annotations

import os
import sys

import pytest
import requests
import yaml

from tests.integration.ansible_run import run_playbook

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "kongsim"))
from kongsim_testlib import KongNode, install_kong  # noqa: E402

VERSION = "3.9.3"
DBLESS = "_format_version: '3.0'\nservices:\n- name: echo\n  url: http://127.0.0.1:9/\n  routes:\n  - name: echo\n    paths: [/echo]\n"


def group_members() -> list:
    with open(os.path.join(REPO, "meta", "runtime.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["action_groups"]["kong"]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    base = tmp_path_factory.mktemp("group")
    kong_bin = install_kong(VERSION, str(base / "install"))
    n = KongNode(kong_bin, str(base), name="g1", declarative=DBLESS)
    assert n.admin_port != 8001
    n.start()
    yield n
    n.stop()


def test_module_defaults_of_the_kong_group_reach_every_module(node, tmp_path):
    lock = str(tmp_path / "freeze.lock")
    dest = str(tmp_path / "backups")
    cli = {"kong_bin": node.kong_bin, "kong_conf": node.conf_path}
    tasks = {
        "kong_node_info": {},
        "kong_config_freeze": {"state": "frozen", "run_id": "r1", "lock_path": lock},
        "kong_backup": {"dest": dest, "run_id": "r1", "kinds": ["declarative"], **cli},
        "kong_restore": {"src": dest + "/r1", "kinds": ["declarative"], **cli},
        "kong_migrations": {"state": "up", **cli},
        # observes only (no state): the version comes from the group's admin_url
        "kong_service": {"manager": "cli", "kong_prefix": node.prefix, **cli},
        # the scan reads the configuration from the group's admin_url
        "kong_upgrade_check": {
            "current_versions": ["3.8.1"],
            "target_version": VERSION,
            "mode": "dbless",
            "config_from_admin": True,
            "fail_on_unsupported": False,
        },
    }
    members = group_members()
    assert sorted(members) == sorted(tasks), "the test runs every module of the group"
    play = [
        {
            "name": "group defaults",
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/kongops.upgrade.kong": {"admin_url": node.admin_url, "timeout": 5}},
            "tasks": [{"name": m, f"kongops.upgrade.{m}": args, "ignore_errors": True} for m, args in tasks.items()]
            + [
                {"name": "kong_migrations_info", "kongops.upgrade.kong_migrations_info": cli, "ignore_errors": True},
                {"name": "thaw", "kongops.upgrade.kong_config_freeze": {"state": "thawed", "run_id": "r1", "lock_path": lock}, "ignore_errors": True},
            ],
        }
    ]
    run = run_playbook(yaml.safe_dump(play, sort_keys=False))
    assert run.data, run.stdout[-3000:] + run.stderr[-3000:]
    results = {m: run.result(m) for m in list(tasks) + ["kong_migrations_info", "thaw"]}
    for name, res in results.items():
        assert not res.get("failed"), f"{name}: {res.get('msg')}"
        assert "Unsupported parameters" not in str(res.get("msg", ""))

    root = requests.get(node.admin_url + "/", timeout=5).json()
    assert results["kong_node_info"]["version"] == VERSION
    assert results["kong_node_info"]["node_id"] == root["node_id"]
    assert results["kong_config_freeze"]["changed"] is True and not os.path.exists(lock)
    assert results["kong_backup"]["manifest"]["declarative"]["entity_counts"]["services"] == 1
    assert results["kong_restore"]["changed"] is False  # same configuration: 304 from the node
    assert results["kong_migrations_info"]["status"] == "current"
    assert results["kong_migrations"]["changed"] is False
    assert results["kong_service"]["manager"] == "cli" and results["kong_service"]["running"] is True
    assert results["kong_service"]["version"] == VERSION and results["kong_service"]["changed"] is False
    assert results["kong_upgrade_check"]["scanned"] is True and results["kong_upgrade_check"]["supported"] is True
