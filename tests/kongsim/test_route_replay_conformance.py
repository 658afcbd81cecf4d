"""What the route-match replay reads from Kong, as Kong does it at each tag:

- request-termination with `echo` and `trigger` (Kong/kong kong/plugins/request-termination/handler.lua
  at 2.8.5 and 3.4.2): without the trigger (header or query argument) the plugin does nothing (lines
  26-35); with it the body holds `message` (conf.message or DEFAULT_RESPONSE[status], lines 4-11 and 39),
  `kong` (node_id, worker_pid, hostname, lines 40-44), `request` (scheme, host, port, headers, query,
  raw_body, method, path, lines 45-55; 3.4.2 adds `uri_captures`, line 55), `matched_route` and
  `matched_service` (kong.router.get_route()/get_service(), lines 56-57 at 2.8.5, 57-58 at 3.4.2).
- the regex of a route path: 2.8.5 matches it anchored as a whole (kong/router.lua:977 and 1786,
  ngx.re.match/find with "ajo"); 3.4.2's traditional_compatible router prefixes "^" to the path minus
  its "~" and searches (kong/router/compat.lua:231-236), so "^" binds only the first alternative of a
  top-level alternation.
"""

from __future__ import annotations

import pytest
import requests

CONFIG = """_format_version: "{fmt}"
services:
- name: users
  url: http://127.0.0.1:9
  routes:
  - name: api-versions
    paths: ['{alt}']
  - name: items
    paths: ['{items}']
plugins:
- name: request-termination
  config:
    echo: true
    trigger: X-Replay
"""


@pytest.fixture(scope="module")
def nodes(module_node_factory):
    specs = {}
    for version, fmt, prefix in (("2.8.5", "2.1", ""), ("3.4.2", "3.0", "~")):
        specs[version] = (
            version,
            {"name": f"replay-{version}", "declarative": CONFIG.format(fmt=fmt, alt=prefix + "/api/v1|/api/v2", items=prefix + r"/items/(\d+)")},
        )
    return module_node_factory.many(specs)


@pytest.mark.parametrize("version", ["2.8.5", "3.4.2"])
def test_echo_only_with_the_trigger(nodes, version):
    node = nodes[version]
    plain = requests.get(node.proxy_url + "/api/v1", timeout=10)
    assert plain.status_code == 502  # no trigger: the plugin does nothing, the request goes upstream
    for kwargs in ({"headers": {"x-replay": "1"}}, {"params": {"X-Replay": "1"}}):
        echoed = requests.get(node.proxy_url + "/api/v1", timeout=10, **kwargs)
        assert echoed.status_code == 503, echoed.text
        assert echoed.headers["Content-Type"].startswith("application/json")
        body = echoed.json()
        assert body["message"] == "Service unavailable"
        assert body["matched_route"]["name"] == "api-versions"
        assert body["matched_service"]["name"] == "users"
        assert set(body["kong"]) == {"node_id", "worker_pid", "hostname"}
        req = body["request"]
        assert req["method"] == "GET" and req["path"] == "/api/v1" and req["scheme"] == "http"
        assert req["host"] == "127.0.0.1" and req["port"] == node.proxy_port and req["raw_body"] == ""
        assert ("uri_captures" in req) == (version == "3.4.2")


def test_uri_captures_on_3x(nodes):
    body = requests.get(nodes["3.4.2"].proxy_url + "/items/42", headers={"X-Replay": "1"}, timeout=10).json()
    assert body["matched_route"]["name"] == "items"
    assert body["request"]["uri_captures"] == {"unnamed": ["42"], "named": {}}


@pytest.mark.parametrize("version,matches", [("2.8.5", False), ("3.4.2", True)])
def test_top_level_alternation_anchoring(nodes, version, matches):
    """`/api/v1|/api/v2`: 2.8.5 anchors both alternatives; 3.4.2 matches `/other/api/v2` too."""
    r = requests.get(nodes[version].proxy_url + "/other/api/v2", headers={"X-Replay": "1"}, timeout=10)
    if matches:
        assert r.status_code == 503 and r.json()["matched_route"]["name"] == "api-versions"
    else:
        assert r.status_code == 404 and r.json()["message"] == "no Route matched with those values"
    for path in ("/api/v1", "/api/v2"):
        r = requests.get(nodes[version].proxy_url + path, headers={"X-Replay": "1"}, timeout=10)
        assert r.json()["matched_route"]["name"] == "api-versions"
