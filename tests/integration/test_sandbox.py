"""The local sandbox (tests/sandbox) and the load generator (tests/loadgen.py), with real HAProxy and
simulated Kong nodes started by the kong_node role.

One DB-less sandbox (Kong 3.8.1) in a private state directory and on its own ports, so a sandbox
a developer keeps running is never touched.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess

import pytest
import requests
import yaml

from tests.loadgen import LoadGenerator, Record, kong_version, summarize
from tests.sandbox import Sandbox, SandboxError, haproxy_servers, procs
from tests.sandbox.core import VENV_BIN
from tests.sandbox.demo import build_report, read_journal

KONG_X = "3.8.1"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("sandbox")
    sb = Sandbox(state_dir=str(state_dir), lb_port=procs.sandbox_base_port(), out=print)
    try:
        sb.up("dbless", KONG_X)
        yield sb
    finally:
        sb.down()


def _url(sb: Sandbox, path: str = "/echo") -> str:
    return f"http://127.0.0.1:{sb.lb_port}{path}"


def test_kong_version_is_read_from_via_then_server():
    assert kong_version("kong/3.7.1") == "3.7.1"
    assert kong_version("1.1 kong/3.8.1") == "3.8.1"
    assert kong_version("1.1 squid, 1.1 kong/3.9.3") == "3.9.3"
    assert kong_version(None, "kong/3.4.2") == "3.4.2"
    assert kong_version(None, "Python/3.11 aiohttp/3.14.5") is None
    assert kong_version("1.0 fred") is None


def test_lb_answers_with_key_auth_of_the_x_nodes(sandbox):
    without = requests.get(_url(sandbox), timeout=5)
    assert without.status_code == 401
    assert without.json()["message"] == "No API key found in request"
    assert without.headers["Server"] == f"kong/{KONG_X}"

    with_key = requests.get(_url(sandbox), headers={"apikey": "demo-key"}, timeout=5)
    assert with_key.status_code == 200
    assert with_key.headers["Via"] == f"1.1 kong/{KONG_X}"
    echoed = with_key.json()
    assert echoed["headers"]["Via"] == f"1.1 kong/{KONG_X}"
    assert echoed["headers"]["X-Consumer-Username"] == "demo"

    wrong = requests.get(_url(sandbox), headers={"apikey": "not-the-key"}, timeout=5)
    assert wrong.status_code == 401


def test_haproxy_holds_x_in_rotation_and_y_declared_in_maintenance(sandbox):
    state = sandbox.load()
    servers = haproxy_servers(state["haproxy"]["socket"], "kong_proxy")
    assert sorted(servers) == ["x1", "x2", "x3", "y1", "y2", "y3"]
    for name in ("x1", "x2", "x3"):
        assert servers[name]["status"] == "UP", servers[name]
        assert servers[name]["weight"] == 100
        assert servers[name]["addr"] == f"127.0.0.1:{state['nodes'][name]['proxy_port']}"
    for name in ("y1", "y2", "y3"):
        assert servers[name]["status"] == "MAINT", servers[name]
        assert servers[name]["weight"] == 0
        assert servers[name]["addr"] == f"127.0.0.1:{state['nodes'][name]['proxy_port']}"
    # the TCP runtime socket answers too (the lb_weight module can use either)
    with socket.create_connection(("127.0.0.1", state["haproxy"]["runtime_port"]), timeout=5) as sock:
        sock.sendall(b"show servers state kong_proxy\n")
        text = b""
        while chunk := sock.recv(65536):
            text += chunk
    assert b" y1 " in text and b" x3 " in text


def test_every_x_node_runs_its_own_prefix_and_answers_ready(sandbox):
    state = sandbox.load()
    for name in ("x1", "x2", "x3"):
        node = state["nodes"][name]
        assert requests.get(f"http://127.0.0.1:{node['status_port']}/status/ready", timeout=5).status_code == 200
        info = requests.get(f"http://127.0.0.1:{node['admin_port']}/", timeout=5).json()
        assert info["version"] == KONG_X
        assert info["configuration"]["prefix"] == node["prefix"]
        assert os.path.exists(node["declarative"])
    for name in ("y1", "y2", "y3"):
        assert procs.port_is_free(state["nodes"][name]["proxy_port"])


def test_inventory_follows_the_inventory_contract(sandbox):
    state = sandbox.load()
    with open(sandbox.inventory) as fh:
        inv = yaml.safe_load(fh)
    groups = inv["all"]["children"]
    assert sorted(groups["kong_x"]["hosts"]) == ["x1", "x2", "x3"]
    assert sorted(groups["kong_y"]["hosts"]) == ["y1", "y2", "y3"]
    assert list(groups["kong_lb"]["hosts"]) == ["lb"]
    assert "hosts" not in groups["kong_db"] and "hosts" not in groups["kong_cp"]
    all_vars = inv["all"]["vars"]
    assert all_vars["kong_mode"] == "dbless"
    assert all_vars["kong_version_current"] == KONG_X
    assert all_vars["kong_work_dir"].startswith(sandbox.state_dir)
    assert all_vars["kong_lb_socket"] == state["haproxy"]["socket"]
    assert all_vars["kong_lb_pool"] == "kong_proxy"
    assert all_vars["kong_lb_proxy_url"] == _url(sandbox, "")
    assert (all_vars["kong_smoke_path"], all_vars["kong_smoke_key"]) == ("/echo", "demo-key")
    assert all_vars["kong_upgrade_confirm"] is True
    y1 = groups["kong_y"]["hosts"]["y1"]
    assert y1["kong_node_proxy_listen"] == f"127.0.0.1:{state['nodes']['y1']['proxy_port']}"
    assert y1["kong_node_prefix"] != groups["kong_x"]["hosts"]["x1"]["kong_node_prefix"]

    # Ansible itself reads it the same way (and kong_x resolves its version from the fleet variable)
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-inventory"), "-i", sandbox.inventory, "--list", "--export"], capture_output=True, text=True, check=True
    )
    listed = json.loads(proc.stdout)
    assert sorted(listed["kong_y"]["hosts"]) == ["y1", "y2", "y3"]
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible"), "-i", sandbox.inventory, "x2", "-m", "ansible.builtin.debug", "-a", "var=kong_node_version"],
        capture_output=True,
        text=True,
        check=False,
        env=sandbox.ansible_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'"kong_node_version": "{KONG_X}"' in proc.stdout


def test_load_generator_at_200_rps_sees_no_failure_and_version_x(sandbox):
    gen = LoadGenerator(_url(sandbox), rate=200, headers={"apikey": "demo-key"}, duration=5)
    summary = gen.start().wait(60)
    assert 950 <= summary["total"] <= 1001
    assert summary["failed"] == 0, summary["failures_by_reason"]
    assert summary["versions"] == {KONG_X: summary["total"]}
    assert all(sec["share"] == {KONG_X: 100.0} for sec in summary["per_second"])


def test_load_generator_counts_rejections_and_connection_errors(sandbox):
    rejected = LoadGenerator(_url(sandbox), rate=50, duration=1).start().wait(30)
    assert rejected["failed"] == rejected["total"] > 0
    assert rejected["failures_by_reason"] == {"HTTP 401": rejected["total"]}
    assert rejected["versions"] == {}

    closed = procs.PortAllocator(sandbox.lb_port + 200).take()
    refused = LoadGenerator(f"http://127.0.0.1:{closed}/", rate=20, duration=1, timeout=2).start().wait(30)
    assert refused["failed"] == refused["total"] > 0
    assert set(refused["failures_by_reason"]) == {"ClientConnectorError"}


def test_load_generator_counts_requests_it_could_not_send_apart(sandbox):
    # the echo upstream answers after ?sleep seconds; two in flight at most, 20 due per second
    gen = LoadGenerator(_url(sandbox, "/echo?sleep=0.5"), rate=20, headers={"apikey": "demo-key"}, duration=1.5, max_in_flight=2)
    summary = gen.start().wait(30)
    assert summary["due"] == 30
    assert summary["failed"] == 0
    assert 2 <= summary["total"] <= 8
    assert summary["not_sent"] == summary["due"] - summary["total"] >= 20
    assert summary["versions"] == {KONG_X: summary["total"]}
    assert sum(sec["not_sent"] for sec in summary["per_second"]) == summary["not_sent"]


def test_up_refuses_while_the_sandbox_runs(sandbox):
    again = Sandbox(state_dir=sandbox.state_dir, lb_port=sandbox.lb_port, out=lambda _m: None)
    with pytest.raises(SandboxError, match="sandbox-down"):
        again.up("dbless", KONG_X)
    assert sandbox.load()["status"] == "up"


def test_down_leaves_no_process_behind(sandbox):
    state = sandbox.load()
    tracked = [state["echo"]["proc"], state["haproxy"]["proc"]]
    tracked += [procs.record(pid) for pid in procs.children(state["haproxy"]["proc"]["pid"])]
    for name in ("x1", "x2", "x3"):
        node_proc = sandbox._node_pid(state["nodes"][name])
        assert node_proc is not None, f"{name} has no running pid"
        tracked.append(node_proc)
    assert len(tracked) >= 6 and all(procs.alive(p) for p in tracked)

    stopped = sandbox.down()
    assert "haproxy" in stopped and "echo upstream" in stopped
    assert [p for p in tracked if procs.alive(p)] == []
    assert procs.port_is_free(sandbox.lb_port)
    assert not os.path.exists(sandbox.state_path)
    assert not os.path.exists(sandbox.inventory)
    assert os.path.exists(sandbox.kong_bin(KONG_X))
    assert sandbox.down() == []


def test_demo_report_measures_each_journal_step_from_the_load(tmp_path):
    t0 = 1_800_000_000.0
    records = []
    # 100 requests a second for 30 s: Y serves 0 % for 10 s, then 25 % for 10 s, then 100 %
    for i in range(3000):
        t = i / 100.0
        share = 0 if t < 10 else (25 if t < 20 else 100)
        version = "3.9.3" if (i % 100) < share else "3.8.1"
        records.append(Record(t, t0 + t, 200, None, version, 5.0))
    records.append(Record(29.995, t0 + 29.995, None, "ServerDisconnectedError", None, 1.0))
    summary = summarize(records, rate=100, started_at=t0)
    iso = datetime.datetime.fromtimestamp
    journal = {
        "run_id": "r1",
        "status": "done",
        "steps": [
            {
                "share": 25,
                "started_at": iso(t0 + 10, datetime.UTC).isoformat() + "Z",
                "ended_at": iso(t0 + 20, datetime.UTC).isoformat() + "Z",
                "gate": {"failed": False, "requests": 250, "errors": 0},
            },
            {
                "share": 100,
                "started_at": iso(t0 + 20, datetime.UTC).replace(tzinfo=None).isoformat(),
                "ended_at": iso(t0 + 30, datetime.UTC).replace(tzinfo=None).isoformat(),
                "gate": {"failed": True, "reasons": ["y1 is DOWN while in rotation"]},
            },
        ],
    }
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox" / "journal.json").write_text(json.dumps(journal))
    found = read_journal(str(tmp_path))
    assert found["journal"]["run_id"] == "r1"

    report = build_report(summary, found, "3.8.1", "3.9.3", rc=0)
    step_lines = [ln for ln in report.splitlines() if "%" in ln and ("passed" in ln or "FAILED" in ln)]
    assert len(step_lines) == 2
    assert "25 %" in step_lines[0] and "25.0 %" in step_lines[0] and "250 requests" in step_lines[0]
    assert "100.0 %" in step_lines[1] and "FAILED: y1 is DOWN while in rotation" in step_lines[1]
    assert "Kong 3.8.1" in report and "Kong 3.9.3" in report
    assert "1 x ServerDisconnectedError" in report
    assert report.rstrip().endswith("FAILED REQUESTS: 1")


@pytest.mark.parametrize("nodes, mode", [(5, "dbless"), (3, "traditional"), (2, "hybrid")])
def test_the_bench_fleet_lays_out_its_node_count_with_the_sandbox_layout(tmp_path, nodes, mode):
    """bench/fleet.py's FleetSandbox follows the sandbox's own layout (the bench stopped at its first
    sandbox once when the two disagreed on the layout's arguments)."""
    from bench.fleet import FleetSandbox

    box = FleetSandbox(state_dir=str(tmp_path), lb_port=procs.sandbox_base_port(), out=lambda msg: None, nodes=nodes)
    box.state = {"nodes": {}}
    box._layout_nodes(mode, procs.PortAllocator(box.lb_port + 1), 3)
    names = sorted(box.state["nodes"])
    expected = sorted([f"x{i}" for i in range(1, nodes + 1)] + [f"y{i}" for i in range(1, nodes + 1)] + (["cp"] if mode == "hybrid" else []))
    assert names == expected
    ports = [port for node in box.state["nodes"].values() for key, port in node.items() if key.endswith("_port")]
    assert len(ports) == len(set(ports))
