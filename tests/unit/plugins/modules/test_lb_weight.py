"""lb_weight main() against a real HAProxy and a real nginx: check mode, diff, idempotence,
exact restore, persistence across reloads, and every error leaving the state as it was."""

from __future__ import annotations

import http.server
import os
import re
import threading
import time
import urllib.request

import pytest
from ansible_collections.kongops.upgrade.tests.unit.conftest import run_module
from ansible_collections.kongops.upgrade.plugins.modules import lb_weight

HAPROXY = """
global
    stats socket {dir}/user.sock mode 666 level user
frontend fe
    bind 127.0.0.1:{port:proxy}
    default_backend kong
backend kong
    balance roundrobin
    server x1 127.0.0.1:{port:x1} weight 100
    server x2 127.0.0.1:{port:x2} weight 100
    server x3 127.0.0.1:{port:x3} weight 100
    server y1 127.0.0.1:{port:y1} weight 100
    server y2 127.0.0.1:{port:y2} weight 100
backend st
    balance static-rr
    server s1 127.0.0.1:{port:s1}
    server s2 127.0.0.1:{port:s2}
"""
GROUPS = {"kong_x": ["x1", "x2", "x3"], "kong_y": ["y1", "y2"]}
DROP = object()


def run(capsys, args):
    return run_module(lb_weight.main, capsys, args)[:2]


def runtime_state(lb, backend="kong"):
    """Weight, initial weight and admin flags per server, read straight from the socket."""
    rows = [ln.split() for ln in lb.command(f"show servers state {backend}").splitlines()[2:] if ln.strip()]
    return {r[3]: (int(r[7]), int(r[8]), int(r[6])) for r in rows}


def worker_pid(lb) -> str:
    return re.search(r"^Pid: (\d+)$", lb.command("show info"), re.MULTILINE).group(1)


def reload(lb, timeout=15.0):
    """Reload HAProxy and wait until only the new worker answers on the socket (the old one
    keeps answering for a moment while it stops)."""
    old = worker_pid(lb)
    lb.reload()
    deadline, fresh = time.monotonic() + timeout, 0
    while fresh < 3:
        assert time.monotonic() < deadline, "the reloaded HAProxy worker does not answer"
        fresh = fresh + 1 if worker_pid(lb) != old else 0
        time.sleep(0.1)


@pytest.fixture
def lb(haproxy_factory, tmp_path):
    server = haproxy_factory(HAPROXY.replace("{dir}", str(tmp_path)))
    server.args = {
        "backend": "haproxy",
        "socket": server.socket,
        "haproxy_backend": "kong",
    }
    return server


def test_check_mode_predicts_the_share_and_writes_nothing(lb, capsys):
    initial = runtime_state(lb)
    rc, result = run(
        capsys,
        dict(
            lb.args,
            groups=GROUPS,
            share={"kong_y": 10},
            _ansible_check_mode=True,
            _ansible_diff=True,
        ),
    )
    assert rc == 0 and result["changed"] is True
    assert result["computed_weights"] == {"x1": 6, "x2": 6, "x3": 6, "y1": 1, "y2": 1}
    assert result["expected_share"] == {"kong_x": 90.0, "kong_y": 10.0}
    assert result["diff"][0]["before"]["y1"] == {"weight": 100, "state": "ready"}
    assert result["diff"][0]["after"]["y1"] == {"weight": 1, "state": "ready"}
    assert result["after"]["x1"]["weight"] == 6 and result["changed_servers"] == [
        "x1",
        "x2",
        "x3",
        "y1",
        "y2",
    ]
    assert runtime_state(lb) == initial


def test_share_applies_then_is_idempotent(lb, capsys):
    before = time.time()
    rc, result = run(capsys, dict(lb.args, groups=GROUPS, share={"kong_y": 10}))
    assert rc == 0 and result["changed"] is True
    assert {n: w for n, (w, _i, _a) in runtime_state(lb).items()} == result["computed_weights"]
    assert result["after"]["y1"]["weight"] == 1 and result["before"]["y1"]["weight"] == 100
    assert set(result["sessions"]) == {"x1", "x2", "x3", "y1", "y2"} and "stats" in result
    # when the counters were read: a gate's soak can start from this reading (kong_gate's since)
    assert before <= result["stats_at"] <= time.time()
    rc, again = run(capsys, dict(lb.args, groups=GROUPS, share={"kong_y": 10}, _ansible_diff=True))
    assert rc == 0 and again["changed"] is False and again["changed_servers"] == []
    assert again["diff"][0]["before"] == again["diff"][0]["after"]


def test_share_zero_and_hundred(lb, capsys):
    run(capsys, dict(lb.args, groups=GROUPS, share={"kong_y": 0}))
    assert [runtime_state(lb)[n][0] for n in ("x1", "x2", "x3", "y1", "y2")] == [
        1,
        1,
        1,
        0,
        0,
    ]
    run(capsys, dict(lb.args, groups=GROUPS, share={"kong_y": 100}))
    assert [runtime_state(lb)[n][0] for n in ("x1", "x2", "x3", "y1", "y2")] == [
        0,
        0,
        0,
        1,
        1,
    ]


def test_percent_weights_and_states_over_tcp(lb, capsys):
    args = dict(lb.args, socket=f"127.0.0.1:{lb.runtime_port}")
    rc, result = run(
        capsys,
        dict(args, weights={"x1": "50%", "x2": 0}, state="drain", servers=["x3"]),
    )
    assert rc == 0 and result["changed_servers"] == ["x1", "x2", "x3"]
    state = runtime_state(lb)
    assert state["x1"][0] == 50 and state["x2"][0] == 0 and state["x3"][2] & 0x08
    assert result["after"]["x3"]["state"] == "drain" and result["after"]["x3"]["status"] == "DRAIN"


def test_restore_puts_back_exact_weights_and_states(lb, capsys):
    for cmd in (
        "set server kong/x1 weight 37",
        "set server kong/x2 state drain",
        "set server kong/y2 state maint",
        "set server kong/y2 weight 0",
    ):
        assert lb.command(cmd).strip() == ""
    original = runtime_state(lb)
    rc, step = run(capsys, dict(lb.args, groups=GROUPS, share={"kong_y": 50}))
    run(capsys, dict(lb.args, state="maint", servers=["x1", "x2"]))
    assert runtime_state(lb) != original
    rc, back = run(capsys, dict(lb.args, restore=step["before"]))
    assert rc == 0 and back["changed"] is True
    assert runtime_state(lb) == original
    assert {n: (s["weight"], s["state"]) for n, s in back["after"].items()} == {n: (s["weight"], s["state"]) for n, s in step["before"].items()}
    rc, again = run(capsys, dict(lb.args, restore=step["before"]))
    assert again["changed"] is False


@pytest.mark.parametrize(
    "args,message,param",
    [
        (
            {"haproxy_backend": "nope"},
            r"haproxy_backend: no backend nope in HAProxy \(known backends: kong, st\)",
            None,
        ),
        (
            {"weights": {"zz": 5}},
            r"weights: no such server in the load balancer: zz \(known servers: x1, x2, x3, y1, y2\)",
            "weights",
        ),
        (
            {"weights": {"x1": 300}},
            "weights.x1: weight 300 is out of range; use 0-256",
            "weights",
        ),
        (
            {"weights": {"x1": 5, "x2": "lots"}},
            "weights.x2: 'lots' is not a weight",
            "weights",
        ),
        (
            {"groups": GROUPS, "share": {"kong_y": 120}},
            "share.kong_y: 120 is not a percentage",
            "share",
        ),
        (
            {"groups": GROUPS, "share": {"kong_z": 10}},
            "share: no such group: kong_z",
            "share",
        ),
        (
            {"groups": {"kong_x": ["x1"], "kong_y": ["y9"]}, "share": {"kong_y": 10}},
            "groups.kong_y: no such server",
            "groups",
        ),
        (
            {"state": "drain", "servers": ["x1", "q1"]},
            "servers: no such server in the load balancer: q1",
            "servers",
        ),
        (
            {"restore": {"x1": {"weight": 3}}},
            "restore.x1: expected a dict with weight and state",
            "restore",
        ),
        (
            {"socket": "/nonexistent/haproxy.sock"},
            "socket /nonexistent/haproxy.sock does not exist",
            None,
        ),
        ({"socket": "127.0.0.1:1"}, "socket 127.0.0.1:1 refused the connection", None),
        (
            {"weights": {"x1": 1}, "drain_timeout": -1},
            "drain_timeout: must be 0 or more seconds",
            "drain_timeout",
        ),
        (
            {"weights": {"x1": 1}, "share": {"kong_y": 1}, "groups": GROUPS},
            "mutually exclusive: weights|share",
            None,
        ),
        ({"state": "drain"}, "missing parameter.s. required by 'state': servers", None),
        (
            {"haproxy_backend": DROP},
            "backend is haproxy but all of the following are missing: haproxy_backend",
            None,
        ),
        (
            {"haproxy_backend": ""},
            "haproxy_backend: name the HAProxy backend",
            "haproxy_backend",
        ),
        (
            {"persist": "state_file", "weights": {"x1": 1}},
            "persist is state_file but .* missing: state_file",
            None,
        ),
    ],
)
def test_errors_name_the_parameter_and_change_nothing(lb, capsys, args, message, param):
    initial = runtime_state(lb)
    rc, result = run(capsys, {k: v for k, v in {**lb.args, **args}.items() if v is not DROP})
    assert rc == 1 and result["failed"] is True and result.get("changed", False) is False
    assert re.search(message, result["msg"]), result["msg"]
    assert "Traceback" not in result["msg"] and "exception" not in result
    if param:
        assert result["param"] == param
    assert runtime_state(lb) == initial


def test_user_level_socket_is_refused_and_changes_nothing(lb, capsys, tmp_path):
    initial = runtime_state(lb)
    rc, result = run(
        capsys,
        dict(lb.args, socket=os.path.join(str(tmp_path), "user.sock"), weights={"x1": 1}),
    )
    assert rc == 1 and "needs 'level admin'" in result["msg"] and result["command"] == "set server kong/x1 weight 1"
    assert runtime_state(lb) == initial


def test_refused_step_rolls_back_the_steps_before_it(lb, capsys):
    initial = runtime_state(lb, "st")
    rc, result = run(capsys, dict(lb.args, haproxy_backend="st", weights={"s1": 0, "s2": 5}))
    assert rc == 1 and "static LB algorithm" in result["msg"] and result["server"] == "s2"
    assert runtime_state(lb, "st") == initial


def test_persist_state_file_survives_reload_and_none_does_not(lb, capsys):
    rc, result = run(capsys, dict(lb.args, weights={"x1": 0}))
    assert rc == 0 and result["files"] == []
    reload(lb)
    assert runtime_state(lb)["x1"][0] == 100, "without persist a reload brings back the configured weight"
    rc, result = run(
        capsys,
        dict(
            lb.args,
            weights={"x1": 7},
            state="maint",
            servers=["y1"],
            persist="state_file",
            state_file=lb.state_file,
            _ansible_diff=True,
        ),
    )
    assert rc == 0 and result["files"] == [lb.state_file] and result["diff"][1]["before_header"] == lb.state_file
    with open(lb.state_file) as fh:
        assert " kong 1 x1 " in fh.read()
    expected = runtime_state(lb)
    reload(lb)
    assert runtime_state(lb) == expected
    rc, again = run(
        capsys,
        dict(
            lb.args,
            weights={"x1": 7},
            state="maint",
            servers=["y1"],
            persist="state_file",
            state_file=lb.state_file,
        ),
    )
    assert again["changed"] is False and again["files"] == []


def test_persist_config_rewrites_server_lines(lb, capsys):
    with open(lb.config) as fh:
        original = fh.read()
    rc, result = run(
        capsys,
        dict(
            lb.args,
            weights={"x2": 9},
            state="maint",
            servers=["y2"],
            persist="config",
            config_file=lb.config,
        ),
    )
    assert rc == 0 and result["files"] == [lb.config]
    with open(lb.config) as fh:
        text = fh.read()
    assert f"server x2 127.0.0.1:{lb.ports['x2']} weight 9\n" in text
    assert f"server y2 127.0.0.1:{lb.ports['y2']} weight 100 disabled\n" in text
    assert text.replace(" weight 9\n", " weight 100\n").replace(" disabled\n", "\n") == original
    reload(lb)
    after = runtime_state(lb)
    assert after["x2"][:2] == (9, 9) and after["y2"][2] & 0x01


def test_persist_config_without_the_server_line_changes_nothing(lb, capsys, tmp_path):
    other = tmp_path / "other.cfg"
    other.write_text("backend kong\n    server x1 127.0.0.1:1\n")
    initial = runtime_state(lb)
    rc, result = run(
        capsys,
        dict(lb.args, weights={"x2": 9}, persist="config", config_file=str(other)),
    )
    assert rc == 1 and result["param"] == "config_file" and "no server line for x2, x3, y1, y2" in result["msg"]
    assert runtime_state(lb) == initial and other.read_text() == "backend kong\n    server x1 127.0.0.1:1\n"


class SlowNamed(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        time.sleep(float(self.path.strip("/") or 0))
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_drain_timeout_fails_naming_the_open_session(haproxy_factory, capsys):
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowNamed)
    backend.name = "x1"
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    try:
        lb = haproxy_factory(f"""
frontend fe
    bind 127.0.0.1:{{port:proxy}}
    default_backend kong
backend kong
    server x1 127.0.0.1:{backend.server_address[1]}
""")
        slow = threading.Thread(target=lambda: urllib.request.urlopen(f"http://127.0.0.1:{lb.ports['proxy']}/4", timeout=20).read())
        slow.start()
        time.sleep(0.5)
        rc, result = run(
            capsys,
            {
                "backend": "haproxy",
                "socket": lb.socket,
                "haproxy_backend": "kong",
                "state": "drain",
                "servers": ["x1"],
                "wait_drained": True,
                "drain_timeout": 1,
                "poll_interval": 0.2,
            },
        )
        slow.join(20)
        assert rc == 1 and result["changed"] is True and result["drained"] is False
        assert "drain_timeout=1s: x1 (1 sessions, 0 queued)" in result["msg"]
        assert result["still_open"] == {"x1": "1 sessions, 0 queued"}
        assert result["after"]["x1"]["state"] == "drain" and result["before"]["x1"]["state"] == "ready"
    finally:
        backend.shutdown()
        backend.server_close()


# nginx from here on.

UPSTREAM = """upstream kong {
    server 127.0.0.1:%(x1)d; # x1
    server 127.0.0.1:%(x2)d; # x2
    server 127.0.0.1:%(y1)d down; # y1 weight=0
}
"""


@pytest.fixture
def web(nginx_factory, tmp_path):
    ports = {}
    servers = []
    for name in ("x1", "x2", "y1"):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowNamed)
        srv.name = name
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        ports[name] = srv.server_address[1]
    upstream = tmp_path / "kong-upstream.conf"
    upstream.write_text(UPSTREAM % ports)
    extra = tmp_path / "extra.conf"
    extra.write_text("")
    server = nginx_factory(f"""
    include {upstream};
    include {extra};
    server {{ listen 127.0.0.1:{{port:proxy}}; location / {{ proxy_pass http://kong; }} }}
""")
    server.upstream, server.extra, server.original = (
        upstream,
        extra,
        upstream.read_text(),
    )
    server.args = {
        "backend": "nginx",
        "upstream_file": str(upstream),
        "upstream_name": "kong",
        "nginx_conf": server.config,
    }
    yield server
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def served(web, count=30):
    url = f"http://127.0.0.1:{web.ports['proxy']}/"
    return {urllib.request.urlopen(url, timeout=10).read().decode() for _i in range(count)}


def eventually_served(web, names, timeout=10.0):
    """Old workers may accept a last connection right after a reload; wait for the new split."""
    deadline = time.monotonic() + timeout
    while served(web, 10) != names:
        assert time.monotonic() < deadline, f"nginx does not serve only {names}"
        time.sleep(0.2)


def test_nginx_check_mode_writes_nothing_and_apply_reloads(web, capsys):
    rc, result = run(
        capsys,
        dict(
            web.args,
            groups={"x": ["x1", "x2"], "y": ["y1"]},
            share={"y": 100},
            _ansible_check_mode=True,
            _ansible_diff=True,
        ),
    )
    assert rc == 0 and result["changed"] is True and web.upstream.read_text() == web.original
    assert "down; # x1 initial=1 weight=0\n" in result["diff"][1]["after"]
    assert result["diff"][1]["before_header"] == str(web.upstream)
    assert served(web) == {"x1", "x2"}
    rc, result = run(
        capsys,
        dict(web.args, groups={"x": ["x1", "x2"], "y": ["y1"]}, share={"y": 100}),
    )
    assert (
        rc == 0
        and result["changed"] is True
        and result["after"]["y1"]
        == {
            "weight": 1,
            "initial_weight": 1,
            "state": "ready",
            "sessions": None,
            "address": result["after"]["y1"]["address"],
            "down": False,
        }
    )
    eventually_served(web, {"y1"})
    rc, again = run(
        capsys,
        dict(web.args, groups={"x": ["x1", "x2"], "y": ["y1"]}, share={"y": 100}),
    )
    assert again["changed"] is False and again["files"] == []


def test_nginx_restore_is_exact(web, capsys):
    original = web.upstream.read_text()
    rc, step = run(
        capsys,
        dict(web.args, weights={"x1": 5, "y1": 2}, state="drain", servers=["x2"]),
    )
    assert rc == 0 and web.upstream.read_text() != original
    rc, back = run(capsys, dict(web.args, restore=step["before"]))
    assert rc == 0 and back["changed"] is True
    assert {n: (s["weight"], s["state"]) for n, s in back["after"].items()} == {n: (s["weight"], s["state"]) for n, s in step["before"].items()}
    eventually_served(web, {"x1", "x2"})


def test_nginx_validation_failure_keeps_the_previous_file(web, capsys):
    web.extra.write_text("this is not nginx;\n")
    before = web.upstream.read_text()
    try:
        rc, result = run(capsys, dict(web.args, weights={"x1": 0}))
    finally:
        web.extra.write_text("")
    assert rc == 1 and result["changed"] is False
    assert "upstream_file: nginx -t rejected the new" in result["msg"] and "unknown directive" in result["stderr"]
    assert web.upstream.read_text() == before
    assert served(web) == {"x1", "x2"}


@pytest.mark.parametrize(
    "args,message",
    [
        (
            {"upstream_name": "nope"},
            r"upstream_name: no upstream nope in .*upstreams there: kong",
        ),
        (
            {"weights": {"z9": 1}},
            r"weights: no such server in the load balancer: z9 \(known servers: x1, x2, y1\)",
        ),
        (
            {"groups": {"x": ["x1"], "y": ["y1"]}, "share": {"y": -5}},
            "share.y: -5 is not a percentage",
        ),
        (
            {"nginx_bin": "/nonexistent/nginx", "weights": {"x1": 3}},
            "nginx_bin: /nonexistent/nginx was not found",
        ),
    ],
)
def test_nginx_errors_change_nothing(web, capsys, args, message):
    before = web.upstream.read_text()
    rc, result = run(capsys, {**web.args, **args})
    assert rc == 1 and re.search(message, result["msg"]), result["msg"]
    assert web.upstream.read_text() == before


def _run_at_once(tmp_path, arg_sets: list) -> list:
    """Each set of module arguments in a process of its own, all started together (the hosts of one batch
    changing the same load balancer); their results in order."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    procs = []
    for i, args in enumerate(arg_sets):
        path = tmp_path / f"args-{i}.json"
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        cmd = [sys.executable, "-m", "ansible_collections.kongops.upgrade.plugins.modules.lb_weight", str(path)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert out, err.decode()
        results.append(json.loads(out))
    return results


def test_nginx_runs_at_once_each_on_its_own_server_lose_no_change(web, tmp_path):
    """x1 and x2 each taken out of rotation by a run of their own, at the same moment, three times over:
    the upstream file (read, changed, written whole, then nginx reloaded) ends with both down each time.
    Without the lock each run could write the file from the copy it read before the other's change."""
    for _round in range(3):
        web.upstream.write_text(web.original)
        results = _run_at_once(tmp_path, [dict(web.args, state="maint", servers=[name]) for name in ("x1", "x2")])
        assert not any(r.get("failed") for r in results), [r.get("msg") for r in results]
        text = web.upstream.read_text()
        assert re.search(r"down; # x1\b", text) and re.search(r"down; # x2\b", text), text


def test_lock_waits_for_the_holder_then_times_out(tmp_path):
    import fcntl

    from ansible_collections.kongops.upgrade.plugins.module_utils._lb import LbLockTimeout, exclusive

    holder = os.open(str(tmp_path), os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        clock = iter(range(100))
        with pytest.raises(LbLockTimeout, match=r"held .* for 3s"):
            with exclusive([str(tmp_path)], 3.0, clock=lambda: next(clock), sleep=lambda _s: None):
                pass
    finally:
        os.close(holder)
    entered = []
    with exclusive([str(tmp_path), str(tmp_path) + "/"], 3.0):
        entered.append(True)
    with exclusive([], 3.0):
        entered.append(True)
    assert entered == [True, True]


def test_haproxy_locks_the_directory_of_the_file_it_persists_to_only():
    from ansible_collections.kongops.upgrade.plugins.module_utils._haproxy_runtime import HaproxyBackend

    assert HaproxyBackend(None, "kong").lock_dirs() == []
    assert HaproxyBackend(None, "kong", persist="state_file", state_file="/var/lib/haproxy/state").lock_dirs() == ["/var/lib/haproxy"]
    assert HaproxyBackend(None, "kong", persist="config", config_file="/etc/haproxy/haproxy.cfg").lock_dirs() == ["/etc/haproxy"]
