"""What every bench scenario shares: paths, timing, the machine description, logs."""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
RESULTS_DIR = os.path.join(REPO, "bench", "results")
WORK_ROOT = os.path.join(REPO, ".cache", "bench")
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def python() -> str:
    venv = os.path.join(VENV_BIN, "python")
    return venv if os.path.exists(venv) else sys.executable


def loadavg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def _first_line(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine() -> dict:
    mem_kib = 0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
    except OSError:
        pass
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ansible = _first_line([os.path.join(VENV_BIN, "ansible-playbook"), "--version"])
    return {
        "hostname": socket.gethostname(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ansible": ansible,
        "haproxy": _first_line(["/usr/sbin/haproxy", "-v"]),
        "postgresql": _first_line(["/usr/lib/postgresql/15/bin/postgres", "--version"]),
        "loadavg_at_start": loadavg(),
    }


def low_port_base(span: int, start: int = 20000, stop: int = 32000) -> int:
    """A base port below the ephemeral range with ``span`` free ports above it (the sandbox allocates
    its ports upward from its load-balancer port and refuses to go into the ephemeral range)."""
    from tests.sandbox.procs import port_is_free

    base = start + (os.getpid() % 40) * 250
    while base + span < stop:
        if all(port_is_free(p) for p in range(base, base + span, max(1, span // 8))) and port_is_free(base):
            return base
        base += span
    raise RuntimeError(f"no run of {span} free loopback ports between {start} and {stop}")


class Timer:
    def __enter__(self):
        self.start = time.monotonic()
        self.wall_start = time.time()
        return self

    def __exit__(self, *exc):
        self.seconds = round(time.monotonic() - self.start, 3)
        return False


def run_logged(argv: list[str], log_path: str, env: dict | None = None, cwd: str | None = None, timeout: float | None = None) -> tuple[int, float]:
    """Run a command with its output in ``log_path``; (exit code, seconds)."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "a") as log, Timer() as timer:
        log.write("$ " + " ".join(argv) + "\n")
        log.flush()
        try:
            proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd or REPO, timeout=timeout, check=False)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = -1
            log.write(f"\n(timed out after {timeout} s)\n")
    return rc, timer.seconds


def tail(path: str, chars: int = 1500) -> str:
    try:
        with open(path, errors="replace") as fh:
            return fh.read()[-chars:]
    except OSError:
        return ""


def write_json(path: str, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.write("\n")
    os.replace(tmp, path)


def parse_float(pattern: str, text: str) -> float | None:
    found = re.search(pattern, text)
    return float(found.group(1)) if found else None
