"""Hybrid mode: control plane pushes the full configuration to data planes over a websocket.

The wire protocol is the simulator's own (JSON messages on ws://<cluster_listen>/v1/outlet, no
TLS); what is observable through the Admin/Status APIs and the logs follows FACTS 3.6, 5.2.
"""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import random
import socket
import time

import aiohttp
from aiohttp import web

from . import declarative, versions
from . import entities as E
from .model import EMPTY_HASH, Config

PING_INTERVAL = 30          # Kong's DP ping interval (seconds)
RECONNECT_DELAY = (1.0, 2.0)  # Kong waits 5-10 s; shorter here so tests stay fast


def version_check(dp_version: str, cp_version: str):
    """FACTS 5.2: only major and minor are compared. Returns (ok, error message or None)."""
    try:
        dp = versions.parse_version(dp_version)
    except ValueError:
        return False, f"data plane version {dp_version} is incompatible with control plane version {cp_version} ({cp_version.split('.')[0]}.x.y are accepted)"
    cp = versions.parse_version(cp_version)
    if dp[0] != cp[0]:
        return False, (f"data plane version {dp_version} is incompatible with control plane version "
                       f"{cp_version} ({cp[0]}.x.y are accepted)")
    if dp[1] > cp[1]:
        return False, (f"data plane version {dp_version} is incompatible with older control plane "
                       f"version {cp_version}")
    return True, None


class ControlPlane:
    def __init__(self, node):
        self.node = node
        self.rows = {}
        self.clients = {}
        self._conn_seq = 0

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

    def rows_view(self) -> list:
        fields = self.node.info.dp_fields
        now = int(time.time())
        purge = int(self.node.conf.get("cluster_data_plane_purge_delay") or 1209600)
        out = []
        for row in self.rows.values():
            full = dict(row)
            full["ttl"] = max(0, purge - (now - row["last_seen"]))
            out.append({k: full.get(k) for k in fields})
        return out

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
        self._conn_seq += 1
        seq = self._conn_seq
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        prefix = (f"*{seq} [lua] control_plane.lua: handle_cp_websocket(): [clustering] ")
        tail = f", client: {ip}, server: kong_cluster_listener, request: \"GET /v1/outlet HTTP/1.1\""
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
        row.update(ip=ip, hostname=host, version=ver, last_seen=now, updated_at=now,
                   labels=info.get("labels") or None,
                   cert_details={"expiry_timestamp": info.get("cert_expiry") or now + 365 * 86400},
                   rpc_capabilities=[])
        ok, err = version_check(ver, node.version)
        if not ok:
            row["sync_status"] = "kong_version_incompatible"
            self.rows[dp_id] = row
            node.log("error", prefix + err + suffix + tail)
            await ws.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION, message=err.encode()[:120])
            return ws
        dpv, cpv = versions.parse_version(ver), versions.parse_version(node.version)
        if dpv[1] != cpv[1]:
            # UNCONFIRMED wording (FACTS 5.2 names only the start of this INFO line).
            node.log("info", prefix + f"data plane minor version {dpv[1]} is different to control plane "
                                      f"minor version {cpv[1]}" + suffix + tail)
        dp_plugins = {p["name"] if isinstance(p, dict) else p for p in info.get("plugins") or []}
        missing = [p for p in node.config.plugins_enabled() if p not in dp_plugins]
        row.setdefault("sync_status", "unknown")
        if missing:
            row["sync_status"] = "plugin_set_incompatible"
            self.rows[dp_id] = row
            node.log("warn", prefix + f"unable to send updated configuration to data plane: plugin "
                                      f"{missing[0]} is configured but missing from data plane"
                     + suffix + tail)
        else:
            self.rows[dp_id] = row
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
        finally:
            if self.clients.get(dp_id) is ws:
                del self.clients[dp_id]
        return ws


class DataPlane:
    def __init__(self, node):
        self.node = node
        self.cache_path = os.path.join(node.prefix, "config.cache.json.gz")
        self.session = None
        self.task = None
        self.connected = False

    def load_cache(self) -> bool:
        try:
            with gzip.open(self.cache_path, "rt", encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return False
        self._apply(data, write_cache=False)
        self.node.log("notice", "[clustering] loaded configuration from cache " + self.cache_path)
        return True

    def _apply(self, data: dict, write_cache: bool = True):
        node = self.node
        doc = data["config"]
        cfg = declarative.load(doc, node.version, enabled_plugins=node.plugins_enabled) \
            if any(k for k in doc if not k.startswith("_")) else Config()
        cfg.hash = data.get("config_hash") or EMPTY_HASH
        node.set_config(cfg)
        if write_cache:
            tmp = self.cache_path + ".tmp"
            with gzip.open(tmp, "wt", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.cache_path)

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
        self.session = aiohttp.ClientSession()
        cp = str(node.conf.get("cluster_control_plane") or "127.0.0.1:8005")
        url = (f"http://{cp}/v1/outlet?node_id={node.node_id}&node_hostname={socket.gethostname()}"
               f"&node_version={node.version}")
        while True:
            try:
                async with self.session.ws_connect(url, heartbeat=None, max_msg_size=0,
                                                   timeout=aiohttp.ClientWSTimeout(ws_close=5)
                                                   if hasattr(aiohttp, "ClientWSTimeout") else 5) as ws:
                    await ws.send_str(json.dumps({
                        "type": "basic_info",
                        "plugins": [{"name": p, "version": node.version} for p in node.plugins_enabled],
                        "labels": None}))
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
                                await ws.send_str(json.dumps({"type": "ping",
                                                              "config_hash": node.config_hash}))
                    finally:
                        pinger.cancel()
                        self.connected = False
                    if ws.close_code and ws.close_code != aiohttp.WSCloseCode.OK:
                        reason = ws.exception() or (ws.close_code, "")
                        node.log("error", f"[clustering] connection to control plane {url} broken: "
                                          f"{reason}")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                node.log("error", f"[clustering] connection to control plane {url} broken: {exc} "
                                  "(retrying after some seconds)")
            await asyncio.sleep(random.uniform(*RECONNECT_DELAY))

    async def _pinger(self, ws):
        while True:
            await asyncio.sleep(PING_INTERVAL)
            await ws.send_str(json.dumps({"type": "ping", "config_hash": self.node.config_hash}))
