"""Graceful quit under load, immediate stop, drain (FACTS 4.3, 3.3; issue 4 item 3)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import threading
import time

import errno
from urllib.parse import urlsplit

import pytest
import requests

from kongsim.upstream import Pool, UpstreamError
from kongsim_testlib import simple_config, wait_until


class Load:
    """A fixed-rate load in its own thread; every 10th request takes 300 ms at the upstream.

    Uses the simulator's small HTTP client (cheaper than a general one, so the load itself keeps
    up on a busy 2-core machine)."""

    def __init__(self, url: str, rate: int, keepalive: bool):
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path
        self.rate = rate
        self.keepalive = keepalive
        self.results = []  # (status or None, error kind or None, send time)
        self.sent = []  # monotonic send times
        self.slow_sent = set()  # send times of the slow (300 ms) requests
        self.done_ok = []  # monotonic completion times of 200 responses
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self):
        pool = Pool()
        tasks = []
        start = time.perf_counter()
        i = 0
        while not self._stop.is_set():
            due = start + i / self.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            target = self.path + ("?sleep=0.3" if i % 10 == 0 else "")
            self.sent.append(time.monotonic())
            if i % 10 == 0:
                self.slow_sent.add(self.sent[-1])
            tasks.append(asyncio.ensure_future(self._one(pool, target, self.sent[-1])))
            i += 1
        await asyncio.gather(*tasks)
        pool.close()

    async def _one(self, pool, target, t_sent):
        headers = [("Host", f"{self.host}:{self.port}"), ("apikey", "demo-key")]
        if not self.keepalive:
            headers.append(("Connection", "close"))
        try:
            resp = await pool.request(self.host, self.port, "GET", target, headers, b"", 20, 20)
            self.results.append((resp.status, None, t_sent))
            if resp.status == 200:
                self.done_ok.append(time.monotonic())
        except UpstreamError as exc:
            refused = exc.kind == "connect" and exc.errno == errno.ECONNREFUSED
            self.results.append((None, "refused" if refused else f"{exc.kind}: {exc}", t_sent))

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(30)

    def ok_rate_between(self, t1, t2):
        return sum(1 for t in self.done_ok if t1 <= t < t2) / (t2 - t1)

    def summary(self):
        ok = sum(1 for s, _e, _t in self.results if s == 200)
        refused = sum(1 for _s, e, _t in self.results if e == "refused")
        failed = [(s, e, t) for s, e, t in self.results if s != 200 and e != "refused"]
        return ok, refused, failed


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody reaped (PID 1 of some sandboxes does not reap)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in fh)
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("version,keepalive", [("3.9.3", True), ("2.8.5", False)])
def test_quit_under_load_finishes_what_is_in_flight_and_takes_nothing_new(kong_node_factory, echo_upstream, version, keepalive):
    """nginx at SIGQUIT (ngx_worker_process_cycle, ngx_quit): the listening sockets close, so new
    connections are refused; idle keep-alive connections are closed (a request sent on one just
    then gets no reply: the connection closes under it); every request nginx is serving gets its
    reply. No request gets an error status and no request in flight at SIGQUIT is lost."""
    fmt = "2.1" if version == "2.8.5" else "3.0"
    node = kong_node_factory(version, declarative=simple_config(echo_upstream.url, fmt=fmt))
    pid = node.pid()
    load = Load(node.proxy_url + "/echo/load", rate=320, keepalive=keepalive).start()
    try:
        time.sleep(1.0)
        t0 = time.monotonic()
        res = node.quit("-w", "5", "-t", "10")
        took = time.monotonic() - t0
        time.sleep(1.0)
    finally:
        load.stop()
    assert res.returncode == 0, res.stderr
    assert res.stdout == "Kong stopped (gracefully)\n"
    assert took >= 5, took
    served = load.ok_rate_between(t0, t0 + 5)
    assert served >= 300, f"precondition: the node served {served:.0f} req/s (< 300) before quit; machine too busy?"
    ok, _refused, failed = load.summary()
    sigquit = t0 + 5
    # the slow requests (300 ms) sent in the last 0.25 s before SIGQUIT were in flight at it
    in_flight = [r for r in load.results if sigquit - 0.25 <= r[2] < sigquit - 0.02 and r[2] in load.slow_sent]
    assert in_flight and all(status == 200 for status, _e, _t in in_flight), in_flight[:5]
    # what failed failed for want of a connection (closed idle keep-alive, or refused), never with a status
    assert all(s is None for s, _e, _t in failed), failed[:5]
    assert not keepalive or all(e.startswith("reset") for _s, e, t in failed), failed[:5]
    early = [(e, round(t - sigquit, 3)) for _s, e, t in failed if t < sigquit - 0.05]
    assert not early, f"requests sent well before SIGQUIT failed: {early[:5]}"
    assert ok >= 300 * 5, ok
    assert _gone(pid), f"pid {pid} still runs after quit"
    assert not os.path.exists(os.path.join(node.prefix, "pids", "nginx.pid"))
    assert "gracefully shutting down" in node.error_log()


def _keepalive_get(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: kong\r\napikey: demo-key\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _sep, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_sigquit_closes_idle_keepalive_at_once_and_answers_in_flight_with_connection_close(kong_node_factory, echo_upstream):
    node = kong_node_factory("3.9.3", declarative=simple_config(echo_upstream.url))
    idle = socket.create_connection(("127.0.0.1", node.proxy_port), timeout=10)
    busy = socket.create_connection(("127.0.0.1", node.proxy_port), timeout=10)
    assert b" 200 " in _keepalive_get(idle, "/echo/a").split(b"\r\n")[0]
    assert b" 200 " in _keepalive_get(busy, "/echo/b").split(b"\r\n")[0]
    answer = {}
    slow = threading.Thread(target=lambda: answer.setdefault("head", _keepalive_get(busy, "/echo/slow?sleep=2")))
    slow.start()
    time.sleep(0.3)
    os.kill(node.pid(), signal.SIGQUIT)
    t0 = time.monotonic()
    assert idle.recv(1) == b"", "the idle keep-alive connection was not closed"
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", node.proxy_port), timeout=2)
    slow.join(10)
    head = answer["head"].decode()
    assert head.startswith("HTTP/1.1 200") and re.search(r"(?i)^connection: close", head, re.M), head
    assert busy.recv(1) == b""
    idle.close()
    busy.close()


def test_no_shutdown_timeout_kong_does_not_set(kong_node_factory, echo_upstream):
    """Kong's templates set no worker_shutdown_timeout (kong/templates/kong_defaults.lua, nginx.lua at
    2.8.5, 3.4.2, 3.9.3): a request longer than nginx's usual 10 s examples is still answered."""
    node = kong_node_factory("3.9.3", declarative=simple_config(echo_upstream.url))
    out = {}
    th = threading.Thread(
        target=lambda: out.setdefault("r", requests.get(node.proxy_url + "/echo/slow?sleep=10.5", headers={"apikey": "demo-key"}, timeout=30))
    )
    th.start()
    time.sleep(0.3)
    res = node.quit("-t", "20")
    th.join(30)
    assert res.stdout == "Kong stopped (gracefully)\n"
    assert out["r"].status_code == 200


def test_quit_wait_when_the_node_dies_meanwhile(kong_node_factory, echo_upstream):
    """kong/cmd/quit.lua:26-29 (2.8.5, 3.4.2, 3.9.3): `log.error(...)` then return: exit code 0."""
    node = kong_node_factory("3.9.3", declarative=simple_config(echo_upstream.url))
    pid = node.pid()
    threading.Timer(0.5, lambda: os.kill(pid, signal.SIGKILL)).start()
    res = node.quit("-w", "3")
    assert res.returncode == 0, res
    assert res.stdout == ""
    assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] Kong stopped while waiting \(unexpected\)\n", res.stderr), res.stderr


def test_quit_waits_for_inflight_then_times_out(kong_node_factory, echo_upstream):
    node = kong_node_factory("3.7.1", declarative=simple_config(echo_upstream.url), nginx_main_worker_shutdown_timeout="30s")
    out = {}

    def slow(seconds=1.5):
        try:
            out["r"] = requests.get(node.proxy_url + f"/echo/slow?sleep={seconds}", headers={"apikey": "demo-key"})
        except requests.RequestException as exc:
            out["e"] = exc

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.3)
    res = node.quit("-t", "10")
    th.join()
    assert res.stdout == "Kong stopped (gracefully)\n"
    assert out["r"].status_code == 200
    out.clear()
    th = threading.Thread(target=slow, args=(6,))
    node.start()
    th.start()
    time.sleep(0.3)
    res = node.quit("-t", "1")
    th.join()
    assert res.returncode == 0
    assert res.stdout == "Timeout, Kong stopped forcefully\n"
    assert "e" in out


def test_stop_is_immediate(kong_node_factory, echo_upstream):
    node = kong_node_factory("3.9.3", declarative=simple_config(echo_upstream.url))
    out = {}

    def slow():
        try:
            out["r"] = requests.get(node.proxy_url + "/echo/slow?sleep=3", headers={"apikey": "demo-key"})
        except requests.RequestException as exc:
            out["e"] = exc

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.3)
    res = node.cli("stop", "-p", node.prefix)
    th.join()
    assert res.stdout == "Kong stopped\n" and res.returncode == 0
    assert "e" in out and "r" not in out
    res = node.cli("stop", "-p", node.prefix)
    assert res.returncode == 1
    assert res.stderr == (f"Error: nginx not running in prefix: {node.prefix}\n\n  Run with --v (verbose) or --vv (debug) for more details\n")


def test_drain_3_9(kong_node_factory, echo_upstream):
    node = kong_node_factory("3.9.3", declarative=simple_config(echo_upstream.url))
    assert requests.get(node.status_url + "/status/ready").status_code == 200
    res = node.cli("drain", "-c", node.conf_path)
    assert res.returncode == 0 and res.stdout == "Kong's status successfully changed to 'draining'\n"
    r = requests.get(node.status_url + "/status/ready")
    assert r.status_code == 503 and r.json() == {"message": "draining"}
    assert requests.get(node.proxy_url + "/echo/x", headers={"apikey": "demo-key"}).status_code == 200
    r = requests.post(node.status_url + "/status/ready", json={"status": "nope"})
    assert r.status_code == 400
    node.stop()
    res = node.cli("drain", "-c", node.conf_path)
    assert res.returncode == 0 and res.stdout.startswith(f"Failed to send request to http://127.0.0.1:{node.status_port}/status/ready: ")


@pytest.mark.parametrize("version", ["2.8.5", "3.8.1"])
def test_drain_absent_before_3_9(kong_node_factory, version):
    node = kong_node_factory(version, start=False)
    res = node.cli("drain")
    assert res.returncode == 1
    assert res.stderr.startswith("No such command: drain\n\nUsage: kong COMMAND [OPTIONS]\n")
    wait_until(lambda: True)
