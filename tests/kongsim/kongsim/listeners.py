"""Listening sockets with nginx-like graceful close: no connection the kernel completed is reset."""
from __future__ import annotations

import asyncio
import ctypes
import errno
import socket

SO_ATTACH_FILTER = 26

# Classic BPF run on each segment a listening TCP socket receives (data starts at the TCP
# header): drop a SYN without ACK, accept everything else. New connection attempts then get no
# answer (the client retries, then is refused once the socket is closed), while handshakes
# already under way complete and can still be accepted and served.
_SYN_DROP = [
    (0x30, 0, 0, 13),          # ldb [13]        TCP flags
    (0x54, 0, 0, 0x12),        # and #SYN|ACK
    (0x15, 0, 1, 0x02),        # jeq #SYN -> drop
    (0x06, 0, 0, 0),           # ret #0
    (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1
]


class _Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Filter))]


def refuse_new_syns(sock: socket.socket) -> bool:
    arr = (_Filter * len(_SYN_DROP))(*[_Filter(*ins) for ins in _SYN_DROP])
    prog = _Prog(len(_SYN_DROP), ctypes.cast(arr, ctypes.POINTER(_Filter)))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(ctypes.string_at(ctypes.addressof(prog),
                                                                                  ctypes.sizeof(prog))))
        return True
    except OSError:
        return False


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

    def __init__(self, name: str, sock: socket.socket, factory, on_accept=None):
        self.name = name
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
        self.loop.create_task(self.loop.connect_accepted_socket(self.factory, conn))

    async def close_gracefully(self, linger: float = 0.05):
        """Stop taking new connections but serve every one the kernel already completed."""
        if self.closed:
            return
        self.closed = True
        refuse_new_syns(self.sock)
        deadline = self.loop.time() + linger
        while True:
            self._accept_ready()
            if self.loop.time() >= deadline:
                break
            await asyncio.sleep(0.005)
        self._accept_ready()
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def close_now(self):
        if not self.closed:
            self.closed = True
            try:
                self.loop.remove_reader(self.sock.fileno())
            except (ValueError, OSError):
                pass
            self.sock.close()



