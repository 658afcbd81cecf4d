"""Hybrid mode: CP/DP version rules, config push, DP cache (FACTS 3.6, 3.7, 5.2; issue 4 item 4)."""

from __future__ import annotations

import re
import time

import pytest
import requests

from kongsim_testlib import gen_cluster_cert, wait_until


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
def cluster(kong_node_factory, postgres, tmp_path):
    db = postgres.create_database("kongsim_hybrid")
    cert, key = gen_cluster_cert(str(tmp_path))
    tls = {"cluster_cert": cert, "cluster_cert_key": key}
    cp = kong_node_factory("3.7.1", start=False, name="cp", role="control_plane", **tls, **pg_settings(db))
    assert cp.cli("migrations", "bootstrap", "-c", cp.conf_path).returncode == 0
    cp.start()

    def dp(version, name):
        return kong_node_factory(version, name=name, role="data_plane", database="off", cluster_control_plane=f"127.0.0.1:{cp.cluster_port}", **tls)

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
    assert set(rows["3.7.1"]) == {
        "id",
        "ip",
        "hostname",
        "version",
        "sync_status",
        "config_hash",
        "last_seen",
        "ttl",
        "updated_at",
        "labels",
        "cert_details",
        "rpc_capabilities",
    }
    # a config change on the CP reaches every compatible DP
    svc = requests.post(cp.admin_url + "/services", json={"name": "echo", "url": echo_upstream.url})
    assert svc.status_code == 201
    assert requests.post(cp.admin_url + "/services/echo/routes", json={"paths": ["/echo"]}).status_code == 201

    def synced():
        rows = dps(cp)
        hashes = {v: requests.get(nodes[v].status_url + "/status").json()["configuration_hash"] for v in ("3.6.1", "3.7.1")}
        return all(rows[v]["sync_status"] == "normal" and rows[v]["config_hash"] == hashes[v] != "0" * 32 for v in hashes) and len(set(hashes.values())) == 1

    for v in ("3.6.1", "3.7.1"):
        wait_until(lambda v=v: requests.get(nodes[v].proxy_url + "/echo/x").status_code == 200, timeout=20, message=f"DP {v} serving the new route")
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
        "message": "this endpoint is only available when Kong is configured to run as Control Plane for the cluster"
    }
    assert re.fullmatch(r"[0-9a-f]{32}", rows["3.7.1"]["config_hash"])


def test_dp_serves_from_cache_without_cp(cluster, echo_upstream):
    cp, make_dp = cluster
    requests.post(cp.admin_url + "/services", json={"name": "echo", "url": echo_upstream.url})
    requests.post(cp.admin_url + "/services/echo/routes", json={"paths": ["/echo"]})
    dp = make_dp("3.7.1", "dp")
    wait_until(lambda: requests.get(dp.proxy_url + "/echo/1").status_code == 200, timeout=20, message="DP serving the CP config")
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
    wait_until(lambda: requests.get(dp.proxy_url + "/other/1").status_code == 200, timeout=20, message="DP reconnected and updated")


def test_a_data_plane_upgraded_in_its_prefix_starts_without_the_old_minors_configuration(cluster, echo_upstream):
    """A 3.6 data plane restarted as 3.7 in the same prefix while its control plane is away: the 3.6 LMDB fails
    the 3.7 tag and is removed, so the data plane has no configuration until the control plane sends one
    (the same version restarted keeps it: test_hybrid.py::test_dp_serves_from_cache_without_cp)."""
    cp, make_dp = cluster
    requests.post(cp.admin_url + "/services", json={"name": "echo", "url": echo_upstream.url})
    requests.post(cp.admin_url + "/services/echo/routes", json={"paths": ["/echo"]})
    dp = make_dp("3.6.1", "dp")
    wait_until(lambda: requests.get(dp.proxy_url + "/echo/1").status_code == 200, timeout=20, message="DP serving the CP config")
    cp.stop()
    dp.stop()
    dp = make_dp("3.7.1", "dp")
    assert 'LMDB tag "3.6" did not match configured tag "3.7"' in dp.error_log()
    assert requests.get(dp.status_url + "/status").json()["configuration_hash"] == "0" * 32
    assert requests.get(dp.proxy_url + "/echo/2").status_code == 404
    cp.start()
    wait_until(lambda: requests.get(dp.proxy_url + "/echo/3").status_code == 200, timeout=20, message="DP configured by the CP")


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
        wait_until(
            lambda node=node: requests.get(node.proxy_url + "/echo/1", headers={"apikey": "k1"}).status_code == 200,
            timeout=20,
            message=f"DP {v} serving the key-auth route",
        )
        assert requests.get(node.proxy_url + "/echo/1").status_code == 401
    assert "unable to update running config" not in nodes["3.6.1"].error_log()
    hashes = {requests.get(n.status_url + "/status").json()["configuration_hash"] for n in nodes.values()}
    assert len(hashes) == 1 and "0" * 32 not in hashes


def test_hybrid_requires_cluster_cert(kong_node_factory):
    node = kong_node_factory("3.9.3", start=False, role="data_plane", database="off")
    res = node.start(check=False)
    assert res.returncode == 1
    assert "cluster certificate and key must be provided to use Hybrid mode" in res.stderr


# The control plane keeps the data planes in the clustering_data_planes table (upsert with
# ttl = cluster_data_plane_purge_delay on connect and on every ping: Kong/kong 3.9.3
# kong/clustering/control_plane.lua:242-264); every control plane on that database lists them,
# also after a restart, and a row goes only when its ttl has passed (the Postgres strategy reads
# `ttl IS NULL OR ttl >= CURRENT_TIMESTAMP` and returns the seconds left:
# kong/db/strategies/postgres/init.lua:1063-1072).
def test_data_planes_live_in_the_database_with_a_ttl(cluster, postgres, kong_node_factory):
    cp, make_dp = cluster
    dp = make_dp("3.7.1", "dp-a")
    wait_until(lambda: "3.7.1" in dps(cp), timeout=20, message="the DP row")
    row = dps(cp)["3.7.1"]
    assert 1209500 < row["ttl"] <= 1209600
    db = cp.settings["pg_database"]
    stored = postgres.psql(f"SELECT id, version FROM clustering_data_planes WHERE id = '{row['id']}'", database=db)
    assert row["id"] in stored and "3.7.1" in stored
    # a second control plane on the same database lists the same data plane
    other = kong_node_factory(
        "3.7.1",
        name="cp2",
        role="control_plane",
        **{k: v for k, v in cp.settings.items() if k.startswith("pg_") or k in ("database", "cluster_cert", "cluster_cert_key", "db_update_frequency")},
    )
    assert dps(other)["3.7.1"]["id"] == row["id"]
    # the data plane goes away; the restarted control plane still lists it from the table
    dp.stop()
    cp.stop()
    cp.start()
    kept = dps(cp)["3.7.1"]
    assert kept["id"] == row["id"] and kept["last_seen"] >= row["last_seen"]
    # until its ttl has passed
    postgres.psql(f"UPDATE clustering_data_planes SET ttl = CURRENT_TIMESTAMP - interval '1 second' WHERE id = '{row['id']}'", database=db)
    assert "3.7.1" not in dps(cp) and "3.7.1" not in dps(other)


# A data plane that lost its control plane tries again after math.random(5, 10) seconds
# (Kong/kong 3.9.3 kong/clustering/data_plane.lua:152-157), serving its cached configuration.
def test_data_plane_reconnects_after_five_to_ten_seconds(cluster):
    cp, make_dp = cluster
    dp = make_dp("3.7.1", "dp-r")
    wait_until(lambda: dps(cp).get("3.7.1", {}).get("sync_status") == "normal", timeout=20, message="connected")
    connects = cp.error_log().count("data plane connected")
    # the data plane's wait starts when its connection breaks, at the stop
    t0 = time.monotonic()
    cp.stop()
    cp.start()
    restarted = time.monotonic() - t0
    wait_until(lambda: cp.error_log().count("data plane connected") > connects, timeout=20, interval=0.1, message="reconnected")
    waited = time.monotonic() - t0
    assert 5.0 <= waited <= restarted + 11.5, (waited, restarted)
    assert dp.pid()


def _openssl(*args, cwd):
    import subprocess

    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


# The CP-DP link is TLS (Kong/kong 3.9.3 kong/templates/nginx_kong.lua:558-577). With cluster_mtls =
# shared a data plane must present the control plane's own certificate: another one is refused after
# the handshake with Kong's line (kong/clustering/tls.lua:35-38, kong/clustering/init.lua:66-69).
def test_shared_mode_refuses_a_data_plane_with_another_certificate(cluster, tmp_path, kong_node_factory):
    cp, _make_dp = cluster
    other = tmp_path / "other"
    other.mkdir()
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "cluster.key",
        "-out",
        "cluster.crt",
        "-days",
        "2",
        "-subj",
        "/CN=kong_clustering",
        cwd=other,
    )
    # it trusts the control plane's certificate (lua_ssl_trusted_certificate) but presents its own
    stranger = kong_node_factory(
        "3.7.1",
        name="dp-stranger",
        role="data_plane",
        database="off",
        cluster_control_plane=f"127.0.0.1:{cp.cluster_port}",
        lua_ssl_trusted_certificate=cp.settings["cluster_cert"],
        cluster_cert=str(other / "cluster.crt"),
        cluster_cert_key=str(other / "cluster.key"),
    )
    wait_until(
        lambda: "data plane presented incorrect client certificate during handshake (digest does not match the control plane certificate)" in cp.error_log(),
        timeout=20,
        message="Kong's line",
    )
    # one that trusts only its own certificate refuses the control plane's before showing its own
    lost = kong_node_factory(
        "3.6.1",
        name="dp-lost",
        role="data_plane",
        database="off",
        cluster_control_plane=f"127.0.0.1:{cp.cluster_port}",
        cluster_cert=str(other / "cluster.crt"),
        cluster_cert_key=str(other / "cluster.key"),
    )
    wait_until(lambda: "certificate verify failed" in lost.error_log(), timeout=20, message="the DP's refusal")
    assert not dps(cp), "a data plane with another certificate was listed"
    assert stranger.pid() and lost.pid(), "the data planes keep running (and retrying)"
    # the link is TLS: a plain HTTP request to the cluster listener gets no HTTP answer
    import socket

    with socket.create_connection(("127.0.0.1", cp.cluster_port), timeout=5) as sock:
        sock.sendall(b"GET /v1/outlet HTTP/1.1\r\nHost: cp\r\n\r\n")
        try:
            answer = sock.recv(64)
        except OSError:
            answer = b""
    assert not answer.startswith(b"HTTP/1.1 101")


# cluster_mtls = pki: each node has its own certificate signed by cluster_ca_cert; the data plane
# checks the control plane's against cluster_server_name (kong/clustering/utils.lua:97-105).
def test_pki_mode_accepts_certificates_of_the_ca_and_refuses_others(kong_node_factory, postgres, tmp_path):
    pki = tmp_path / "pki"
    pki.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=cluster CA", cwd=pki)
    (pki / "san.cnf").write_text("subjectAltName=DNS:cp.kong.test\n")
    for name in ("cp", "dp"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}.kong.test", cwd=pki)
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
            "-out",
            f"{name}.crt",
            cwd=pki,
        )
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out", "rogue.crt", "-days", "2", "-subj", "/CN=rogue", cwd=pki)
    db = postgres.create_database("kongsim_hybrid_pki")
    common = {"cluster_mtls": "pki", "cluster_ca_cert": str(pki / "ca.crt")}
    cp = kong_node_factory(
        "3.7.1",
        start=False,
        name="cp",
        role="control_plane",
        cluster_cert=str(pki / "cp.crt"),
        cluster_cert_key=str(pki / "cp.key"),
        **common,
        **pg_settings(db),
    )
    assert cp.cli("migrations", "bootstrap", "-c", cp.conf_path).returncode == 0
    cp.start()
    dp = kong_node_factory(
        "3.7.1",
        name="dp-pki",
        role="data_plane",
        database="off",
        cluster_control_plane=f"127.0.0.1:{cp.cluster_port}",
        cluster_server_name="cp.kong.test",
        cluster_cert=str(pki / "dp.crt"),
        cluster_cert_key=str(pki / "dp.key"),
        **common,
    )
    wait_until(lambda: dps(cp).get("3.7.1", {}).get("sync_status") == "normal", timeout=20, message="pki DP in sync")
    rogue = kong_node_factory(
        "3.6.1",
        name="dp-rogue",
        role="data_plane",
        database="off",
        cluster_control_plane=f"127.0.0.1:{cp.cluster_port}",
        cluster_server_name="cp.kong.test",
        cluster_cert=str(pki / "rogue.crt"),
        cluster_cert_key=str(pki / "rogue.key"),
        **common,
    )
    time.sleep(3)
    assert "3.6.1" not in dps(cp) and rogue.pid() and dp.pid()


def test_pki_mode_needs_cluster_ca_cert(kong_node_factory, tmp_path):
    cert, key = gen_cluster_cert(str(tmp_path))
    node = kong_node_factory(
        "3.7.1", start=False, name="dp-noca", role="data_plane", database="off", cluster_mtls="pki", cluster_cert=cert, cluster_cert_key=key
    )
    res = node.start(check=False)
    assert res.returncode == 1
    assert 'cluster_ca_cert must be specified when cluster_mtls = "pki"' in res.stderr


def test_an_accepted_data_plane_is_listed_from_its_first_ping_never_unknown(cluster, echo_upstream):
    """Kong/kong 3.9.3: the control plane writes an accepted data plane's row on its pings only
    (kong/clustering/control_plane.lua:376-380; on connect only a refused version, :271-281), with the
    sync_status of the initial compatibility check (:307-312), and the data plane pings as soon as it is
    connected (kong/clustering/data_plane.lua:273-281). So no row of an accepted data plane is ever
    `unknown` (the same at 2.8.5, 3.4.2 and 3.6.1: control_plane.lua update_sync_status on pings)."""
    import threading

    cp, make_dp = cluster
    with requests.Session() as http:
        for i in range(30):
            assert http.post(cp.admin_url + "/services", json={"name": f"s{i}", "url": echo_upstream.url}).status_code == 201
            assert http.post(cp.admin_url + f"/services/s{i}/routes", json={"paths": [f"/s{i}"]}).status_code == 201
    seen, stop = [], threading.Event()

    def watch():
        with requests.Session() as http:
            while not stop.is_set():
                seen.extend(http.get(cp.admin_url + "/clustering/data-planes").json()["data"])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        dp = make_dp("3.7.1", "dp")
        wait_until(lambda: requests.get(dp.proxy_url + "/s29/x").status_code == 200, timeout=20, message="DP serving the CP config")
        dp_hash = requests.get(dp.status_url + "/status").json()["configuration_hash"]
        wait_until(lambda: any(r["config_hash"] == dp_hash for r in seen), timeout=20, message="row with the DP hash")
    finally:
        stop.set()
        watcher.join(5)
    assert seen and {r["sync_status"] for r in seen} == {"normal"}, {r["sync_status"] for r in seen}
