"""Admin API and Status API handlers (FACTS 3)."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import time
from urllib.parse import parse_qsl

from aiohttp import web

from . import conf as confmod
from . import declarative, enterprise, versions
from . import entities as E
from .model import EMPTY_HASH, paginate
from .node import INIT_WORKER_BASE_S, INIT_WORKER_PER_ENTITY_S

JSON_CT = "application/json; charset=utf-8"
# kong/db/declarative/import.lua:570-572 at 3.9.3
DECLARATIVE_LOCK_TTL_S = 60
DECLARATIVE_RETRY_TTL_MAX_S = 10
_TRUTHY = ("1", "true", "on", "yes")
# Collections of bundled plugins' entities, served read-only from the declarative config (the
# simulator stores them but runs none of those plugins): path -> (declarative key, since version).
PLUGIN_COLLECTIONS = {
    "acls": ("acls", (0, 0, 0)),
    "basic-auths": ("basicauth_credentials", (0, 0, 0)),
    "hmac-auths": ("hmacauth_credentials", (0, 0, 0)),
    "jwts": ("jwt_secrets", (0, 0, 0)),
    "oauth2": ("oauth2_credentials", (0, 0, 0)),
    "vaults": ("vaults", (3, 0, 0)),
    "keys": ("keys", (3, 1, 0)),
    "key-sets": ("key_sets", (3, 1, 0)),
}


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


class HTTPDone(Exception):
    def __init__(self, status: int, body=None, headers=None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _err(status: int, message: str):
    return HTTPDone(status, {"message": message})


def _from_entity_error(exc: E.EntityError):
    return HTTPDone(exc.status, exc.body)


def _nest_form(pairs) -> dict:
    out: dict = {}
    for key, value in pairs:
        parts = re.split(r"\.", key)
        cur = out
        for i, part in enumerate(parts):
            m = re.fullmatch(r"(.+?)\[(\d*)\]", part)
            last = i == len(parts) - 1
            if m:
                name = m.group(1)
                lst = cur.setdefault(name, [])
                if not isinstance(lst, list):
                    lst = cur[name] = [lst]
                if last:
                    lst.append(value)
                else:
                    idx = int(m.group(2) or len(lst))
                    while len(lst) <= idx:
                        lst.append({})
                    cur = lst[idx]
                continue
            if last:
                if part in cur:
                    prev = cur[part]
                    cur[part] = (prev if isinstance(prev, list) else [prev]) + [value]
                else:
                    cur[part] = value
            else:
                cur = cur.setdefault(part, {})
    return out


def _coerce_like(value, default):
    if isinstance(value, str):
        if isinstance(default, bool):
            if value in ("true", "false"):
                return value == "true"
        elif isinstance(default, int):
            try:
                return int(value)
            except ValueError:
                return value
        elif isinstance(default, list):
            return [value]
    return value


def _memory(unit: str, scale: int):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def fmt(n_bytes: float):
        if unit == "b":
            return int(n_bytes)
        div = {"k": 1024, "m": 1024**2, "g": 1024**3}[unit]
        suffix = {"k": "KiB", "m": "MiB", "g": "GiB"}[unit]
        return f"{n_bytes / div:.{scale}f} {suffix}"

    return fmt, rss


class AdminAPI:
    def __init__(self, node, proxy, app):
        self.node = node
        self.proxy = proxy
        self.app = app  # server-level helpers: write(), cluster status
        self.info = node.info
        self._declarative_lock_since: float | None = None

    # --------------------------------------------------------------------------- plumbing
    def _response(self, request, status, body, t0, extra_headers=None, admin=True):
        headers = {"Server": f"kong/{self.node.version}"}
        if admin:
            headers["X-Kong-Admin-Latency"] = str(int((time.monotonic() - t0) * 1000))
            headers["Access-Control-Allow-Origin"] = "*"
        if extra_headers:
            headers.update(extra_headers)
        if status in (204, 304) or body is None:
            resp = web.Response(status=status, headers=headers)
        elif isinstance(body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            resp = web.Response(status=status, body=body.encode(), headers=headers)
        else:
            headers["Content-Type"] = JSON_CT
            resp = web.Response(status=status, body=dumps(body).encode(), headers=headers)
        if self.node.exiting:
            resp.force_close()
        ts = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        self.node.access(
            f'{request.remote} - - [{ts}] "{request.method} {request.raw_path} HTTP/1.1" '
            f'{status} {resp.content_length or 0} "-" "{request.headers.get("User-Agent", "-")}"',
            admin=True,
        )
        return resp

    async def handle_admin(self, request):
        t0 = time.monotonic()
        self.node.inflight += 1
        try:
            try:
                limit = confmod.parse_size(self.node.conf.get("nginx_admin_client_max_body_size") or "10m")
                if limit and request.content_length and request.content_length > limit:
                    raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
                refused = enterprise.rbac_refusal(self.node.conf, request.headers)
                if refused:
                    raise HTTPDone(*refused)
                status, body, headers = await self._admin(request)
            except HTTPDone as done:
                status, body, headers = done.status, done.body, done.headers
            except E.EntityError as exc:
                status, body, headers = exc.status, exc.body, {}
            except web.HTTPRequestEntityTooLarge:
                return self._nginx_413(request)
            return self._response(request, status, body, t0, headers)
        finally:
            self.node.inflight -= 1

    def _nginx_413(self, request):
        """nginx refuses a body above client_max_body_size before Kong's code runs: its own page
        (the Admin API server has no error_page: kong/templates/nginx_kong.lua:411-450 at 3.9.3),
        and it closes the connection. UNCONFIRMED: the Server header of that page (`openresty`
        with server_tokens off)."""
        page = (
            "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
            "<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>openresty</center>\r\n"
            "</body>\r\n</html>\r\n"
        )
        resp = web.Response(status=413, body=page.encode(), headers={"Server": "openresty", "Content-Type": "text/html", "Connection": "close"})
        resp.force_close()
        ts = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        self.node.access(
            f'{request.remote} - - [{ts}] "{request.method} {request.raw_path} HTTP/1.1" 413 {len(page)} "-" "{request.headers.get("User-Agent", "-")}"',
            admin=True,
        )
        return resp

    async def handle_status(self, request):
        t0 = time.monotonic()
        self.node.inflight += 1
        try:
            try:
                status, body, headers = await self._status_listener(request)
            except HTTPDone as done:
                status, body, headers = done.status, done.body, done.headers
            return self._response(request, status, body, t0, headers, admin=False)
        finally:
            self.node.inflight -= 1

    async def _body(self, request) -> tuple:
        ctype = (request.content_type or "").lower()
        if request.method in ("GET", "DELETE", "HEAD"):
            return {}, False
        if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            pairs = []
            for k, v in form.items():
                if hasattr(v, "file"):
                    v = v.file.read().decode()
                pairs.append((k, v))
            return _nest_form(pairs), True
        raw = await request.read()
        if not raw.strip():
            return {}, False
        try:
            data = json.loads(raw)
        except ValueError:
            raise HTTPDone(400, {"message": "Cannot parse JSON body"})
        if not isinstance(data, dict):
            raise HTTPDone(400, {"message": "Cannot parse JSON body"})
        return data, False

    # --------------------------------------------------------------------------- status
    def status_body(self, query) -> dict:
        unit = query.get("unit", "m")
        if unit not in ("b", "k", "m", "g"):
            raise _err(400, f"invalid unit '{unit}' (expected 'k/K', 'm/M', 'g/G' or 'b/B')")
        try:
            scale = int(query.get("scale", "2"))
        except ValueError:
            raise _err(400, "invalid scale, expected a number")
        fmt, rss = _memory(unit, scale)
        node = self.node
        body = {}
        if not node.dbless and node.role != "data_plane":
            body["database"] = {"reachable": bool(getattr(node, "db_reachable", True))}
        elif self.info.status_database_key_dbless:
            body["database"] = {"reachable": True}
        body["memory"] = {
            "lua_shared_dicts": {
                "kong": {"capacity": fmt(5 * 1024**2), "allocated_slabs": fmt(40960)},
                "kong_db_cache": {"capacity": fmt(128 * 1024**2), "allocated_slabs": fmt(800 * 1024)},
            },
            "workers_lua_vms": [{"http_allocated_gc": fmt(rss), "pid": __import__("os").getpid()}],
        }
        conns = self.app.connection_count()
        body["server"] = {
            "connections_accepted": node.connections_accepted,
            "connections_active": conns,
            "connections_handled": node.connections_accepted,
            "connections_reading": 0,
            "connections_writing": max(1, node.inflight),
            "connections_waiting": max(0, conns - node.inflight),
            "total_requests": node.requests_total,
        }
        if node.dbless or node.role == "data_plane":
            body["configuration_hash"] = node.config_hash
        return body

    async def probe_database(self) -> None:
        """A node with a database connects to it on every /status, /status/ready and /metrics request
        and closes the connection again (Kong/kong 3.9.3 kong/status/ready.lua:73-80,
        kong/api/routes/health.lua:59-63, kong/plugins/prometheus/exporter.lua:438): the answer follows
        the database from one request to the next, with no cached verdict in between."""
        node = self.node
        if node.dbless:
            return
        from . import pgdb

        def connect() -> bool:
            try:
                pgdb.connect(node.conf, application_name="kong").close()
            except Exception:  # noqa: BLE001 - any failure to connect is "unreachable"
                return False
            return True

        node.db_reachable = await asyncio.get_running_loop().run_in_executor(None, connect)

    def ready_reason(self) -> str | None:
        node = self.node
        if node.draining:
            return "draining"
        if not node.dbless and not getattr(node, "db_reachable", True):
            return "failed to connect to database"
        if node.role == "control_plane":
            return None
        if node.dbless or node.role == "data_plane":
            # kong/status/ready.lua:29-32 at 3.9.3 (:27-30 at 3.4.2/3.7.1): every worker builds its
            # own router in init_worker before the node is ready
            up = node.workers_up()
            if up < node.workers:
                return f"router builds not yet complete, router ready in {up} of {node.workers} workers"
            if not node.config_loaded:
                return "no configuration available (configuration hash is not initialized)"
            if node.config.hash == EMPTY_HASH:
                return "no configuration available (empty configuration present)"
        return None

    async def _status_listener(self, request):
        path = request.path.rstrip("/") or "/"
        query = dict(parse_qsl(request.query_string))
        if path == "/status":
            if request.method != "GET":
                raise _err(405, "Method not allowed")
            await self.probe_database()
            return 200, self.status_body(query), {}
        if path == "/status/ready" and self.info.status_ready:
            if request.method == "GET":
                if not self.node.draining:
                    await self.probe_database()
                reason = self.ready_reason()
                if reason:
                    return 503, {"message": reason}, {}
                return 200, {"message": "ready"}, {}
            if request.method == "POST" and self.info.drain:
                data, _form = await self._body(request)
                if data.get("status") == "draining":
                    self.node.draining = True
                    self.node.log("notice", "[kong] ready.lua: Kong's status changed to 'draining'")
                    return 204, None, {}
                return 400, {"message": "Invalid status"}, {}
            raise _err(405, "Method not allowed")
        if path == "/status/dns" and (self.info.major, self.info.minor) >= (3, 8):
            return 501, {"message": "not implemented with the legacy DNS client"}, {}
        if path == "/metrics":
            await self.probe_database()
            return 200, self._metrics(), {"Content-Type": "text/plain; charset=UTF-8"}
        raise _err(404, "Not found")

    def _metrics(self) -> str:
        from .proxy import prometheus_text

        return prometheus_text(self.node, self.proxy)

    # --------------------------------------------------------------------------- admin router
    async def _admin(self, request):
        path = request.path
        segs = [s for s in path.split("/") if s]
        m = request.method
        query = dict(parse_qsl(request.query_string, keep_blank_values=True))
        if not segs:
            if m != "GET":
                raise _err(405, "Method not allowed")
            return 200, self.root(), {}
        head = segs[0]
        if head == "status" and len(segs) == 1:
            if m != "GET":
                raise _err(405, "Method not allowed")
            await self.probe_database()
            return 200, self.status_body(query), {}
        if head == "metrics" and len(segs) == 1:
            await self.probe_database()
            return 200, self._metrics(), {"Content-Type": "text/plain; charset=UTF-8"}
        if head == "config" and len(segs) == 1:
            return await self.config_endpoint(request, query)
        if head == "clustering" and len(segs) == 2 and segs[1] in ("data-planes", "status"):
            return self.clustering(request, segs[1], query)
        if head == "plugins" and len(segs) == 2 and segs[1] == "enabled":
            return 200, {"enabled_plugins": list(self.node.plugins_enabled)}, {}
        if head == "endpoints" and len(segs) == 1:
            return 200, {"data": sorted(self._endpoint_list()), "next": None}, {}
        if head in PLUGIN_COLLECTIONS and len(segs) == 1 and versions.parse_version(self.node.version) >= PLUGIN_COLLECTIONS[head][1]:
            if m != "GET":
                raise _err(405, "Method not allowed")
            items = sorted(self.node.config.extra.get(PLUGIN_COLLECTIONS[head][0]) or [], key=lambda i: str(i.get("id")))
            return 200, paginate(items, query.get("size"), query.get("offset"), f"/{head}"), {}
        entity = E.ADMIN_PATHS.get(head)
        if entity is None or head == "targets":
            raise _err(404, "Not found")
        cfg = self.node.config
        if len(segs) == 1:
            return await self.collection(request, entity, query, None, f"/{head}")
        parent = cfg.get(entity, segs[1])
        if len(segs) == 2:
            return await self.item(request, entity, segs[1], parent, None)
        sub = segs[2]
        nested = {
            ("services", "routes"): ("routes", "service"),
            ("services", "plugins"): ("plugins", "service"),
            ("routes", "plugins"): ("plugins", "route"),
            ("consumers", "plugins"): ("plugins", "consumer"),
            ("consumers", "key-auth"): ("keyauth_credentials", "consumer"),
            ("upstreams", "targets"): ("targets", "upstream"),
            ("certificates", "snis"): ("snis", "certificate"),
        }
        if (entity, sub) == ("routes", "service") and len(segs) == 3:
            if parent is None:
                raise _err(404, "Not found")
            svc = cfg.get("services", (parent.get("service") or {}).get("id"))
            if m != "GET":
                raise _err(405, "Method not allowed")
            if svc is None:
                raise _err(404, "Not found")
            return 200, svc, {}
        spec = nested.get((entity, sub))
        if spec is None or len(segs) > 4:
            raise _err(404, "Not found")
        child, fk = spec
        if parent is None:
            raise _err(404, "Not found")
        if len(segs) == 3:
            return await self.collection(request, child, query, (fk, parent["id"]), f"/{head}/{segs[1]}/{sub}")
        return await self.item(request, child, segs[3], cfg.get(child, segs[3]), (fk, parent["id"]))

    def _endpoint_list(self):
        return [f"/{p}" for p in E.ADMIN_PATHS if p != "targets"] + ["/", "/status", "/config", "/metrics"]

    def root(self) -> dict:
        node = self.node
        info = self.info
        if info.available_on_server_objects:
            available = {p: {"version": node.version, "priority": versions.PLUGIN_PRIORITY.get(p, 0)} for p in node.plugins_enabled}
        else:
            available = {p: True for p in node.plugins_enabled}
        body = {
            "tagline": "Welcome to kong",
            "version": node.version,
            "hostname": node.hostname,
            "node_id": node.node_id,
            "timers": {"running": 0, "pending": 4},
            "plugins": {"available_on_server": available, "enabled_in_cluster": node.config.plugins_enabled()},
            # UNCONFIRMED: exact jit.version of each build.
            "lua_version": "LuaJIT 2.1.0-20231117" if info.major >= 3 else "LuaJIT 2.1.0-beta3",
            "configuration": confmod.public_view(node.conf),
            "pids": {"master": __import__("os").getpid(), "workers": [__import__("os").getpid()]},
        }
        if info.edition:
            body["edition"] = "community"
        return body

    # --------------------------------------------------------------------------- entities
    def _unsupported(self, method, entity, by_field=None):
        verb = {"POST": "create", "PUT": "create or update", "PATCH": "update", "DELETE": "remove"}[method]
        msg = f"cannot {verb} '{entity}' entities"
        if by_field:
            msg += f" by '{by_field}'"
        msg += " when not using a database"
        raise HTTPDone(405, {"code": E.OPERATION_UNSUPPORTED, "name": "operation unsupported", "message": msg})

    async def collection(self, request, entity, query, parent, base_path):
        m = request.method
        if m == "GET":
            tags = query.get("tags")
            pred = None
            if parent is not None:
                fk, pid = parent
                pred = lambda i: (i.get(fk) or {}).get("id") == pid
            items = self.node.config.sorted_items(entity, pred)
            if tags:
                if "/" in tags:
                    wanted = set(tags.split("/"))
                    items = [i for i in items if set(i.get("tags") or ()) & wanted]
                else:
                    wanted = set(tags.split(","))
                    items = [i for i in items if wanted <= set(i.get("tags") or ())]
            return 200, paginate(items, query.get("size"), query.get("offset"), base_path), {}
        if m != "POST":
            raise _err(405, "Method not allowed")
        if self.node.dbless:
            self._unsupported(m, entity)
        data, form = await self._body(request)
        if parent is not None:
            fk, pid = parent
            data[fk] = {"id": pid}
        obj = self._validate(entity, data, form)
        obj = await self.app.write("insert", entity, obj)
        return 201, obj, {}

    def _validate(self, entity, data, form, existing=None):
        if form and entity == "plugins" and isinstance(data.get("config"), dict):
            defaults = E.plugin_config_defaults(str(data.get("name") or (existing or {}).get("name")), self.node.version) or {}
            data["config"] = {k: _coerce_like(v, defaults.get(k)) for k, v in data["config"].items()}
        for key in ("service", "route", "consumer", "upstream", "certificate", "client_certificate"):
            value = data.get(key)
            if isinstance(value, str) and form:
                data[key] = {"id": value}
        try:
            obj = E.validate(entity, data, self.node.version, existing=existing, form=form, enabled_plugins=self.node.plugins_enabled)
        except E.EntityError as exc:
            raise _from_entity_error(exc)
        cfg = self.node.config
        try:
            # Foreign references given by name are not accepted by Kong's Admin API: only ids.
            cfg.check_fk(entity, obj)
            cfg.check_unique(entity, obj, self.node.version, exclude_id=(existing or {}).get("id"))
        except E.EntityError as exc:
            raise _from_entity_error(exc)
        if existing is None and obj["id"] in cfg.data[entity]:
            raise _from_entity_error(E.pk_violation(obj["id"]))
        return obj

    async def item(self, request, entity, key, current, parent):
        m = request.method
        if parent is not None and current is not None:
            fk, pid = parent
            if (current.get(fk) or {}).get("id") != pid:
                current = None
        if m == "GET":
            if current is None:
                raise _err(404, "Not found")
            return 200, current, {}
        if m not in ("PUT", "PATCH", "DELETE"):
            raise _err(405, "Method not allowed")
        if self.node.dbless:
            schema = E.SCHEMAS[entity]
            by = schema.endpoint_key if (schema.endpoint_key and not E.UUID_RE.match(key)) else None
            self._unsupported(m, entity, by)
        if m == "DELETE":
            if current is None:
                return 204, None, {}
            for dep_entity, _dep, mode in self.node.config.dependents(entity, current["id"]):
                if mode == "restrict":
                    raise HTTPDone(
                        400,
                        {
                            "code": E.FOREIGN_KEY_VIOLATION,
                            "name": "foreign key violation",
                            "message": f"an existing '{dep_entity}' entity references this '{entity}' entity",
                            "fields": {"@referenced_by": dep_entity},
                        },
                    )
            await self.app.write("delete", entity, current)
            return 204, None, {}
        data, form = await self._body(request)
        if parent is not None:
            fk, pid = parent
            data[fk] = {"id": pid}
        if m == "PATCH":
            if current is None:
                raise _err(404, "Not found")
            if entity == "plugins" and isinstance(data.get("config"), dict):
                merged = dict(current.get("config") or {})
                merged.update(data["config"])
                data["config"] = merged
            data.pop("id", None)
            obj = self._validate(entity, data, form, existing=current)
            obj = await self.app.write("update", entity, obj)
            return 200, obj, {}
        # PUT: create or replace, keyed by id or endpoint key
        schema = E.SCHEMAS[entity]
        if E.UUID_RE.match(key):
            data["id"] = key
        elif schema.endpoint_key:
            data[schema.endpoint_key] = key
            if current is not None:
                data["id"] = current["id"]
        else:
            raise _err(404, "Not found")
        if current is not None:
            keep = {"id": current["id"], "created_at": current.get("created_at")}
            data.setdefault("created_at", keep["created_at"])
            try:
                obj = E.validate(entity, data, self.node.version, enabled_plugins=self.node.plugins_enabled, form=form)
            except E.EntityError as exc:
                raise _from_entity_error(exc)
            obj["id"] = keep["id"]
            try:
                self.node.config.check_fk(entity, obj)
                self.node.config.check_unique(entity, obj, self.node.version, exclude_id=obj["id"])
            except E.EntityError as exc:
                raise _from_entity_error(exc)
            obj = await self.app.write("update", entity, obj)
        else:
            obj = self._validate(entity, data, form)
            obj = await self.app.write("insert", entity, obj)
        return 200, obj, {}

    # --------------------------------------------------------------------------- /config
    async def config_endpoint(self, request, query):
        node = self.node
        if not node.dbless:
            raise _err(400, "this endpoint is only available when Kong is configured to not use a database")
        if request.method == "GET":
            doc = declarative.export_doc(node.config, node.version)
            return 200, {"config": declarative.to_yaml(doc)}, {}
        if request.method != "POST":
            raise _err(405, "Method not allowed")
        if node.exiting:
            raise _err(503, "Kong currently exiting")
        ctype = (request.content_type or "").lower()
        text = None
        table = None
        if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            value = form.get("config")
            if value is not None and hasattr(value, "file"):
                value = value.file.read().decode()
            text = value
        else:
            raw = await request.read()
            if raw.strip():
                parsed = None
                if ctype == "application/json":
                    try:
                        parsed = json.loads(raw)
                    except ValueError:
                        parsed = None
                if isinstance(parsed, dict) and isinstance(parsed.get("config"), str):
                    text = parsed["config"]
                elif isinstance(parsed, dict) and "config" in parsed and isinstance(parsed["config"], dict):
                    table = parsed["config"]
                elif isinstance(parsed, dict):
                    table = parsed
                else:
                    text = raw.decode()
        if (text is None or not str(text).strip()) and table is None:
            raise _err(400, "expected a declarative configuration")
        flatten = self.info.flatten_errors and query.get("flatten_errors", "").lower() in _TRUTHY
        try:
            if table is not None:
                cfg = declarative.load(table, node.version, enabled_plugins=node.plugins_enabled)
            else:
                cfg = declarative.load_text(text, node.version, enabled_plugins=node.plugins_enabled)
        except declarative.DeclarativeError as exc:
            raise HTTPDone(400, exc.body(flatten))
        if query.get("check_hash") == "1" and node.config_loaded and cfg.hash == node.config.hash:
            return 304, None, {}
        # the load runs under the declarative lock (kong/db/declarative/import.lua:570-590 at 3.9.3:
        # TTL 60 s, no wait); another load meanwhile is told to come back (kong/api/routes/config.lua:154-158)
        if self._declarative_lock_since is not None:
            ttl = DECLARATIVE_LOCK_TTL_S - (time.monotonic() - self._declarative_lock_since)
            retry_after = min(ttl, DECLARATIVE_RETRY_TTL_MAX_S)
            raise HTTPDone(
                429,
                {"message": "Currently loading previous configuration"},
                {"Retry-After": "10" if retry_after >= DECLARATIVE_RETRY_TTL_MAX_S else f"{retry_after:.3f}"},
            )
        self._declarative_lock_since = time.monotonic()
        try:
            await asyncio.sleep(INIT_WORKER_BASE_S + INIT_WORKER_PER_ENTITY_S * cfg.count())
            if node.exiting:
                raise _err(503, "Kong currently exiting")
            node.set_config(cfg)
            node.keep_config()
        finally:
            self._declarative_lock_since = None
        node.log("notice", "[kong] config.lua: declarative config loaded from POST /config, hash " + cfg.hash)
        return 201, declarative.entities_by_id(cfg), {}

    # --------------------------------------------------------------------------- clustering
    def clustering(self, request, what, query):
        if self.node.role != "control_plane":
            raise _err(400, "this endpoint is only available when Kong is configured to run as Control Plane for the cluster")
        if request.method != "GET":
            raise _err(405, "Method not allowed")
        rows = self.app.data_planes()
        if what == "status":
            out = {r["id"]: {"config_hash": r["config_hash"], "hostname": r["hostname"], "ip": r["ip"], "last_seen": r["last_seen"]} for r in rows}
            return 200, out, {"Deprecation": "true"}
        return 200, paginate(sorted(rows, key=lambda r: r["id"]), query.get("size"), query.get("offset"), "/clustering/data-planes"), {}


def entity_write_timeout() -> float:
    return 10.0


async def run_blocking(func, *args):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, func, *args)
