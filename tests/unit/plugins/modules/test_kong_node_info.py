"""kong_node_info main() against a fake requests.Session answering with FACTS.md section 3 bodies."""

from __future__ import annotations

import json

import pytest
import requests
from ansible_collections.kongops.upgrade.tests.unit.conftest import run_module
from ansible_collections.kongops.upgrade.plugins.modules import kong_node_info

ADMIN = "http://127.0.0.1:8001"
STATUS = "http://127.0.0.1:8007"
TOKEN = "admin-token-value"
SERVER = {
    "connections_accepted": 7,
    "connections_active": 2,
    "connections_handled": 7,
    "connections_reading": 0,
    "connections_writing": 1,
    "connections_waiting": 1,
    "total_requests": 40,
}


def root(
    version,
    database="postgres",
    role="traditional",
    edition=True,
    enabled=("key-auth",),
    v28=False,
):
    body = {
        "tagline": "Welcome to kong",
        "version": version,
        "hostname": f"kong-{role}",
        "node_id": "6a0e6ab4-3c3d-4cd0-a2c3-9c6d7ee5c3f1",
        "plugins": {
            "available_on_server": {
                "key-auth": True if v28 else {"version": version, "priority": 1250},
                "acl": True if v28 else {"version": version, "priority": 950},
            },
            "enabled_in_cluster": list(enabled),
        },
        "configuration": {"database": database, "role": role, "pg_password": "******"},
    }
    if edition:
        body["edition"] = "community"
    return body


def status_db(reachable=True):
    return {"database": {"reachable": reachable}, "memory": {}, "server": SERVER}


def status_off(conf_hash, with_database=False):
    body = {"memory": {}, "server": SERVER, "configuration_hash": conf_hash}
    if with_database:
        body["database"] = {"reachable": True}
    return body


class FakeHttp:
    def __init__(self, routes):
        self.routes = routes
        self.headers_seen: list = []

    def __call__(self, session, method, url, **kwargs):
        self.headers_seen.append(dict(session.headers))
        if url not in self.routes:
            raise requests.ConnectionError(f"connection refused: {url}")
        code, body = self.routes[url]
        resp = requests.Response()
        resp.status_code, resp.url = code, url
        if isinstance(body, str):
            resp._content = body.encode()
            resp.headers["Content-Type"] = "text/plain; charset=UTF-8"
        else:
            resp._content = json.dumps(body).encode()
            resp.headers["Content-Type"] = "application/json"
        return resp


@pytest.fixture
def http(monkeypatch):
    fake = FakeHttp({})

    def request(session, method, url, **kwargs):
        return fake(session, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)
    return fake


def run_raw(capsys, args):
    return run_module(kong_node_info.main, capsys, args, {"admin_url": ADMIN})


def run(capsys, args):
    rc, result, _out = run_raw(capsys, args)
    return rc, result


def test_traditional_393_ready_from_status_listener(http, capsys):
    http.routes = {
        ADMIN + "/": (200, root("3.9.3")),
        ADMIN + "/status": (200, status_db()),
        STATUS + "/status/ready": (200, {"message": "ready"}),
    }
    rc, r = run(capsys, {"status_url": STATUS})
    assert rc == 0 and r["changed"] is False
    assert (r["version"], r["edition"], r["mode"], r["role"], r["database"]) == (
        "3.9.3",
        "community",
        "traditional",
        "traditional",
        "postgres",
    )
    assert r["database_reachable"] is True and r["configuration_hash"] is None
    assert (
        r["ready"],
        r["ready_reason"],
        r["ready_source"],
        r["ready_http_status"],
    ) == (True, "ready", "status_ready", 200)
    assert r["connections"] == SERVER and r["plugins_enabled"] == ["key-auth"]
    assert r["plugins_available"] == ["acl", "key-auth"] and r["data_planes"] == []
    assert r["node_id"] == "6a0e6ab4-3c3d-4cd0-a2c3-9c6d7ee5c3f1" and r["hostname"] == "kong-traditional"


def test_dbless_285_has_no_ready_endpoint_and_derives_readiness(http, capsys):
    http.routes = {
        ADMIN + "/": (
            200,
            root("2.8.5", database="off", edition=False, enabled=(), v28=True),
        ),
        ADMIN + "/status": (
            200,
            status_off("595214af5fb356cc569313184c64d9b7", with_database=True),
        ),
        STATUS + "/status/ready": (404, {"message": "Not found"}),
    }
    rc, r = run(capsys, {"status_url": STATUS})
    assert rc == 0 and r["mode"] == "dbless" and r["edition"] is None
    assert r["database_reachable"] is None
    assert r["configuration_hash"] == "595214af5fb356cc569313184c64d9b7"
    assert r["ready"] is True and r["ready_source"] == "status"
    assert "no /status/ready before Kong 3.3" in r["ready_reason"] and "configuration_hash" in r["ready_reason"]
    assert r["plugins_available"] == ["acl", "key-auth"] and r["plugins_enabled"] == []


def test_dbless_empty_config_is_not_ready_with_kongs_reason(http, capsys):
    http.routes = {
        ADMIN + "/": (200, root("3.9.3", database="off")),
        ADMIN + "/status": (200, status_off("0" * 32)),
        STATUS + "/status/ready": (
            503,
            {"message": "no configuration available (empty configuration present)"},
        ),
    }
    rc, r = run(capsys, {"status_url": STATUS})
    assert rc == 0 and r["ready"] is False and r["ready_http_status"] == 503
    assert r["ready_reason"] == "no configuration available (empty configuration present)"


def test_without_status_url_readiness_comes_from_admin_status(http, capsys):
    http.routes = {
        ADMIN + "/": (200, root("3.4.2", database="off")),
        ADMIN + "/status": (200, status_off("0" * 32)),
    }
    rc, r = run(capsys, {})
    assert rc == 0 and r["ready"] is False and r["ready_source"] == "status"
    assert "all zeros" in r["ready_reason"] and "status_url not set" in r["ready_reason"]


def test_traditional_with_unreachable_database(http, capsys):
    http.routes = {
        ADMIN + "/": (200, root("3.4.2")),
        ADMIN + "/status": (200, status_db(reachable=False)),
    }
    rc, r = run(capsys, {})
    assert rc == 0 and r["database_reachable"] is False and r["ready"] is False
    assert "failed to connect to database" in r["ready_reason"]


def test_data_plane(http, capsys):
    http.routes = {
        ADMIN + "/": (200, root("3.4.2", database="off", role="data_plane")),
        ADMIN + "/status": (200, status_off("a" * 32)),
        STATUS + "/status/ready": (200, {"message": "ready"}),
    }
    rc, r = run(capsys, {"status_url": STATUS})
    assert rc == 0 and r["mode"] == "hybrid_dp" and r["role"] == "data_plane" and r["ready"] is True
    assert r["data_planes"] == []


def test_control_plane_lists_data_planes_across_pages(http, capsys):
    dp = {
        "ip": "172.24.0.10",
        "updated_at": 1689266492,
        "config_hash": "595214af5fb356cc569313184c64d9b7",
        "sync_status": "normal",
        "version": "3.7.1",
        "id": "10424658-f139-476c-b74f-e0a6e6ec9402",
        "hostname": "kongDP2",
        "ttl": 1209593,
        "last_seen": 1689266492,
        "labels": {"region": "eu"},
        "cert_details": {"expiry_timestamp": 1897136778},
    }
    old = dict(
        dp,
        id="20424658-f139-476c-b74f-e0a6e6ec9402",
        hostname="kongDP1",
        version="3.6.1",
        sync_status="unknown",
        config_hash="0" * 32,
    )
    http.routes = {
        ADMIN + "/": (200, root("3.7.1", role="control_plane")),
        ADMIN + "/status": (200, status_db()),
        ADMIN + "/clustering/data-planes?size=1000": (
            200,
            {"data": [dp], "next": "/clustering/data-planes?offset=x"},
        ),
        ADMIN + "/clustering/data-planes?offset=x": (
            200,
            {"data": [old], "next": None},
        ),
    }
    rc, r = run(capsys, {})
    assert rc == 0 and r["mode"] == "hybrid_cp" and r["ready"] is True
    assert [(d["hostname"], d["version"], d["sync_status"]) for d in r["data_planes"]] == [("kongDP1", "3.6.1", "unknown"), ("kongDP2", "3.7.1", "normal")]
    assert r["data_planes"][1]["config_hash"] == "595214af5fb356cc569313184c64d9b7"
    assert r["data_planes"][1]["last_seen"] == 1689266492 and "cert_details" not in r["data_planes"][1]
    rc, r = run(capsys, {"data_planes": False})
    assert r["data_planes"] == []


def test_admin_api_unreachable_fails_with_ready_false(http, capsys):
    rc, r = run(capsys, {})
    assert rc == 1 and r["failed"] is True and r["ready"] is False
    assert "cannot read the node's Admin API" in r["msg"] and "127.0.0.1:8001" in r["msg"]


def test_admin_api_401_names_the_fix_and_hides_the_token(http, capsys):
    http.routes = {ADMIN + "/": (401, {"message": "Unauthorized"})}
    rc, r, out = run_raw(capsys, {"admin_token": TOKEN})
    assert rc == 1 and "HTTP 401" in r["msg"] and "admin_token" in r["msg"] and r["status_code"] == 401
    assert http.headers_seen[0]["Kong-Admin-Token"] == TOKEN
    assert TOKEN not in out


def test_status_listener_unreachable_is_not_ready(http, capsys):
    http.routes = {
        ADMIN + "/": (200, root("3.9.3")),
        ADMIN + "/status": (200, status_db()),
    }
    rc, r = run(capsys, {"status_url": STATUS})
    assert rc == 0 and r["ready"] is False and r["ready_reason"].startswith("status listener unreachable")


@pytest.mark.parametrize(
    "args,needle",
    [
        ({"admin_url": "127.0.0.1:8001"}, "admin_url: '127.0.0.1:8001' is not a URL"),
        ({"status_url": "localhost:8007"}, "status_url: 'localhost:8007' is not a URL"),
    ],
)
def test_bad_urls_name_the_parameter(http, capsys, args, needle):
    rc, r = run(capsys, args)
    assert rc == 1 and needle in r["msg"] and http.headers_seen == []


def test_check_mode_reads_the_same(http, capsys):
    http.routes = {
        ADMIN + "/": (200, root("3.9.3")),
        ADMIN + "/status": (200, status_db()),
    }
    rc, r = run(capsys, {"_ansible_check_mode": True})
    assert rc == 0 and r["changed"] is False and r["version"] == "3.9.3"


METRICS_3X = """# HELP kong_datastore_reachable Datastore reachable from Kong, 0 is unreachable
# TYPE kong_datastore_reachable gauge
kong_datastore_reachable 1
# HELP kong_http_requests_total HTTP status codes per consumer/service/route in Kong
# TYPE kong_http_requests_total counter
kong_http_requests_total{service="echo",route="echo",code="200",source="service",workspace="default",consumer=""} 1180
kong_http_requests_total{service="echo",route="echo",code="401",source="kong",workspace="default",consumer=""} 7
kong_http_requests_total{service="echo",route="echo",code="502",source="kong",workspace="default",consumer=""} 3
kong_http_requests_total{service="",route="",code="404",source="kong",workspace="default",consumer=""} 10
# HELP kong_nginx_requests_total Number of requests total
# TYPE kong_nginx_requests_total gauge
kong_nginx_requests_total{node_id="6a0e6ab4",subsystem="http"} 1300
"""
METRICS_28 = """# TYPE kong_http_status counter
kong_http_status{service="echo",route="echo",code="200"} 90
kong_http_status{service="echo",route="echo",code="503"} 10
kong_nginx_http_current_connections{state="total"} 100
"""


@pytest.mark.parametrize(
    "body, expected",
    [
        (METRICS_3X, {"available": True, "requests": 1200, "errors": 3, "by_class": {"2xx": 1180, "4xx": 17, "5xx": 3}}),
        (METRICS_28, {"available": True, "requests": 100, "errors": 10, "by_class": {"2xx": 90, "5xx": 10}}),
    ],
)
def test_metrics_sums_the_prometheus_status_counters_from_the_status_listener(http, capsys, body, expected):
    http.routes.update(
        {
            f"{ADMIN}/": (200, root("3.9.3", "off")),
            f"{ADMIN}/status": (200, status_off("a" * 32)),
            f"{STATUS}/status/ready": (200, {"message": "ready"}),
            f"{STATUS}/metrics": (200, body),
        }
    )
    rc, r = run(capsys, {"status_url": STATUS, "metrics": True})
    assert rc == 0 and r["ready"] is True
    assert {k: r["metrics"][k] for k in expected} == expected
    assert r["metrics"]["url"] == f"{STATUS}/metrics" and r["metrics"]["reason"] is None


def test_metrics_without_status_counters_or_plugin_is_unavailable_with_the_reason(http, capsys):
    http.routes.update(
        {f"{ADMIN}/": (200, root("3.9.3", "off")), f"{ADMIN}/status": (200, status_off("a" * 32)), f"{ADMIN}/metrics": (200, "kong_datastore_reachable 1\n")}
    )
    rc, r = run(capsys, {"metrics": True})
    assert rc == 0 and r["metrics"]["available"] is False and "status_code_metrics: true" in r["metrics"]["reason"]
    http.routes[f"{ADMIN}/metrics"] = (404, {"message": "Not found"})
    rc, r = run(capsys, {"metrics": True})
    assert rc == 0 and r["metrics"]["available"] is False and "HTTP 404" in r["metrics"]["reason"]


def test_metrics_are_not_read_unless_asked(http, capsys):
    http.routes.update({f"{ADMIN}/": (200, root("3.9.3", "off")), f"{ADMIN}/status": (200, status_off("a" * 32))})
    rc, r = run(capsys, {})
    assert rc == 0 and "metrics" not in r


def test_free_space_path_is_measured_where_it_would_be_created_also_when_the_admin_api_does_not_answer(http, capsys, tmp_path):
    rc, r = run(capsys, {"free_space_path": str(tmp_path / "not" / "yet")})
    assert rc == 1 and r["ready"] is False
    assert r["free_space"]["path"] == str(tmp_path)
    assert isinstance(r["free_space"]["free_mb"], int) and r["free_space"]["free_mb"] >= 0
    assert r["free_space"]["reason"] is None


def test_free_space_is_not_read_unless_asked(http, capsys):
    rc, r = run(capsys, {})
    assert "free_space" not in r
