"""lb_weight through ansible-playbook against a real HAProxy and a real nginx in front of real HTTP
backends: measured traffic shares, drain waiting for an in-flight request, exact restore, and
errors that leave everything as it was."""

from __future__ import annotations

import collections
import datetime
import http.client
import http.server
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.ansible_run import run_playbook

NAMES = ("x1", "x2", "x3", "y1", "y2")
GROUPS = {"kong_x": ["x1", "x2", "x3"], "kong_y": ["y1", "y2"]}


class Named(http.server.BaseHTTPRequestHandler):
    """Answers its server's name; GET /hold first waits until the test sets `server.release`."""

    protocol_version = "HTTP/1.0"

    def do_GET(self):
        self.server.arrived += 1
        if self.path == "/hold":
            self.server.release.wait(90)
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def backends():
    servers = {}
    for name in NAMES:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Named)
        srv.daemon_threads = True
        srv.name, srv.arrived, srv.release = name, 0, threading.Event()
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers[name] = srv
    yield servers
    for srv in servers.values():
        srv.shutdown()
        srv.server_close()


def haproxy_config(backends, weights):
    lines = [f"    server {n} 127.0.0.1:{backends[n].server_address[1]} weight {weights[n]}" for n in NAMES]
    return (
        "frontend fe\n    bind 127.0.0.1:{port:proxy}\n    default_backend kong\n"
        "backend kong\n    balance roundrobin\n    timeout server 150s\n" + "\n".join(lines) + "\n"
    )


def start_nginx(nginx_factory, tmp_path, upstream_lines):
    upstream, extra = tmp_path / "kong-upstream.conf", tmp_path / "extra.conf"
    upstream.write_text("upstream kong {\n" + "".join(f"    {line}\n" for line in upstream_lines) + "}\n")
    extra.write_text("")
    web = nginx_factory(f"""
    include {upstream};
    include {extra};
    server {{
        listen 127.0.0.1:{{port:proxy}};
        location / {{ proxy_pass http://kong; proxy_read_timeout 150s; }}
    }}
""")
    web.upstream, web.extra = upstream, extra
    return web


def get(port: int, path: str = "/", timeout: float = 30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def measure(port: int, count: int) -> dict:
    """Send `count` requests (a new connection each) and return the share per group in %."""
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _i: get(port), range(count)))
    failed = [a for a in answers if a[0] != 200]
    assert not failed, f"{len(failed)} of {count} requests failed, e.g. {failed[0]}"
    by_server = collections.Counter(body for _status, body in answers)
    return {g: 100.0 * sum(by_server[n] for n in members) / count for g, members in GROUPS.items()}


def runtime_state(lb):
    rows = [ln.split() for ln in lb.command("show servers state kong").splitlines()[2:] if ln.strip()]
    return {r[3]: (int(r[7]), int(r[6])) for r in rows}


def old_nginx_workers(web) -> list:
    """Worker processes of this nginx that are shutting down after a reload (Linux /proc)."""
    master, found = str(web.pid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                parent = fh.read().rsplit(")", 1)[1].split()[1]
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if parent == master and b"shutting down" in cmdline:
            found.append(int(pid))
    return found


SHARE_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: haproxy share
      kongops.upgrade.lb_weight:
        backend: haproxy
        socket: "{{ haproxy_socket }}"
        haproxy_backend: kong
        groups: "{{ lb_groups }}"
        share: {kong_y: "{{ share }}"}
    - name: nginx share
      kongops.upgrade.lb_weight:
        backend: nginx
        upstream_file: "{{ upstream_file }}"
        upstream_name: kong
        nginx_conf: "{{ nginx_conf }}"
        groups: "{{ lb_groups }}"
        share: {kong_y: "{{ share }}"}
"""


def test_shares_measured_through_haproxy_and_nginx(backends, haproxy_factory, nginx_factory, tmp_path):
    lb = haproxy_factory(haproxy_config(backends, {"x1": 100, "x2": 100, "x3": 100, "y1": 0, "y2": 0}))
    web = start_nginx(
        nginx_factory,
        tmp_path,
        [f"server 127.0.0.1:{backends[n].server_address[1]} weight=100; # {n}" for n in GROUPS["kong_x"]]
        + [f"server 127.0.0.1:{backends[n].server_address[1]} down; # {n} weight=0" for n in GROUPS["kong_y"]],
    )
    assert measure(lb.ports["proxy"], 200)["kong_y"] == 0 and measure(web.ports["proxy"], 200)["kong_y"] == 0
    extra = {"haproxy_socket": lb.socket, "upstream_file": str(web.upstream), "nginx_conf": web.config, "lb_groups": GROUPS}
    for share, count in ((10, 2000), (50, 1000), (100, 500)):
        run = run_playbook(SHARE_PLAY, extra_vars=dict(extra, share=share))
        assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
        for task in ("haproxy share", "nginx share"):
            result = run.result(task)
            assert result["changed"] is True and result["expected_share"]["kong_y"] == share
        time.sleep(0.5)
        deadline = time.monotonic() + 15
        while old_nginx_workers(web):  # they may still accept a connection right after the reload
            assert time.monotonic() < deadline, "nginx's old workers do not exit"
            time.sleep(0.1)
        for name, port in (("haproxy", lb.ports["proxy"]), ("nginx", web.ports["proxy"])):
            observed = measure(port, count)["kong_y"]
            assert abs(observed - share) <= 3, f"{name}: {observed:.1f} % to kong_y, wanted {share} %"
            if share == 100:
                assert observed == 100.0
    assert {n: w for n, (w, _a) in runtime_state(lb).items()} == run.result("haproxy share")["computed_weights"]


DRAIN_PLAY = {
    "haproxy": """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: drain
      kongops.upgrade.lb_weight:
        backend: haproxy
        socket: "{{ haproxy_socket }}"
        haproxy_backend: kong
        state: drain
        servers: [x1]
        wait_drained: true
        drain_timeout: 60
        poll_interval: 0.5
""",
    "nginx": """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: drain
      kongops.upgrade.lb_weight:
        backend: nginx
        upstream_file: "{{ upstream_file }}"
        nginx_conf: "{{ nginx_conf }}"
        state: drain
        servers: [x1]
        wait_drained: true
        drain_timeout: 60
        poll_interval: 0.5
""",
}


def test_drain_waits_for_the_slow_request_which_succeeds(backends, haproxy_factory, nginx_factory, tmp_path):
    lb = haproxy_factory(haproxy_config(backends, {"x1": 100, "x2": 0, "x3": 0, "y1": 0, "y2": 0}))
    web = start_nginx(
        nginx_factory,
        tmp_path,
        [f"server 127.0.0.1:{backends['x1'].server_address[1]}; # x1", f"server 127.0.0.1:{backends['x2'].server_address[1]} down; # x2 weight=0"],
    )
    ports = {"haproxy": lb.ports["proxy"], "nginx": web.ports["proxy"]}
    extra = {"haproxy_socket": lb.socket, "upstream_file": str(web.upstream), "nginx_conf": web.config}
    slow, runs = {}, {}

    def slow_request(name):
        slow[name] = (*get(ports[name], "/hold", timeout=120), datetime.datetime.now(datetime.UTC))

    def drain(name):
        runs[name] = run_playbook(DRAIN_PLAY[name], extra_vars=extra)

    requests = [threading.Thread(target=slow_request, args=(name,)) for name in ports]
    for thread in requests:
        thread.start()
    deadline = time.monotonic() + 10
    while backends["x1"].arrived < 2:
        assert time.monotonic() < deadline, "the held requests did not reach x1"
        time.sleep(0.05)
    playbooks = [threading.Thread(target=drain, args=(name,)) for name in ports]
    for thread in playbooks:
        thread.start()
    # The requests are released only once both modules applied the drain (HAProxy's admin flags,
    # nginx's old worker still holding its request) and had time to start waiting.
    deadline = time.monotonic() + 90
    while not (runtime_state(lb)["x1"][1] & 0x08 and old_nginx_workers(web)):
        assert time.monotonic() < deadline, "the modules did not apply the drain"
        time.sleep(0.1)
    time.sleep(3)
    assert not slow, f"a held request finished before its release: {slow}"
    backends["x1"].release.set()
    for thread in playbooks + requests:
        thread.join(120)
    for name in ports:
        run = runs[name]
        assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert slow[name][:2] == (200, "x1"), f"{name}: the in-flight request failed: {slow[name]}"
        result = run.result("drain")
        assert result["changed"] is True and result["drained"] is True and result["after"]["x1"]["state"] == "drain"
        assert result["drain_seconds"] >= 1, f"{name}: the module did not wait for the held request"
        assert slow[name][2] <= task_end(run, "drain"), f"{name}: the task returned before the held request completed"
    assert runs["haproxy"].result("drain")["before"]["x1"]["sessions"] == 1
    assert "down; # x1 initial=1 state=drain" in web.upstream.read_text()
    assert old_nginx_workers(web) == []


def task_end(run, name) -> datetime.datetime:
    """When the json callback saw the task end (UTC)."""
    for play in run.data["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == name:
                return datetime.datetime.fromisoformat(task["task"]["duration"]["end"].rstrip("Z")).replace(tzinfo=datetime.UTC)
    raise KeyError(name)


RESTORE_PLAY = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    kongops.upgrade.lb_weight:
      socket: "{{ haproxy_socket }}"
      haproxy_backend: kong
      upstream_file: "{{ upstream_file }}"
      nginx_conf: "{{ nginx_conf }}"
  tasks:
    - name: check
      kongops.upgrade.lb_weight: {backend: "{{ item }}", groups: "{{ lb_groups }}", share: {kong_y: 50}}
      check_mode: true
      diff: true
      loop: [haproxy, nginx]
      register: check
    - name: step
      kongops.upgrade.lb_weight: {backend: "{{ item }}", groups: "{{ lb_groups }}", share: {kong_y: 10}}
      loop: [haproxy, nginx]
      register: step
    - name: maint
      kongops.upgrade.lb_weight: {backend: "{{ item }}", state: maint, servers: [x1, x3]}
      loop: [haproxy, nginx]
    - name: restore
      kongops.upgrade.lb_weight: {backend: "{{ item.item }}", restore: "{{ item.before }}"}
      loop: "{{ step.results }}"
      loop_control: {label: "{{ item.item }}"}
    - name: unknown backend
      kongops.upgrade.lb_weight: {backend: haproxy, haproxy_backend: nope, weights: {x1: 1}}
      ignore_errors: true
    - name: unknown server
      kongops.upgrade.lb_weight: {backend: nginx, weights: {x1: 1, zz: 1}}
      ignore_errors: true
    - name: missing socket
      kongops.upgrade.lb_weight: {backend: haproxy, socket: /nonexistent/admin.sock, weights: {x1: 1}}
      ignore_errors: true
    - name: share out of range
      kongops.upgrade.lb_weight: {backend: haproxy, groups: "{{ lb_groups }}", share: {kong_y: 120}}
      ignore_errors: true
    - name: unknown group
      kongops.upgrade.lb_weight: {backend: nginx, groups: "{{ lb_groups }}", share: {kong_z: 10}}
      ignore_errors: true
    - name: break nginx config
      ansible.builtin.copy: {dest: "{{ extra_conf }}", content: "this is not nginx;\\n"}
    - name: nginx validation
      kongops.upgrade.lb_weight: {backend: nginx, weights: {x1: 0}}
      ignore_errors: true
    - name: repair nginx config
      ansible.builtin.copy: {dest: "{{ extra_conf }}", content: ""}
"""


def test_restore_check_mode_and_errors(backends, haproxy_factory, nginx_factory, tmp_path):
    lb = haproxy_factory(haproxy_config(backends, {"x1": 37, "x2": 100, "x3": 100, "y1": 100, "y2": 100}))
    for cmd in ("set server kong/x2 state drain", "set server kong/y2 state maint"):
        assert lb.command(cmd).strip() == ""
    initial = runtime_state(lb)
    port = {n: backends[n].server_address[1] for n in NAMES}
    web = start_nginx(
        nginx_factory,
        tmp_path,
        [
            f"server 127.0.0.1:{port['x1']} weight=37; # x1",
            f"server 127.0.0.1:{port['x2']} weight=100 down; # x2 state=drain",
            f"server 127.0.0.1:{port['x3']} weight=100; # x3",
            f"server 127.0.0.1:{port['y1']} down; # y1 weight=0",
            f"server 127.0.0.1:{port['y2']} weight=5 down; # y2",
        ],
    )
    run = run_playbook(
        RESTORE_PLAY,
        extra_vars={
            "haproxy_socket": lb.socket,
            "upstream_file": str(web.upstream),
            "nginx_conf": web.config,
            "extra_conf": str(web.extra),
            "lb_groups": GROUPS,
        },
    )
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]

    check = run.result("check")["results"]
    assert all(r["changed"] and "diff" in r for r in check)
    step = run.result("step")["results"]
    assert {n: (s["weight"], s["state"]) for n, s in step[0]["before"].items()} == {
        "x1": (37, "ready"),
        "x2": (100, "drain"),
        "x3": (100, "ready"),
        "y1": (100, "ready"),
        "y2": (100, "maint"),
    }
    assert {n: (s["weight"], s["state"]) for n, s in step[1]["before"].items()} == {
        "x1": (37, "ready"),
        "x2": (100, "drain"),
        "x3": (100, "ready"),
        "y1": (0, "ready"),
        "y2": (5, "maint"),
    }
    restored = run.result("restore")["results"]
    assert all(r["changed"] for r in restored)

    errors = {
        "unknown backend": [r"haproxy_backend: no backend nope in HAProxy \(known backends: kong\)"],
        "unknown server": [r"weights: no such server in the load balancer: zz \(known servers: x1, x2, x3, y1, y2\)"],
        "missing socket": ["socket /nonexistent/admin.sock does not exist"],
        "share out of range": ["share.kong_y: 120 is not a percentage"],
        "unknown group": [r"share: no such group: kong_z \(groups: kong_x, kong_y\)"],
        "nginx validation": ["upstream_file: nginx -t rejected the new .*the previous file is back in place"],
    }
    for task, messages in errors.items():
        result = run.result(task)
        results = result.get("results", [result])
        assert len(results) == len(messages)
        for one, message in zip(results, messages):
            assert one["failed"] is True and not one.get("changed"), (task, one)
            assert re.search(message, one["msg"]), (task, one["msg"])

    assert runtime_state(lb) == initial
    text = web.upstream.read_text()
    assert re.search(rf"server 127.0.0.1:{port['x1']} weight=37; # x1( initial=37)?\n", text)
    assert re.search(rf"server 127.0.0.1:{port['x2']} weight=100 down; # x2( initial=100)? state=drain\n", text)
    assert re.search(rf"server 127.0.0.1:{port['x3']} weight=100; # x3( initial=100)?\n", text)
    assert re.search(rf"server 127.0.0.1:{port['y1']} down; # y1( initial=1)? weight=0\n", text)
    assert re.search(rf"server 127.0.0.1:{port['y2']} weight=5 down; # y2( initial=5 state=maint)?\n", text)
    seen = collections.Counter(get(web.ports["proxy"])[1] for _i in range(60))
    assert set(seen) == {"x1", "x3"}
