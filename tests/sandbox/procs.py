"""Processes the sandbox starts and later stops, identified by pid and start time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from tests.services.ports import port_is_free, worker_slice


def start_time(pid: int) -> int | None:
    """Kernel start time of ``pid`` (clock ticks since boot), None when it does not run."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    # field 22; the command name (field 2) may hold spaces, so count after its closing ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def alive(proc: dict | None) -> bool:
    """``proc`` is ``{"pid": N, "start": T}`` as recorded by :func:`spawn`."""
    if not proc or not proc.get("pid"):
        return False
    started = start_time(proc["pid"])
    return started is not None and (proc.get("start") is None or started == proc["start"])


def record(pid: int) -> dict:
    return {"pid": pid, "start": start_time(pid)}


def spawn(argv: list[str], log_path: str, cwd: str | None = None, env: dict | None = None) -> dict:
    """Start a long-running process detached from our session (it outlives this command)."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True, close_fds=True)
    return record(proc.pid)


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry))
    return found


def terminate(proc: dict | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> bool:
    """Signal a recorded process and wait for it to go; SIGKILL after ``timeout``. True if it was running."""
    if not alive(proc):
        return False
    pid = proc["pid"]
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while alive(proc):
        _reap(pid)
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 5
        time.sleep(0.05)
    return True


def wait_gone(proc: dict | None, timeout: float = 10.0) -> bool:
    """Wait up to ``timeout`` for a recorded process to exit (without signalling it). True once it is gone."""
    deadline = time.monotonic() + timeout
    while alive(proc):
        _reap(proc["pid"])
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0, proc: dict | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            if proc is not None and not alive(proc):
                return False
            time.sleep(0.05)
    return False


def sandbox_base_port(span: int = 30, low: int = 20000, high: int = 31000) -> int:
    """A base for a sandbox's ports with ``span`` free ports above it, below the ephemeral range.

    Each pytest-xdist worker draws from its own slice of the range, so sandboxes that
    parallel workers start never share a port; within a slice the base is random, so a
    sandbox an earlier test left behind (or one started by hand) is stepped around."""
    import random

    first, end = worker_slice(low, high)
    last = end - 2 * span
    for _attempt in range(200):
        base = random.randrange(first, max(first + 1, last), 50)
        if all(port_is_free(port) for port in range(base, base + span)):
            return base
    raise RuntimeError(f"no block of {span} free loopback ports between {first} and {last + span}")


class PortAllocator:
    """Hands out loopback ports upward from ``base`` that nothing listens on, below the ephemeral range."""

    def __init__(self, base: int, taken: set[int] | None = None):
        self.next = base
        self.taken = set(taken or ())

    def take(self) -> int:
        while self.next < 32768:
            port = self.next
            self.next += 1
            if port not in self.taken and port_is_free(port):
                self.taken.add(port)
                return port
        raise RuntimeError("no free loopback port left below 32768")
