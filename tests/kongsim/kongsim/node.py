"""State of one running simulated node: configuration, entities, logs, counters."""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid

from . import conf as confmod
from . import declarative, persist, versions
from . import entities as E
from .model import EMPTY_HASH, Config

# The workers' `init_worker` (loading the declarative configuration, building the router and the
# plugins iterator: Kong/kong 3.9.3 kong/init.lua:920-950) takes time that grows with the number of
# entities. Kong publishes no per-entity figure: these two numbers are UNCONFIRMED.
INIT_WORKER_BASE_S = 0.2
INIT_WORKER_PER_ENTITY_S = 0.0002

LEVELS = {"debug": 0, "info": 1, "notice": 2, "warn": 3, "error": 4, "crit": 5, "alert": 6, "emerg": 7}


class Node:
    def __init__(self, conf: dict, version: str):
        self.conf = conf
        self.version = version
        self.info = versions.get(version)
        self.prefix = conf["prefix"]
        self.dbless = conf["database"] == "off"
        self.role = conf["role"]
        self.hostname = socket.gethostname()
        self.node_id = self._node_id()
        self.config = Config()
        self.config_loaded = False  # False: hash not initialized (ready reason)
        self.store = None
        self.started = time.time()
        self.draining = False
        self.exiting = False
        self.requests_total = 0
        self.connections_accepted = 0
        self.inflight = 0
        self.router = None
        self.metrics = {}
        self.on_config_change = []
        self._log_level = LEVELS.get(str(conf.get("log_level", "notice")), 2)
        logs = os.path.join(self.prefix, "logs")
        os.makedirs(logs, exist_ok=True)
        # log files stay open for the life of the node process
        self._error_log = open(
            os.path.join(logs, "error.log"),
            "a",
            buffering=1,  # noqa: SIM115
            encoding="utf-8",
        )
        self._access_log = open(
            os.path.join(logs, "access.log"),
            "a",  # noqa: SIM115
            buffering=1 << 16,
            encoding="utf-8",
        )
        self._admin_log = open(
            os.path.join(logs, "admin_access.log"),
            "a",  # noqa: SIM115
            buffering=1 << 14,
            encoding="utf-8",
        )
        self.plugins_enabled = self._enabled_plugins()
        self.workers = worker_count(conf)
        self.workers_up_at: list[float] = []  # time.monotonic() at which each worker finished init_worker

    # workers ------------------------------------------------------------------------------
    def start_workers(self) -> None:
        """nginx's master is up; its workers now run init_worker, one after the other finishing
        within a time that grows with the entities a DB-less node (or data plane) loads. A
        traditional node built its router in `init` already (kong/init.lua:741-747)."""
        entities = self.config.count() if (self.dbless and self.role != "control_plane") else 0
        span = INIT_WORKER_BASE_S + INIT_WORKER_PER_ENTITY_S * entities
        t0 = time.monotonic()
        self.workers_up_at = [t0 + span * (i + 1) / self.workers for i in range(self.workers)]

    def workers_up(self) -> int:
        now = time.monotonic()
        return sum(1 for at in self.workers_up_at if at <= now)

    def first_worker_in(self) -> float:
        """Seconds until a worker accepts connections (0 when one does)."""
        if not self.workers_up_at:
            return 0.0
        return max(0.0, self.workers_up_at[0] - time.monotonic())

    def _node_id(self) -> str:
        path = os.path.join(self.prefix, "kong.id")
        try:
            with open(path, encoding="utf-8") as fh:
                value = fh.read().strip()
            if E.UUID_RE.match(value):
                return value
        except OSError:
            pass
        value = str(uuid.uuid4())
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(value)
        return value

    def _enabled_plugins(self) -> tuple:
        names = []
        for part in str(self.conf.get("plugins") or "bundled").split(","):
            part = part.strip()
            if part == "bundled":
                names.extend(self.info.bundled_plugins)
            elif part and part != "off":
                names.append(part)
        return tuple(dict.fromkeys(names))

    # logging -----------------------------------------------------------------------------
    def log(self, level: str, msg: str) -> None:
        if LEVELS.get(level, 2) < self._log_level:
            return
        ts = time.strftime("%Y/%m/%d %H:%M:%S")
        self._error_log.write(f"{ts} [{level}] {os.getpid()}#0: {msg}\n")

    def access(self, line: str, admin: bool = False) -> None:
        (self._admin_log if admin else self._access_log).write(line + "\n")

    def flush_logs(self) -> None:
        for fh in (self._error_log, self._access_log, self._admin_log):
            try:
                fh.flush()
            except (OSError, ValueError):
                pass

    # configuration -----------------------------------------------------------------------
    def set_config(self, cfg: Config, loaded: bool = True) -> None:
        from . import router as routermod

        self.router = routermod.Router(cfg, self.version)
        self.config = cfg
        self.config_loaded = loaded
        for cb in self.on_config_change:
            cb()

    @property
    def config_hash(self) -> str:
        if not self.config_loaded:
            return EMPTY_HASH
        return self.config.hash

    def load_declarative_file(self) -> None:
        """declarative_config at start; without one, the configuration a 3.x node kept in LMDB
        (kongsim/persist.py), else none."""
        path = self.conf.get("declarative_config")
        if not path:
            kept = persist.load(self)
            if kept is None:
                self.set_config(Config(), loaded=False)
                return
            cfg = declarative.load(kept["config"], self.version, enabled_plugins=self.plugins_enabled)
            cfg.hash = kept.get("config_hash") or cfg.hash
            self.set_config(cfg)
            self.log("info", "found persisted lmdb config, loading...")
            return
        with open(path, "rb") as fh:
            raw = fh.read()
        cfg = declarative.load_text(raw, self.version, filename=path, enabled_plugins=self.plugins_enabled)
        self.set_config(cfg)
        self.keep_config()

    def keep_config(self) -> None:
        """What a load writes to LMDB (3.x DB-less nodes; kongsim/persist.py)."""
        persist.store(self, declarative.export_doc(self.config, self.version), self.config.hash)

    def pg_params(self) -> dict:
        return confmod.pg_params(self.conf)


def worker_count(conf: dict) -> int:
    """nginx_worker_processes: `auto` is one worker per CPU, as nginx counts them."""
    value = str(conf.get("nginx_worker_processes") or "auto").strip()
    if value == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)
    try:
        return max(1, int(value))
    except ValueError:
        return 1


def die(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.exit(1)
