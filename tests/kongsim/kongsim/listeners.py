"""Listening sockets; at SIGQUIT they close at once, as nginx closes its own (queued connections are reset)."""

from __future__ import annotations

import asyncio
import errno
import socket


def bind(ip: str, port: int, reuseport: bool = False, backlog: int = 16384) -> socket.socket:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport and hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((ip, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"bind() to {ip}:{port} failed ({exc.errno}: {exc.strerror})")
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


class Listener:
    """One listening socket served by an aiohttp low-level server (protocol factory)."""

    def __init__(self, name: str, sock: socket.socket, factory, on_accept=None, ssl=None, on_tls_error=None):
        self.name = name
        self.on_tls_error = on_tls_error
        self.ssl = ssl
        self.sock = sock
        self.factory = factory
        self.on_accept = on_accept
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self.loop.add_reader(sock.fileno(), self._accept_ready)

    def _accept_ready(self):
        for _ in range(256):
            try:
                conn, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ECONNABORTED):
                    return
                raise
            self._serve(conn)

    def _serve(self, conn: socket.socket):
        conn.setblocking(False)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.on_accept:
            self.on_accept()
        if self.ssl is not None:
            self.loop.create_task(self._tls_handshake(conn))
        else:
            self.loop.create_task(self.loop.connect_accepted_socket(self.factory, conn))

    async def _tls_handshake(self, conn: socket.socket):
        try:
            await self.loop.connect_accepted_socket(self.factory, conn, ssl=self.ssl)
        except (OSError, ConnectionError) as exc:  # ssl.SSLError is an OSError
            conn.close()
            if self.on_tls_error is not None:
                self.on_tls_error(exc)

    def close_now(self):
        if not self.closed:
            self.closed = True
            try:
                self.loop.remove_reader(self.sock.fileno())
            except (ValueError, OSError):
                pass
            self.sock.close()
