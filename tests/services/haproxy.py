"""A throw-away HAProxy (Debian's haproxy package) with an admin runtime socket.

``HaproxyServer(config_body)`` writes ``global`` and ``defaults`` sections itself
(admin socket at ``.socket``, optional TCP runtime socket at ``.runtime_port``) and
appends ``config_body``, which may use ``{port:NAME}`` placeholders filled from
``.ports`` (allocated free loopback ports).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from tests.services._apt import ensure_binary
from tests.services.ports import free_port

HAPROXY = "/usr/sbin/haproxy"

GLOBAL = """global
    log stdout format raw local0 err
    pidfile {pidfile}
    stats socket {socket} mode 600 level admin expose-fd listeners
    stats socket ipv4@127.0.0.1:{runtime_port} level admin
    stats timeout 30s
    server-state-file {state_file}
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    load-server-state-from-file global
    option http-keep-alive
"""


def freeze_front_config(cluster: str, freeze_map: str, backend: str) -> str:
    """An Admin API front that answers 423 to writes for ``cluster`` while the freeze map holds
    it (the rule the collection's HAProxy enforcement documents), in front of ``backend``."""
    rule = (
        f'http-request return status 423 content-type application/json lf-string "%[str({cluster}),map({freeze_map})]" '
        f"if {{ method POST PUT PATCH DELETE }} {{ str({cluster}),map({freeze_map}) -m found }}"
    )
    return f"""
frontend kong_admin
    bind 127.0.0.1:{{port:admin}}
    {rule}
    default_backend kong_admin_nodes
backend kong_admin_nodes
    server kong1 {backend}
"""


class HaproxyServer:
    def __init__(self, config_body: str, base_dir: str | None = None):
        self.binary = ensure_binary(HAPROXY, "haproxy")
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="kongops-haproxy-")
        self.socket = os.path.join(self.base_dir, "admin.sock")
        self.pidfile = os.path.join(self.base_dir, "haproxy.pid")
        self.state_file = os.path.join(self.base_dir, "server-state")
        self.config = os.path.join(self.base_dir, "haproxy.cfg")
        self.runtime_port = free_port()
        self.ports: dict[str, int] = {}

        def fill(match: re.Match) -> str:
            return str(self.ports.setdefault(match.group(1), free_port()))

        body = re.sub(r"\{port:([A-Za-z0-9_]+)\}", fill, config_body)
        header = GLOBAL.format(pidfile=self.pidfile, socket=self.socket, runtime_port=self.runtime_port, state_file=self.state_file)
        with open(self.config, "w") as fh:
            fh.write(header + "\n" + body.strip() + "\n")
        self.proc: subprocess.Popen | None = None

    def check(self) -> None:
        proc = subprocess.run([self.binary, "-c", "-q", "-f", self.config], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"haproxy config invalid: {proc.stderr or proc.stdout}")

    def start(self) -> "HaproxyServer":
        self.check()
        # master-worker in the foreground of its own process: SIGUSR2 reloads, SIGTERM stops.
        self.proc = subprocess.Popen(
            [self.binary, "-W", "-db", "-f", self.config], stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.base_dir, "haproxy.log"), "a")
        )
        deadline = time.monotonic() + 15
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start: see {self.base_dir}/haproxy.log")
            time.sleep(0.05)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.command("show info")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def command(self, cmd: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(self.socket)
            sock.sendall(cmd.encode() + b"\n")
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode()

    def reload(self) -> None:
        """Graceful reload (the master re-reads the config; weights set at runtime are lost)."""
        assert self.proc is not None
        self.check()
        self.proc.send_signal(signal.SIGUSR2)
        time.sleep(0.5)
        self.wait_ready()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)
