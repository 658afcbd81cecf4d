"""The Kong simulator's single-node throughput and p99, from tests/kongsim/bench_throughput.py."""

from __future__ import annotations

import os

from bench.common import REPO, loadavg, parse_float, python, run_logged, tail

SCRIPT = os.path.join(REPO, "tests", "kongsim", "bench_throughput.py")


def simulator_throughput(work: str, version: str = "3.9.3", seconds: float = 5, rate: float = 1000) -> dict:
    log = os.path.join(work, "logs", "simulator-throughput.log")
    if os.path.exists(log):
        os.unlink(log)
    result: dict = {"version": version, "seconds": seconds, "open_loop_target_rate": rate, "log": log, "loadavg_before": loadavg()}
    rc, secs = run_logged([python(), SCRIPT, "--version", version, "--seconds", str(seconds), "--rate", str(rate)], log, timeout=300)
    result.update(rc=rc, took_seconds=secs, loadavg_after=loadavg())
    text = tail(log, 20000)
    open_line = next((ln for ln in text.splitlines() if ln.startswith("open loop")), "")
    closed_line = next((ln for ln in text.splitlines() if ln.startswith("closed loop")), "")
    result["open_loop"] = {
        "achieved_rate": parse_float(r"achieved (\d+(?:\.\d+)?) req/s", open_line),
        "errors": parse_float(r"errors (\d+)", open_line),
        "p50_ms": parse_float(r"p50 (\d+(?:\.\d+)?) ms", open_line),
        "p99_ms": parse_float(r"p99 (\d+(?:\.\d+)?) ms", open_line),
    }
    result["closed_loop"] = {
        "connections": parse_float(r"closed loop: (\d+) connections", closed_line),
        "max_rate": parse_float(r"connections, (\d+(?:\.\d+)?) req/s", closed_line),
        "p50_ms": parse_float(r"p50 (\d+(?:\.\d+)?) ms", closed_line),
        "p99_ms": parse_float(r"p99 (\d+(?:\.\d+)?) ms", closed_line),
    }
    if rc != 0 or not open_line or not closed_line:
        result["error"] = f"bench_throughput.py exit code {rc}; see {log}"
    return result
