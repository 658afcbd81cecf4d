"""Route-match replay (kong_route_replay) on one DB-less 2.8.5 sandbox upgraded to 3.4.2: a route whose
regex `/api/v1|/api/v2` Kong 2.8.5 anchors as a whole (kong/router.lua:977, "ajo") and Kong 3.4.2 only in
its first alternative (kong/router/compat.lua:235, "^" .. path) stops the rolling upgrade at its backup
phase, naming the route and the request, before any Y node starts; a configuration without such a route
passes the replay."""

from __future__ import annotations

import json
import os

import pytest
import requests
import yaml

from tests.integration.ansible_run import run_playbook
from tests.sandbox import procs
from tests.sandbox.core import Sandbox


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replay")
    sandbox = Sandbox(state_dir=str(tmp / "sb"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
    sandbox.log_dir = str(tmp)
    sandbox.up(mode="dbless", kong_x="2.8.5")
    yield sandbox
    sandbox.down()


def _with_alternation(box: Sandbox) -> dict:
    with open(box.state["demo_config"]) as fh:
        doc = yaml.safe_load(fh)
    doc.setdefault("services", []).append({"name": "versions", "url": "http://127.0.0.1:9", "routes": [{"name": "api-versions", "paths": ["/api/v1|/api/v2"]}]})
    return doc


def test_replay_stops_the_rolling_upgrade_on_a_route_that_matches_differently(box):
    """The breaking-change scan only says the path needs `~` on 3.x (kong_breaking_fail_on=none lets the run
    go on); the replay shows that even with `~` it matches a request 2.8.5 does not."""
    doc = _with_alternation(box)
    for name, node in box.state["nodes"].items():
        if node["group"] == "kong_x":
            r = requests.post(f"http://127.0.0.1:{node['admin_port']}/config", json={"config": yaml.safe_dump(doc)}, timeout=30)
            assert r.status_code == 201, (name, r.text)
    log = os.path.join(box.log_dir, "rolling-replayed.log")
    rc = box.upgrade(
        "rolling", "3.4.2", extra_args=["-e", "kong_route_replay=true", "-e", "kong_breaking_fail_on=none"], log_path=log, stream=lambda line: None
    )
    with open(log) as fh:
        text = fh.read()
    assert rc != 0, text[-3000:]
    with open(os.path.join(box.work_dir, "sandbox", "journal.json")) as fh:
        journal = json.load(fh)
    assert journal["status"] == "failed" and journal["failure"]["phase"] == "backup", journal.get("failure")
    reason = journal["failure"]["reason"]
    assert "'api-versions'" in reason and "GET /kong-route-replay/api/v2" in reason, reason
    assert "no route (HTTP 404) on 2.8.5" in reason and "(HTTP 503) on 3.4.2" in reason, reason
    assert "kong_route_replay_accept" in reason
    reports = os.path.join(box.work_dir, "sandbox", "backups", "route-replay")
    (name,) = os.listdir(reports)
    with open(os.path.join(reports, name)) as fh:
        report = json.load(fh)
    assert report["status"] == "failed" and [m["route"] for m in report["mismatches"]] == ["api-versions"]
    assert report["mismatches"][0]["request"]["path"] == "/kong-route-replay/api/v2"
    # no Y node was started, nothing of the replay is left behind, X still serves the route
    for node in box.state["nodes"].values():
        if node["group"] == "kong_y":
            assert not os.path.exists(os.path.join(node["prefix"], "pids", "nginx.pid"))
    assert "TOPSECRET" not in text
    x1 = box.state["nodes"]["x1"]
    assert requests.get(f"http://127.0.0.1:{x1['proxy_port']}/api/v2", timeout=10).status_code == 502


def test_replay_of_a_configuration_without_differences_passes(box, tmp_path):
    src = tmp_path / "kong.yml"
    with open(box.state["demo_config"]) as fh:
        doc = yaml.safe_load(fh)
    doc.setdefault("consumers", []).append({"username": "replay", "keyauth_credentials": [{"key": "TOPSECRET"}]})
    src.write_text(yaml.safe_dump(doc))
    play = (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - kongops.upgrade.kong_route_replay:\n"
        "        src: '{{ src }}'\n        x: {version: 2.8.5, kong_bin: '{{ x }}'}\n"
        "        y: {version: 3.4.2, kong_bin: '{{ y }}'}\n        work_dir: '{{ work }}'\n      register: r\n"
        "    - ansible.builtin.set_stats:\n        data: {r: '{{ r }}'}\n"
    )
    extra = {"src": str(src), "x": box.kong_bin("2.8.5"), "y": box.kong_bin(box.install("3.4.2") and "3.4.2"), "work": str(tmp_path)}
    env = dict(box.ansible_env(), ANSIBLE_SHOW_CUSTOM_STATS="true")
    checked = run_playbook(play, extra_vars=extra, env=env, check=True)
    assert checked.rc == 0, checked.stdout[-3000:]
    planned = checked.data["global_custom_stats"]["r"]
    assert planned["requests"] > 0 and "no Kong was started" in planned["summary"]
    run = run_playbook(play, extra_vars=extra, env=env)
    assert run.rc == 0, run.stdout[-3000:]
    result = run.data["global_custom_stats"]["r"]
    assert result["passed"] is True and result["mismatches"] == [] and result["refused"] == [], result
    assert result["requests"] == planned["requests"] and result["cleanup"] == []
    assert "TOPSECRET" not in run.stdout
    assert sorted(os.listdir(tmp_path)) == ["kong.yml"]  # both scratch directories removed
