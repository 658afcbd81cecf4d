"""Free loopback ports for test servers.

Ports come from below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999
by default): a port taken from the ephemeral range with bind(0) and released again can be given
by the kernel to any outgoing connection (a load generator's, Ansible's, a health check's) before
the server under test binds it, and nginx then fails with "bind() ... (98: Address already in
use)". Each pytest-xdist worker draws from its own block, so two workers never hand out the same
port, and a process never hands out a port twice while it has another one left to give.
"""
from __future__ import annotations

import os
import socket
import threading

_LOW, _HIGH = 10000, 20000  # the sandboxes take 20000-31000 (tests/sandbox/procs.py)
_BLOCKS = 8
_lock = threading.Lock()
_next: int | None = None


def _block() -> tuple[int, int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else _BLOCKS - 1
    size = (_HIGH - _LOW) // _BLOCKS
    start = _LOW + (index % _BLOCKS) * size
    return start, start + size


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, outside the ephemeral range, not handed out before by this
    process (until its block wraps around)."""
    global _next
    start, end = _block()
    with _lock:
        if _next is None or not start <= _next < end:
            _next = start + os.getpid() % (end - start)
        for _ in range(end - start):
            port = _next
            _next = start if _next + 1 >= end else _next + 1
            if _bindable(host, port) and _bindable("0.0.0.0", port):
                return port
    raise RuntimeError(f"no free port left in {start}-{end - 1}")


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")
            time.sleep(0.05)
