"""kong_node_info end to end on simulated Kong nodes (tests/kongsim) of several versions and every mode,
run through ansible-playbook and checked against the nodes' own Admin/Status API answers."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest
import requests
import yaml

from tests.integration.ansible_run import run_playbook

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "kongsim"))
from kongsim_testlib import KongNode, gen_cluster_cert, install_kong, wait_until

MODULE = "kongops.upgrade.kong_node_info"
VERSIONS = ("2.8.5", "3.4.2", "3.6.1", "3.7.1", "3.9.3")


def declarative(version: str, plugin: bool = True) -> str:
    fmt = "2.1" if version.startswith("2.") else "3.0"
    text = f"_format_version: '{fmt}'\nservices:\n- name: echo\n  url: http://127.0.0.1:9/\n"
    text += "  routes:\n  - name: echo\n    paths: [/echo]\n"
    if plugin:
        text += "  plugins:\n  - name: key-auth\n"
    return text


@pytest.fixture(scope="module")
def kong_bins(tmp_path_factory):
    base = tmp_path_factory.mktemp("kong-installs")
    return {v: install_kong(v, str(base / v)) for v in VERSIONS}


@pytest.fixture
def nodes(tmp_path):
    started: list = []

    def make(kong_bin, name, start=True, env=None, **settings):
        node = KongNode(kong_bin, str(tmp_path), name=name, **settings)
        started.append(node)
        if start:
            node.start(env=env)
        return node

    yield make
    for node in started:
        node.stop()


def info_task(name, node, status=True, **extra):
    args = {"admin_url": node.admin_url, **extra}
    if status:
        args["status_url"] = node.status_url
    return {"name": name, MODULE: args, "ignore_errors": True}


def play(tasks):
    pb = [
        {
            "name": "node info",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": tasks,
        }
    ]
    run = run_playbook(yaml.safe_dump(pb, sort_keys=False))
    assert run.data, run.stdout[-3000:] + run.stderr[-3000:]
    return {t["name"]: run.result(t["name"]) for t in tasks}


def probe(node) -> tuple:
    root = requests.get(node.admin_url + "/", timeout=10).json()
    status = requests.get(node.admin_url + "/status", timeout=10).json()
    return root, status


def test_dbless_nodes_of_several_versions(kong_bins, nodes):
    dbless = {v: nodes(kong_bins[v], f"dbless{v.replace('.', '')}", declarative=declarative(v)) for v in
              ("2.8.5", "3.4.2", "3.9.3")}  # fmt: skip
    empty = nodes(kong_bins["3.9.3"], "empty")
    tasks = [info_task(v, n) for v, n in dbless.items()] + [
        info_task("empty", empty),
        info_task("no status url", dbless["3.9.3"], status=False),
        info_task("check mode", dbless["3.4.2"]) | {"check_mode": True},
    ]
    r = play(tasks)
    for version, node in dbless.items():
        res = r[version]
        root, status = probe(node)
        assert not res.get("failed"), res.get("msg")
        assert res["changed"] is False and res["version"] == version == root["version"]
        assert res["mode"] == "dbless" and res["database"] == "off" and res["database_reachable"] is None
        assert res["node_id"] == root["node_id"] and res["hostname"] == root["hostname"]
        assert res["configuration_hash"] == status["configuration_hash"] != "0" * 32
        assert res["plugins_enabled"] == ["key-auth"] and "acl" in res["plugins_available"]
        assert set(res["connections"]) == set(status["server"])
        assert res["ready"] is True and res["data_planes"] == []
    # FACTS 8.1: edition from 3.6; /status/ready from 3.3.
    assert r["2.8.5"]["edition"] is None and r["3.4.2"]["edition"] is None and r["3.9.3"]["edition"] == "community"
    assert r["2.8.5"]["ready_source"] == "status" and "no /status/ready before Kong 3.3" in r["2.8.5"]["ready_reason"]
    assert r["3.4.2"]["ready_source"] == "status_ready" and r["3.4.2"]["ready_reason"] == "ready"
    assert r["3.9.3"]["ready_http_status"] == 200
    assert r["empty"]["ready"] is False and r["empty"]["ready_http_status"] == 503
    assert r["empty"]["ready_reason"].startswith("no configuration available")
    assert r["empty"]["configuration_hash"] == "0" * 32
    assert r["no status url"]["ready"] is True and r["no status url"]["ready_source"] == "status"
    assert r["check mode"]["changed"] is False and r["check mode"]["version"] == "3.4.2"


def test_traditional_node_and_its_database(kong_bins, nodes, postgres):
    db = postgres.create_database("kong_node_info_trad")
    pg = {"database": "postgres", "pg_host": db["host"], "pg_port": db["port"], "pg_user": db["user"],
          "pg_password": db["password"], "pg_database": db["database"]}  # fmt: skip
    node = nodes(kong_bins["3.4.2"], "trad", start=False, **pg)
    assert node.cli("migrations", "bootstrap", "-c", node.conf_path).returncode == 0
    node.start()
    r = play([info_task("traditional", node)])
    res = r["traditional"]
    root, status = probe(node)
    assert (res["mode"], res["role"], res["database"]) == (
        "traditional",
        "traditional",
        "postgres",
    )
    assert res["database_reachable"] is True is status["database"]["reachable"]
    assert res["configuration_hash"] is None and "configuration_hash" not in status
    assert res["ready"] is True and res["ready_source"] == "status_ready"
    assert res["version"] == root["version"] == "3.4.2" and res["plugins_enabled"] == []


def test_control_plane_lists_its_data_planes(kong_bins, nodes, postgres, tmp_path):
    db = postgres.create_database("kong_node_info_cp")
    cert, key = gen_cluster_cert(str(tmp_path))
    tls = {"cluster_cert": cert, "cluster_cert_key": key}
    cp = nodes(kong_bins["3.7.1"], "cp", start=False, role="control_plane", database="postgres", pg_host=db["host"],
               pg_port=db["port"], pg_user=db["user"], pg_password=db["password"], pg_database=db["database"],
               **tls)  # fmt: skip
    assert cp.cli("migrations", "bootstrap", "-c", cp.conf_path).returncode == 0
    cp.start()
    svc = requests.post(
        cp.admin_url + "/services",
        json={"name": "echo", "url": "http://127.0.0.1:9/"},
        timeout=10,
    )
    assert svc.status_code == 201, svc.text
    dps = {
        v: nodes(kong_bins[v], f"dp{v.replace('.', '')}", role="data_plane", database="off",
                 cluster_control_plane=f"127.0.0.1:{cp.cluster_port}", **tls)
        for v in ("3.6.1", "3.7.1")
    }  # fmt: skip

    def listed():
        data = requests.get(cp.admin_url + "/clustering/data-planes", timeout=10).json()["data"]
        return len(data) == 2 and all(d["config_hash"] != "0" * 32 for d in data)

    wait_until(listed, timeout=60, interval=0.5, message="both data planes reported to the CP")
    r = play([info_task("cp", cp)] + [info_task(f"dp {v}", n) for v, n in dps.items()])
    res = r["cp"]
    assert res["mode"] == "hybrid_cp" and res["role"] == "control_plane" and res["database_reachable"] is True
    by_version = {d["version"]: d for d in res["data_planes"]}
    assert set(by_version) == {"3.6.1", "3.7.1"}
    for version, dp in dps.items():
        entry = by_version[version]
        dp_root, dp_status = probe(dp)
        assert entry["id"] == dp_root["node_id"] and entry["hostname"] == dp_root["hostname"]
        assert entry["config_hash"] == dp_status["configuration_hash"]
        assert entry["sync_status"] == "normal" and isinstance(entry["last_seen"], int)
        dp_res = r[f"dp {version}"]
        assert dp_res["mode"] == "hybrid_dp" and dp_res["role"] == "data_plane" and dp_res["data_planes"] == []
        assert dp_res["configuration_hash"] == entry["config_hash"] and dp_res["database_reachable"] is None
    assert "labels" in by_version["3.7.1"] and "updated_at" in by_version["3.7.1"]


def test_until_ready_gate_and_unreachable_node(kong_bins, nodes, tmp_path):
    node = nodes(kong_bins["3.9.3"], "late")
    stopped = nodes(kong_bins["3.9.3"], "stopped")
    stopped.stop()
    marker = tmp_path / "gate-started"

    def load_later():
        wait_until(
            marker.exists,
            timeout=600,
            interval=0.2,
            message="the play reached the gate",
        )
        time.sleep(15)
        requests.post(node.admin_url + "/config", data=declarative("3.9.3"),
                      headers={"Content-Type": "application/yaml"}, timeout=10)  # fmt: skip

    loader = threading.Thread(target=load_later, daemon=True)
    loader.start()
    r = play([
        info_task("before", node),
        {"name": "release the loader", "ansible.builtin.file": {"path": str(marker), "state": "touch"}},
        {"name": "wait ready", MODULE: {"admin_url": node.admin_url, "status_url": node.status_url},
         "register": "node", "until": "node.ready", "retries": 90, "delay": 1},
        info_task("stopped", stopped),
    ])  # fmt: skip
    loader.join(30)
    before = r["before"]
    assert before["ready"] is False and before["ready_reason"].startswith("no configuration available")
    res = r["wait ready"]
    assert res["ready"] is True and not res.get("failed") and res["attempts"] > 1, res.get("attempts")
    assert res["configuration_hash"] != "0" * 32 and res["plugins_enabled"] == ["key-auth"]
    down = r["stopped"]
    assert down.get("failed") is True and down["ready"] is False
    assert "cannot read the node's Admin API" in down["msg"] and stopped.admin_url in down["msg"]
