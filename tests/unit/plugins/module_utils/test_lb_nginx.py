"""nginx backend of lb_weight: the upstream file format, validation and restore with a fake
run_command, and reload plus drain detection against a real nginx."""

from __future__ import annotations

import http.server
import subprocess
import threading
import time
import urllib.request

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._lb import plan
from ansible_collections.kongops.upgrade.plugins.module_utils._nginx import (
    NginxError,
    NginxUpstream,
    parse_upstream,
)

UPSTREAMS = """# managed by lb_weight
upstream other {
    server 10.0.0.9:80;
}

upstream kong {
    least_conn;
    keepalive 16;
    server 10.0.0.1:8000 weight=100 max_fails=3; # x1 first node
    server 10.0.0.2:8000; # x2
    server 10.0.0.3:8000 down;   # y1
    server 10.0.0.4:8000 weight=5 backup;
}
"""


class FakeRun:
    def __init__(self, rcs=None):
        self.rcs, self.calls = rcs or {}, []

    def __call__(self, cmd):
        self.calls.append(cmd)
        rc = self.rcs.get(cmd[1], 0)
        return rc, "", "" if rc == 0 else "nginx: [emerg] invalid parameter in upstream.conf:9"


def upstream(tmp_path, text=UPSTREAMS, name="kong", run=None, **kwargs):
    path = tmp_path / "upstream.conf"
    path.write_text(text)
    return NginxUpstream(run or FakeRun(), str(path), name, **kwargs), path


def test_read_names_servers_by_comment_else_address(tmp_path):
    lb, _path = upstream(tmp_path)
    servers = lb.read()
    assert list(servers) == ["x1", "x2", "y1", "10.0.0.4:8000"]
    assert servers["x1"] == {"weight": 100, "initial_weight": 100, "state": "ready", "sessions": None, "address": "10.0.0.1:8000", "down": False}
    assert (servers["x2"]["weight"], servers["y1"]["state"]) == (1, "maint")


def test_render_round_trips_what_nginx_cannot_express(tmp_path):
    lb, path = upstream(tmp_path)
    current = lb.read()
    desired = {
        "x1": {"weight": 0, "state": "ready"},
        "x2": {"weight": 3, "state": "drain"},
        "y1": {"weight": 9, "state": "ready"},
        "10.0.0.4:8000": {"weight": 0, "state": "maint"},
    }
    files = lb.prepare(current, desired)
    text = files[0]["after"]
    assert "    server 10.0.0.1:8000 max_fails=3 down; # x1 first node initial=100 weight=0\n" in text
    assert "    server 10.0.0.2:8000 weight=3 down; # x2 initial=1 state=drain\n" in text
    assert "    server 10.0.0.3:8000 weight=9; # y1 initial=1\n" in text
    assert "    server 10.0.0.4:8000 backup down; # initial=5 weight=0 state=maint\n" in text
    assert "    least_conn;\n    keepalive 16;\n" in text and "    server 10.0.0.9:80;\n" in text
    path.write_text(text)
    again = NginxUpstream(FakeRun(), str(path), "kong").read()
    assert {n: (s["weight"], s["state"], s["initial_weight"]) for n, s in again.items()} == {
        "x1": (0, "ready", 100),
        "x2": (3, "drain", 1),
        "y1": (9, "ready", 1),
        "10.0.0.4:8000": (0, "maint", 5),
    }
    back = NginxUpstream(FakeRun(), str(path), "kong")
    restored = back.prepare(back.read(), plan(again, restore=current)[0])[0]["after"]
    assert NginxUpstream(FakeRun(), str(path), "kong").read() == again
    path.write_text(restored)
    assert {n: (s["weight"], s["state"]) for n, s in NginxUpstream(FakeRun(), str(path), "kong").read().items()} == {
        n: (s["weight"], s["state"]) for n, s in current.items()
    }


def test_unchanged_servers_keep_their_lines(tmp_path):
    lb, _path = upstream(tmp_path)
    current = lb.read()
    desired = {n: {"weight": s["weight"], "state": s["state"]} for n, s in current.items()}
    assert lb.prepare(current, desired) == []
    desired["x2"]["weight"] = 2
    after = lb.prepare(current, desired)[0]["after"]
    changed = [ln for ln in after.splitlines() if ln not in UPSTREAMS.splitlines()]
    assert changed == ["    server 10.0.0.2:8000 weight=2; # x2 initial=1"]


def test_bare_server_lines(tmp_path):
    lb, _path = upstream(tmp_path, "server 127.0.0.1:1 weight=4; # a\nserver 127.0.0.1:2; # b\n", name=None)
    assert {n: s["weight"] for n, s in lb.read().items()} == {"a": 4, "b": 1}


@pytest.mark.parametrize(
    "text,name,message,param",
    [
        (UPSTREAMS, None, "holds several upstream blocks .other, kong.; name the one", "upstream_name"),
        (UPSTREAMS, "nope", r"no upstream nope in .* \(upstreams there: kong, other\)", "upstream_name"),
        ("upstream kong {\n server a:1 weight=2\n    max_fails=1;\n}\n", "kong", "line 2: cannot parse", "upstream_file"),
        ("upstream kong { server a:1; }\n", "kong", "line 1: cannot parse", "upstream_file"),
        ("upstream kong {\n server a:1;\n", "kong", "is not closed", "upstream_file"),
        ("upstream kong {\n server a:1;\n server a:1;\n}\n", "kong", "names server a:1 twice", "upstream_file"),
        ("upstream kong {\n keepalive 2;\n}\n", "kong", "has no server lines", "upstream_file"),
    ],
)
def test_parse_errors_name_the_parameter(text, name, message, param):
    with pytest.raises(NginxError, match=message) as exc:
        parse_upstream(text, name)
    assert exc.value.param == param


def test_missing_file(tmp_path):
    with pytest.raises(NginxError, match="does not exist; template it") as exc:
        NginxUpstream(FakeRun(), str(tmp_path / "none.conf"), "kong").read()
    assert exc.value.param == "upstream_file"


@pytest.mark.parametrize("failing,message", [("-t", "nginx -t rejected"), ("-s", "nginx -s reload failed")])
def test_failed_validation_or_reload_puts_the_previous_file_back(tmp_path, failing, message):
    run = FakeRun({failing: 1})
    lb, path = upstream(tmp_path, run=run, nginx_conf="/etc/nginx/nginx.conf")
    lb.master_pid = lambda: None
    current = lb.read()
    desired = plan(current, weights={"x1": 50})[0]
    files = lb.prepare(current, desired)
    with pytest.raises(NginxError, match=message) as exc:
        lb.apply(current, desired, files)
    assert path.read_text() == UPSTREAMS
    assert exc.value.rc == 1 and "invalid parameter" in exc.value.stderr
    assert run.calls[0] == ["nginx", "-t", "-c", "/etc/nginx/nginx.conf"]


# Real nginx from here on.


class Slow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(3)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_reload_then_old_workers_finish_the_slow_request(nginx_factory, tmp_path):
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    try:
        path = tmp_path / "up.conf"
        path.write_text(f"upstream kong {{\n    server 127.0.0.1:{backend.server_address[1]}; # a\n}}\n")
        web = nginx_factory(f"""
    include {path};
    server {{ listen 127.0.0.1:{{port:proxy}}; location / {{ proxy_pass http://kong; }} }}
""")

        def run(cmd):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            return proc.returncode, proc.stdout, proc.stderr

        lb = NginxUpstream(run, str(path), "kong", nginx_bin="/usr/sbin/nginx", nginx_conf=web.config)
        assert lb.master_pid() == web.pid()
        outcome = {}
        slow = threading.Thread(target=lambda: outcome.update(body=urllib.request.urlopen(f"http://127.0.0.1:{web.ports['proxy']}/slow", timeout=20).read()))
        slow.start()
        time.sleep(0.5)
        current = lb.read()
        desired = plan(current, state="drain", servers=["a"])[0]
        lb.apply(current, desired, lb.prepare(current, desired))
        assert lb.read()["a"]["state"] == "drain" and lb.warnings == []
        assert lb.drain_probe(["a"]), "the old worker still serves the slow request"
        deadline = time.monotonic() + 15
        while lb.drain_probe(["a"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        slow.join(10)
        assert outcome["body"] == b"ok"
    finally:
        backend.shutdown()
        backend.server_close()
