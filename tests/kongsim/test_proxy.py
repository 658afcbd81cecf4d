"""Proxy data path: routing, strip_path, balancing, upstream failures, plugins (issue 4 items 1-2)."""

from __future__ import annotations

import collections

import pytest
import requests
from tests.services.ports import free_port

from kongsim_testlib import EchoUpstream

CONFIG = """_format_version: "{fmt}"
services:
- name: echo
  url: {up1}
  routes:
  - name: prefix-short
    paths: [/p]
  - name: prefix-long
    paths: [/p/long]
    strip_path: false
  - name: regex
    paths: ['{regex}']
  - name: by-host
    hosts: [api.example.com]
    preserve_host: true
  - name: by-method
    methods: [DELETE]
    paths: [/m]
- name: with-path
  url: {up1}/base
  routes:
  - name: joined
    paths: [/joined]
- name: balanced
  host: pool.internal
  routes:
  - name: balanced
    paths: [/balanced]
- name: empty-pool
  host: empty.internal
  routes:
  - paths: [/empty]
- name: dead
  url: http://127.0.0.1:{dead}
  retries: 1
  routes:
  - paths: [/dead]
- name: slow
  url: {up1}
  read_timeout: 500
  routes:
  - paths: [/slow]
- name: closed
  url: {up1}
  routes:
  - name: terminated
    paths: [/terminated]
    plugins:
    - name: request-termination
  - name: teapot
    paths: [/teapot]
    plugins:
    - name: request-termination
      config:
        status_code: 418
        message: go away
  - name: keys
    paths: [/keys]
    plugins:
    - name: key-auth
      config:
        key_names: [x-key]
        hide_credentials: true
upstreams:
- name: pool.internal
  targets:
  - target: {t1}
    weight: 300
  - target: {t2}
    weight: 100
  - target: 127.0.0.1:9
    weight: 0
- name: empty.internal
consumers:
- username: demo
  keyauth_credentials:
  - key: k1
"""


@pytest.fixture(scope="module")
def upstreams():
    a, b = EchoUpstream().start(), EchoUpstream().start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def nodes(module_node_factory, upstreams):
    a, b = upstreams
    specs = {}
    for v in ("2.8.5", "3.9.3"):
        text = CONFIG.format(
            fmt="2.1" if v == "2.8.5" else "3.0",
            up1=a.url,
            t1=a.hostport,
            t2=b.hostport,
            dead=free_port(),
            regex=r"/items/\d+$" if v == "2.8.5" else r"~/items/\d+$",
        )
        specs[v] = (v, {"name": f"proxy-{v}", "declarative": text})
    return module_node_factory.many(specs)


VERSIONS = ["2.8.5", "3.9.3"]


@pytest.mark.parametrize("version", VERSIONS)
def test_route_matching_and_paths(nodes, version):
    base = nodes[version].proxy_url
    assert requests.get(base + "/p/x?q=1").json()["raw_path"] == "/x?q=1"
    assert requests.get(base + "/p").json()["path"] == "/"
    assert requests.get(base + "/p/long/y").json()["path"] == "/p/long/y"
    assert requests.get(base + "/items/42").json()["path"] == "/"
    assert requests.get(base + "/items/abc").status_code == 404
    assert requests.get(base + "/joined/z").json()["path"] == "/base/z"
    r = requests.get(base + "/anything", headers={"Host": "api.example.com"})
    assert r.status_code == 200 and r.json()["headers"]["Host"] == "api.example.com"
    assert requests.get(base + "/anything", headers={"Host": "other.example.com"}).status_code == 404
    assert requests.delete(base + "/m").status_code == 200
    assert requests.get(base + "/m").status_code == 404
    echoed = requests.post(base + "/p/post", data=b"hello").json()
    assert echoed["method"] == "POST" and echoed["body"] == "hello"
    assert echoed["headers"]["X-Forwarded-Path"] == "/p/post"


@pytest.mark.parametrize("version", VERSIONS)
def test_weighted_targets(nodes, upstreams, version):
    a, b = upstreams
    counts = collections.Counter(requests.get(nodes[version].proxy_url + "/balanced").json()["port"] for _ in range(200))
    assert counts[a.port] == 150 and counts[b.port] == 50


@pytest.mark.parametrize("version", VERSIONS)
def test_upstream_failures(nodes, version):
    base = nodes[version].proxy_url
    r = requests.get(base + "/empty")
    assert r.status_code == 503 and r.json()["message"] == "failure to get a peer from the ring-balancer"
    r = requests.get(base + "/dead")
    assert r.status_code == 502
    assert r.json()["message"] == "An invalid response was received from the upstream server"
    assert r.headers["Server"] == f"kong/{version}"
    r = requests.get(base + "/slow?sleep=2")
    assert r.status_code == 504 and r.json()["message"] == "The upstream server is timing out"


@pytest.mark.parametrize("version", VERSIONS)
def test_request_termination(nodes, version):
    base = nodes[version].proxy_url
    r = requests.get(base + "/terminated")
    assert r.status_code == 503
    assert r.json()["message"] == "The upstream server is currently unavailable"
    r = requests.get(base + "/teapot", headers={"Accept": "text/plain"})
    assert r.status_code == 418 and r.text.startswith("go away\n")


@pytest.mark.parametrize("version", VERSIONS)
def test_key_auth_key_names_and_hide_credentials(nodes, version):
    base = nodes[version].proxy_url
    assert requests.get(base + "/keys", headers={"apikey": "k1"}).status_code == 401
    r = requests.get(base + "/keys", headers={"x-key": "k1"})
    assert r.status_code == 200
    assert "x-key" not in {k.lower() for k in r.json()["headers"]}
    r = requests.get(base + "/keys?x-key=k1&a=b")
    assert r.status_code == 200 and r.json()["query"] == "a=b"
    r = requests.get(base + "/keys?x-key=k1&x-key=k2")
    assert r.status_code == 401 and r.json()["message"] == "Duplicate API key found"


def test_format_1_1_regex_paths_rewritten_on_3x(module_node_factory, upstreams):
    a, _b = upstreams
    text = f'_format_version: "1.1"\nservices:\n- name: s\n  url: {a.url}\n  routes:\n  - name: r\n    paths: ["/v\\\\d+/items", "/plain"]\n'
    node = module_node_factory("3.9.3", name="fmt11", declarative=text)
    paths = requests.get(node.admin_url + "/routes/r").json()["paths"]
    assert paths == [r"~/v\d+/items", "/plain"]
    assert requests.get(node.proxy_url + "/v2/items").status_code == 200
