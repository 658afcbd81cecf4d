"""Reusable pieces for tests that run simulated Kong nodes (kongsim) with the real `kong` CLI.

    from tests.kongsim.kongsim_testlib import install_kong, KongNode, EchoUpstream

- install_kong(version, dest) -> path of DEST/bin/kong (tests/kongsim/install.sh)
- KongNode(kong_bin, base_dir, **settings): writes kong.conf with free ports, .start(), .stop(),
  .quit(), .cli(...), admin/proxy/status URLs.
- EchoUpstream(): an HTTP upstream in its own process answering JSON
  {method, path, query, headers, body}; `?sleep=SECONDS` delays the answer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.services.ports import free_port, wait_port

INSTALL_SH = os.path.join(HERE, "install.sh")
VERSIONS = ("2.8.5", "3.4.2", "3.5.0", "3.6.1", "3.7.1", "3.8.1", "3.9.3")


def install_kong(version: str, dest: str, python: str | None = None) -> str:
    cmd = ["bash", INSTALL_SH, version, dest] + ([python] if python else [])
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return os.path.join(dest, "bin", "kong")


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{message} not reached within {timeout}s (last: {last!r})")


def gen_cluster_cert(directory: str) -> tuple:
    """A self-signed certificate/key pair for hybrid mode (kong.conf cluster_cert/cluster_cert_key), valid
    1095 days as `kong hybrid gen_cert` makes it (Kong/kong 3.9.3 kong/cmd/hybrid.lua:94): a healthy run's
    certificate check has nothing to warn about."""
    cert = os.path.join(directory, "cluster.crt")
    key = os.path.join(directory, "cluster.key")
    if not os.path.exists(cert):
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                key,
                "-out",
                cert,
                "-days",
                "1095",
                "-subj",
                "/CN=kong_clustering",
            ],
            check=True,
            capture_output=True,
        )
    return cert, key


class KongNode:
    """One simulated Kong node in its own prefix, driven through the real CLI."""

    def __init__(self, kong_bin: str, base_dir: str | None = None, *, name: str = "kong", declarative: str | None = None, **settings):
        self.kong_bin = kong_bin
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="kongsim-node-")
        os.makedirs(self.base_dir, exist_ok=True)
        self.name = name
        self.prefix = os.path.join(self.base_dir, name)
        self.conf_path = os.path.join(self.base_dir, f"{name}.conf")
        self.proxy_port = settings.pop("proxy_port", None) or free_port()
        self.admin_port = settings.pop("admin_port", None) or free_port()
        self.status_port = settings.pop("status_port", None) or free_port()
        self.cluster_port = settings.pop("cluster_port", None) or free_port()
        conf = {
            "prefix": self.prefix,
            "database": "off",
            "proxy_listen": f"127.0.0.1:{self.proxy_port}",
            "admin_listen": f"127.0.0.1:{self.admin_port}",
            "status_listen": f"127.0.0.1:{self.status_port}",
            "cluster_listen": f"127.0.0.1:{self.cluster_port}",
        }
        if declarative is not None:
            path = os.path.join(self.base_dir, f"{name}.yml")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(declarative)
            conf["declarative_config"] = path
        conf.update({k: v for k, v in settings.items() if v is not None})
        self.settings = conf
        self.write_conf()
        self.started = False

    def write_conf(self):
        with open(self.conf_path, "w", encoding="utf-8") as fh:
            fh.writelines(f"{key} = {value}\n" for key, value in self.settings.items())

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}"

    def cli(self, *args, env=None, timeout=60, input=None) -> subprocess.CompletedProcess:
        full_env = dict(os.environ)
        for key in list(full_env):
            if key.startswith("KONG_"):
                del full_env[key]
        full_env.update(env or {})
        return subprocess.run(
            [self.kong_bin, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=self.base_dir, input=input, check=False
        )

    def start(self, check: bool = True, env=None, ready: bool = True) -> subprocess.CompletedProcess:
        """`kong start -c <conf>`; with ``ready`` (and a start that worked), then wait until the
        workers are up: `kong start` returns when nginx's master is, while the workers still load
        the configuration and build their routers (kong/init.lua init_worker), as a client of a
        real node must."""
        res = self.cli("start", "-c", self.conf_path, env=env)
        if check and res.returncode != 0:
            raise RuntimeError(f"kong start failed ({res.returncode}): {res.stdout}{res.stderr}\n" + self.error_log()[-3000:])
        self.started = res.returncode == 0 or self.started
        if ready and res.returncode == 0:
            self.wait_workers()
        return res

    def wait_workers(self, timeout: float = 30.0) -> None:
        """Until every worker has built its router: the status listener's /status/ready no longer
        says `router builds not yet complete` (a node without /status/ready: until /status answers)."""
        import ssl
        import urllib.error
        import urllib.request

        listen = str(self.settings.get("status_listen") or "off").split(",")[0].split()
        if not listen or listen[0] == "off":
            return
        url = f"{'https' if 'ssl' in listen[1:] else 'http'}://{listen[0]}/status/ready"
        context = ssl._create_unverified_context()  # noqa: S323 - only asks whether the workers are up

        def up():
            try:
                with urllib.request.urlopen(url, timeout=5, context=context):
                    return True
            except urllib.error.HTTPError as exc:
                return exc.code != 503 or b"router builds not yet complete" not in exc.read()
            except OSError:
                return False

        wait_until(up, timeout=timeout, interval=0.05, message=f"the workers of {self.name}")

    def stop(self, wait: float = 10.0) -> subprocess.CompletedProcess | None:
        """`kong stop -p <prefix>`, then (wait > 0) up to `wait` seconds until the node has exited:
        Kong's `kong stop` only sends SIGTERM and returns (kong/cmd/utils/nginx_signals.lua), as
        the simulator's does; tests that stop a node mean "and it is gone"."""
        pidfile = os.path.join(self.prefix, "pids", "nginx.pid")
        if not os.path.exists(pidfile):
            return None
        pid = self.pid()
        res = self.cli("stop", "-p", self.prefix)
        deadline = time.monotonic() + wait
        while pid and time.monotonic() < deadline and os.path.exists(pidfile):
            time.sleep(0.05)
        return res

    def kill(self, timeout: float = 10.0) -> None:
        """Fast teardown for fixtures: SIGTERM to the node process (what `kong stop` sends)."""
        pid = self.pid()
        if not pid:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                        return
            except (ProcessLookupError, FileNotFoundError):
                return
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)

    def quit(self, *args) -> subprocess.CompletedProcess:
        return self.cli("quit", "-p", self.prefix, *args)

    def pid(self):
        try:
            with open(os.path.join(self.prefix, "pids", "nginx.pid"), encoding="utf-8") as fh:
                return int(fh.read().strip())
        except (OSError, ValueError):
            return None

    def error_log(self) -> str:
        try:
            with open(os.path.join(self.prefix, "logs", "error.log"), encoding="utf-8") as fh:
                return fh.read()
        except OSError:
            return ""


ECHO_CODE = r"""
import asyncio, json, sys
from aiohttp import web

async def echo(request):
    body = await request.read()
    sleep = request.query.get("sleep")
    if sleep:
        await asyncio.sleep(float(sleep))
    status = int(request.query.get("status", "200"))
    headers = {}
    if request.query.get("via"):
        headers["Via"] = request.query["via"]
    if request.query.get("server"):
        headers["Server"] = request.query["server"]
    payload = {"method": request.method, "path": request.path, "raw_path": request.raw_path,
               "query": request.query_string, "headers": dict(request.headers),
               "body": body.decode(errors="replace"), "port": int(sys.argv[1])}
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json",
                        headers=headers)

async def main():
    server = web.Server(echo, access_log=None)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    await site.start()
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


class EchoUpstream:
    """An echo HTTP server in a child process (so it never competes with the test's GIL)."""

    def __init__(self, port: int | None = None, python: str | None = None):
        self.port = port or free_port()
        self.python = python or sys.executable
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EchoUpstream:
        self.proc = subprocess.Popen([self.python, "-c", ECHO_CODE, str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if "ready" not in line:
            raise RuntimeError("echo upstream did not start")
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def simple_config(upstream_url: str, *, fmt: str = "3.0", key_auth: bool = True, prometheus: bool = True, extra: str = "") -> str:
    """A declarative config: service `echo` -> upstream, route /echo, key-auth, consumer demo."""
    plugins = "  plugins:\n  - name: key-auth\n" if key_auth else ""
    prom = ""
    if prometheus:
        prom = "plugins:\n- name: prometheus\n"
        if fmt == "3.0":
            prom += "  config:\n    status_code_metrics: true\n"
    return (
        f'_format_version: "{fmt}"\n'
        f"services:\n- name: echo\n  url: {upstream_url}\n{plugins}"
        "  routes:\n  - name: echo-route\n    paths:\n    - /echo\n"
        "consumers:\n- username: demo\n  keyauth_credentials:\n  - key: demo-key\n"
        f"{prom}{extra}"
    )


def json_of(resp) -> dict:
    return json.loads(resp.text if hasattr(resp, "text") else resp)
