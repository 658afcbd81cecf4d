"""A throw-away nginx (Debian's nginx package) in its own prefix.

``NginxServer(http_body)`` writes a complete nginx.conf (pid, logs and temp paths
inside its prefix) whose ``http`` block holds ``http_body``; ``{port:NAME}``
placeholders are filled from ``.ports`` and ``{dir}`` with the prefix directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time

from tests.services._apt import ensure_binary
from tests.services.ports import free_port, wait_port

NGINX = "/usr/sbin/nginx"

MAIN = """{user}worker_processes 1;
daemon on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
{body}
}}
"""


class NginxServer:
    def __init__(self, http_body: str, base_dir: str | None = None):
        self.binary = ensure_binary(NGINX, "nginx")
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="kongops-nginx-")
        os.makedirs(os.path.join(self.base_dir, "tmp"), exist_ok=True)
        self.config = os.path.join(self.base_dir, "nginx.conf")
        self.ports: dict[str, int] = {}

        def fill(match: re.Match) -> str:
            return str(self.ports.setdefault(match.group(1), free_port()))

        body = re.sub(r"\{port:([A-Za-z0-9_]+)\}", fill, http_body).replace("{dir}", self.base_dir)
        user = "user root root;\n" if os.geteuid() == 0 else ""
        with open(self.config, "w") as fh:
            fh.write(MAIN.format(user=user, dir=self.base_dir, body=body))

    def _nginx(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, "-p", self.base_dir, "-c", self.config, *args], capture_output=True, text=True, check=False)

    def check(self) -> None:
        proc = self._nginx("-t")
        if proc.returncode != 0:
            raise RuntimeError(f"nginx config invalid: {proc.stderr}")

    def start(self) -> "NginxServer":
        self.check()
        proc = self._nginx()
        if proc.returncode != 0:
            raise RuntimeError(f"nginx did not start: {proc.stderr}")
        for port in self.ports.values():
            wait_port(port)
        return self

    def pid(self) -> int | None:
        try:
            with open(os.path.join(self.base_dir, "nginx.pid")) as fh:
                return int(fh.read().strip())
        except (OSError, ValueError):
            return None

    def reload(self) -> None:
        proc = self._nginx("-s", "reload")
        if proc.returncode != 0:
            raise RuntimeError(f"nginx reload failed: {proc.stderr}")
        time.sleep(0.3)

    def stop(self) -> None:
        pid = self.pid()
        if pid:
            self._nginx("-s", "quit")
            deadline = time.monotonic() + 10
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.05)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)
