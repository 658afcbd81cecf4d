"""Free loopback ports for test servers.

Ports come from below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999
by default): a port taken from the ephemeral range with bind(0) and released again can be given
by the kernel to any outgoing connection (a load generator's, Ansible's, a health check's) before
the server under test binds it, and nginx then fails with "bind() ... (98: Address already in
use)". Each pytest-xdist worker draws from its own slice of a range (`worker_slice`, also the
sandboxes' slicing in tests/sandbox/procs.py), so two workers never hand out the same port, and a
process never hands out a port twice while it has another one left to give.
"""

from __future__ import annotations

import os
import socket
import threading

_LOW, _HIGH = 10000, 20000  # the sandboxes take 20000-31000 (tests/sandbox/procs.py)
_lock = threading.Lock()
_next: int | None = None


def worker_slice(low: int, high: int) -> tuple[int, int]:
    """This pytest-xdist worker's share [start, end) of the ports low..high-1 (all of them outside xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    index = int(worker) % count if worker.isdigit() else 0
    width = (high - low) // count
    return low + index * width, low + (index + 1) * width


def port_is_free(port: int, host: str = "127.0.0.1", reuse: bool = True) -> bool:
    """Whether a listener could bind ``port``. With ``reuse``, as the servers bind (SO_REUSEADDR:
    connections of an earlier run in TIME_WAIT do not block a listener)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, outside the ephemeral range, not handed out before by this
    process (until its block wraps around)."""
    global _next
    start, end = worker_slice(_LOW, _HIGH)
    with _lock:
        if _next is None or not start <= _next < end:
            _next = start + os.getpid() % (end - start)
        for _ in range(end - start):
            port = _next
            _next = start if _next + 1 >= end else _next + 1
            if port_is_free(port, host, reuse=False) and port_is_free(port, "0.0.0.0", reuse=False):
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
