"""A small HTTP/1.1 client with keep-alive pooling for the proxy path (cheaper than a general
client: one protocol object per upstream connection, responses buffered whole)."""

from __future__ import annotations

import asyncio
import socket


class UpstreamError(Exception):
    """kind: connect | timeout | dns | reset | protocol"""

    def __init__(self, kind: str, message: str, sent: bool = False, errno: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.sent = sent
        self.errno = errno


class Response:
    __slots__ = ("body", "headers", "keep_alive", "reason", "status")

    def __init__(self, status, reason, headers, body, keep_alive):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class _Conn(asyncio.Protocol):
    def __init__(self, pool, key):
        self.pool = pool
        self.key = key
        self.transport = None
        self.buf = bytearray()
        self.waiter = None
        self.closed = False
        self.head = None
        self.length = None
        self.chunked = False
        self.until_close = False
        self.no_body = False
        self.got_bytes = False

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc):
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            if self.head is not None and self.until_close:
                w.set_result(self._finish(bytes(self.buf), keep_alive=False))
            else:
                w.set_exception(UpstreamError("reset", "upstream prematurely closed connection", sent=self.got_bytes))

    def data_received(self, data):
        self.got_bytes = True
        self.buf += data
        w = self.waiter
        if w is None or w.done():
            return
        try:
            res = self._parse()
        except ValueError as exc:
            w.set_exception(UpstreamError("protocol", f"upstream sent an invalid response: {exc}", sent=True))
            self.transport.close()
            return
        if res is not None:
            w.set_result(res)

    def _parse(self):
        buf = self.buf
        if self.head is None:
            idx = buf.find(b"\r\n\r\n")
            if idx < 0:
                if len(buf) > 65536:
                    raise ValueError("header too large")
                return None
            lines = bytes(buf[:idx]).decode("latin-1").split("\r\n")
            del buf[: idx + 4]
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ValueError("bad status line")
            status = int(parts[1])
            headers = []
            length = None
            chunked = False
            conn_close = parts[0] == "HTTP/1.0"
            for line in lines[1:]:
                name, _, value = line.partition(":")
                value = value.strip()
                lname = name.lower()
                headers.append((name, value))
                if lname == "content-length":
                    length = int(value)
                elif lname == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
                elif lname == "connection":
                    low = value.lower()
                    if "close" in low:
                        conn_close = True
                    elif "keep-alive" in low:
                        conn_close = False
            self.head = (status, parts[2] if len(parts) > 2 else "", headers, conn_close)
            self.no_body = self.no_body or status in (204, 304) or 100 <= status < 200
            self.chunked = chunked and not self.no_body
            self.length = 0 if self.no_body else length
            self.until_close = not self.no_body and not chunked and length is None
        if self.no_body:
            return self._finish(b"", keep_alive=not self.head[3])
        if self.chunked:
            body = bytearray()
            pos = 0
            while True:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    return None
                size = int(bytes(buf[pos:end]).split(b";")[0], 16)
                if size == 0:
                    rest = end + 2
                    if buf[rest : rest + 2] == b"\r\n" or buf.find(b"\r\n\r\n", end) >= 0:
                        return self._finish(bytes(body), keep_alive=not self.head[3])
                    return None
                start = end + 2
                if len(buf) < start + size + 2:
                    return None
                body += buf[start : start + size]
                pos = start + size + 2
        if self.length is not None:
            if len(buf) < self.length:
                return None
            return self._finish(bytes(buf[: self.length]), keep_alive=not self.head[3])
        return None

    def _finish(self, body, keep_alive):
        status, reason, headers, _close = self.head
        return Response(status, reason, headers, body, keep_alive)

    async def request(self, raw: bytes, head_only: bool, timeout: float):
        self.buf.clear()
        self.head = None
        self.no_body = head_only
        self.got_bytes = False
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        self.transport.write(raw)
        try:
            return await asyncio.wait_for(self.waiter, timeout)
        except TimeoutError:
            self.transport.close()
            raise UpstreamError("timeout", "upstream timed out", sent=True)
        finally:
            self.waiter = None


class Pool:
    def __init__(self, max_idle: int = 512):
        self.idle = {}
        self.max_idle = max_idle

    async def _connect(self, host, port, timeout):
        loop = asyncio.get_running_loop()
        try:
            _t, conn = await asyncio.wait_for(loop.create_connection(lambda: _Conn(self, (host, port)), host, port), timeout)
        except TimeoutError:
            raise UpstreamError("timeout", "upstream timed out while connecting")
        except socket.gaierror as exc:
            raise UpstreamError("dns", f"name resolution failed: {exc}")
        except OSError as exc:
            raise UpstreamError("connect", f"connect() failed ({exc.errno}: {exc.strerror})", errno=exc.errno)
        return conn

    async def request(self, host, port, method, target, headers, body, connect_timeout, read_timeout):
        lines = [f"{method} {target} HTTP/1.1"]
        for name, value in headers:
            lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace") + body
        key = (host, port)
        idle = self.idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            try:
                resp = await conn.request(raw, method == "HEAD", read_timeout)
            except UpstreamError as exc:
                if exc.kind == "reset" and not exc.sent:
                    continue  # a kept-alive connection the upstream had closed: use another
                raise
            self._release(conn, resp)
            return resp
        conn = await self._connect(host, port, connect_timeout)
        resp = await conn.request(raw, method == "HEAD", read_timeout)
        self._release(conn, resp)
        return resp

    def _release(self, conn, resp):
        if resp.keep_alive and not conn.closed:
            lst = self.idle.setdefault(conn.key, [])
            if len(lst) < self.max_idle:
                lst.append(conn)
                return
        if conn.transport is not None:
            conn.transport.close()

    def close(self):
        for lst in self.idle.values():
            for conn in lst:
                if conn.transport is not None:
                    conn.transport.close()
        self.idle.clear()
