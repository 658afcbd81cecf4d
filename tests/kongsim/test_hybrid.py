"""Hybrid mode: CP/DP version rules, config push, DP cache (FACTS 3.6, 3.7, 5.2; issue 4 item 4)."""
from __future__ import annotations

import re

import pytest
import requests

from kongsim_testlib import gen_cluster_cert, wait_until


def pg_settings(db: dict) -> dict:
    return {"database": "postgres", "pg_host": db["host"], "pg_port": db["port"], "pg_user": db["user"],
            "pg_password": db["password"], "pg_database": db["database"], "db_update_frequency": 1}


@pytest.fixture
def cluster(kong_node_factory, postgres, tmp_path):
    db = postgres.create_database("kongsim_hybrid")
    cert, key = gen_cluster_cert(str(tmp_path))
    tls = {"cluster_cert": cert, "cluster_cert_key": key}
    cp = kong_node_factory("3.7.1", start=False, name="cp", role="control_plane", **tls, **pg_settings(db))
    assert cp.cli("migrations", "bootstrap", "-c", cp.conf_path).returncode == 0
    cp.start()

    def dp(version, name):
        return kong_node_factory(version, name=name, role="data_plane", database="off",
                                 cluster_control_plane=f"127.0.0.1:{cp.cluster_port}", **tls)

    return cp, dp


def dps(cp):
    return {row["version"]: row for row in requests.get(cp.admin_url + "/clustering/data-planes").json()["data"]}


def test_cp_accepts_and_rejects_per_version(cluster, echo_upstream):
    cp, make_dp = cluster
    nodes = {v: make_dp(v, f"dp-{v}") for v in ("3.6.1", "3.7.1", "3.8.1", "2.8.5")}
    wait_until(lambda: len(dps(cp)) == 4, timeout=20, message="4 DP rows")
    rows = dps(cp)
    assert rows["3.8.1"]["sync_status"] == "kong_version_incompatible"
    assert rows["2.8.5"]["sync_status"] == "kong_version_incompatible"
    log = cp.error_log()
    assert "data plane version 3.8.1 is incompatible with older control plane version 3.7.1" in log
    assert "data plane version 2.8.5 is incompatible with control plane version 3.7.1 (3.x.y are accepted)" in log
    assert set(rows["3.7.1"]) == {"id", "ip", "hostname", "version", "sync_status", "config_hash", "last_seen",
                                  "ttl", "updated_at", "labels", "cert_details", "rpc_capabilities"}
    # a config change on the CP reaches every compatible DP
    svc = requests.post(cp.admin_url + "/services", json={"name": "echo", "url": echo_upstream.url})
    assert svc.status_code == 201
    assert requests.post(cp.admin_url + "/services/echo/routes", json={"paths": ["/echo"]}).status_code == 201

    def synced():
        rows = dps(cp)
        hashes = {v: requests.get(nodes[v].status_url + "/status").json()["configuration_hash"]
                  for v in ("3.6.1", "3.7.1")}
        return all(rows[v]["sync_status"] == "normal" and rows[v]["config_hash"] == hashes[v] != "0" * 32
                   for v in hashes) and len(set(hashes.values())) == 1

    for v in ("3.6.1", "3.7.1"):
        wait_until(lambda v=v: requests.get(nodes[v].proxy_url + "/echo/x").status_code == 200, timeout=20,
                   message=f"DP {v} serving the new route")
    wait_until(synced, timeout=20, message="DPs in sync")
    for v in ("3.6.1", "3.7.1"):
        r = requests.get(nodes[v].proxy_url + "/echo/x")
        assert r.status_code == 200 and r.headers["Via"] == f"kong/{v}"
    assert requests.get(nodes["3.8.1"].proxy_url + "/echo/x").status_code == 404
    r = requests.get(nodes["3.8.1"].status_url + "/status/ready")
    assert r.json() == {"message": "no configuration available (configuration hash is not initialized)"}
    st = requests.get(cp.admin_url + "/clustering/status")
    assert st.headers["Deprecation"] == "true"
    assert {e["hostname"] for e in st.json().values()} and len(st.json()) == 4
    assert requests.get(nodes["3.7.1"].admin_url + "/clustering/data-planes").json() == {
        "message": "this endpoint is only available when Kong is configured to run as Control Plane for the cluster"}
    assert re.fullmatch(r"[0-9a-f]{32}", rows["3.7.1"]["config_hash"])


def test_dp_serves_from_cache_without_cp(cluster, echo_upstream):
    cp, make_dp = cluster
    requests.post(cp.admin_url + "/services", json={"name": "echo", "url": echo_upstream.url})
    requests.post(cp.admin_url + "/services/echo/routes", json={"paths": ["/echo"]})
    dp = make_dp("3.7.1", "dp")
    wait_until(lambda: requests.get(dp.proxy_url + "/echo/1").status_code == 200, timeout=20,
               message="DP serving the CP config")
    h = requests.get(dp.status_url + "/status").json()["configuration_hash"]
    cp.stop()
    assert requests.get(dp.proxy_url + "/echo/2").status_code == 200
    dp.stop()
    dp.start()
    r = requests.get(dp.proxy_url + "/echo/3")
    assert r.status_code == 200
    assert requests.get(dp.status_url + "/status").json()["configuration_hash"] == h
    assert requests.get(dp.status_url + "/status/ready").json() == {"message": "ready"}
    cp.start()
    requests.post(cp.admin_url + "/services/echo/routes", json={"paths": ["/other"]})
    wait_until(lambda: requests.get(dp.proxy_url + "/other/1").status_code == 200, timeout=20,
               message="DP reconnected and updated")


def test_older_minor_dp_loads_plugin_config_with_fields_it_does_not_know(cluster, echo_upstream):
    """FACTS 5.2: a 3.7 CP accepts a 3.6 DP; the key-auth `realm` field (new in 3.7, §8.1) is removed
    from what the 3.6 DP receives, so it loads the configuration; the hash is the CP's for both."""
    cp, make_dp = cluster
    assert requests.post(cp.admin_url + "/services", json={"name": "echo", "url": echo_upstream.url}).status_code == 201
    assert requests.post(cp.admin_url + "/services/echo/routes", json={"name": "echo", "paths": ["/echo"]}).status_code == 201
    plugin = requests.post(cp.admin_url + "/routes/echo/plugins", json={"name": "key-auth"})
    assert plugin.status_code == 201 and "realm" in plugin.json()["config"]
    assert requests.post(cp.admin_url + "/consumers", json={"username": "demo"}).status_code == 201
    assert requests.post(cp.admin_url + "/consumers/demo/key-auth", json={"key": "k1"}).status_code == 201
    nodes = {v: make_dp(v, f"dp-{v}") for v in ("3.6.1", "3.7.1")}
    for v, node in nodes.items():
        wait_until(lambda node=node: requests.get(node.proxy_url + "/echo/1", headers={"apikey": "k1"}).status_code == 200,
                   timeout=20, message=f"DP {v} serving the key-auth route")
        assert requests.get(node.proxy_url + "/echo/1").status_code == 401
    assert "unable to update running config" not in nodes["3.6.1"].error_log()
    hashes = {requests.get(n.status_url + "/status").json()["configuration_hash"] for n in nodes.values()}
    assert len(hashes) == 1 and "0" * 32 not in hashes


def test_hybrid_requires_cluster_cert(kong_node_factory):
    node = kong_node_factory("3.9.3", start=False, role="data_plane", database="off")
    res = node.start(check=False)
    assert res.returncode == 1
    assert "cluster certificate and key must be provided to use Hybrid mode" in res.stderr
