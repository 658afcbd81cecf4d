"""Traditional (PostgreSQL) nodes: start gate on migrations, Admin API writes to real tables,
cache invalidation between nodes through cluster_events (FACTS 1.3, 2.1, 3.2, 3.4)."""

from __future__ import annotations

import re

import pytest
import requests

from kongsim_testlib import wait_until

MIG_LUA = "/usr/local/share/lua/5.1/kong/cmd/utils/migrations.lua"


def pg_settings(db: dict) -> dict:
    return {
        "database": "postgres",
        "pg_host": db["host"],
        "pg_port": db["port"],
        "pg_user": db["user"],
        "pg_password": db["password"],
        "pg_database": db["database"],
        "db_update_frequency": 1,
    }


@pytest.fixture
def db(postgres, request):
    name = "kongsim_" + re.sub(r"\W", "_", request.node.name)[:40].lower()
    return postgres.create_database(name)


def test_start_gate_and_blue_green(kong_node_factory, db, postgres, echo_upstream):
    settings = pg_settings(db)
    new = kong_node_factory("3.4.2", start=False, name="y", **settings)
    res = new.start(check=False)
    assert res.returncode == 1
    assert res.stderr.startswith(f"Error: {MIG_LUA}:17: Database needs bootstrapping or is older than Kong 1.0.\n")
    old = kong_node_factory("2.8.5", start=False, name="x", **settings)
    boot = old.cli("migrations", "bootstrap", "-c", old.conf_path)
    assert boot.returncode == 0, boot.stderr
    old.start()
    res = new.start(check=False)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == (
        f"Error: {MIG_LUA}:20: New migrations available; run 'kong migrations up' to proceed\n\n  Run with --v (verbose) or --vv (debug) for more details\n"
    )
    up = new.cli("migrations", "up", "-c", new.conf_path)
    assert up.returncode == 0, up.stderr
    res = new.start()
    lines = res.stdout.splitlines()
    assert lines[0] == "Database has pending migrations:"
    assert re.fullmatch(r" +core: 016_280_to_300", lines[1])
    assert lines[-1] == "Kong started"
    assert "database has pending migrations" in new.error_log()

    status = requests.get(new.admin_url + "/status").json()
    assert status["database"] == {"reachable": True} and "configuration_hash" not in status
    assert requests.get(new.status_url + "/status/ready").json() == {"message": "ready"}
    r = requests.post(new.admin_url + "/config", json={"_format_version": "3.0"})
    assert r.status_code == 400
    assert r.json() == {"message": "this endpoint is only available when Kong is configured to not use a database"}

    svc = requests.post(new.admin_url + "/services", json={"name": "echo", "url": echo_upstream.url})
    assert svc.status_code == 201, svc.text
    sid = svc.json()["id"]
    route = requests.post(new.admin_url + "/services/echo/routes", json={"name": "r1", "paths": ["/echo"]})
    assert route.status_code == 201, route.text
    assert route.json()["service"] == {"id": sid}
    assert requests.post(new.admin_url + "/services/echo/plugins", data={"name": "key-auth"}).status_code == 201
    assert requests.post(new.admin_url + "/consumers", json={"username": "demo"}).status_code == 201
    cred = requests.post(new.admin_url + "/consumers/demo/key-auth", json={"key": "demo-key"})
    assert cred.status_code == 201, cred.text
    dup = requests.post(new.admin_url + "/services", json={"name": "echo", "url": echo_upstream.url})
    assert dup.status_code == 409 and dup.json()["code"] == 5
    assert dup.json()["message"] == "UNIQUE violation detected on '{name=\"echo\"}'"
    bad = requests.post(new.admin_url + "/services", json={"name": "nohost"})
    assert bad.status_code == 400
    assert bad.json() == {
        "code": 2,
        "name": "schema violation",
        "message": "schema violation (host: required field missing)",
        "fields": {"host": "required field missing"},
    }

    assert postgres.psql("SELECT name, host, port FROM services", database=db["database"]).strip() == f"echo|127.0.0.1|{echo_upstream.port}"
    assert postgres.psql("SELECT key FROM keyauth_credentials", database=db["database"]).strip() == "demo-key"

    r = requests.get(new.proxy_url + "/echo/a", headers={"apikey": "demo-key"})
    assert r.status_code == 200 and r.json()["path"] == "/a"
    # the other node (2.8.5, same database) learns the change through cluster_events
    wait_until(
        lambda: requests.get(old.proxy_url + "/echo/b", headers={"apikey": "demo-key"}).status_code == 200,
        timeout=15,
        message="2.8.5 node serving the new route",
    )
    r = requests.get(old.proxy_url + "/echo/b", headers={"apikey": "demo-key"})
    assert r.headers["Via"] == "kong/2.8.5"
    assert requests.get(old.admin_url + "/services/echo").json()["id"] == sid

    assert requests.delete(new.admin_url + "/services/echo").status_code == 400
    assert requests.delete(new.admin_url + "/routes/r1").status_code == 204
    assert requests.get(new.admin_url + "/routes/r1").status_code == 404
    assert postgres.psql("SELECT count(*) FROM routes", database=db["database"]).strip() == "0"
    wait_until(lambda: requests.get(old.proxy_url + "/echo/b").status_code == 404, timeout=15, message="route removal reaching the 2.8.5 node")


def test_db_crud_and_pagination(kong_node_factory, db):
    node = kong_node_factory("3.9.3", start=False, **pg_settings(db))
    assert node.cli("migrations", "bootstrap", "-c", node.conf_path).returncode == 0
    node.start()
    base = node.admin_url
    ids = []
    for i in range(5):
        r = requests.post(base + "/upstreams", json={"name": f"up{i}.internal"})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    page = requests.get(base + "/upstreams?size=2").json()
    assert len(page["data"]) == 2 and page["next"]
    names = [u["name"] for u in page["data"]]
    while page["next"]:
        page = requests.get(base + page["next"]).json()
        names += [u["name"] for u in page["data"]]
    assert sorted(names) == [f"up{i}.internal" for i in range(5)]
    t = requests.post(base + "/upstreams/up0.internal/targets", json={"target": "127.0.0.1:9", "weight": 5})
    assert t.status_code == 201 and t.json()["upstream"] == {"id": ids[0]}
    assert t.json()["target"] == "127.0.0.1:9"
    r = requests.patch(base + "/upstreams/up1.internal", json={"slots": 100})
    assert r.status_code == 200 and r.json()["slots"] == 100
    r = requests.put(base + "/consumers/alice", json={"custom_id": "a1"})
    assert r.status_code == 200 and r.json()["username"] == "alice"
    r = requests.put(base + "/consumers/alice", json={"custom_id": "a2"})
    assert r.status_code == 200 and r.json()["custom_id"] == "a2"
    assert requests.get(base + "/consumers/a2").json()["username"] == "alice"
    r = requests.post(base + "/plugins", json={"name": "nope"})
    assert r.status_code == 400
    assert r.json()["fields"] == {"name": "plugin 'nope' not enabled; add it to the 'plugins' configuration property"}
    r = requests.post(base + "/routes", json={"paths": ["/x"], "service": {"id": "00000000-0000-0000-0000-000000000001"}})
    assert r.status_code == 400 and r.json()["code"] == 4
    root = requests.get(base + "/").json()
    assert root["configuration"]["pg_password"] == "******"
    assert root["configuration"]["database"] == "postgres"


def test_database_unreachable_status_and_ready(kong_node_factory, postgres):
    """/status, /status/ready and /metrics connect to the database on each request (Kong/kong 3.9.3
    kong/status/ready.lua:73-80, kong/api/routes/health.lua:59-63, kong/plugins/prometheus/exporter.lua:438):
    the first request after the database refuses the node says so, and the first one after it accepts
    it again is ready; no cached verdict lags behind."""
    db = postgres.create_database("kongsim_unreach", owner="kongsim_unreach", password="secret1")
    node = kong_node_factory("3.9.3", start=False, **pg_settings(db))
    assert node.cli("migrations", "bootstrap", "-c", node.conf_path).returncode == 0
    node.start()
    assert requests.get(node.status_url + "/status/ready").json() == {"message": "ready"}
    postgres.psql("ALTER ROLE kongsim_unreach NOLOGIN")
    try:
        assert requests.get(node.admin_url + "/status").json()["database"] == {"reachable": False}
        r = requests.get(node.status_url + "/status/ready")
        assert r.status_code == 503 and r.json() == {"message": "failed to connect to database"}
        assert "kong_datastore_reachable 0" in requests.get(node.status_url + "/metrics").text
    finally:
        postgres.psql("ALTER ROLE kongsim_unreach LOGIN")
    r = requests.get(node.status_url + "/status/ready")
    assert r.status_code == 200 and r.json() == {"message": "ready"}
    assert requests.get(node.admin_url + "/status").json()["database"] == {"reachable": True}
    # draining answers before the database is asked (ready.lua:106-112)
    postgres.psql("ALTER ROLE kongsim_unreach NOLOGIN")
    try:
        assert requests.post(node.status_url + "/status/ready", json={"status": "draining"}).status_code == 204
        r = requests.get(node.status_url + "/status/ready")
        assert r.status_code == 503 and r.json() == {"message": "draining"}
    finally:
        postgres.psql("ALTER ROLE kongsim_unreach LOGIN")
    node.stop()
    postgres.psql("ALTER ROLE kongsim_unreach NOLOGIN")
    try:
        res = node.start(check=False)
    finally:
        postgres.psql("ALTER ROLE kongsim_unreach LOGIN")
    assert res.returncode == 1
    assert res.stderr.startswith("Error: [PostgreSQL error] failed to retrieve PostgreSQL server_version_num: ")
