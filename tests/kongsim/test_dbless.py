"""DB-less nodes of every version: Admin API, Status API, /config, proxy headers, key-auth (FACTS 3, 4, 8.1)."""

from __future__ import annotations

import re

import pytest
import requests
import yaml

from kongsim_testlib import VERSIONS, simple_config

V3 = [v for v in VERSIONS if v != "2.8.5"]


def vt(v):
    return tuple(int(x) for x in v.split("."))


@pytest.fixture(scope="module")
def nodes(module_node_factory, echo_upstream):
    """One DB-less node per version with the same declarative config (format 2.1 for 2.8.5)."""
    return module_node_factory.many(
        {v: (v, {"name": f"dbless-{v}", "declarative": simple_config(echo_upstream.url, fmt="2.1" if v == "2.8.5" else "3.0")}) for v in VERSIONS}
    )


@pytest.fixture(scope="module")
def empty_nodes(module_node_factory):
    return module_node_factory.many({v: (v, {"name": f"empty-{v}"}) for v in ("2.8.5", "3.4.2", "3.9.3")})


@pytest.mark.parametrize("version", VERSIONS)
def test_root_fields(nodes, version):
    r = requests.get(nodes[version].admin_url + "/")
    body = r.json()
    assert r.status_code == 200
    assert body["tagline"] == "Welcome to kong" and body["version"] == version
    assert r.headers["Server"] == f"kong/{version}"
    assert re.fullmatch(r"\d+", r.headers["X-Kong-Admin-Latency"])
    assert ("edition" in body) == (vt(version) >= (3, 6, 0))
    avail = body["plugins"]["available_on_server"]["key-auth"]
    if version == "2.8.5":
        assert avail is True
    else:
        assert avail == {"version": version, "priority": 1250}
    assert sorted(body["plugins"]["enabled_in_cluster"]) == ["key-auth", "prometheus"]
    assert body["configuration"]["database"] == "off"
    assert body["configuration"]["role"] == "traditional"
    assert re.fullmatch(r"[0-9a-f-]{36}", body["node_id"])


@pytest.mark.parametrize("version", VERSIONS)
def test_status_fields(nodes, version):
    body = requests.get(nodes[version].admin_url + "/status").json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["configuration_hash"])
    assert body["configuration_hash"] != "0" * 32
    assert ("database" in body) == (version == "2.8.5")
    if version == "2.8.5":
        assert body["database"] == {"reachable": True}
    assert set(body["server"]) == {
        "connections_accepted",
        "connections_active",
        "connections_handled",
        "connections_reading",
        "connections_writing",
        "connections_waiting",
        "total_requests",
    }
    assert re.fullmatch(r"\d+\.\d\d MiB", body["memory"]["workers_lua_vms"][0]["http_allocated_gc"])
    again = requests.get(nodes[version].status_url + "/status").json()
    assert again["configuration_hash"] == body["configuration_hash"]


@pytest.mark.parametrize("version", ["2.8.5", "3.4.2", "3.9.3"])
def test_status_empty_hash_and_ready_reason(empty_nodes, version):
    node = empty_nodes[version]
    body = requests.get(node.admin_url + "/status").json()
    assert body["configuration_hash"] == "0" * 32
    r = requests.get(node.status_url + "/status/ready")
    if version == "2.8.5":
        assert r.status_code == 404 and r.json() == {"message": "Not found"}
    else:
        assert r.status_code == 503
        assert r.json() == {"message": "no configuration available (configuration hash is not initialized)"}


@pytest.mark.parametrize("version", V3)
def test_ready_200_and_wrong_method(nodes, version):
    node = nodes[version]
    r = requests.get(node.status_url + "/status/ready")
    assert r.status_code == 200 and r.json() == {"message": "ready"}
    r = requests.put(node.status_url + "/status/ready")
    assert r.status_code == 405 and r.json() == {"message": "Method not allowed"}
    assert requests.get(node.admin_url + "/status/ready").status_code == 404


@pytest.mark.parametrize("version", ["3.8.1", "3.9.3"])
def test_status_dns(nodes, version):
    r = requests.get(nodes[version].status_url + "/status/dns")
    assert r.status_code == 501
    assert r.json() == {"message": "not implemented with the legacy DNS client"}


@pytest.mark.parametrize("version", VERSIONS)
def test_get_config_format(nodes, version):
    r = requests.get(nodes[version].admin_url + "/config")
    assert r.status_code == 200
    doc = yaml.safe_load(r.json()["config"])
    assert doc["_format_version"] == ("2.1" if version == "2.8.5" else "3.0")
    assert doc["_transform"] is False
    assert doc["services"][0]["name"] == "echo"
    assert doc["routes"][0]["service"] == doc["services"][0]["id"]


@pytest.mark.parametrize("version", VERSIONS)
def test_writes_refused_405_code_12(nodes, version):
    base = nodes[version].admin_url
    cases = [
        ("post", "/services", "cannot create 'services' entities when not using a database"),
        ("put", "/services/echo", "cannot create or update 'services' entities by 'name' when not using a database"),
        ("patch", "/consumers/demo", "cannot update 'consumers' entities by 'username' when not using a database"),
        ("delete", "/routes/echo-route", "cannot remove 'routes' entities by 'name' when not using a database"),
    ]
    for method, path, msg in cases:
        r = getattr(requests, method)(base + path, json={"name": "x", "host": "h"})
        assert r.status_code == 405, path
        assert r.json() == {"code": 12, "name": "operation unsupported", "message": msg}
    sid = requests.get(base + "/services/echo").json()["id"]
    r = requests.delete(base + f"/services/{sid}")
    assert r.json()["message"] == "cannot remove 'services' entities when not using a database"
    r = requests.put(base + "/routes")
    assert r.status_code == 405 and r.json() == {"message": "Method not allowed"}


@pytest.mark.parametrize("version", ["2.8.5", "3.4.2", "3.9.3"])
def test_post_config_201_304_400(module_node_factory, echo_upstream, version):
    node = module_node_factory(version, name=f"post-{version}")
    fmt = "2.1" if version == "2.8.5" else "3.0"
    text = simple_config(echo_upstream.url, fmt=fmt)
    r = requests.post(node.admin_url + "/config", data=text, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201
    body = r.json()
    sid = next(iter(body["services"]))
    assert body["services"][sid]["name"] == "echo"
    h = requests.get(node.admin_url + "/status").json()["configuration_hash"]
    import hashlib

    assert h == hashlib.md5(text.encode()).hexdigest()
    r = requests.post(node.admin_url + "/config?check_hash=1", files={"config": ("kong.yml", text)})
    assert r.status_code == 304 and r.text == ""
    r = requests.post(node.admin_url + "/config")
    assert r.status_code == 400 and r.json() == {"message": "expected a declarative configuration"}
    bad = f'_format_version: "{fmt}"\nservices:\n- name: nohost\n'
    r = requests.post(node.admin_url + "/config?flatten_errors=1", json={"config": bad})
    assert r.status_code == 400
    err = r.json()
    assert err["code"] == 14 and err["name"] == "invalid declarative configuration"
    assert err["fields"] == {"services": [{"host": "required field missing"}]}
    assert err["message"] == 'declarative config is invalid: {services={{host="required field missing"}}}'
    assert ("flattened_errors" in err) == (version != "2.8.5")
    if version != "2.8.5":
        flat = err["flattened_errors"][0]
        assert flat["entity_type"] == "service" and flat["entity_name"] == "nohost"
        assert flat["errors"] == [{"field": "host", "message": "required field missing", "type": "field"}]
    assert requests.get(node.admin_url + "/status").json()["configuration_hash"] == h
    r = requests.post(node.admin_url + "/config", json={"_format_version": "3.0"})
    if version == "2.8.5":
        assert r.status_code == 400 and r.json()["fields"]["_format_version"] == "expected one of: 1.1, 2.1"
    else:
        assert r.status_code == 201
        assert requests.get(node.admin_url + "/status").json()["configuration_hash"] == "0" * 32
        ready = requests.get(node.status_url + "/status/ready")
        assert ready.json() == {"message": "no configuration available (empty configuration present)"}


@pytest.mark.parametrize("version", VERSIONS)
def test_keyauth_per_version(nodes, version):
    node = nodes[version]
    url = node.proxy_url + "/echo/x"
    info_rid = vt(version) >= (3, 5, 0)
    r = requests.get(url)
    assert r.status_code == 401
    assert r.headers["Server"] == f"kong/{version}"
    assert "Via" not in r.headers and "X-Kong-Upstream-Latency" not in r.headers
    assert re.fullmatch(r"\d+", r.headers["X-Kong-Response-Latency"])
    www_nokey = "Key" if vt(version) >= (3, 7, 0) else 'Key realm="kong"'
    assert r.headers.get("WWW-Authenticate") == www_nokey
    if info_rid:
        rid = r.headers["X-Kong-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]+", rid)
        assert r.text == f'{{\n  "message":"No API key found in request",\n  "request_id":"{rid}"\n}}'
    else:
        assert "X-Kong-Request-Id" not in r.headers
        assert r.text == '{\n  "message":"No API key found in request"\n}'
    r = requests.get(url, headers={"apikey": "wrong"})
    assert r.status_code == 401
    expected = "Unauthorized" if vt(version) >= (3, 6, 0) else "Invalid authentication credentials"
    assert r.json()["message"] == expected
    if vt(version) >= (3, 7, 0):
        assert r.headers["WWW-Authenticate"] == "Key"
    else:
        assert "WWW-Authenticate" not in r.headers
    r = requests.get(url + "?apikey=demo-key")
    assert r.status_code == 200
    echoed = r.json()
    assert echoed["headers"]["X-Consumer-Username"] == "demo"
    assert echoed["path"] == "/x"


@pytest.mark.parametrize("version", VERSIONS)
def test_via_and_server_per_version(nodes, version):
    node = nodes[version]
    h = {"apikey": "demo-key"}
    r = requests.get(node.proxy_url + "/echo/v", headers=h)
    assert r.status_code == 200
    sent = r.json()["headers"]
    if vt(version) >= (3, 8, 0):
        assert r.headers["Via"] == f"1.1 kong/{version}"
        assert sent["Via"] == f"1.1 kong/{version}"
    else:
        assert r.headers["Via"] == f"kong/{version}"
        assert "Via" not in sent
    assert re.fullmatch(r"\d+", r.headers["X-Kong-Upstream-Latency"])
    assert re.fullmatch(r"\d+", r.headers["X-Kong-Proxy-Latency"])
    assert ("X-Kong-Request-Id" in sent) == (vt(version) >= (3, 5, 0))
    r = requests.get(node.proxy_url + "/echo/v?via=1.1%20upstream&server=up/1", headers=h)
    if vt(version) >= (3, 8, 0):
        assert r.headers["Via"] == f"1.1 upstream, 1.1 kong/{version}"
    else:
        assert r.headers["Via"] == f"kong/{version}"
    assert r.headers["Server"] == "up/1"


@pytest.mark.parametrize("version", VERSIONS)
def test_no_route_404(nodes, version):
    r = requests.get(nodes[version].proxy_url + "/nothing-here", headers={"Accept": "application/json"})
    assert r.status_code == 404
    assert r.json()["message"] == "no Route matched with those values"
    assert r.headers["Server"] == f"kong/{version}"


@pytest.mark.parametrize("version", VERSIONS)
def test_metrics_naming(nodes, version):
    node = nodes[version]
    requests.get(node.proxy_url + "/echo/m", headers={"apikey": "demo-key"})
    requests.get(node.proxy_url + "/echo/m")
    text = requests.get(node.status_url + "/metrics").text
    if version == "2.8.5":
        assert re.search(r'^kong_http_status\{service="echo",route="echo-route",code="401"\} \d+$', text, re.MULTILINE)
        assert "kong_http_requests_total" not in text
    else:
        assert re.search(
            r'^kong_http_requests_total\{service="echo",route="echo-route",code="200",'
            r'source="service",workspace="default",consumer=""\} \d+$',
            text,
            re.MULTILINE,
        )
        assert re.search(r'code="401",source="exit"', text)


@pytest.mark.parametrize("version", ["2.8.5", "3.9.3"])
def test_pagination(module_node_factory, version):
    fmt = "2.1" if version == "2.8.5" else "3.0"
    services = "".join(f"- name: s{i}\n  url: http://127.0.0.1:9/{i}\n" for i in range(5))
    node = module_node_factory(version, name=f"page-{version}", declarative=f'_format_version: "{fmt}"\nservices:\n{services}')
    seen = []
    r = requests.get(node.admin_url + "/services?size=2").json()
    assert len(r["data"]) == 2 and r["next"].startswith("/services?offset=")
    seen += [s["name"] for s in r["data"]]
    while r["next"]:
        r = requests.get(node.admin_url + r["next"]).json()
        seen += [s["name"] for s in r["data"]]
    assert sorted(seen) == [f"s{i}" for i in range(5)]
    bad = requests.get(node.admin_url + "/services?size=1001")
    assert bad.status_code == 400 and bad.json()["name"] == "invalid size"
    assert requests.get(node.admin_url + "/services/nope").json() == {"message": "Not found"}
    assert requests.get(node.admin_url + "/nope").status_code == 404


@pytest.mark.parametrize("version", ["2.8.5", "3.9.3"])
def test_plugin_entity_collections(nodes, version):
    base = nodes[version].admin_url
    assert requests.get(base + "/acls").json() == {"data": [], "next": None}
    assert requests.get(base + "/basic-auths").status_code == 200
    assert requests.get(base + "/keys").status_code == (404 if version == "2.8.5" else 200)
