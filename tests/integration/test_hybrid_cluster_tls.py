"""Hybrid cluster TLS on the sandbox: a Y data plane whose cluster certificate the control plane would
refuse (cluster_mtls = shared, and a certificate other than the control plane's: Kong/kong 3.9.3
kong/clustering/tls.lua:28-39) stops the hybrid upgrade in preflight, before the control plane is stopped
and before any traffic moves: HAProxy's weights read back unchanged, the control plane and X keep running
and serving, and the message names the data plane and the fix. Smallest fleet: cp, x1, y1."""
from __future__ import annotations

import os
import time

import pytest
import requests
import yaml

from tests.kongsim.kongsim_testlib import gen_cluster_cert
from tests.sandbox import procs, render
from tests.sandbox.core import Sandbox, haproxy_servers

X, Y = "3.6.1", "3.7.1"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster_tls")
    sandbox = Sandbox(state_dir=str(tmp / "sb"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
    sandbox.log_dir = str(tmp)
    sandbox.up(mode="hybrid", kong_x=X, kong_cp=X, nodes=1)
    yield sandbox
    sandbox.down()


def _through_lb(box: Sandbox, count: int = 20) -> list:
    url = f"http://127.0.0.1:{box.state['lb_port']}{render.DEMO_PATH}"
    return [requests.get(url, headers={"apikey": render.DEMO_KEY}, timeout=5).status_code for _i in range(count)]


def _pid(box: Sandbox, name: str) -> int | None:
    try:
        with open(os.path.join(box.state["nodes"][name]["prefix"], "pids", "nginx.pid")) as fh:
            pid = int(fh.read().strip() or 0)
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _give_y1(box: Sandbox, cert: str, key: str) -> None:
    """The inventory names another certificate for y1 (what an operator who rotated it by hand would have)."""
    with open(box.inventory) as fh:
        inv = yaml.safe_load(fh)
    host = inv["all"]["children"]["kong_y"]["hosts"]["y1"]
    host.update(kong_node_cluster_cert=cert, kong_node_cluster_cert_key=key)
    with open(box.inventory, "w") as fh:
        yaml.safe_dump(inv, fh, sort_keys=False)


def test_the_shared_certificate_passes_the_check(box):
    """The sandbox's Y data plane has the control plane's own certificate: the check passes (a plan in
    check mode runs through it)."""
    box.last_log = os.path.join(box.log_dir, f"upgrade-hybrid-check-{time.time():.0f}.log")
    rc = box.upgrade("hybrid", Y, extra_args=["--check"], log_path=box.last_log, stream=lambda line: None)
    with open(box.last_log) as fh:
        log = fh.read()
    assert rc == 0, log[-3000:]
    judged = log.split("Judge whether the control plane accepts each Y data plane", 1)[1].split("TASK [", 1)[0]
    assert "ok: [cp -> localhost]" in judged, judged


def test_a_data_plane_certificate_the_control_plane_refuses_stops_the_hybrid_upgrade_in_preflight(box, tmp_path):
    other = tmp_path / "rotated"
    other.mkdir()
    cert, key = gen_cluster_cert(str(other))
    _give_y1(box, cert, key)
    sock = box.state["haproxy"]["socket"]
    before = {name: (s["weight"], s["status"]) for name, s in haproxy_servers(sock).items()}
    pids = {name: _pid(box, name) for name in ("cp", "x1")}
    assert all(pids.values()), pids
    assert _through_lb(box) == [200] * 20

    box.last_log = os.path.join(box.log_dir, f"upgrade-hybrid-{time.time():.0f}.log")
    rc = box.upgrade("hybrid", Y, log_path=box.last_log, stream=lambda line: None)
    with open(box.last_log) as fh:
        log = fh.read()
    assert rc != 0, log[-3000:]
    # stopped in the control planes' preflight, with the data plane and the fix named; no key in the output
    assert "y1 would be refused on the cluster link to cp" in log, log[-3000:]
    assert "accepts only its own cluster_cert" in log and "kong_node_cluster_cert" in log
    assert "PRIVATE KEY" not in log
    assert "Stop every X node" not in log and "kong migrations up" not in log
    # nothing moved: same weights, the control plane and X still run (same processes) and serve
    after = {name: (s["weight"], s["status"]) for name, s in haproxy_servers(sock).items()}
    assert after == before
    assert {name: _pid(box, name) for name in ("cp", "x1")} == pids
    assert _through_lb(box) == [200] * 20
    root = requests.get(f"http://127.0.0.1:{box.state['nodes']['cp']['admin_port']}/", timeout=5).json()
    assert root["version"] == X
