"""Hybrid mode: control plane pushes the full configuration to data planes over a websocket.

The wire protocol is the simulator's own (JSON messages on ws://<cluster_listen>/v1/outlet, no
TLS); what is observable through the Admin/Status APIs and the logs follows FACTS 3.6, 5.2.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time

import aiohttp
import aiohttp.abc
from aiohttp import web

from . import declarative, persist, versions
from . import entities as E
from .model import EMPTY_HASH, Config
from .versions import parse_version

PING_INTERVAL = 30  # Kong's DP ping interval (seconds)
# math.random(5, 10) whole seconds before a data plane tries its control plane again, after a failed
# connect and after a broken connection (Kong/kong 3.9.3 kong/clustering/data_plane.lua:152-157, :377)
RECONNECT_DELAY = (5, 10)


def version_check(dp_version: str, cp_version: str):
    """FACTS 5.2: only major and minor are compared. Returns (ok, error message or None)."""
    try:
        dp = versions.parse_version(dp_version)
    except ValueError:
        return False, f"data plane version {dp_version} is incompatible with control plane version {cp_version} ({cp_version.split('.')[0]}.x.y are accepted)"
    cp = versions.parse_version(cp_version)
    if dp[0] != cp[0]:
        return False, (f"data plane version {dp_version} is incompatible with control plane version {cp_version} ({cp[0]}.x.y are accepted)")
    if dp[1] > cp[1]:
        return False, (f"data plane version {dp_version} is incompatible with older control plane version {cp_version}")
    return True, None


class ControlPlane:
    def __init__(self, node):
        self.node = node
        self.rows = {}  # this control plane's view of its own connections
        self.clients = {}
        self._conn_seq = 0
        self.store = None  # the PgStore of the node (set once the database is open)

    def payload(self, dp_version: str | None = None) -> dict:
        """Full configuration; fields the DP's version does not know are removed (Kong's compat
        layer does the same), the hash is the CP's, identical for every DP."""
        cfg = self.node.config
        doc = declarative.export_doc(cfg, self.node.version)
        h = EMPTY_HASH if cfg.is_empty() else declarative.table_hash(doc)
        if dp_version and dp_version in versions.VERSIONS and dp_version != self.node.version:
            doc = dict(doc)
            for entity in E.ORDER:
                if entity in doc:
                    doc[entity] = [E.compat_for_version(entity, row, dp_version) for row in doc[entity]]
        return {"type": "reconfigure", "config": doc, "config_hash": h}

    def tls_refused(self, exc: Exception) -> None:
        """A data plane whose TLS handshake failed: in shared mode only a certificate other than the
        control plane's own fails it (kongsim/tls.py), which Kong refuses with this line after the
        handshake (kong/clustering/tls.lua:35-38, logged by kong/clustering/init.lua:66-69)."""
        if str(self.node.conf.get("cluster_mtls") or "shared") == "shared" and "certificate" in str(exc):
            self.node.log(
                "error",
                "[lua] init.lua:68: validate_client_cert(): [clustering] data plane presented "
                "incorrect client certificate during handshake (digest does not match the "
                "control plane certificate), server: kong_cluster_listener",
            )
        else:
            self.node.log("info", f"client SSL handshake failed: {exc}, server: kong_cluster_listener")

    def client_cert_error(self, request) -> str | None:
        """Kong's check of the data plane's certificate once TLS is up (kong/clustering/tls.lua:194-231)."""
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return "data plane failed to present client certificate during handshake"
        if str(self.node.conf.get("cluster_mtls") or "shared") == "shared":
            from . import tls

            if tls.cert_digest(der) != tls.cert_digest(self.node.conf["cluster_cert"]):
                return "data plane presented incorrect client certificate during handshake (digest does not match the control plane certificate)"
        return None

    def purge_delay(self) -> int:
        return int(self.node.conf.get("cluster_data_plane_purge_delay") or 1209600)

    def rows_view(self) -> list:
        """The rows of clustering_data_planes that have not expired, as every control plane on the
        database sees them (kong/db/strategies/postgres/init.lua:1063-1072 at 3.9.3)."""
        fields = self.node.info.dp_fields
        return [{k: row.get(k) for k in fields} for row in self.store.data_planes()]

    async def record(self, row: dict) -> None:
        """Upsert the row with ttl = cluster_data_plane_purge_delay, as the control plane does on
        connect and on every ping (kong/clustering/control_plane.lua:242-264 at 3.9.3)."""
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.store.upsert_data_plane, dict(row), self.purge_delay())
        except Exception as exc:  # noqa: BLE001
            self.node.log("error", f"[clustering] unable to update clustering data plane status: {exc}")

    async def push_all(self):
        for dp_id, ws in list(self.clients.items()):
            if not ws.closed:
                try:
                    await ws.send_str(json.dumps(self.payload(self.rows.get(dp_id, {}).get("version"))))
                except (ConnectionError, RuntimeError):
                    pass

    def _suffix(self, dp_id, host, ip, ver):
        return f" [id: {dp_id}, host: {host}, ip: {ip}, version: {ver}]"

    async def handle(self, request):
        node = self.node
        if request.path != "/v1/outlet":
            return web.Response(status=404, text='{"message":"Not found"}')
        q = request.query
        dp_id, host, ver = q.get("node_id", ""), q.get("node_hostname", ""), q.get("node_version", "")
        ip = request.remote or ""
        refused = self.client_cert_error(request)
        if refused:
            # ngx.exit(444): the connection is closed without an answer
            node.log(
                "error",
                f"[lua] init.lua:68: validate_client_cert(): [clustering] {refused}, client: {ip}, "
                'server: kong_cluster_listener, request: "GET /v1/outlet HTTP/1.1"',
            )
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError("444")
        self._conn_seq += 1
        seq = self._conn_seq
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        prefix = f"*{seq} [lua] control_plane.lua: handle_cp_websocket(): [clustering] "
        tail = f', client: {ip}, server: kong_cluster_listener, request: "GET /v1/outlet HTTP/1.1"'
        suffix = self._suffix(dp_id, host, ip, ver)
        try:
            first = await ws.receive(timeout=10)
        except TimeoutError:
            await ws.close()
            return ws
        if first.type != aiohttp.WSMsgType.TEXT:
            await ws.close()
            return ws
        info = json.loads(first.data)
        now = int(time.time())
        row = self.rows.get(dp_id) or {"id": dp_id, "config_hash": EMPTY_HASH}
        row.update(
            ip=ip,
            hostname=host,
            version=ver,
            last_seen=now,
            updated_at=now,
            labels=info.get("labels") or None,
            cert_details={"expiry_timestamp": info.get("cert_expiry") or now + 365 * 86400},
            rpc_capabilities=[],
        )
        ok, err = version_check(ver, node.version)
        if not ok:
            row["sync_status"] = "kong_version_incompatible"
            self.rows[dp_id] = row
            await self.record(row)
            node.log("error", prefix + err + suffix + tail)
            await ws.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION, message=err.encode()[:120])
            return ws
        dpv, cpv = versions.parse_version(ver), versions.parse_version(node.version)
        if dpv[1] != cpv[1]:
            # UNCONFIRMED wording (FACTS 5.2 names only the start of this INFO line).
            node.log("info", prefix + f"data plane minor version {dpv[1]} is different to control plane minor version {cpv[1]}" + suffix + tail)
        dp_plugins = {p["name"] if isinstance(p, dict) else p for p in info.get("plugins") or []}
        missing = [p for p in node.config.plugins_enabled() if p not in dp_plugins]
        # An accepted data plane's row is written on its pings only (kong/clustering/control_plane.lua:376-380
        # at 3.9.3; on connect only a refused version is written, :271-281), with the sync_status of the
        # initial configuration compatibility check (:307-312): normal, or plugin_set_incompatible. The data
        # plane pings as soon as it is connected (kong/clustering/data_plane.lua:273-281), so a row never
        # shows an accepted data plane as unknown.
        row["sync_status"] = "plugin_set_incompatible" if missing else "normal"
        self.rows[dp_id] = row
        if missing:
            node.log(
                "warn",
                prefix + f"unable to send updated configuration to data plane: plugin {missing[0]} is configured but missing from data plane" + suffix + tail,
            )
        else:
            self.clients[dp_id] = ws
            node.log("notice", prefix + "data plane connected" + suffix + tail)
            await ws.send_str(json.dumps(self.payload(ver)))
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if data.get("type") == "ping":
                    now = int(time.time())
                    row["last_seen"] = now
                    row["updated_at"] = now
                    row["config_hash"] = data.get("config_hash") or EMPTY_HASH
                    if row.get("sync_status") not in ("plugin_set_incompatible",):
                        row["sync_status"] = "normal"
                    await self.record(row)
        finally:
            if self.clients.get(dp_id) is ws:
                del self.clients[dp_id]
        return ws


class _PinnedResolver(aiohttp.abc.AbstractResolver):
    """Resolves ``name`` to the addresses of ``host``; any other name as usual."""

    def __init__(self, name: str, host: str):
        self.name, self.host = name, host

    async def resolve(self, host, port=0, family=socket.AF_INET):
        real = self.host if host == self.name else host
        infos = await asyncio.get_running_loop().getaddrinfo(real, port, family=family, type=socket.SOCK_STREAM)
        return [
            {"hostname": host, "host": addr[0], "port": addr[1], "family": fam, "proto": proto, "flags": socket.AI_NUMERICHOST}
            for fam, _type, proto, _name, addr in infos
        ]

    async def close(self):
        return None


class DataPlane:
    def __init__(self, node):
        self.node = node
        self.session = None
        self.task = None
        self.connected = False

    def load_cache(self) -> bool:
        """The configuration this data plane kept from its last load (kongsim/persist.py: the 2.x cache file,
        the 3.x LMDB)."""
        data = persist.load(self.node)
        if data is None:
            return False
        self._apply(data, write_cache=False)
        if parse_version(self.node.version) < (3, 0, 0):
            self.node.log("info", "[clustering] found cached config, loading...")
        else:
            self.node.log("info", "found persisted lmdb config, loading...")
        return True

    def _apply(self, data: dict, write_cache: bool = True):
        node = self.node
        doc = data["config"]
        cfg = declarative.load(doc, node.version, enabled_plugins=node.plugins_enabled) if any(k for k in doc if not k.startswith("_")) else Config()
        cfg.hash = data.get("config_hash") or EMPTY_HASH
        node.set_config(cfg)
        if write_cache:
            persist.store(node, doc, cfg.hash)

    def start(self):
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self):
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.session:
            await self.session.close()

    async def run(self):
        node = self.node
        from . import tls

        cp = str(node.conf.get("cluster_control_plane") or "127.0.0.1:8005")
        query = f"/v1/outlet?node_id={node.node_id}&node_hostname={socket.gethostname()}&node_version={node.version}"
        url = f"wss://{cp}{query}"
        ssl_ctx, server_name = tls.cluster_client(node.conf)
        # the certificate is checked against server_name (kong_clustering in shared mode), whatever
        # address the control plane has: that name resolves to the control plane's host here (aiohttp
        # 3.8, Debian's, has no server_hostname option)
        cp_host, _sep, cp_port = cp.rpartition(":")
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_PinnedResolver(server_name, cp_host.strip("[]"))))
        connect_url = f"wss://{server_name}:{cp_port}{query}"
        while True:
            try:
                async with self.session.ws_connect(
                    connect_url,
                    heartbeat=None,
                    max_msg_size=0,
                    ssl=ssl_ctx,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5) if hasattr(aiohttp, "ClientWSTimeout") else 5,
                ) as ws:
                    await ws.send_str(
                        json.dumps({"type": "basic_info", "plugins": [{"name": p, "version": node.version} for p in node.plugins_enabled], "labels": None})
                    )
                    # the write thread's countdown to the next ping starts at 0: the first ping, with the hash
                    # the node runs now (its cache, or none), goes out at once (kong/clustering/data_plane.lua:273-281
                    # at 3.9.3)
                    await ws.send_str(json.dumps({"type": "ping", "config_hash": node.config_hash}))
                    self.connected = True
                    node.log("notice", f"[clustering] data plane connected to control plane {cp}")
                    pinger = asyncio.get_running_loop().create_task(self._pinger(ws))
                    try:
                        async for msg in ws:
                            if msg.type != aiohttp.WSMsgType.TEXT:
                                continue
                            data = json.loads(msg.data)
                            if data.get("type") == "reconfigure":
                                try:
                                    self._apply(data)
                                except Exception as exc:  # noqa: BLE001
                                    node.log("error", f"[clustering] unable to update running config: {exc}")
                                await ws.send_str(json.dumps({"type": "ping", "config_hash": node.config_hash}))
                    finally:
                        pinger.cancel()
                        self.connected = False
                    if ws.close_code and ws.close_code != aiohttp.WSCloseCode.OK:
                        reason = ws.exception() or (ws.close_code, "")
                        node.log("error", f"[clustering] connection to control plane {url} broken: {reason}")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                delay = random.randint(*RECONNECT_DELAY)
                node.log("warn", f"[clustering] connection to control plane {url} broken: {exc} (retrying after {delay} seconds) [{cp}]")
                await asyncio.sleep(delay)
                continue
            await asyncio.sleep(random.randint(*RECONNECT_DELAY))

    async def _pinger(self, ws):
        while True:
            await asyncio.sleep(PING_INTERVAL)
            await ws.send_str(json.dumps({"type": "ping", "config_hash": self.node.config_hash}))
