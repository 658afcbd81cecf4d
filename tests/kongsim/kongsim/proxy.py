"""Proxy data path: routing, plugins (key-auth, request-termination, prometheus), forwarding."""

from __future__ import annotations

import json
import os
import time
import uuid
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from multidict import CIMultiDict

from . import versions
from .router import join_upstream_path
from .upstream import Pool, UpstreamError

HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization")
)
_SKIP_RESPONSE = HOP_BY_HOP | {"content-length", "date"}
# Kong/kong kong/plugins/request-termination/handler.lua:4-11 (2.8.5 and 3.4.2)
_ECHO_DEFAULT_RESPONSE = {
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    500: "An unexpected error occurred",
    502: "Bad Gateway",
    503: "Service unavailable",
}


def _accept_type(accept: str) -> str:
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("application/json", "*/*"):
            return "json"
        if media == "text/html":
            return "html"
        if media in ("application/xml", "text/xml"):
            return "xml"
        if media == "text/plain":
            return "text"
    return "json"


def error_body(info, status: int, message: str | None, request_id: str | None, accept: str):
    """Kong's error templates (FACTS 8.1 `request_id` rows, 4.5)."""
    msg = message if message is not None else versions.default_message(status)
    kind = _accept_type(accept)
    rid = request_id if info.request_id else None
    if kind == "text":
        body = f"{msg}\n" + (f"request_id: {rid}\n" if rid else "")
        return body, "text/plain; charset=utf-8"
    if kind == "html":
        title = info.html_title
        body = (
            '<!doctype html>\n<html>\n  <head>\n    <meta charset="utf-8">\n'
            '    <meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"    <title>{title}</title>\n  </head>\n  <body>\n    <h1>{title}</h1>\n"
            f"    <p>{msg}.</p>\n" + (f"    <p>request_id: {rid}</p>\n" if rid else "") + "  </body>\n</html>\n"
        )
        return body, "text/html; charset=utf-8"
    if kind == "xml":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<error>\n'
            f"  <message>{msg}</message>\n" + (f"  <requestid>{rid}</requestid>\n" if rid else "") + "</error>\n"
        )
        return body, "application/xml; charset=utf-8"
    esc = msg.replace("\\", "\\\\").replace('"', '\\"')
    if rid:
        body = f'{{\n  "message":"{esc}",\n  "request_id":"{rid}"\n}}'
    else:
        body = f'{{\n  "message":"{esc}"\n}}'
    return body, "application/json; charset=utf-8"


class Exit(Exception):
    def __init__(self, status, message=None, headers=None, body=None, content_type=None, source="exit"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.body = body
        self.content_type = content_type
        self.source = source


class Proxy:
    def __init__(self, node):
        self.node = node
        self.info = node.info
        tokens = {t.strip().lower() for t in str(node.conf.get("headers") or "").split(",")}
        if "off" in tokens:
            tokens = set()
        self.server_tokens = "server_tokens" in tokens
        self.latency_tokens = "latency_tokens" in tokens
        self.request_id_header = "x-kong-request-id" in tokens
        up = {t.strip().lower() for t in str(node.conf.get("headers_upstream") or "").split(",")}
        self.request_id_upstream = self.info.request_id and "x-kong-request-id" in up
        self.server_value = f"kong/{node.version}"
        self.via_value = f"1.1 kong/{node.version}" if self.info.via_http_version else f"kong/{node.version}"
        self.pool = None
        self.counters = {}

    async def start(self):
        self.pool = Pool(int(self.node.conf.get("upstream_keepalive_pool_size") or 512))

    async def close(self):
        if self.pool is not None:
            self.pool.close()

    # ------------------------------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        node = self.node
        t0 = time.monotonic()
        node.requests_total += 1
        node.inflight += 1
        request_id = uuid.uuid4().hex if self.info.request_id else None
        ctx = {"route": None, "service": None, "consumer": None, "source": "exit", "prom": None}
        try:
            try:
                resp = await self._process(request, request_id, ctx, t0)
            except Exit as ex:
                resp = self._kong_response(request, ex, request_id, t0)
                ctx["source"] = ex.source
            if node.exiting:
                resp.force_close()
            self._count(ctx, resp.status)
            self._log_access(request, resp, request_id)
            return resp
        finally:
            node.inflight -= 1

    def _kong_response(self, request, ex: Exit, request_id, t0) -> web.Response:
        headers = CIMultiDict()
        if ex.body is not None:
            body = ex.body if isinstance(ex.body, str) else str(ex.body)
            ctype = ex.content_type or "application/json; charset=utf-8"
        else:
            body, ctype = error_body(self.info, ex.status, ex.message, request_id, request.headers.get("Accept", ""))
        headers["Content-Type"] = ctype
        for k, v in ex.headers.items():
            headers[k] = v
        if self.latency_tokens:
            headers["X-Kong-Response-Latency"] = str(int((time.monotonic() - t0) * 1000))
        headers["Server"] = self.server_value if self.server_tokens else headers.get("Server", "openresty")
        if self.server_tokens is False:
            headers.popall("Server", None)
        if request_id and self.request_id_header:
            headers["X-Kong-Request-Id"] = request_id
        return web.Response(status=ex.status, body=body.encode(), headers=headers)

    async def _process(self, request, request_id, ctx, t0):
        node = self.node
        router = node.router
        host_header = request.headers.get("Host", "")
        host = host_header.rsplit(":", 1)[0] if not host_header.startswith("[") else host_header
        host = host.lower()
        path = request.raw_path.split("?", 1)[0]
        compiled, matched = router.find(request.method, host, path, request.headers)
        prom = router.plugin_for("prometheus", None, None) if router.has_prometheus else None
        ctx["prom"] = prom
        if compiled is None:
            raise Exit(404, "no Route matched with those values")
        route, service = compiled.route, compiled.service
        ctx["route"], ctx["service"] = route, service
        if "http" not in compiled.protocols:
            raise Exit(
                route.get("https_redirect_status_code") or 426, "Please use HTTPS protocol", headers={"Connection": "Upgrade", "Upgrade": "TLS/1.2, HTTP/1.1"}
            )
        route_id = route["id"]
        service_id = service["id"] if service else None
        if router.has_prometheus:
            ctx["prom"] = router.plugin_for("prometheus", route_id, service_id)
        raw_query = request.raw_path.partition("?")[2]
        query = parse_qsl(raw_query, keep_blank_values=True)
        headers = CIMultiDict(request.headers)
        ka = router.plugin_for("key-auth", route_id, service_id)
        if ka is not None:
            query = self._key_auth(ka, request, headers, query, ctx)
        consumer_id = ctx["consumer"]["id"] if ctx["consumer"] else None
        rt = router.plugin_for("request-termination", route_id, service_id, consumer_id)
        if rt is not None:
            cfg = rt["config"]
            if cfg.get("trigger") or cfg.get("echo"):
                trigger = cfg.get("trigger")
                # a trigger set but in neither the headers nor the query: the plugin does nothing
                if trigger and trigger not in request.headers and not any(k == trigger for k, _ in query):
                    rt = None
        if rt is not None:
            cfg = rt["config"]
            if cfg.get("echo"):
                await self._echo(request, cfg, compiled, host, path, query)
            if cfg.get("body") is not None:
                raise Exit(cfg["status_code"], body=cfg["body"], content_type=cfg.get("content_type") or "application/json; charset=utf-8")
            raise Exit(cfg.get("status_code") or 503, cfg.get("message"))
        if router.has_prometheus and consumer_id:
            ctx["prom"] = router.plugin_for("prometheus", route_id, service_id, consumer_id) or ctx["prom"]
        if service is None:
            raise Exit(500, "An unexpected error occurred", source="error")
        remainder = path
        if compiled.strip_path and matched:
            remainder = path[len(matched) :]
            if not remainder.startswith("/"):
                remainder = "/" + remainder
        upstream_path = join_upstream_path(service.get("path"), remainder, compiled.path_handling)
        qs = urlencode(query) if query != parse_qsl(raw_query, keep_blank_values=True) else raw_query
        if qs:
            upstream_path += "?" + qs
        return await self._forward(request, headers, service, compiled, upstream_path, host_header, request_id, ctx, t0)

    async def _echo(self, request, cfg, compiled, host, path, query):
        """request-termination with `echo`: a copy of the request, the node, and the route and service
        the router matched (Kong/kong kong/plugins/request-termination/handler.lua:26-61 at 2.8.5;
        3.x adds request.uri_captures, handler.lua:55 at 3.4.2)."""
        status = cfg.get("status_code") or 503
        headers = {}
        for name, value in request.headers.items():
            key = name.lower()
            if key in headers:
                headers[key] = (headers[key] if isinstance(headers[key], list) else [headers[key]]) + [value]
            else:
                headers[key] = value
        args = {}
        for key, value in query:
            value = value if value != "" or f"{key}=" in request.raw_path else True
            args[key] = (args[key] if isinstance(args[key], list) else [args[key]]) + [value] if key in args else value
        raw = (await request.read()).decode("utf-8", "replace")
        req = {
            "scheme": "http",
            "host": host,
            "port": (request.transport.get_extra_info("sockname") or (None, None))[1] if request.transport else None,
            "headers": headers,
            "query": args,
            "raw_body": raw,
            "method": request.method,
            "path": path,
        }
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if raw and ctype == "application/json":
            try:
                req["body"] = json.loads(raw)
            except ValueError:
                pass
        elif ctype == "application/x-www-form-urlencoded":
            req["body"] = dict(parse_qsl(raw, keep_blank_values=True))
        if self.info.major >= 3:
            unnamed, named = compiled.captures(path)
            req["uri_captures"] = {"unnamed": unnamed, "named": named}
        content = {
            "kong": {"node_id": self.node.node_id, "worker_pid": os.getpid(), "hostname": self.node.hostname},
            "request": req,
            "matched_route": compiled.route,
        }
        if compiled.service is not None:
            content["matched_service"] = compiled.service
        message = cfg.get("message") or _ECHO_DEFAULT_RESPONSE.get(status)
        if message is not None:
            content["message"] = message
        raise Exit(status, body=json.dumps(content), content_type="application/json; charset=utf-8")

    def _key_auth(self, plugin, request, headers, query, ctx):
        cfg = plugin["config"]
        info = self.info
        if request.method == "OPTIONS" and not cfg.get("run_on_preflight", True):
            return query
        realm = cfg.get("realm")
        www_all = info.keyauth_www_auth_all
        www = (f'Key realm="{realm}"' if realm else "Key") if www_all else 'Key realm="kong"'
        key = None
        for name in cfg.get("key_names") or ["apikey"]:
            if cfg.get("key_in_header", True):
                values = headers.getall(name, [])
                if len(values) > 1:
                    raise Exit(401, "Duplicate API key found", headers={"WWW-Authenticate": www} if www_all else {})
                if values:
                    key = values[0]
                    if cfg.get("hide_credentials"):
                        headers.popall(name, None)
                    break
            if cfg.get("key_in_query", True):
                values = [v for k, v in query if k == name]
                if len(values) > 1:
                    raise Exit(401, "Duplicate API key found", headers={"WWW-Authenticate": www} if www_all else {})
                if values:
                    key = values[0]
                    if cfg.get("hide_credentials"):
                        query = [(k, v) for k, v in query if k != name]
                    break
        router = self.node.router
        if not key:
            anon = cfg.get("anonymous")
            if anon:
                consumer = router.consumers.get(anon) or next((c for c in router.consumers.values() if c.get("username") == anon), None)
                if consumer is None:
                    raise Exit(500, "An unexpected error occurred", source="error")
                self._set_consumer(headers, consumer, None, anonymous=True)
                ctx["consumer"] = consumer
                return query
            raise Exit(401, "No API key found in request", headers={"WWW-Authenticate": www})
        cred = router.credentials.get(key)
        if cred is not None and cred.get("ttl") and cred.get("created_at") and time.time() > cred["created_at"] + cred["ttl"]:
            cred = None
        if cred is None:
            raise Exit(401, info.keyauth_invalid_message, headers={"WWW-Authenticate": www} if www_all else {})
        consumer = router.consumers.get((cred.get("consumer") or {}).get("id"))
        if consumer is None:
            raise Exit(401, info.keyauth_invalid_message, headers={"WWW-Authenticate": www} if www_all else {})
        self._set_consumer(headers, consumer, cred, anonymous=False)
        ctx["consumer"] = consumer
        return query

    @staticmethod
    def _set_consumer(headers, consumer, cred, anonymous):
        for h in ("X-Consumer-ID", "X-Consumer-Custom-ID", "X-Consumer-Username", "X-Credential-Identifier", "X-Anonymous-Consumer"):
            headers.popall(h, None)
        headers["X-Consumer-ID"] = consumer["id"]
        if consumer.get("custom_id"):
            headers["X-Consumer-Custom-ID"] = consumer["custom_id"]
        if consumer.get("username"):
            headers["X-Consumer-Username"] = consumer["username"]
        if cred is not None:
            headers["X-Credential-Identifier"] = cred["id"]
        if anonymous:
            headers["X-Anonymous-Consumer"] = "true"

    async def _forward(self, request, headers, service, compiled, upstream_path, host_header, request_id, ctx, t0):
        node = self.node
        router = node.router
        body = await request.read()
        out = CIMultiDict()
        for k, v in headers.items():
            if k.lower() not in HOP_BY_HOP and k.lower() != "host" and k.lower() != "content-length":
                out.add(k, v)
        peer_ip = request.remote or ""
        xff = headers.get("X-Forwarded-For")
        out["X-Forwarded-For"] = f"{xff}, {peer_ip}" if xff else peer_ip
        out["X-Forwarded-Proto"] = "http"
        out["X-Forwarded-Host"] = host_header.rsplit(":", 1)[0] if host_header else ""
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        out["X-Forwarded-Port"] = str(sock[1]) if sock else ""
        out["X-Forwarded-Path"] = request.raw_path.split("?", 1)[0]
        out["X-Real-IP"] = peer_ip
        if self.request_id_upstream and request_id:
            out["X-Kong-Request-Id"] = request_id
        if self.info.via_http_version:
            client_via = headers.get("Via")
            proto = f"{request.version.major}.{request.version.minor}"
            mine = f"{proto} kong/{node.version}"
            out["Via"] = f"{client_via}, {mine}" if client_via else mine
        balancer = router.balancers.get(service["host"])
        retries = service.get("retries", 5) or 0
        connect_timeout = (service.get("connect_timeout") or 60000) / 1000
        read_timeout = (service.get("read_timeout") or 60000) / 1000
        attempt = 0
        t_up = time.monotonic()
        while True:
            if balancer is not None:
                peer = balancer.pick()
                if peer is None:
                    raise Exit(503, "failure to get a peer from the ring-balancer", source="error")
                host, port = peer
            else:
                host, port = service["host"], service.get("port") or 80
            if compiled.preserve_host and host_header:
                out["Host"] = host_header
            else:
                out["Host"] = host if port in (80, 443) else f"{host}:{port}"
            t_up = time.monotonic()
            try:
                up = await self.pool.request(host, port, request.method, upstream_path, out.items(), body, connect_timeout, read_timeout)
                return self._proxied_response(up, request_id, ctx, t0, t_up)
            except UpstreamError as exc:
                if exc.kind == "dns":
                    raise Exit(503, "name resolution failed", source="error")
                if exc.kind == "timeout":
                    node.log(
                        "error",
                        f"upstream timed out (110: Connection timed out) while reading "
                        f'response header from upstream, upstream: "http://{host}:{port}'
                        f'{upstream_path}"',
                    )
                    raise Exit(504, None, source="error")
                attempt += 1
                if exc.kind == "connect" and attempt <= retries:
                    continue
                node.log("error", f'{exc} while connecting to upstream, upstream: "http://{host}:{port}{upstream_path}"')
                raise Exit(502, None, source="error")

    def _proxied_response(self, up, request_id, ctx, t0, t_up):
        ctx["source"] = "service"
        headers = CIMultiDict()
        for k, v in up.headers:
            if k.lower() not in _SKIP_RESPONSE:
                headers.add(k, v)
        payload = up.body
        now = time.monotonic()
        if self.server_tokens:
            upstream_via = headers.get("Via")
            if self.info.via_http_version and upstream_via:
                headers["Via"] = f"{upstream_via}, {self.via_value}"
            else:
                headers["Via"] = self.via_value
            if "Server" not in headers:
                headers["Server"] = self.server_value if self.info.server_header_kong_when_missing else "openresty"
        elif "Server" not in headers:
            headers["Server"] = "openresty"
        if self.latency_tokens:
            up_ms = int((now - t_up) * 1000)
            headers["X-Kong-Upstream-Latency"] = str(up_ms)
            headers["X-Kong-Proxy-Latency"] = str(max(0, int((t_up - t0) * 1000)))
        if request_id and self.request_id_header:
            headers["X-Kong-Request-Id"] = request_id
        return web.Response(status=up.status, reason=up.reason or None, body=payload, headers=headers)

    # metrics ----------------------------------------------------------------------------
    def _count(self, ctx, status):
        prom = ctx.get("prom")
        if prom is None:
            return
        if self.info.prometheus_v3 and not prom["config"].get("status_code_metrics"):
            return
        svc = ctx["service"]
        route = ctx["route"]
        service_name = (svc.get("name") or svc.get("host") or "") if svc else ""
        route_name = (route.get("name") or route["id"]) if route else ""
        consumer = ""
        if prom["config"].get("per_consumer") and ctx.get("consumer"):
            consumer = ctx["consumer"].get("username") or ctx["consumer"]["id"]
        key = (service_name, route_name, str(status), ctx.get("source") or "exit", consumer)
        self.counters[key] = self.counters.get(key, 0) + 1

    def _log_access(self, request, resp, request_id):
        ts = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        ua = request.headers.get("User-Agent", "-")
        line = (
            f'{request.remote} - - [{ts}] "{request.method} {request.raw_path} HTTP/'
            f'{request.version.major}.{request.version.minor}" {resp.status} '
            f'{resp.content_length or 0} "{request.headers.get("Referer", "-")}" "{ua}"'
        )
        if request_id:
            line += f' kong_request_id: "{request_id}"'
        self.node.access(line)


def prometheus_text(node, proxy) -> str:
    """Prometheus exposition of the prometheus plugin (3.x: kong_http_requests_total; 2.8: kong_http_status)."""
    info = node.info
    lines = []
    reachable = 1 if getattr(node, "db_reachable", True) else 0
    lines += [
        "# HELP kong_datastore_reachable Datastore reachable from Kong, 0 is unreachable",
        "# TYPE kong_datastore_reachable gauge",
        f"kong_datastore_reachable {reachable}",
    ]
    if info.prometheus_v3:
        if proxy.counters:
            lines += ["# HELP kong_http_requests_total HTTP status codes per consumer/service/route in Kong", "# TYPE kong_http_requests_total counter"]
            for (svc, route, code, source, consumer), n in sorted(proxy.counters.items()):
                lines.append(
                    f'kong_http_requests_total{{service="{svc}",route="{route}",code="{code}",source="{source}",workspace="default",consumer="{consumer}"}} {n}'
                )
        lines += [
            "# HELP kong_nginx_connections_total Number of connections by subsystem",
            "# TYPE kong_nginx_connections_total gauge",
            (f'kong_nginx_connections_total{{node_id="{node.node_id}",subsystem="http",state="accepted"}} {node.connections_accepted}'),
            (f'kong_nginx_connections_total{{node_id="{node.node_id}",subsystem="http",state="active"}} {node.inflight}'),
            "# HELP kong_nginx_requests_total Number of requests total",
            "# TYPE kong_nginx_requests_total gauge",
            f'kong_nginx_requests_total{{node_id="{node.node_id}",subsystem="http"}} {node.requests_total}',
            "# HELP kong_node_info Kong Node metadata information",
            "# TYPE kong_node_info gauge",
            f'kong_node_info{{node_id="{node.node_id}",version="{node.version}"}} 1',
        ]
    else:
        if proxy.counters:
            lines += ["# HELP kong_http_status HTTP status codes per service/route in Kong", "# TYPE kong_http_status counter"]
            for (svc, route, code, _source, _consumer), n in sorted(proxy.counters.items()):
                lines.append(f'kong_http_status{{service="{svc}",route="{route}",code="{code}"}} {n}')
        lines += [
            "# HELP kong_nginx_http_current_connections Number of HTTP connections",
            "# TYPE kong_nginx_http_current_connections gauge",
            f'kong_nginx_http_current_connections{{state="accepted"}} {node.connections_accepted}',
            f'kong_nginx_http_current_connections{{state="active"}} {node.inflight}',
            f'kong_nginx_http_current_connections{{state="total"}} {node.requests_total}',
        ]
    lines += [
        "# HELP kong_nginx_metric_errors_total Number of nginx-lua-prometheus errors",
        "# TYPE kong_nginx_metric_errors_total counter",
        "kong_nginx_metric_errors_total 0",
    ]
    return "\n".join(lines) + "\n"
