"""kong_service and kong_conf end to end on a simulated Kong node (tests/kongsim) driven through its
real CLI: the operator's kong.conf kept and read back by Kong with a `#` in a value, the node
started, observed, started again without change, and quit; the secret environment never shown."""

from __future__ import annotations

import os
import sys

import pytest
import requests
import yaml

from tests.integration.ansible_run import run_playbook

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "kongsim"))
from kongsim_testlib import KongNode, install_kong  # noqa: E402

VERSION = "3.9.3"
SECRET = "pg-secret-#42"
DECL = "_format_version: '3.0'\nservices:\n- name: echo\n  url: http://127.0.0.1:9/\n"


@pytest.fixture(scope="module")
def kong_bin(tmp_path_factory):
    return install_kong(VERSION, str(tmp_path_factory.mktemp("kong") / VERSION))


def test_conf_kept_node_started_observed_and_quit(kong_bin, tmp_path):
    node = KongNode(kong_bin, str(tmp_path), name="n1", declarative=DECL)
    operator = "# operator's comment, kept\n" + open(node.conf_path).read() + "nginx_http_client_max_body_size = 64m  # ours\n"
    with open(node.conf_path, "w") as fh:
        fh.write(operator)
    svc = {"kong_bin": kong_bin, "kong_conf": node.conf_path, "kong_prefix": node.prefix, "kong_env": {"KONG_PG_PASSWORD": SECRET}, "admin_url": node.admin_url}
    tasks = [
        {"name": "conf", "kongops.upgrade.kong_conf": {"path": node.conf_path, "settings": {"pg_database": "kong#1", "log_level": "info"}}},
        {"name": "start", "kongops.upgrade.kong_service": dict(svc, state="started", ready_timeout=30, ready_url=node.status_url + "/status/ready")},
        {"name": "observe", "kongops.upgrade.kong_service": svc},
        {"name": "start again", "kongops.upgrade.kong_service": dict(svc, state="started")},
        {"name": "quit", "kongops.upgrade.kong_service": dict(svc, state="stopped", quit_timeout=5)},
        {"name": "after quit", "kongops.upgrade.kong_service": svc},
    ]
    try:
        run = run_playbook(
            yaml.safe_dump([{"name": "svc", "hosts": "localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False), verbosity=3, callback="json"
        )
        assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
        text = open(node.conf_path).read()
        kept = [ln for ln in operator.splitlines() if ln and not ln.startswith(("pg_database", "log_level"))]
        assert all(ln in text.splitlines() for ln in kept)
        assert "pg_database = kong\\#1" in text
        start = run.result("start")
        assert start["changed"] and start["manager"] == "cli" and start["ready"] is True
        assert start["version"] == VERSION and start["ansible_facts"]["kong_service"]["manager"] == "cli"
        observe = run.result("observe")
        assert observe["running"] is True and observe["changed"] is False
        assert run.result("start again")["changed"] is False
        assert run.result("quit")["changed"] is True
        assert run.result("after quit")["running"] is False
        assert SECRET not in run.stdout and SECRET not in run.stderr
    finally:
        node.stop()


def test_escaped_hash_read_back_by_kong(kong_bin, tmp_path):
    node = KongNode(kong_bin, str(tmp_path), name="n2", declarative=DECL)
    tasks = [{"name": "conf", "kongops.upgrade.kong_conf": {"path": node.conf_path, "settings": {"pg_database": "kong#1"}}}]
    run = run_playbook(yaml.safe_dump([{"name": "c", "hosts": "localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False))
    assert run.rc == 0, run.stdout[-3000:]
    try:
        node.start()
        conf = requests.get(node.admin_url + "/", timeout=10).json()["configuration"]
        assert conf["pg_database"] == "kong#1"
    finally:
        node.stop()
