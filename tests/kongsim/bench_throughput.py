"""Single-node proxy throughput of the Kong simulator (not a test; `make bench` runs it).

    .venv/bin/python tests/kongsim/bench_throughput.py [--version 3.9.3] [--seconds 10] [--rate 1000]

Starts an echo upstream and one simulated node pinned to one CPU core, then measures
(1) a closed-loop load (--concurrency connections): the maximum requests/s, then
(2) an open-loop load at --rate requests/s: achieved rate, errors, p50/p99 latency.
The client is the simulator's own small HTTP client (cheap enough not to be the bottleneck).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


from kongsim.upstream import Pool, UpstreamError
from kongsim_testlib import EchoUpstream, KongNode, install_kong, simple_config


def pin(pid: int, cpu: int) -> None:
    try:
        os.sched_setaffinity(pid, {cpu})
    except (AttributeError, OSError):
        pass


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def open_loop(url, headers, rate, seconds):
    """Requests on a fixed schedule (a slow answer does not delay the next one), keep-alive."""
    parts = urlsplit(url)
    hdrs = [("Host", parts.netloc)] + list(headers.items())
    pool = Pool()
    latencies, statuses = [], {}
    errors = 0

    async def one():
        nonlocal errors
        t0 = time.perf_counter()
        try:
            resp = await pool.request(parts.hostname, parts.port, "GET", parts.path, hdrs, b"", 10, 10)
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            if resp.status != 200:
                errors += 1
        except UpstreamError:
            errors += 1
        latencies.append((time.perf_counter() - t0) * 1000)

    tasks = []
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one()))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    pool.close()
    return n / elapsed, errors, latencies, statuses


async def closed_loop(url, headers, concurrency, seconds):
    parts = urlsplit(url)
    hdrs = [("Host", parts.netloc)] + list(headers.items())
    pool = Pool()
    count = 0
    latencies = []
    stop = time.perf_counter() + seconds

    async def worker():
        nonlocal count
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await pool.request(parts.hostname, parts.port, "GET", parts.path, hdrs, b"", 10, 10)
            latencies.append((time.perf_counter() - t0) * 1000)
            count += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    pool.close()
    return count / elapsed, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="3.9.3")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="kongsim-bench-")
    echo = EchoUpstream().start()
    node = None
    try:
        kong = install_kong(args.version, os.path.join(base, "install"))
        node = KongNode(kong, base, declarative=simple_config(echo.url, prometheus=True))
        node.start()
        ncpu = os.cpu_count() or 1
        pin(node.pid(), 0)
        if ncpu > 1:
            pin(os.getpid(), 1)
            pin(echo.proc.pid, 1)
        url = node.proxy_url + "/echo/bench"
        headers = {"apikey": "demo-key"}
        asyncio.run(closed_loop(url, headers, 4, 1.0))  # warm-up
        max_rate, lat2 = asyncio.run(closed_loop(url, headers, args.concurrency, args.seconds))
        print(f"closed loop: {args.concurrency} connections, {max_rate:.0f} req/s, p50 {pct(lat2, 0.50):.1f} ms, p99 {pct(lat2, 0.99):.1f} ms")
        rate, errors, lat, statuses = asyncio.run(open_loop(url, headers, args.rate, args.seconds))
        print(
            f"open loop  : target {args.rate:.0f} req/s, achieved {rate:.0f} req/s, errors {errors}, "
            f"p50 {pct(lat, 0.50):.1f} ms, p99 {pct(lat, 0.99):.1f} ms, statuses {statuses}"
        )
        ok = rate >= 0.95 * args.rate and errors == 0 and pct(lat, 0.99) < 20
        print(
            f"single node on one core: {max_rate:.0f} req/s max; at {args.rate:.0f} req/s p99 "
            f"{pct(lat, 0.99):.1f} ms -> {'OK' if ok else 'BELOW TARGET'} (target >= 1000 req/s, p99 < 20 ms)"
        )
        return 0
    finally:
        if node is not None:
            node.stop()
        echo.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
