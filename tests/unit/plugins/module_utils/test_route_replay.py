"""_route_replay: the scratch configuration (no plugin, consumer or credential; ids the same on both
sides), the request builder (regex samples per top-level alternative, near misses, hosts, headers,
methods, routes no HTTP request reaches) and the comparison of the two answers."""

from __future__ import annotations

import json
import re

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils import _route_replay as rr

DOC = {
    "_format_version": "2.1",
    "services": [
        {
            "name": "users",
            "url": "http://u",
            "plugins": [{"name": "key-auth"}],
            "routes": [
                {"name": "alt", "paths": ["/api/v1|/api/v2"]},
                {"name": "items", "paths": [r"/items/(?<id>\d+)$", "/plain"], "methods": ["POST", "GET"]},
                {"name": "hosts", "hosts": ["*.example.com", "api.example.org", "example.*"], "headers": {"x-tenant": ["a", "b"], "x-re": [r"~*v\d"]}},
                {"name": "tls", "protocols": ["https"], "paths": ["/tls"]},
            ],
        }
    ],
    "routes": [{"name": "top", "service": {"name": "users"}, "paths": ["/top"], "plugins": [{"name": "cors"}]}],
    "consumers": [{"username": "c", "keyauth_credentials": [{"key": "SECRET"}]}],
    "plugins": [{"name": "rate-limiting"}],
    "upstreams": [{"name": "u", "targets": [{"target": "127.0.0.1:1"}]}],
}


def test_scratch_config_keeps_routing_only_and_adds_the_echo():
    out = rr.scratch_config(DOC, "X-Replay")
    assert "SECRET" not in json.dumps(out) and "consumers" not in out
    assert out["plugins"] == [{"name": "request-termination", "config": {"echo": True, "trigger": "X-Replay"}}]
    assert "plugins" not in out["services"][0] and "plugins" not in out["routes"][0]
    assert out["upstreams"] == DOC["upstreams"]
    ids = [r["id"] for r, _where in rr.iter_routes(out)]
    assert len(set(ids)) == len(ids) and all(ids)
    assert ids == [r["id"] for r, _where in rr.iter_routes(rr.scratch_config(DOC, "X-Replay"))]  # the same each time
    assert out["services"][-1]["routes"][0]["hosts"] == [rr.SENTINEL_HOST]
    assert "plugins" in DOC["services"][0]  # the input is not changed


@pytest.mark.parametrize(
    "regex,samples",
    [
        ("/api/v1|/api/v2", ["/api/v1", "/api/v2"]),
        (r"/items/\d+$", ["/items/1"]),
        (r"/a/(b|c)/[^/]+|/x[|]y", ["/a/b/a", "/x|y"]),
        (r"/u/(?<id>[0-9]{3})/\1", ["/u/000/000"]),
        (r"(?i)/Case\w*", ["/Casea"]),
    ],
)
def test_regex_samples_match_each_alternative(regex, samples):
    got = rr.regex_samples(regex)
    assert got == samples
    for text in got:
        assert re.compile(rr._PCRE_NAMED.sub("(?P<", regex)).match(text)


def test_build_requests():
    reqs, skipped = rr.build_requests(DOC)
    by_route = {}
    for req in reqs:
        by_route.setdefault(req["route"], []).append(req)
    assert [(r["path"], r["near_miss"]) for r in by_route["alt"]] == [
        ("/api/v1", False),
        ("/api/v2", False),
        ("/kong-route-replay/api/v1", True),
        ("/kong-route-replay/api/v2", True),
    ]
    assert {(r["method"], r["path"]) for r in by_route["items"]} == {("POST", "/items/1"), ("POST", "/kong-route-replay/items/1"), ("POST", "/plain")}
    assert [r["host"] for r in by_route["hosts"]] == ["replay.example.com", "api.example.org", "example.replay"]
    assert by_route["hosts"][0]["headers"] == {"x-tenant": "a", "x-re": "v1"} and by_route["hosts"][0]["path"] == "/"
    assert by_route["top"][0]["path"] == "/top"
    assert skipped == [{"route": "tls", "reason": "protocols https (no http)"}]
    few, skipped = rr.build_requests(DOC, near_misses=False, max_requests=3)
    assert len(few) == 3 and not any(r["near_miss"] for r in few) and skipped[-1]["route"] == "*"


def test_a_regex_no_sample_fits_is_reported_not_raised():
    reqs, skipped = rr.build_requests({"routes": [{"name": "bad", "paths": ["/a(b"]}]})
    assert reqs == [] and skipped[0]["route"] == "bad" and "no sample" in skipped[0]["reason"]


def _echo(route_id, name, status=503):
    return rr.outcome(
        status,
        json.dumps({"matched_route": {"id": route_id, "name": name, "paths": ["/x"]}, "matched_service": {"id": "s", "name": "svc", "url": "http://secret"}}),
    )


def test_compare_names_the_route_and_the_request():
    reqs = [
        {"route": "alt", "method": "GET", "host": None, "path": "/kong-route-replay/api/v2", "headers": {}, "near_miss": True},
        {"route": "alt", "method": "GET", "host": "a.example.com", "path": "/api/v1", "headers": {"x-t": "a"}},
    ]
    x = [rr.outcome(404, b'{"message":"no Route matched with those values"}'), _echo("r1", "alt")]
    y = [_echo("r1", "alt"), _echo("r1", "alt")]
    out = rr.compare(reqs, x, y, "2.8.5", "3.4.2")
    assert len(out) == 1
    assert out[0]["route"] == "alt" and out[0]["request"] == {"method": "GET", "path": "/kong-route-replay/api/v2"}
    assert out[0]["message"] == ("GET /kong-route-replay/api/v2 (built from route 'alt'): no route (HTTP 404) on 2.8.5, route 'alt' (HTTP 503) on 3.4.2")
    assert out[0]["y"]["service"] == {"id": "s", "name": "svc"}  # ids and names only, never the whole entity


def test_compare_other_route_status_and_errors():
    req = [{"route": "a", "method": "GET", "host": None, "path": "/p", "headers": {}}]
    assert rr.compare(req, [_echo("r1", "a")], [_echo("r2", "b")], "2.8.5", "3.4.2")[0]["message"].endswith(
        "route 'a' (HTTP 503) on 2.8.5, route 'b' (HTTP 503) on 3.4.2"
    )
    assert rr.compare(req, [rr.outcome(426, b"")], [rr.outcome(404, b"")], "x", "y")
    assert rr.compare(req, [rr.outcome(426, b"")], [rr.outcome(426, b"")], "x", "y") == []
    err = {"status": None, "route": None, "service": None, "error": "timed out"}
    assert "no answer (timed out)" in rr.compare(req, [_echo("r1", "a")], [err], "x", "y")[0]["message"]


def test_scratch_kong_settings_override_the_environment(tmp_path):
    kong = rr.ScratchKong(lambda *a, **k: (0, "", ""), "/bin/kong", "3.4.2", str(tmp_path), "y", {"router_flavor": "traditional", "database": "postgres"})
    assert kong.settings["database"] == "off" and kong.settings["router_flavor"] == "traditional"
    assert kong.settings["admin_gui_listen"] == "off" and kong.env["KONG_DATABASE"] == "off"
    assert kong.env["KONG_PROXY_LISTEN"] == f"127.0.0.1:{kong.port}"
    assert "admin_gui_listen" not in rr.ScratchKong(lambda *a, **k: (0, "", ""), "/bin/kong", "2.8.5", str(tmp_path), "x").settings
    assert kong.stop() == [] and not tmp_path.joinpath(kong.dir).exists()
