"""kong_config_freeze end to end: simulated Kong nodes (tests/kongsim) on real PostgreSQL, fronted by
real nginx and HAProxy, the module run through ansible-playbook, the state checked independently
(HTTP through the front and straight to the node, the include/map files, the lock file)."""

from __future__ import annotations

import json
import os

import pytest
import requests
import yaml

from tests.integration.ansible_run import run_playbook
from tests.kongsim.kongsim_testlib import KongNode, install_kong, wait_until
from tests.services.haproxy import freeze_front_config

VERSION = "3.9.3"
NGINX = "/usr/sbin/nginx"


@pytest.fixture(scope="module")
def kong_bin(tmp_path_factory):
    return install_kong(VERSION, str(tmp_path_factory.mktemp("kong-install")))


def seed(admin: str) -> dict:
    """A small configuration of every kind the fingerprint walks, written through the Admin API."""

    def post(path, body):
        resp = requests.post(admin + path, json=body, timeout=10)
        assert resp.status_code == 201, resp.text
        return resp.json()

    ids = {}
    ids["users"] = post("/services", {"name": "users", "url": "http://127.0.0.1:9/users"})["id"]
    post("/services", {"name": "orders", "url": "http://127.0.0.1:9/orders"})
    ids["route"] = post("/services/users/routes", {"name": "users-route", "paths": ["/users"]})["id"]
    post("/services/orders/routes", {"name": "orders-route", "paths": ["/orders"]})
    post("/consumers", {"username": "alice"})
    post("/consumers/alice/key-auth", {"key": "alice-secret-key"})
    post(f"/routes/{ids['route']}/plugins", {"name": "key-auth"})
    up = post("/upstreams", {"name": "users-up"})
    post(f"/upstreams/{up['id']}/targets", {"target": "127.0.0.1:9", "weight": 100})
    return ids


@pytest.fixture
def db_node(kong_bin, postgres, tmp_path):
    db = postgres.create_database("kong_freeze")
    node = KongNode(
        kong_bin,
        str(tmp_path / "kong"),
        name="kong1",
        database="postgres",
        pg_host=db["host"],
        pg_port=db["port"],
        pg_user=db["user"],
        pg_password=db["password"],
        pg_database=db["database"],
    )
    res = node.cli("migrations", "bootstrap", "-c", node.conf_path)
    assert res.returncode == 0, res.stderr
    node.start()
    node.ids = seed(node.admin_url)
    yield node
    node.stop()


def playbook(steps: list, check: bool = False, diff: bool = False):
    """Run kong_config_freeze tasks (name, args) in one ansible-playbook; returns RunResult and the
    task results by name."""
    tasks = [{"name": name, "kongops.upgrade.kong_config_freeze": args, "ignore_errors": True} for name, args in steps]
    play = [{"name": "freeze", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    run = run_playbook(yaml.safe_dump(play, sort_keys=False), check=check, diff=diff)
    assert run.data, run.stdout[-3000:] + run.stderr[-3000:]
    return run, {step[0]: run.result(step[0]) for step in steps}


def freeze(tmp_path, name: str, check: bool = False, diff: bool = False, **args):
    run, results = playbook([(name, args)], check=check, diff=diff)
    return run, results[name]


def services(admin: str) -> list:
    return sorted(s["name"] for s in requests.get(admin + "/services", timeout=10).json()["data"])


def post_service(url: str, name: str):
    return requests.post(url + "/services", json={"name": name, "url": "http://127.0.0.1:9/x"}, timeout=10)


def test_nginx_enforced_freeze_blocks_writes_verifies_and_thaws(db_node, nginx_factory, tmp_path):
    include = tmp_path / "kong-admin-freeze.conf"
    include.write_text("# not frozen yet\n")
    admin = db_node.admin_url
    lb = nginx_factory(f"""
    server {{
        listen 127.0.0.1:{{port:admin}};
        include {include};
        location / {{ proxy_pass {admin}; }}
    }}""")
    front = f"http://127.0.0.1:{lb.ports['admin']}"
    lock = str(tmp_path / "locks" / "prod.json")
    common = {
        "admin_url": admin,
        "cluster": "prod",
        "lock_path": lock,
        "enforce": "nginx",
        "enforce_file": str(include),
        "nginx_bin": NGINX,
        "nginx_conf": lb.config,
        "nginx_prefix": lb.base_dir,
        "enforce_probe_url": front,
    }
    before = services(admin)
    assert post_service(front, "before-freeze").status_code == 201
    requests.delete(admin + "/services/before-freeze", timeout=10)

    run, res = freeze(tmp_path, "predict", check=True, diff=True, state="frozen", run_id="4711", **common)
    assert res["changed"] is True and not os.path.exists(lock)
    assert include.read_text() == "# not frozen yet\n"

    run, res = freeze(tmp_path, "freeze", state="frozen", run_id="4711", reason="upgrade 3.8.1 to 3.9.3", holder="ci@runner", marker=True, **common)
    assert run.rc == 0, run.stdout[-3000:]
    assert res["changed"] is True and res["probe"] == {"url": front, "status": 423, "verified": True}
    fingerprint = res["fingerprint"]["value"]
    assert res["fingerprint"]["by_type"] == {"services": 2, "routes": 2, "consumers": 1, "plugins": 1, "upstreams": 1, "keyauth_credentials": 1, "targets": 1}

    blocked = post_service(front, "through-the-front")
    assert blocked.status_code == 423 and blocked.headers["Content-Type"].startswith("application/json")
    body = blocked.json()
    assert (body["holder"], body["run_id"], body["reason"]) == ("ci@runner", "4711", "upgrade 3.8.1 to 3.9.3")
    for method in ("PUT", "PATCH", "DELETE"):
        assert requests.request(method, front + "/services/users", json={}, timeout=10).status_code == 423
    assert requests.get(front + "/services", timeout=10).status_code == 200
    assert services(admin) == before

    marker = requests.get(admin + "/consumers?tags=kongops-freeze", timeout=10).json()["data"]
    assert [m["username"] for m in marker] == ["kongops-freeze-prod"]
    assert json.loads(marker[0]["custom_id"])["holder"] == "ci@runner"
    with open(lock) as fh:
        record = json.load(fh)
    assert record["fingerprint"]["value"] == fingerprint and record["holder"] == "ci@runner"

    run, res = playbook(
        [
            ("again", dict(state="frozen", run_id="4711", **common)),
            ("other run", dict(state="frozen", run_id="4712", **common)),
            ("verify", dict(state="verified", run_id="4711", **common)),
        ]
    )
    assert res["again"]["changed"] is False
    other = res["other run"]
    assert other["failed"] is True and "already frozen" in other["msg"] and "ci@runner" in other["msg"]
    assert other["stale_lock"]["run_id"] == "4711"
    assert res["verify"].get("failed") is not True and res["verify"]["drift"]["drifted"] is False
    assert res["verify"]["fingerprint"]["value"] == fingerprint

    run, results = playbook([("thaw", dict(state="thawed", run_id="4711", **common)), ("thaw again", dict(state="thawed", run_id="4711", **common))], diff=True)
    res = results["thaw"]
    assert res.get("failed") is not True and res["changed"] is True
    assert res["diff"]["before"]["frozen"] is True and res["diff"]["after"]["frozen"] is False
    assert res["probe"]["verified"] is True and res["probe"]["status"] != 423
    assert results["thaw again"]["changed"] is False
    assert not os.path.exists(lock) and "not frozen" in include.read_text()
    assert requests.get(admin + "/consumers?tags=kongops-freeze", timeout=10).json()["data"] == []
    assert post_service(front, "after-thaw").status_code == 201
    assert "after-thaw" in services(admin)


def test_haproxy_enforced_freeze_catches_a_write_that_bypassed_the_front(db_node, haproxy_factory, tmp_path):
    freeze_map = tmp_path / "kong-freeze.map"
    freeze_map.write_text("")
    admin = db_node.admin_url
    node_port = admin.rsplit(":", 1)[1]
    lb = haproxy_factory(freeze_front_config("prod", str(freeze_map), f"127.0.0.1:{node_port}"))
    front = f"http://127.0.0.1:{lb.ports['admin']}"
    lock = str(tmp_path / "prod.json")
    common = {
        "admin_url": admin,
        "cluster": "prod",
        "lock_path": lock,
        "enforce": "haproxy",
        "haproxy_socket": lb.socket,
        "haproxy_map": str(freeze_map),
        "enforce_probe_url": front,
    }

    run, res = freeze(tmp_path, "freeze", state="frozen", run_id="run-9", holder="ops@bastion", **common)
    assert run.rc == 0, run.stdout[-3000:]
    assert res["enforcement"]["active"] is True and res["probe"]["status"] == 423
    blocked = post_service(front, "through-haproxy")
    assert blocked.status_code == 423 and blocked.json()["holder"] == "ops@bastion"
    assert "prod {" in lb.command(f"show map {freeze_map}") and freeze_map.read_text().startswith("prod {")

    lb.reload()
    assert wait_until(lambda: post_service(front, "after-reload").status_code == 423, timeout=10)

    sneaky = post_service(admin, "sneaky")
    assert sneaky.status_code == 201
    patched = requests.patch(f"{admin}/routes/{db_node.ids['route']}", json={"paths": ["/people"]}, timeout=10)
    assert patched.status_code == 200

    run, results = playbook([("verify", dict(state="verified", run_id="run-9", **common)), ("thaw refused", dict(state="thawed", run_id="run-9", **common))])
    res = results["verify"]
    assert res["failed"] is True
    assert f"added service 'sneaky' (id {sneaky.json()['id']})" in res["msg"]
    assert f"changed route 'users-route' (id {db_node.ids['route']})" in res["msg"]
    assert [d["name"] for d in res["drift"]["added"]] == ["sneaky"]
    res = results["thaw refused"]
    assert res["failed"] is True and "Not thawing" in res["msg"] and os.path.exists(lock)
    assert post_service(front, "still-frozen").status_code == 423

    run, res = freeze(tmp_path, "thaw forced", state="thawed", run_id="run-9", force=True, **common)
    assert res.get("failed") is not True and res["changed"] is True and not os.path.exists(lock)
    assert "prod" not in lb.command(f"show map {freeze_map}") and freeze_map.read_text() == ""
    assert post_service(front, "after-thaw").status_code == 201


def test_dbless_freeze_holds_across_nodes_and_versions(kong_bin, tmp_path_factory, tmp_path):
    """Rolling upgrade of DB-less nodes: frozen on an X node (3.6.1), verified on a Y node (3.7.1) that
    loaded X's export; Y's configuration_hash differs and 3.7 adds key-auth `config.realm`, neither
    is drift; a change posted to Y is."""
    declarative = (
        "_format_version: '3.0'\nservices:\n- name: users\n  url: http://127.0.0.1:9/users\n"
        "  routes:\n  - name: users-route\n    paths: [/users]\n    plugins:\n    - name: key-auth\n"
        "consumers:\n- username: alice\n  keyauth_credentials:\n  - key: alice-secret-key\n"
    )
    x_bin = install_kong("3.6.1", str(tmp_path_factory.mktemp("kong-361")))
    y_bin = install_kong("3.7.1", str(tmp_path_factory.mktemp("kong-371")))
    x = KongNode(x_bin, str(tmp_path / "x"), name="x1", declarative=declarative)
    x.start()
    try:
        lock = str(tmp_path / "edge.json")
        run, res = freeze(tmp_path, "freeze", state="frozen", run_id="r1", marker=True, admin_url=x.admin_url, cluster="edge", lock_path=lock)
        assert run.rc == 0, run.stdout[-3000:]
        x_hash = requests.get(x.admin_url + "/status", timeout=10).json()["configuration_hash"]
        assert res["fingerprint"]["kind"] == "configuration_hash" and res["fingerprint"]["value"] == x_hash
        assert any("marker=true skipped" in str(w) for w in res.get("warnings", []))
        export = requests.get(x.admin_url + "/config", timeout=10).json()["config"]
    finally:
        x.stop()

    y = KongNode(y_bin, str(tmp_path / "y"), name="y1", declarative=export)
    y.start()
    try:
        common = {"admin_url": y.admin_url, "cluster": "edge", "lock_path": lock}
        run, res = freeze(tmp_path, "verify on Y", state="verified", **common)
        assert res.get("failed") is not True, res.get("msg")
        drift = res["drift"]
        assert drift["value_compared"] is False and drift["value_before"] == x_hash
        assert (drift["version_before"], drift["version_after"]) == ("3.6.1", "3.7.1")
        assert "not comparable" in res["compared"]
        assert drift["new_fields"] == {"plugins:key-auth": ["config.realm"]}

        config = yaml.safe_load(export)
        config["services"].append({"name": "sneaky", "host": "sneaky.internal", "port": 80, "protocol": "http"})
        changed = yaml.safe_dump(config)
        resp = requests.post(y.admin_url + "/config", data=changed, headers={"Content-Type": "application/yaml"}, timeout=10)
        assert resp.status_code == 201, resp.text
        run, res = freeze(tmp_path, "verify after a write", state="verified", **common)
        assert res["failed"] is True and "added service 'sneaky'" in res["msg"]
    finally:
        y.stop()
