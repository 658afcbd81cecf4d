"""The local sandbox: echo upstream, PostgreSQL, simulated Kong nodes, HAProxy, and a static inventory.

Everything runs on 127.0.0.1 under one state directory (default ``<repo>/.cache/sandbox``,
or ``KONGOPS_SANDBOX_DIR``) described by ``state.json``, so ``down`` can stop exactly what
``up`` started, also after a partial start.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.kongsim.kongsim_testlib import ECHO_CODE, gen_cluster_cert
from tests.sandbox import procs, render

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
DEFAULT_STATE_DIR = os.path.join(REPO, ".cache", "sandbox")
DEFAULT_INVENTORY = os.path.join(REPO, "tests", "sandbox", "inventory.yml")
DEFAULT_LB_PORT = 18000
INSTALL_SH = os.path.join(REPO, "tests", "kongsim", "install.sh")
HAPROXY = "/usr/sbin/haproxy"
NGINX = "/usr/sbin/nginx"
MODES = ("dbless", "hybrid", "traditional")
LBS = ("haproxy", "nginx")
PLAYBOOKS = {"rolling": "rolling_upgrade.yml", "in_place": "in_place_upgrade.yml", "hybrid": "hybrid_upgrade.yml"}
STRATEGY_MODES = {"rolling": ("dbless", "hybrid"), "in_place": ("traditional", "hybrid"), "hybrid": ("hybrid",)}
# Runtime state removed by `down`; the installed versions (kong/) and the work dir (backups,
# journals, reports) stay.
RUNTIME_ENTRIES = ("nodes", "haproxy", "nginx", "postgres", "bootstrap", "demo", "cluster", "playbooks", "logs", "state.json")
PG_USER = PG_DATABASE = "kong"
# The sandbox's secrets are distinctive strings, not words: a value found in a run's output, journal,
# report or backup is a leak, never a user or database name (and Ansible's no_log masking, which
# replaces every occurrence of a secret's value, leaves names alone).
PG_PASSWORD = "pg-Zq7-secret-41c9"
ADMIN_TOKEN = "adm-Tk9-secret-05b7"


class SandboxError(Exception):
    """A problem the user can fix; the message says how."""


def _python() -> str:
    venv_python = os.path.join(VENV_BIN, "python")
    return venv_python if os.path.exists(venv_python) else sys.executable


def _http_get(url: str, headers: dict | None = None, timeout: float = 3.0) -> tuple[int | None, dict, bytes]:
    """Status (None when unreachable), headers with lowercase names, body."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
    except (urllib.error.URLError, OSError):
        return None, {}, b""


def haproxy_command(sock_path: str, command: str, timeout: float = 5.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(sock_path)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode()


def haproxy_servers(sock_path: str, backend: str = render.LB_POOL) -> dict[str, dict]:
    """Per server of ``backend``: status (``UP``, ``DOWN``, ``MAINT``, ``UP 1/2`` while rising, ``no check``),
    current weight, user weight, current sessions, 5xx responses and connection errors, from ``show stat``."""
    text = haproxy_command(sock_path, "show stat")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    header = lines[0].lstrip("# ").split(",")
    servers = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        servers[row["svname"]] = {
            "status": row.get("status", ""),
            "weight": int(row.get("weight") or 0),
            "uweight": int(row.get("uweight") or row.get("weight") or 0),
            "scur": int(row.get("scur") or 0),
            "stot": int(row.get("stot") or 0),
            "hrsp_5xx": int(row.get("hrsp_5xx") or 0),
            "econ": int(row.get("econ") or 0),
            "eresp": int(row.get("eresp") or 0),
            "addr": row.get("addr", ""),
        }
    return servers


def haproxy_servers_settled(sock_path: str, backend: str = render.LB_POOL, timeout: float = 8.0) -> dict[str, dict]:
    """haproxy_servers() once no server is between two health states (``UP 1/2`` falling, ``DOWN 1/2``
    rising), or after ``timeout`` seconds: a health check that timed out once on a busy machine
    settles within rise/fall checks, a node that stopped answering stays ``DOWN``."""
    deadline = time.monotonic() + timeout
    while True:
        servers = haproxy_servers(sock_path, backend)
        if time.monotonic() >= deadline or not any("/" in v["status"] for v in servers.values()):
            return servers
        time.sleep(0.25)


def haproxy_admin_view(sock_path: str, backend: str = render.LB_POOL) -> dict[str, tuple[int, str]]:
    """Per server of ``backend``: (weight, admin state), the admin state ``MAINT``, ``DRAIN`` or ``READY``.
    What the collection sets on HAProxy, without the health checks' verdict (``UP``/``DOWN``), which a busy
    machine can flip between two reads while nothing was changed. The admin state comes from ``show servers
    state`` (srv_admin_state, HAProxy's include/haproxy/server-t.h: 0x01 forced maintenance, 0x02 inherited,
    0x20 DNS; 0x08 forced drain, 0x10 inherited): ``show stat``'s status says ``DOWN`` for a drained server
    whose health checks fail, which is not back in rotation."""
    lines = [ln for ln in haproxy_command(sock_path, f"show servers state {backend}").splitlines() if ln.strip()]
    header = next(ln for ln in lines if ln.startswith("#")).lstrip("# ").split()
    admin_bits = {}
    for line in lines:
        if line.startswith("#") or " " not in line:
            continue
        row = dict(zip(header, line.split()))
        admin_bits[row["srv_name"]] = int(row["srv_admin_state"])
    view = {}
    for name, server in haproxy_servers(sock_path, backend).items():
        bits = admin_bits.get(name, 0)
        admin = "MAINT" if bits & 0x23 else "DRAIN" if bits & 0x18 else "READY"
        view[name] = (server["weight"], admin)
    return view


class Sandbox:
    def __init__(self, state_dir: str | None = None, inventory: str | None = None, lb_port: int | None = None, out=None):
        env_dir = os.environ.get("KONGOPS_SANDBOX_DIR")
        self.state_dir = os.path.abspath(state_dir or env_dir or DEFAULT_STATE_DIR)
        custom_dir = bool(state_dir or env_dir)
        self.inventory = os.path.abspath(
            inventory or os.environ.get("KONGOPS_SANDBOX_INVENTORY") or (os.path.join(self.state_dir, "inventory.yml") if custom_dir else DEFAULT_INVENTORY)
        )
        self.lb_port = int(lb_port or os.environ.get("KONGOPS_SANDBOX_LB_PORT") or DEFAULT_LB_PORT)
        self.state_path = os.path.join(self.state_dir, "state.json")
        self.install_root = os.path.join(self.state_dir, "kong")
        self.work_dir = os.path.join(self.state_dir, "work")
        self.out = out or (lambda msg: print(msg, flush=True))
        self.state: dict = {}

    # ------------------------------------------------------------------ state
    def names(self, group: str) -> tuple[str, ...]:
        """The sandbox's nodes of an inventory group (``kong_x``, ``kong_y``, ``kong_cp``), in layout order."""
        return tuple(n for n, node in self.state["nodes"].items() if node["group"] == group)

    def load(self) -> dict:
        try:
            with open(self.state_path) as fh:
                self.state = json.load(fh)
        except FileNotFoundError:
            self.state = {}
        return self.state

    def save(self) -> None:
        os.makedirs(self.state_dir, exist_ok=True)
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(self.state, fh, indent=2)
        os.replace(tmp, self.state_path)

    def _path(self, *parts: str) -> str:
        return os.path.join(self.state_dir, *parts)

    @property
    def db_version(self) -> str:
        """The version that owns the database schema: the control plane's in hybrid mode."""
        return self.state.get("kong_cp") or self.state["kong_x"]

    def kong_bin(self, version: str) -> str:
        return os.path.join(self.install_root, version, "bin", "kong")

    def running_components(self) -> list[str]:
        state = self.state or self.load()
        found = []
        for name in ("echo", "haproxy", "nginx"):
            if procs.alive(state.get(name, {}).get("proc")):
                found.append(name)
        pg = state.get("postgres")
        if pg and procs.alive(self._pg_proc(pg)):
            found.append("postgres")
        for name, node in state.get("nodes", {}).items():
            if self._node_pid(node):
                found.append(name)
        return found

    # ------------------------------------------------------------------ up
    def up(
        self,
        mode: str = "dbless",
        kong_x: str = "3.8.1",
        kong_cp: str | None = None,
        lb: str = "haproxy",
        lb_retries: str = "retrying",
        nodes: int = 3,
        status_gate_urls: bool | None = None,
    ) -> dict:
        """Start the sandbox; ``kong_cp`` (hybrid only) runs the control plane on another version than the DPs;
        ``lb`` is the load balancer in front of the proxies (HAProxy, or nginx with an upstream include file);
        ``lb_retries`` is HAProxy's retry profile (render.HAPROXY_RETRIES); ``nodes`` is how many X nodes (and
        as many Y nodes) the fleet has (1 to 3); ``status_gate_urls`` gives every node a kong_status_gate_url
        (the controller is the nodes' host here), so that the gates read the nodes from the controller; by
        default it does where X is Kong 3.3 or later (the target is never older, so every node a gate judges
        answers /status/ready), and False keeps the gates reading each node on its host."""
        if nodes not in (1, 2, 3):
            raise SandboxError(f"nodes must be 1, 2 or 3 (got {nodes!r})")
        if lb_retries not in render.HAPROXY_RETRIES:
            raise SandboxError(f"lb_retries must be one of {', '.join(render.HAPROXY_RETRIES)} (got {lb_retries!r})")
        if mode not in MODES:
            raise SandboxError(f"--mode must be one of {', '.join(MODES)} (got {mode!r})")
        if lb not in LBS:
            raise SandboxError(f"--lb must be one of {', '.join(LBS)} (got {lb!r})")
        if not re.fullmatch(r"\d+\.\d+\.\d+", kong_x or ""):
            raise SandboxError(f"--kong-x must be a Kong version X.Y.Z such as 3.8.1 (got {kong_x!r})")
        if status_gate_urls is None:
            status_gate_urls = tuple(map(int, kong_x.split("."))) >= (3, 3, 0)
        if kong_cp and mode != "hybrid":
            raise SandboxError("--kong-cp only applies to --mode hybrid")
        if kong_cp and not re.fullmatch(r"\d+\.\d+\.\d+", kong_cp):
            raise SandboxError(f"--kong-cp must be a Kong version X.Y.Z such as 3.9.3 (got {kong_cp!r})")
        if not os.path.exists(INSTALL_SH):
            raise SandboxError(f"{INSTALL_SH} is missing: the Kong simulator installer is needed to install Kong {kong_x}")
        self.load()
        if self.state:
            running = self.running_components()
            if running:
                raise SandboxError(
                    f"a sandbox is already up in {self.state_dir} ({self.state.get('mode')}, Kong "
                    f"{self.state.get('kong_x')}; running: {', '.join(running)}); "
                    "stop it first with `make sandbox-down`"
                )
            self._remove_runtime()
        if not procs.port_is_free(self.lb_port):
            raise SandboxError(f"127.0.0.1:{self.lb_port} is in use; free it or pick another port with KONGOPS_SANDBOX_LB_PORT")
        t0 = time.monotonic()
        os.makedirs(self._path("logs"), exist_ok=True)
        ports = procs.PortAllocator(self.lb_port + 1)
        self.state = {
            "mode": mode,
            "kong_x": kong_x,
            "kong_cp": (kong_cp or kong_x) if mode == "hybrid" else None,
            "status": "starting",
            "state_dir": self.state_dir,
            "inventory": self.inventory,
            "lb_port": self.lb_port,
            "install_root": self.install_root,
            "work_dir": self.work_dir,
            "created_at": time.time(),
            "nodes": {},
            "lb": lb,
            "admin_token": ADMIN_TOKEN,
            "status_gate_urls": status_gate_urls,
        }
        self._layout_nodes(mode, ports, nodes)
        if lb == "haproxy":
            self.state["haproxy"] = {
                "dir": self._path("haproxy"),
                "config": self._path("haproxy", "haproxy.cfg"),
                "socket": self._path("haproxy", "admin.sock"),
                "pidfile": self._path("haproxy", "haproxy.pid"),
                "state_file": self._path("haproxy", "server-state"),
                "log": self._path("haproxy", "haproxy.log"),
                "runtime_port": ports.take(),
                "retries": lb_retries,
            }
        else:
            self.state["nginx"] = {
                "dir": self._path("nginx"),
                "config": self._path("nginx", "nginx.conf"),
                "upstream_file": self._path("nginx", "kong-upstream.conf"),
                "pidfile": self._path("nginx", "nginx.pid"),
                "log": self._path("nginx", "error.log"),
            }
        self.state["echo"] = {"port": ports.take()}
        if mode != "dbless":
            self.state["pg_port"] = ports.take()
        self.save()
        self.out(f"sandbox: {mode}, Kong {kong_x}{', control plane ' + kong_cp if kong_cp else ''}, {lb}, state in {self.state_dir}")
        self._archive_work_dir()
        self._step("echo upstream", self._start_echo)
        if mode in ("traditional", "hybrid"):
            self._step("PostgreSQL", self._start_postgres)
        self._step(f"Kong {kong_x} installed", lambda: self.install(kong_x))
        if self.state["kong_cp"] and self.state["kong_cp"] != kong_x:
            self._step(f"Kong {kong_cp} installed for the control plane", lambda: self.install(kong_cp))
        if mode == "hybrid":
            self._step("cluster certificate", self._cluster_cert)
        self._step("demo configuration", self._demo_config)
        self._write_inventory()
        self._step("Kong nodes started by kongops.upgrade.kong_node", self._start_nodes)
        if lb == "haproxy":
            self._step("HAProxy", self._start_haproxy)
        else:
            self._step("nginx", self._start_nginx)
        self._step("request through the load balancer", self._check_lb)
        self.state["status"] = "up"
        self.state["up_seconds"] = round(time.monotonic() - t0, 1)
        self.save()
        self.out(f"sandbox up in {self.state['up_seconds']} s; inventory: {self.inventory}")
        self.out(f"  try: curl -s -H 'apikey: {render.DEMO_KEY}' http://127.0.0.1:{self.lb_port}{render.DEMO_PATH}")
        return self.state

    def _step(self, what: str, func) -> None:
        t = time.monotonic()
        try:
            detail = func()
        except SandboxError as exc:
            self.state["status"] = "failed"
            self.save()
            raise SandboxError(f"{what}: {exc}\n(partial sandbox left for inspection; `make sandbox-down` stops it)") from exc
        self.save()
        self.out(f"  {what}{': ' + detail if detail else ''} ({time.monotonic() - t:.1f} s)")

    def _layout_nodes(self, mode: str, ports: procs.PortAllocator, count: int = 3) -> None:
        names = [("cp", "kong_cp")] if mode == "hybrid" else []
        names += [(f"x{i}", "kong_x") for i in range(1, count + 1)]
        if mode != "traditional":
            names += [(f"y{i}", "kong_y") for i in range(1, count + 1)]
        else:
            # in-place upgrades keep the same hosts; y1..y3 are only declared in HAProxy
            names += [(f"y{i}", "lb_only") for i in range(1, count + 1)]
        for name, group in names:
            base = self._path("nodes", name)
            node = {
                "group": group,
                "proxy_port": ports.take(),
                "admin_port": ports.take(),
                "status_port": ports.take(),
                "prefix": os.path.join(base, "prefix"),
                "conf": os.path.join(base, "kong.conf"),
            }
            if mode == "dbless":
                node["declarative"] = os.path.join(base, "kong.yml")
            if group == "kong_cp":
                node["cluster_port"] = ports.take()
            self.state["nodes"][name] = node

    def _start_echo(self) -> str:
        echo = self.state["echo"]
        echo["proc"] = procs.spawn([_python(), "-c", ECHO_CODE, str(echo["port"])], self._path("logs", "echo.log"), cwd=REPO)
        self.save()
        if not procs.wait_port(echo["port"], timeout=15, proc=echo["proc"]):
            raise SandboxError(f"the echo upstream did not listen on 127.0.0.1:{echo['port']}; see {self._path('logs', 'echo.log')}")
        return f"127.0.0.1:{echo['port']}"

    def _pg_proc(self, pg: dict) -> dict | None:
        pidfile = os.path.join(pg["dir"], "data", "postmaster.pid")
        try:
            with open(pidfile) as fh:
                return procs.record(int(fh.readline().strip()))
        except (OSError, ValueError):
            return None

    def _start_postgres(self) -> str:
        from tests.services.postgres import SUPERUSER, SUPERUSER_PASSWORD, PostgresServer

        pg_dir = self._path("postgres")
        self.state["postgres"] = {
            "dir": pg_dir,
            "port": self.state.pop("pg_port"),
            "user": PG_USER,
            "password": PG_PASSWORD,
            "database": PG_DATABASE,
            "admin_user": SUPERUSER,
            "admin_password": SUPERUSER_PASSWORD,
        }
        self.save()
        try:
            server = PostgresServer(pg_dir, self.state["postgres"]["port"]).start()
        except (subprocess.CalledProcessError, RuntimeError) as exc:
            raise SandboxError(f"PostgreSQL did not start ({exc}); see {pg_dir}/server.log") from exc
        self.state["postgres"]["port"] = server.port
        self.save()
        server.create_database(PG_DATABASE, owner=PG_USER, password=PG_PASSWORD)
        return f"127.0.0.1:{server.port}, database {PG_DATABASE}"

    def install(self, version: str) -> str:
        """Install a simulated Kong version into the shared install root (once per version)."""
        dest = os.path.join(self.install_root, version)
        if os.path.exists(self.kong_bin(version)):
            return dest
        os.makedirs(self.install_root, exist_ok=True)
        proc = subprocess.run([INSTALL_SH, version, dest], capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not os.path.exists(self.kong_bin(version)):
            raise SandboxError(f"{INSTALL_SH} {version} {dest} failed (rc {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-1500:]}")
        return dest

    def _cluster_cert(self) -> str:
        cdir = self._path("cluster")
        os.makedirs(cdir, exist_ok=True)
        try:
            cert, key = gen_cluster_cert(cdir)
        except subprocess.CalledProcessError as exc:
            raise SandboxError(f"openssl could not create the cluster certificate: {exc.stderr}") from exc
        self.state["cluster_cert"], self.state["cluster_cert_key"] = cert, key
        return cert

    def _demo_config(self) -> str:
        os.makedirs(self._path("demo"), exist_ok=True)
        path = self._path("demo", "kong.yml")
        with open(path, "w") as fh:
            fh.write(render.dump_yaml(render.demo_config(self.db_version, self.state["echo"]["port"])))
        self.state["demo_config"] = path
        if self.state["mode"] == "dbless":
            return f"{path} (declarative_config of every node)"
        kong = self.kong_bin(self.db_version)
        pg = self.state["postgres"]
        os.makedirs(self._path("bootstrap"), exist_ok=True)
        conf = self._path("bootstrap", "kong.conf")
        with open(conf, "w") as fh:
            fh.write(
                f"prefix = {self._path('bootstrap', 'prefix')}\ndatabase = postgres\npg_host = 127.0.0.1\n"
                f"pg_port = {pg['port']}\npg_user = {pg['user']}\npg_password = {pg['password']}\n"
                f"pg_database = {pg['database']}\n"
            )
        os.chmod(conf, 0o600)
        for argv in ([kong, "migrations", "bootstrap", "-c", conf], [kong, "config", "db_import", path, "-c", conf]):
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            with open(self._path("logs", "bootstrap.log"), "a") as log:
                log.write(f"$ {' '.join(argv)}\n{proc.stdout}{proc.stderr}\n")
            if proc.returncode != 0:
                raise SandboxError(f"`{' '.join(argv[1:3])}` failed (rc {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-1500:]}")
        return f"{path}, bootstrapped with `kong migrations bootstrap` and `kong config db_import` of {self.db_version}"

    def _write_inventory(self) -> None:
        os.makedirs(os.path.dirname(self.inventory), exist_ok=True)
        with open(self.inventory, "w") as fh:
            fh.write(render.inventory_text(self.state, REPO, _python()))

    def ansible_env(self) -> dict:
        from tests.integration.ansible_run import ansible_env

        if not os.path.isdir(os.path.join(REPO, ".venv", "collections", "ansible_collections", "kongops", "upgrade")):
            raise SandboxError("the collection is not linked into .venv/collections; run `make venv` first")
        # every sandbox host is localhost: pipelining saves a temp file and a chmod per task
        return ansible_env({"ANSIBLE_PIPELINING": os.environ.get("ANSIBLE_PIPELINING", "true")})

    def _start_nodes(self) -> str:
        os.makedirs(self._path("playbooks"), exist_ok=True)
        playbook = self._path("playbooks", "start.yml")
        with open(playbook, "w") as fh:
            fh.write(render.START_PLAYBOOK)
        log = self._path("logs", "start-nodes.log")
        cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", self.inventory, playbook]
        with open(log, "w") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.ansible_env(), cwd=REPO, check=False)
        if proc.returncode != 0:
            with open(log) as fh:
                tail = fh.read()[-3000:]
            raise SandboxError(f"ansible-playbook start.yml failed (rc {proc.returncode}); {log}:\n{tail}")
        started = [n for n, node in self.state["nodes"].items() if node["group"] in ("kong_x", "kong_cp")]
        return ", ".join(f"{n} :{self.state['nodes'][n]['proxy_port']}" for n in started)

    def _start_haproxy(self) -> str:
        hp = self.state["haproxy"]
        if not os.path.exists(HAPROXY):
            raise SandboxError(f"{HAPROXY} is missing: install Debian's haproxy package (`make system-deps`)")
        os.makedirs(hp["dir"], exist_ok=True)
        with open(hp["config"], "w") as fh:
            fh.write(render.haproxy_config(self.state))
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", hp["config"]], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise SandboxError(f"haproxy rejected {hp['config']}: {(check.stderr or check.stdout).strip()}")
        # master-worker in the foreground of its own session: SIGUSR2 reloads, SIGTERM stops master and workers
        hp["proc"] = procs.spawn([HAPROXY, "-W", "-db", "-f", hp["config"]], hp["log"])
        self.save()
        deadline = time.monotonic() + 15
        while True:
            try:
                haproxy_command(hp["socket"], "show info")
                break
            except OSError:
                if not procs.alive(hp["proc"]) or time.monotonic() > deadline:
                    raise SandboxError(f"haproxy did not start; see {hp['log']}") from None
                time.sleep(0.05)
        xs = self.names("kong_x")
        deadline = time.monotonic() + 20
        while True:
            servers = haproxy_servers(hp["socket"])
            if all(servers.get(n, {}).get("status") == "UP" for n in xs):
                break
            if time.monotonic() > deadline:
                raise SandboxError("HAProxy does not see every X node UP: " + ", ".join(f"{n} {s['status']}" for n, s in servers.items()))
            time.sleep(0.2)
        return f"127.0.0.1:{self.lb_port}, socket {hp['socket']}, runtime 127.0.0.1:{hp['runtime_port']}; " + " ".join(
            f"{n}={s['status']}/{s['weight']}" for n, s in servers.items()
        )

    def _start_nginx(self) -> str:
        ngx = self.state["nginx"]
        if not os.path.exists(NGINX):
            raise SandboxError(f"{NGINX} is missing: install Debian's nginx package (`make system-deps`)")
        os.makedirs(os.path.join(ngx["dir"], "tmp"), exist_ok=True)
        with open(ngx["upstream_file"], "w") as fh:
            fh.write(render.nginx_upstream(self.state))
        with open(ngx["config"], "w") as fh:
            fh.write(render.nginx_config(self.state, run_as_root=os.geteuid() == 0))
        base = [NGINX, "-p", ngx["dir"], "-c", ngx["config"]]
        check = subprocess.run(base + ["-t"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise SandboxError(f"nginx rejected {ngx['config']}: {(check.stderr or check.stdout).strip()}")
        # master in the foreground of its own session (daemon off): `nginx -s reload` (lb_weight) still finds
        # it through the pid file; SIGTERM stops master and workers
        ngx["proc"] = procs.spawn(base, ngx["log"] + ".out")
        self.save()
        deadline = time.monotonic() + 15
        while procs.port_is_free(self.lb_port):
            if not procs.alive(ngx["proc"]) or time.monotonic() > deadline:
                raise SandboxError(f"nginx did not start; see {ngx['log']}")
            time.sleep(0.05)
        return f"127.0.0.1:{self.lb_port}, upstream file {ngx['upstream_file']}"

    def _check_lb(self) -> str:
        url = f"http://127.0.0.1:{self.lb_port}{render.DEMO_PATH}"
        deadline = time.monotonic() + 15
        while True:
            status, headers, _body = _http_get(url, {"apikey": render.DEMO_KEY})
            if status == 200:
                return f"GET {render.DEMO_PATH} -> 200 via {headers.get('via', '?')}"
            if time.monotonic() > deadline:
                raise SandboxError(f"GET {url} with the demo key answered {status}, expected 200")
            time.sleep(0.2)

    def _archive_work_dir(self) -> None:
        if os.path.isdir(self.work_dir) and os.listdir(self.work_dir):
            stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
            dest = self._path("archive", f"work-{stamp}")
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.move(self.work_dir, dest)
            self.out(f"  earlier journals and backups moved to {dest}")
        os.makedirs(self.work_dir, mode=0o700, exist_ok=True)

    # ------------------------------------------------------------------ down
    def _node_pid(self, node: dict) -> dict | None:
        """The running master of a node, from Kong's pid file ``<prefix>/pids/nginx.pid``."""
        pidfile = os.path.join(node["prefix"], "pids", "nginx.pid")
        try:
            with open(pidfile) as fh:
                proc = procs.record(int(fh.read().strip()))
        except (OSError, ValueError):
            return None
        return proc if proc["start"] is not None else None

    def node_master(self, name: str) -> int | None:
        """The pid of node ``name``'s running master (Kong's pid file), None when it does not run."""
        proc = self._node_pid(self.state["nodes"][name])
        return proc["pid"] if proc else None

    def _stop_node(self, name: str, node: dict) -> str | None:
        if not os.path.isdir(node["prefix"]):
            return None
        stopped = None
        # before `kong stop`: it sends TERM and returns at once (Kong's nginx_signals), and the node
        # removes its pid file while it is still exiting
        proc = self._node_pid(node)
        for kong in sorted(glob.glob(os.path.join(self.install_root, "*", "bin", "kong"))):
            health = subprocess.run([kong, "health", "-p", node["prefix"]], capture_output=True, text=True, check=False, timeout=30)
            if health.returncode == 0:
                subprocess.run([kong, "stop", "-p", node["prefix"]], capture_output=True, text=True, check=False, timeout=60)
                stopped = f"{name} (kong stop)"
                break
        if stopped and procs.wait_gone(proc, timeout=10):
            return stopped
        proc = proc if procs.alive(proc) else self._node_pid(node)
        if proc and procs.terminate(proc, signal.SIGTERM, timeout=10):
            stopped = f"{name} (SIGTERM)"
        return stopped

    def down(self) -> list[str]:
        self.load()
        if not self.state and not os.path.exists(self.state_dir):
            self.out(f"sandbox: nothing in {self.state_dir}")
            return []
        stopped = []
        for lb in ("haproxy", "nginx"):
            proc = self.state.get(lb, {}).get("proc")
            if proc and procs.alive(proc):
                # the master and its workers (also the old workers of a reload)
                workers = procs.children(proc["pid"])
                procs.terminate(proc, signal.SIGTERM, timeout=10)
                for pid in workers:
                    procs.terminate(procs.record(pid), signal.SIGTERM, timeout=5)
                stopped.append(lb)
        nodes = self.state.get("nodes", {})
        for name in sorted(nodes, key=lambda n: nodes[n]["group"] == "kong_cp"):
            what = self._stop_node(name, nodes[name])
            if what:
                stopped.append(what)
        echo = self.state.get("echo", {})
        if procs.terminate(echo.get("proc"), signal.SIGTERM, timeout=10):
            stopped.append("echo upstream")
        pg = self.state.get("postgres")
        if pg and pg.get("port") and procs.alive(self._pg_proc(pg)):
            from tests.services.postgres import PostgresServer

            PostgresServer(pg["dir"], pg["port"]).stop()
            stopped.append("postgres")
        self._remove_runtime()
        self.out(
            "sandbox down: "
            + (", ".join(stopped) if stopped else "nothing was running")
            + f"; kept {self.install_root} (installed versions) and {self.work_dir} (backups, journals, reports)"
        )
        self.state = {}
        return stopped

    def _remove_runtime(self) -> None:
        inventory = self.state.get("inventory") or self.inventory
        for entry in RUNTIME_ENTRIES:
            path = self._path(entry)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.unlink(path)
        if os.path.exists(inventory):
            with open(inventory) as fh:
                generated = fh.readline().startswith("# Generated by `python -m tests.sandbox up`")
            if generated:
                os.unlink(inventory)

    # ------------------------------------------------------------------ database (traditional, hybrid)
    def _kong_db(self):
        from tests.services.postgres import PostgresServer

        pg = self.state["postgres"]
        return PostgresServer(pg["dir"], pg["port"]), pg["database"]

    def write_dual_inventory(self, path: str) -> str:
        """An inventory for the dual-cluster upgrade of a traditional sandbox: the sandbox's own, with the
        y1..y3 servers HAProxy declares (weight 0, disabled) as the kong_y hosts of cluster Y."""
        import yaml

        with open(self.inventory) as fh:
            inventory = yaml.safe_load(fh)
        local = {k: v for k, v in inventory["all"]["children"]["kong_x"]["hosts"]["x1"].items() if k.startswith("ansible_")}
        inventory["all"]["children"]["kong_y"] = {
            "hosts": {name: dict(local, **render._node_vars(node)) for name, node in self.state["nodes"].items() if node["group"] == "lb_only"}
        }
        with open(path, "w") as fh:
            yaml.safe_dump(inventory, fh)
        return path

    def schema_meta(self) -> dict:
        """subsystem -> (executed, pending) migration names, read from Kong's schema_meta table."""
        server, database = self._kong_db()
        rows = server.psql(
            "SELECT subsystem, array_to_string(executed, ','), array_to_string(pending, ',') FROM schema_meta ORDER BY subsystem", database=database
        )
        meta = {}
        for line in rows.splitlines():
            sub, executed, pending = line.split("|")
            meta[sub] = (set(filter(None, executed.split(","))), set(filter(None, pending.split(","))))
        return meta

    def row_counts(self, tables=("services", "routes", "plugins", "consumers", "keyauth_credentials")) -> dict:
        server, database = self._kong_db()
        return {t: int(server.psql(f"SELECT count(*) FROM {t}", database=database)) for t in tables}

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        self.load()
        if not self.state:
            self.out(f"sandbox: not up (no {self.state_path})")
            return {}
        st = self.state
        cp_text = f", control plane {st['kong_cp']}" if st.get("kong_cp") else ""
        self.out(f"sandbox: {st['mode']}, Kong X {st['kong_x']}{cp_text}, status {st.get('status')}, state {self.state_dir}")
        self.out(f"  inventory  {st['inventory']}")
        self.out(f"  work dir   {st['work_dir']}")
        echo = st.get("echo", {})
        self.out(f"  echo       127.0.0.1:{echo.get('port')}  {self._proc_text(echo.get('proc'))}")
        pg = st.get("postgres")
        if pg:
            self.out(f"  postgres   127.0.0.1:{pg.get('port')} db {pg['database']}  {self._proc_text(self._pg_proc(pg))}")
        hp = st.get("haproxy")
        servers = {}
        if hp:
            if procs.alive(hp.get("proc")):
                try:
                    servers = haproxy_servers(hp["socket"])
                except OSError:
                    servers = {}
            self.out(
                f"  haproxy    127.0.0.1:{st['lb_port']}  socket {hp.get('socket')}  runtime 127.0.0.1:"
                f"{hp.get('runtime_port')}  {self._proc_text(hp.get('proc'))}"
            )
        ngx = st.get("nginx")
        if ngx:
            self.out(f"  nginx      127.0.0.1:{st['lb_port']}  upstream file {ngx['upstream_file']}  {self._proc_text(ngx.get('proc'))}")
        self.out("  node  group    proxy  admin  status  version  running      lb")
        for name, node in st.get("nodes", {}).items():
            proc = self._node_pid(node)
            version = "-"
            if proc:
                code, _headers, body = _http_get(f"http://127.0.0.1:{node['admin_port']}/", timeout=2)
                if code == 200:
                    try:
                        version = json.loads(body).get("version", "?")
                    except ValueError:
                        version = "?"
            lb = servers.get(name)
            lb_text = f"{lb['status']} w{lb['weight']} cur {lb['scur']}" if lb else "-"
            self.out(
                f"  {name:<5} {node['group']:<8} {node['proxy_port']:<6} {node['admin_port']:<6} "
                f"{node['status_port']:<7} {version:<8} {('pid ' + str(proc['pid'])) if proc else 'no':<12} {lb_text}"
            )
        return st

    @staticmethod
    def _proc_text(proc: dict | None) -> str:
        return f"pid {proc['pid']}" if procs.alive(proc) else "not running"

    # ------------------------------------------------------------------ upgrade
    def upgrade(self, strategy: str, kong_y: str, extra_args: list[str] | None = None, log_path: str | None = None, stream=None) -> int:
        if strategy not in PLAYBOOKS:
            raise SandboxError(f"--strategy must be one of {', '.join(PLAYBOOKS)} (got {strategy!r})")
        if not re.fullmatch(r"\d+\.\d+\.\d+", kong_y or ""):
            raise SandboxError(f"--kong-y must be a Kong version X.Y.Z such as 3.9.3 (got {kong_y!r})")
        self.load()
        if self.state.get("status") != "up":
            raise SandboxError(f"no sandbox is up in {self.state_dir}; start one with `make sandbox-up`")
        if self.state["mode"] not in STRATEGY_MODES[strategy]:
            modes = STRATEGY_MODES[strategy]
            raise SandboxError(
                f"the {strategy} strategy does not fit this {self.state['mode']} sandbox (it needs "
                f"MODE={' or '.join(modes)}); start one with `make sandbox-down sandbox-up MODE={modes[0]}`"
            )
        playbook = os.path.join(REPO, "playbooks", PLAYBOOKS[strategy])
        if not os.path.exists(playbook):
            raise SandboxError(f"{playbook} does not exist (yet); the {strategy} strategy cannot run")
        # every sandbox node shares one install root; install Y once rather than from three hosts at the same time
        self.out(f"sandbox: Kong {kong_y} installed in {self.install(kong_y)}")
        cmd = [os.path.join(VENV_BIN, "ansible-playbook"), playbook, "-i", self.inventory, "-e", f"kong_version_target={kong_y}"] + list(extra_args or [])
        self.out("$ " + " ".join(cmd))
        log_path = log_path or self._path("logs", f"upgrade-{strategy}-{time.strftime('%Y%m%dT%H%M%S')}.log")
        started = time.time()
        write = stream or (lambda line: (sys.stdout.write(line), sys.stdout.flush()))
        with open(log_path, "w") as log:
            # the run's report (report.json, report.html under <work dir>/sandbox/reports/<run id>/)
            env = dict(self.ansible_env())
            env.setdefault("ANSIBLE_CALLBACKS_ENABLED", "kongops.upgrade.upgrade_report")
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env, cwd=REPO)
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    log.write(line)
                    write(line)
                rc = proc.wait()
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGINT)
                rc = proc.wait()
        self.load()
        self.state.setdefault("upgrades", []).append({"strategy": strategy, "to": kong_y, "rc": rc, "log": log_path, "started": started, "ended": time.time()})
        self.save()
        return rc
