"""The node process `kong start` daemonizes: Admin, Status, proxy and cluster listeners.

    python -m kongsim.server --prefix PREFIX [--ready-fd N]     (version from KONGSIM_VERSION)

Signals as nginx: SIGQUIT graceful shutdown, SIGTERM/SIGINT immediate, SIGHUP reload.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid

from aiohttp import web

from . import conf as confmod
from . import declarative, luaplugins, persist, tls
from .admin import AdminAPI
from .hybrid import ControlPlane, DataPlane
from .listeners import Listener, bind
from .model import Config
from .node import Node
from .proxy import Proxy


class StartError(Exception):
    pass


class App:
    def __init__(self, node: Node):
        self.node = node
        self.proxy = Proxy(node)
        self.admin = AdminAPI(node, self.proxy, self)
        self.listeners = []
        self.servers = []
        self.cp = ControlPlane(node) if node.role == "control_plane" else None
        self.dp = DataPlane(node) if node.role == "data_plane" else None
        self.store = None
        self.stop_event = asyncio.Event()
        self.exit_code = 0
        self._tasks = []
        self._last_event = None
        self.busy = set()
        node.db_reachable = True
        if self.cp is not None:
            node.on_config_change.append(self._schedule_push)

    # ------------------------------------------------------------------ helpers used by admin
    def connection_count(self) -> int:
        return sum(len(s.connections) for s in self.servers)

    def data_planes(self) -> list:
        return self.cp.rows_view() if self.cp else []

    def _schedule_push(self):
        if self.cp is not None:
            asyncio.get_running_loop().create_task(self.cp.push_all())

    async def write(self, op: str, entity: str, obj: dict) -> dict:
        """Database-mode write: PostgreSQL first, then the local cache and a cluster event."""
        from . import entities as E

        loop = asyncio.get_running_loop()

        def call(data):
            if op == "insert":
                return self.store.insert(entity, data)
            if op == "update":
                return self.store.update(entity, data["id"], data)
            return self.store.delete(entity, data["id"])

        try:
            try:
                result = await loop.run_in_executor(None, call, obj)
            except Exception as exc:
                fields = getattr(exc, "fields", None) or {}
                # A database migrated by another version may lack a column this version knows.
                if getattr(exc, "kind", None) == "invalid" and fields and all(v == "unknown field" for v in fields.values()):
                    trimmed = {k: v for k, v in obj.items() if k not in fields}
                    result = await loop.run_in_executor(None, call, trimmed)
                else:
                    raise
        except Exception as exc:  # noqa: BLE001
            status, body = _db_error(exc, entity, obj)
            raise E.EntityError(status, body)
        cfg = self.node.config.copy()
        if op == "delete":
            cfg.remove(entity, obj["id"])
            stored = obj
        else:
            stored = E.strip_for_version(entity, result, self.node.version) if isinstance(result, dict) and result.get("id") else obj
            cfg.put(entity, stored)
        self.node.set_config(cfg)
        await loop.run_in_executor(None, self._insert_event, f"{entity}:{obj['id']}")
        return stored

    # ------------------------------------------------------------------ database mode
    def _pg(self):
        from . import pgdb

        return pgdb.connect(self.node.conf, application_name="kong")

    def _insert_event(self, data: str):
        # cluster_events as Kong's core 000_base creates it; other nodes poll it every
        # db_update_frequency seconds and reload their cache.
        try:
            conn = self._pg()
        except Exception:  # noqa: BLE001
            return
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO cluster_events (id, node_id, at, nbf, expire_at, channel, data) "
                    "VALUES (%s, %s, CURRENT_TIMESTAMP, NULL, CURRENT_TIMESTAMP + interval '1 hour', "
                    "'invalidations', %s)",
                    (str(uuid.uuid4()), self.node.node_id, data),
                )
        except Exception as exc:  # noqa: BLE001
            self.node.log("warn", f"[kong] could not write cluster event: {exc}")
        finally:
            conn.close()

    def _poll_events(self):
        conn = self._pg()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT max(at) FROM cluster_events WHERE node_id <> %s", (self.node.node_id,))
                row = cur.fetchone()
            return row[0] if row else None
        finally:
            conn.close()

    def _load_db(self) -> Config:
        from . import entities as E

        data = self.store.load_all()
        version = self.node.version
        data = {name: [E.strip_for_version(name, row, version) for row in rows] for name, rows in data.items() if name in E.SCHEMAS}
        cfg = Config(data)
        cfg.hash = declarative.table_hash(declarative.export_doc(cfg, self.node.version)) if not cfg.is_empty() else cfg.hash
        return cfg

    async def _db_loop(self):
        loop = asyncio.get_running_loop()
        freq = max(0.2, float(self.node.conf.get("db_update_frequency") or 5))
        while True:
            await asyncio.sleep(freq)
            try:
                latest = await loop.run_in_executor(None, self._poll_events)
            except Exception:  # noqa: BLE001
                continue
            if latest is not None and latest != self._last_event:
                self._last_event = latest
                try:
                    cfg = await loop.run_in_executor(None, self._load_db)
                    self.node.set_config(cfg)
                    self.node.log("info", "[kong] cache invalidated by cluster event, configuration reloaded")
                except Exception as exc:  # noqa: BLE001
                    self.node.log("error", f"[kong] reloading entities failed: {exc}")

    # ------------------------------------------------------------------ lifecycle
    def _bind_all(self):
        listens = self.node.conf["_listeners"]
        plan = []
        if self.node.role != "control_plane":
            plan += [("proxy", e) for e in listens.get("proxy_listen", []) if not e["ssl"]]
        plan += [("admin", e) for e in listens.get("admin_listen", [])]
        plan += [("status", e) for e in listens.get("status_listen", [])]
        if self.node.role == "control_plane":
            plan += [("cluster", e) for e in listens.get("cluster_listen", [])[:1]]
        socks = []
        try:
            for name, entry in plan:
                sock = bind(entry["ip"], entry["port"], entry.get("reuseport", False))
                socks.append((name, sock))
                if name == "cluster":
                    # the CP-DP link is always TLS (kongsim/tls.py)
                    self._tls[sock.fileno()] = tls.cluster_server_context(self.node.conf)
                elif entry["ssl"]:
                    # Admin/Status API over TLS (kongsim/tls.py).
                    self._tls[sock.fileno()] = tls.server_context(self.node.conf, name)
        except (OSError, ssl.SSLError, subprocess.CalledProcessError) as exc:
            for _n, s in socks:
                s.close()
            raise StartError(f"nginx: [emerg] {getattr(exc, 'strerror', None) or exc}")
        return socks

    async def start(self):
        node = self.node
        missing = luaplugins.check(node.conf, node.version)
        if missing:
            raise StartError(f"nginx: [error] init_by_lua error: {missing}")
        self._tls = {}
        socks = self._bind_all()
        await self.proxy.start()
        loop = asyncio.get_running_loop()
        if node.dbless:
            persist.open_at_start(node)
            if self.dp is not None:
                self.dp.load_cache() or node.set_config(Config(), loaded=False)
            else:
                try:
                    node.load_declarative_file()
                except declarative.DeclarativeError as exc:
                    raise StartError(f"error parsing declarative config file {node.conf['declarative_config']}:\n{exc.message}")
                except OSError as exc:
                    raise StartError(f"error parsing declarative config file {node.conf['declarative_config']}:\n{exc.strerror}")
        else:
            try:
                from .store_pg import PgStore
            except ImportError as exc:
                raise StartError(f"database mode is not available: {exc}")
            self.store = PgStore(node.conf)
            if self.cp is not None:
                self.cp.store = self.store
            try:
                cfg = await loop.run_in_executor(None, self._load_db)
                self._last_event = await loop.run_in_executor(None, self._poll_events)
            except Exception as exc:  # noqa: BLE001
                raise StartError(str(exc))
            node.set_config(cfg)
            pending = getattr(node, "pending_migrations_text", None)
            if pending:
                node.log("warn", "[kong] init.lua: database has pending migrations:\n" + pending)
        handlers = {"proxy": self.proxy.handle, "admin": self.admin.handle_admin, "status": self.admin.handle_status}
        if self.cp is not None:
            handlers["cluster"] = self.cp.handle
        for name, sock in socks:
            server = web.Server(
                self._tracked(handlers[name]),
                access_log=None,
                keepalive_timeout=75,
                max_line_size=16384,
                max_field_size=16384,
                request_factory=self._request_factory(name),
            )
            self.servers.append(server)
            self.listeners.append(
                Listener(
                    name,
                    sock,
                    server,
                    on_accept=self._accepted,
                    on_tls_error=self.cp.tls_refused if name == "cluster" else None,
                    ssl=self._tls.get(sock.fileno()),
                )
            )
        if not node.dbless:
            self._tasks.append(loop.create_task(self._db_loop()))
        if self.dp is not None:
            self.dp.start()
        self._tasks.append(loop.create_task(self._flush_loop()))
        node.log("notice", f"[kong] init.lua: kong {node.version} started, node_id {node.node_id}")

    def _request_factory(self, listener: str):
        """Requests whose body may be as large as nginx lets it be on that server: the Admin API's
        `client_max_body_size` is nginx_admin_client_max_body_size (kong/templates/nginx_kong.lua);
        the proxy's is nginx_http_client_max_body_size (0: no limit)."""
        key = "nginx_admin_client_max_body_size" if listener == "admin" else "nginx_http_client_max_body_size"
        default = "10m" if listener == "admin" else "0"
        limit = confmod.parse_size(self.node.conf.get(key) or default) or (1 << 62)
        loop = asyncio.get_running_loop()

        def make(message, payload, protocol, writer, task):
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=limit)

        return make

    def _tracked(self, handler):
        busy = self.busy

        node = self.node

        async def serve(request):
            # a connection that arrives before any worker finished init_worker waits in the
            # listen queue: it is served late, never refused
            wait = node.first_worker_in()
            if wait:
                await asyncio.sleep(wait)
            transport = request.transport
            busy.add(transport)
            try:
                return await handler(request)
            finally:
                busy.discard(transport)

        return serve

    def _accepted(self):
        self.node.connections_accepted += 1

    async def _flush_loop(self):
        while True:
            await asyncio.sleep(0.5)
            self.node.flush_logs()

    async def graceful(self):
        """SIGQUIT as nginx handles it (ngx_worker_process_cycle on ngx_quit): the listening sockets
        close at once (connections still queued in the kernel are reset, new ones refused), idle
        keep-alive connections close at once (ngx_close_idle_connections: also one whose next
        request is already on its way), a connection with a request in flight gets its reply with
        `Connection: close` and is then closed. Kong's templates set no worker_shutdown_timeout, so
        nothing else bounds the wait: `kong quit -t` decides, then sends SIGTERM."""
        node = self.node
        if node.exiting:
            return
        node.exiting = True
        timeout = node.conf.get("_shutdown_timeout")
        node.log("notice", "signal 3 (SIGQUIT) received from the CLI, gracefully shutting down")
        for lst in self.listeners:
            lst.close_now()
        deadline = time.monotonic() + float(timeout) if timeout else None
        while True:
            for server in self.servers:
                for conn in list(server.connections):
                    transport = conn.transport
                    if transport is not None and transport not in self.busy:
                        conn.force_close()
            if node.inflight == 0 and not self.busy:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.02)
        if node.inflight > 0:
            node.log("warn", f"gracefully shutting down timed out with {node.inflight} requests in flight")
        node.log("notice", "exit")
        self.stop_event.set()

    def immediate(self, signame: str):
        self.node.log("notice", f"signal {signame} received, exiting")
        for lst in self.listeners:
            lst.close_now()
        self.stop_event.set()

    async def reload(self):
        node = self.node
        node.log("notice", "signal 1 (SIGHUP) received from the CLI, reconfiguring")
        try:
            new_conf = confmod.load_from_prefix(node.prefix, node.version)
        except confmod.ConfError as exc:
            node.log("error", f"reload failed: {exc}")
            return
        node.conf.update(new_conf)
        if node.dbless and self.dp is None:
            try:
                node.load_declarative_file()
            except (declarative.DeclarativeError, OSError) as exc:
                node.log("error", f"reload failed: {exc}")
        elif self.store is not None:
            loop = asyncio.get_running_loop()
            try:
                node.set_config(await loop.run_in_executor(None, self._load_db))
            except Exception as exc:  # noqa: BLE001
                node.log("error", f"reload failed: {exc}")

    async def shutdown(self):
        for t in self._tasks:
            t.cancel()
        if self.dp is not None:
            await self.dp.stop()
        await self.proxy.close()
        self.node.flush_logs()


def _db_error(exc, entity, obj):
    """PgStoreError kinds -> Kong's Admin API error bodies (kong/db/errors.lua codes)."""
    from . import entities as E

    kind = getattr(exc, "kind", None)
    fields = getattr(exc, "fields", None) or {}
    if kind == "unique":
        name, value = next(iter(fields.items())) if fields else ("id", obj.get("id"))
        return 409, E.unique_violation(name, value).body
    if kind == "foreign_key":
        name, value = next(iter(fields.items())) if fields else ("id", None)
        ref = E.foreign_fields(entity).get(name, name)
        ref_id = value.get("id") if isinstance(value, dict) else value
        return 400, E.fk_violation(name, ref, ref_id).body
    if kind == "referenced":
        ref = getattr(exc, "referenced_by", None) or "entities"
        return 400, {
            "code": E.FOREIGN_KEY_VIOLATION,
            "name": "foreign key violation",
            "message": f"an existing '{ref}' entity references this '{entity}' entity",
            "fields": {"@referenced_by": ref},
        }
    if kind in ("not_null", "invalid"):
        errs = {k: (v if isinstance(v, str) else "required field missing") for k, v in fields.items()}
        return 400, E.schema_violation(errs or {"@entity": [str(exc)]}).body
    if kind == "not_found":
        return 404, {"message": "Not found"}
    return 500, {"message": "An unexpected error occurred"}


def _write_pid(path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()}\n")


async def amain(prefix: str, version: str, ready_fd: int | None) -> int:
    def report(msg: str):
        if ready_fd is not None:
            try:
                os.write(ready_fd, (msg + "\n").encode())
                os.close(ready_fd)
            except OSError:
                pass

    try:
        conf = confmod.load_from_prefix(prefix, version)
    except confmod.ConfError as exc:
        report("ERR " + str(exc))
        return 1
    node = Node(conf, version)
    node.pending_migrations_text = os.environ.get("KONGSIM_PENDING_MIGRATIONS") or None
    app = App(node)
    try:
        await app.start()
    except StartError as exc:
        await app.shutdown()
        node.log("emerg", str(exc))
        node.flush_logs()
        report("ERR " + str(exc))
        return 1
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGQUIT, lambda: loop.create_task(app.graceful()))
    loop.add_signal_handler(signal.SIGTERM, app.immediate, "15 (SIGTERM)")
    loop.add_signal_handler(signal.SIGINT, app.immediate, "2 (SIGINT)")
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(app.reload()))
    pids = os.path.join(prefix, "pids")
    os.makedirs(pids, exist_ok=True)
    pid_path = os.path.join(pids, "nginx.pid")
    _write_pid(pid_path)
    node.start_workers()
    report("OK")
    try:
        await app.stop_event.wait()
    finally:
        try:
            os.unlink(pid_path)
        except OSError:
            pass
        await app.shutdown()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="kongsim.server")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--ready-fd", type=int)
    args = parser.parse_args(argv)
    version = os.environ.get("KONGSIM_VERSION")
    if not version:
        sys.stderr.write("KONGSIM_VERSION is not set\n")
        return 2
    try:
        import uvloop  # type: ignore

        uvloop.install()
    except ImportError:
        pass
    profile = os.environ.get("KONGSIM_PROFILE")
    if profile:
        import cProfile

        prof = cProfile.Profile()
        try:
            return prof.runcall(asyncio.run, amain(os.path.abspath(args.prefix), version, args.ready_fd))
        finally:
            prof.dump_stats(profile)
    return asyncio.run(amain(os.path.abspath(args.prefix), version, args.ready_fd))


if __name__ == "__main__":
    sys.exit(main())
