"""Readiness after a start and the Admin API's answers under load, as Kong gives them.

- `kong start` returns once nginx's master is up; the workers then load the declarative
  configuration and build their routers in `init_worker` (Kong/kong 3.9.3 kong/init.lua:920-950,
  `declarative_init_build` :555-570). Until every worker has built its router, `/status/ready`
  answers 503 `router builds not yet complete, router ready in K of N workers`
  (kong/status/ready.lua:29-32 at 3.9.3, :27-30 at 3.4.2 and 3.7.1), N being the number of
  workers (`nginx_worker_processes`). Connections that arrive before any worker is up wait in
  the listen queue: they are served late, not refused.
- Traditional nodes build the router once in `init` (kong/init.lua:741-747), so they are ready
  as soon as a worker answers (ready.lua:55-58: `router_rebuilds == 0` only before that).
- `POST /config` holds the declarative lock while it loads (kong/db/declarative/import.lua:
  570-590, lock TTL 60 s, retry cap 10 s); a second load meanwhile gets 429 `Currently loading
  previous configuration` with `Retry-After` (kong/api/routes/config.lua:154-158).
- A request body above `nginx_admin_client_max_body_size` (10m by default,
  kong/templates/kong_defaults.lua:114 at 3.9.3) is refused by nginx itself with its 413 page
  (the Admin API server has no Kong error handler: kong/templates/nginx_kong.lua:411-450).

The time the workers take grows with the number of entities. Kong publishes no per-entity
figure (its engineering blog gives a P99 of 1.5 s for a full router rebuild with many routes
before 3.0, 0.1 s after): the simulator's 0.2 s + 0.2 ms per entity is UNCONFIRMED.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
import requests

from kongsim_testlib import wait_until

ROUTER_NOT_BUILT = re.compile(r"router builds not yet complete, router ready in (\d+) of (\d+) workers")


def _config(count: int) -> str:
    lines = ['_format_version: "3.0"', "services:"]
    for i in range(count):
        lines += [f"- name: s{i}", f"  url: http://127.0.0.1:9/{i}", "  routes:", f"  - name: r{i}", f"    paths: [/r{i}]"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("version", ["3.4.2", "3.9.3"])
def test_dbless_node_is_not_ready_until_every_worker_built_its_router(kong_node_factory, version):
    node = kong_node_factory(version, start=False, declarative=_config(2500), nginx_worker_processes=4)
    node.start(ready=False)
    first = requests.get(node.status_url + "/status/ready", timeout=10)
    assert first.status_code == 503, first.text
    match = ROUTER_NOT_BUILT.fullmatch(first.json()["message"])
    assert match and match.group(2) == "4" and int(match.group(1)) < 4, first.text
    # a proxy request sent now waits for a worker instead of being refused
    proxied = requests.get(node.proxy_url + "/nothing-here", timeout=10)
    assert proxied.status_code == 404
    wait_until(lambda: requests.get(node.status_url + "/status/ready", timeout=5).status_code == 200, timeout=20, message="ready after the router builds")


def test_ready_waits_longer_for_more_entities(kong_node_factory):
    small = kong_node_factory("3.9.3", start=False, name="small", declarative=_config(10), nginx_worker_processes=2)
    large = kong_node_factory("3.9.3", start=False, name="large", declarative=_config(5000), nginx_worker_processes=2)
    waited = {}
    for node in (small, large):
        node.start(ready=False)
        t0 = time.monotonic()
        wait_until(lambda node=node: requests.get(node.status_url + "/status/ready", timeout=5).status_code == 200, timeout=30, interval=0.02, message="ready")
        waited[node.name] = time.monotonic() - t0
    assert waited["large"] > waited["small"] + 0.5, waited


def test_traditional_node_answers_ready_as_soon_as_a_worker_answers(kong_node_factory, postgres):
    db = postgres.create_database("kongsim_ready_traditional")
    node = kong_node_factory(
        "3.9.3",
        start=False,
        database="postgres",
        pg_host=db["host"],
        pg_port=db["port"],
        pg_user=db["user"],
        pg_password=db["password"],
        pg_database=db["database"],
        nginx_worker_processes=4,
    )
    assert node.cli("migrations", "bootstrap", "-c", node.conf_path).returncode == 0
    node.start(ready=False)
    first = requests.get(node.status_url + "/status/ready", timeout=10)
    assert first.status_code == 200 and first.json() == {"message": "ready"}


def test_post_config_during_a_load_gets_429_with_retry_after(kong_node_factory):
    node = kong_node_factory("3.9.3", declarative=_config(10))
    big = _config(4000)
    answers = {}

    def load():
        # a small load may hold the lock when this one is ready: come back, as Retry-After says (sooner here)
        for _attempt in range(40):
            answers["first"] = requests.post(node.admin_url + "/config", data=big, headers={"Content-Type": "application/yaml"}, timeout=30)
            if answers["first"].status_code != 429:
                return
            time.sleep(0.3)

    loader = threading.Thread(target=load)
    loader.start()
    refused = []
    while loader.is_alive() and not refused:
        other = requests.post(node.admin_url + "/config", data=_config(3), headers={"Content-Type": "application/yaml"}, timeout=30)
        if other.status_code == 429:
            refused.append(other)
        time.sleep(0.05)
    loader.join(30)
    assert answers["first"].status_code == 201
    assert refused, "no load was refused while the large configuration was loading"
    assert refused[0].json() == {"message": "Currently loading previous configuration"}
    assert refused[0].headers["Retry-After"] == "10"


def test_body_above_the_admin_body_limit_is_refused_by_nginx(kong_node_factory):
    node = kong_node_factory("3.9.3", declarative=_config(3), nginx_admin_client_max_body_size="64k")
    too_big = _config(3) + "#" * (65 * 1024) + "\n"
    resp = requests.post(node.admin_url + "/config", data=too_big, headers={"Content-Type": "application/yaml"}, timeout=10)
    assert resp.status_code == 413
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "<title>413 Request Entity Too Large</title>" in resp.text
    # under the limit the same endpoint loads it
    ok = requests.post(node.admin_url + "/config", data=_config(4), headers={"Content-Type": "application/yaml"}, timeout=10)
    assert ok.status_code == 201, ok.text


def test_default_admin_body_limit_is_ten_megabytes(kong_node_factory):
    node = kong_node_factory("3.9.3", declarative=_config(3))
    payload = _config(3) + "#" * (10 * 1024 * 1024) + "\n"
    assert requests.post(node.admin_url + "/config", data=payload, headers={"Content-Type": "application/yaml"}, timeout=30).status_code == 413
    under = _config(3) + "#" * (2 * 1024 * 1024) + "\n"
    assert requests.post(node.admin_url + "/config", data=under, headers={"Content-Type": "application/yaml"}, timeout=30).status_code == 201
