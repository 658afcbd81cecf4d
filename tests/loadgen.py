"""A steady HTTP load at a fixed request rate that records which Kong version served each request.

In a test or a driver::

    gen = LoadGenerator("http://127.0.0.1:18000/echo", rate=300, headers={"apikey": "demo-key"})
    gen.start()              # its own thread and event loop
    ...                      # run the upgrade
    summary = gen.stop()     # stops sending, waits for the requests in flight, returns summary()

From the shell::

    python -m tests.loadgen URL --rate 300 --duration 60 --header apikey:demo-key --out load.json

Requests are sent on a fixed schedule (an open model: a slow answer does not delay the next
request). Every request is recorded with its send time, status or error, latency and the Kong
version that served it, read from ``Via`` (``kong/3.7.1`` up to 3.7, ``1.1 kong/3.8.1`` from 3.8,
appended to the upstream's ``Via``) or, on responses Kong generated itself (key-auth 401),
from ``Server: kong/<version>``. ``failed`` counts sent requests answered non-2xx or not at all;
a request due while the backlog is full (the machine cannot keep the rate) is not sent and is
counted as ``not_sent``, never silently dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass

import aiohttp

NOT_SENT = "not_sent_backlog"
_KONG_TOKEN = re.compile(r"kong/(\d+(?:\.\d+){1,3})")


def kong_version(via: str | None, server: str | None = None) -> str | None:
    """The Kong version named by a response's ``Via`` (last Kong hop) or ``Server`` header."""
    if via:
        found = _KONG_TOKEN.findall(via)
        if found:
            return found[-1]
    if server and server.startswith("kong/"):
        found = _KONG_TOKEN.findall(server)
        if found:
            return found[0]
    return None


@dataclass
class Record:
    t: float  # seconds since the load started, when the request was due
    wall: float  # epoch seconds when the request was sent
    status: int | None  # HTTP status, None on a connection/timeout error
    error: str | None
    version: str | None
    latency_ms: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _percentile(sorted_values: list[float], pct: float) -> float | None:
    if not sorted_values:
        return None
    idx = min(len(sorted_values) - 1, max(0, round(pct / 100.0 * len(sorted_values) + 0.5) - 1))
    return round(sorted_values[idx], 2)


def summarize(records: list[Record], rate: float | None = None, started_at: float | None = None) -> dict:
    """Totals, failures, per-version counts and the per-second share of each version.

    ``total``/``ok``/``failed`` count the requests sent; ``not_sent`` counts the requests that were due
    while the backlog was full (the machine could not keep the target rate); ``due`` is both.
    """
    records = sorted(records, key=lambda r: r.t)
    sent = [r for r in records if r.error != NOT_SENT]
    failures = [r for r in sent if not r.ok]
    versions = Counter(r.version or "unknown" for r in sent if r.ok)
    latencies = sorted(r.latency_ms for r in sent if r.status is not None)
    per_second: dict[int, dict] = defaultdict(lambda: {"total": 0, "failed": 0, "not_sent": 0, "versions": Counter()})
    for r in records:
        bucket = per_second[int(r.t)]
        if r.error == NOT_SENT:
            bucket["not_sent"] += 1
            continue
        bucket["total"] += 1
        if r.ok:
            bucket["versions"][r.version or "unknown"] += 1
        else:
            bucket["failed"] += 1
    seconds = []
    for sec in sorted(per_second):
        bucket = per_second[sec]
        served = sum(bucket["versions"].values())
        seconds.append(
            {
                "second": sec,
                "wall": round(started_at + sec, 3) if started_at is not None else None,
                "total": bucket["total"],
                "failed": bucket["failed"],
                "not_sent": bucket["not_sent"],
                "versions": dict(bucket["versions"]),
                "share": {v: round(100.0 * n / served, 1) for v, n in bucket["versions"].items()} if served else {},
            }
        )
    duration = (records[-1].t - records[0].t) if len(records) > 1 else 0.0
    return {
        "started_at": started_at,
        "target_rate": rate,
        "duration_s": round(duration, 3),
        "achieved_rate": round(len(sent) / duration, 1) if duration > 0 else None,
        "due": len(records),
        "total": len(sent),
        "ok": len(sent) - len(failures),
        "failed": len(failures),
        "not_sent": len(records) - len(sent),
        "failures_by_reason": dict(Counter(r.error or f"HTTP {r.status}" for r in failures)),
        "first_failure_wall": min((r.wall for r in failures), default=None),
        "last_failure_wall": max((r.wall for r in failures), default=None),
        "versions": dict(versions),
        "latency_ms": {
            "p50": _percentile(latencies, 50),
            "p95": _percentile(latencies, 95),
            "p99": _percentile(latencies, 99),
            "max": latencies[-1] if latencies else None,
        },
        "per_second": seconds,
    }


def share_between(source, start_wall: float, end_wall: float, version: str) -> float | None:
    """Percent of the successful requests sent in [start_wall, end_wall) that ``version`` served. ``source``
    is the load's records, each request counted at the moment it was sent, or its summary, whose seconds
    are counted whole: a second that starts inside the window counts the requests of its end too, which
    may belong to the next traffic step (a short window then measures a share between the two)."""
    served = hit = 0
    if not isinstance(source, dict):
        for record in source:
            if record.ok and start_wall <= record.wall < end_wall:
                served += 1
                hit += record.version == version
        return round(100.0 * hit / served, 1) if served else None
    for sec in source["per_second"]:
        if sec["wall"] is None or not start_wall <= sec["wall"] < end_wall:
            continue
        n = sum(sec["versions"].values())
        served += n
        hit += sec["versions"].get(version, 0)
    return round(100.0 * hit / served, 1) if served else None


async def _request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict,
    body: bytes | None,
    on_retry,
    fresh: aiohttp.ClientSession | None = None,
) -> tuple[int | None, str | None, str | None]:
    """(status, serving Kong version, error) of one request. A keep-alive connection the server closed
    just as the request went out (nginx closes every idle one of its old workers at a reload): an
    idempotent request is sent again once on a new connection, as HTTP clients do (RFC 9112 section
    9.3.1), and ``on_retry()`` is called; a second failure counts. ``fresh``: a session that opens a
    new connection for each request (force_close), for the retry; without it the retry goes through
    ``session``, whose pool could hand it another idle connection the same reload is closing."""
    try:
        for attempt in (1, 2):
            try:
                async with (session if attempt == 1 else fresh or session).request(method, url, headers=headers, data=body) as resp:
                    await resp.read()
                    return resp.status, kong_version(resp.headers.get("Via"), resp.headers.get("Server")), None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if attempt == 2 or method not in ("GET", "HEAD"):
                    raise
                on_retry()
    except TimeoutError:
        return None, None, "timeout"
    except (aiohttp.ClientError, OSError) as exc:
        return None, None, type(exc).__name__
    return None, None, "no attempt"  # not reached: the loop returns or raises


class _InBackground:
    """start() runs ``run_async()`` on its own thread and event loop; stop() sets ``_stop`` there and
    waits. Subclasses set ``_ready`` once they send, and fill ``records``."""

    name = "load"
    timeout = 10.0

    def __init__(self):
        self.records: list[Record] = []
        self.started_at: float | None = None
        self.retried = 0  # idempotent requests sent again after their keep-alive connection closed
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _count_retry(self) -> None:
        self.retried += 1

    def start(self):
        def target():
            try:
                asyncio.run(self.run_async())
            except BaseException as exc:  # noqa: BLE001 - reported by stop()/wait()
                self._error = exc
                self._ready.set()

        self._thread = threading.Thread(target=target, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"{self.name} did not start")
        if self._error:
            raise RuntimeError(f"{self.name} failed: {self._error}") from self._error
        return self

    def wait(self, timeout: float | None = None) -> dict:
        """Wait until a bounded run ends."""
        if self._thread:
            self._thread.join(timeout)
        if self._error:
            raise RuntimeError(f"{self.name} failed: {self._error}") from self._error
        return self.summary()

    def stop(self) -> dict:
        if self._loop and self._stop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        return self.wait(self.timeout + 15)

    @property
    def running(self) -> bool:
        return bool(self._thread and self._thread.is_alive())


class LoadGenerator(_InBackground):
    def __init__(
        self,
        url: str,
        rate: float = 300.0,
        headers: dict | None = None,
        duration: float | None = None,
        timeout: float = 10.0,
        method: str = "GET",
        max_in_flight: int | None = None,
        body: bytes | None = None,
        sleep_range: tuple[float, float] | None = None,
    ):
        """``body``: sent with every request (a POST's payload). ``sleep_range``: (low, high) seconds; each
        request asks the echo upstream to wait a uniformly drawn time before it answers (``?sleep=``),
        a request that takes that long at the upstream, as slow API calls do."""
        super().__init__()
        self.name = "load generator"
        if rate <= 0:
            raise ValueError("rate must be > 0 requests per second")
        if sleep_range is not None and not (0 <= sleep_range[0] <= sleep_range[1]):
            raise ValueError("sleep_range must be (low, high) seconds with 0 <= low <= high")
        self.url = url
        self.body = body
        self.sleep_range = sleep_range
        self._rng = random.Random(0)
        self.rate = float(rate)
        self.headers = dict(headers or {})
        self.duration = duration
        self.timeout = timeout
        self.method = method
        # Default: two seconds' worth of requests. A request due while that many are unanswered is not
        # sent and counted apart (``not_sent``). A larger backlog turns a short CPU shortage into a
        # collapse: once the backlog takes longer than the timeout to drain, every request times out
        # while the servers still work on the abandoned ones.
        self.max_in_flight = max_in_flight or max(100, int(self.rate * 2))
        self.skipped = 0

    async def _one(self, session: aiohttp.ClientSession, fresh: aiohttp.ClientSession, due: float, sem: asyncio.Semaphore) -> None:
        wall = time.time()
        begin = time.perf_counter()
        url = self.url
        if self.sleep_range:
            url += ("&" if "?" in url else "?") + f"sleep={self._rng.uniform(*self.sleep_range):.3f}"
        try:
            status, version, error = await _request(session, self.method, url, self.headers, self.body, self._count_retry, fresh)
        finally:
            sem.release()
        self.records.append(Record(round(due, 4), round(wall, 4), status, error, version, round((time.perf_counter() - begin) * 1000.0, 2)))

    async def run_async(self) -> dict:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(limit=self.max_in_flight, force_close=False, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        sem = asyncio.Semaphore(self.max_in_flight)
        tasks: set[asyncio.Task] = set()
        # the retries go through `fresh`: a new connection for each request (force_close)
        fresh_connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session, aiohttp.ClientSession(
            connector=fresh_connector, timeout=timeout, auto_decompress=False
        ) as fresh:
            self._ready.set()
            start = time.perf_counter()
            self.started_at = time.time()
            interval = 1.0 / self.rate
            sent = 0
            while not self._stop.is_set():
                due = sent * interval
                if self.duration is not None and due >= self.duration:
                    break
                delay = start + due - time.perf_counter()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), timeout=delay)
                        break
                    except TimeoutError:
                        pass
                sent += 1
                if sem.locked():
                    self.skipped += 1
                    self.records.append(Record(round(due, 4), round(time.time(), 4), None, NOT_SENT, None, 0.0))
                    continue
                await sem.acquire()
                task = asyncio.create_task(self._one(session, fresh, due, sem))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(list(tasks), timeout=self.timeout + 5)
        return self.summary()

    def run(self) -> dict:
        """Blocking run (needs ``duration`` or a stop() from another thread)."""
        return asyncio.run(self.run_async())

    def summary(self) -> dict:
        result = summarize(list(self.records), self.rate, self.started_at)
        result["url"] = self.url
        result["skipped_over_limit"] = self.skipped
        result["retried_after_closed_keepalive"] = self.retried
        return result

    def dump(self, path: str, error: str | None = None) -> None:
        """The summary (with ``error``: why the load stopped early, None when it ran to its stop) and every
        record, written to a temporary file then renamed, so a reader never sees half of it."""
        summary = self.summary()
        summary["error"] = error
        with open(path + ".tmp", "w") as fh:
            json.dump({"summary": summary, "records": [asdict(r) for r in list(self.records)]}, fh)
        os.replace(path + ".tmp", path)


class KeepAliveClients(_InBackground):
    """``clients`` long-lived clients, each on one keep-alive connection of its own, each sending its next
    request ``think`` seconds after the answer to the last (a closed loop, as an SDK or a service mesh
    sidecar does). Records and summary() as LoadGenerator's; a connection the server closed just as
    a request went out is retried once on a new one, as HTTP clients do (RFC 9112 section 9.3.1)."""

    def __init__(self, url: str, clients: int = 8, think: float = 0.1, headers: dict | None = None, timeout: float = 10.0):
        if clients < 1:
            raise ValueError("clients must be at least 1")
        super().__init__()
        self.name = "keep-alive clients"
        self.url, self.clients, self.think, self.timeout = url, clients, think, timeout
        self.headers = dict(headers or {})
        self.connections = 0  # connections opened in all (one per client when nothing closed them)

    async def _client(self, start: float) -> None:
        trace = aiohttp.TraceConfig()

        async def on_connection(*_args):
            self.connections += 1

        trace.on_connection_create_end.append(on_connection)
        connector = aiohttp.TCPConnector(limit=1, force_close=False)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout), auto_decompress=False, trace_configs=[trace]
        ) as session:
            while not self._stop.is_set():
                due, wall, begin = time.perf_counter() - start, time.time(), time.perf_counter()
                status, version, error = await _request(session, "GET", self.url, self.headers, None, self._count_retry)
                self.records.append(Record(round(due, 4), round(wall, 4), status, error, version, round((time.perf_counter() - begin) * 1000.0, 2)))
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=self.think)
                except TimeoutError:
                    pass

    async def run_async(self) -> dict:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        start = time.perf_counter()
        self.started_at = time.time()
        tasks = [asyncio.create_task(self._client(start)) for _ in range(self.clients)]
        self._ready.set()
        await asyncio.gather(*tasks)
        return self.summary()

    def summary(self) -> dict:
        result = summarize(list(self.records), None, self.started_at)
        result.update(url=self.url, clients=self.clients, connections=self.connections, retried_after_closed_keepalive=self.retried)
        return result


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} loadgen: {message}", file=sys.stderr, flush=True)


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--header expects NAME:VALUE, got {text!r}")
    return name.strip(), value.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.loadgen", description="Steady HTTP load at a fixed rate; counts what each Kong version served.")
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second (default 300)")
    parser.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C or SIGTERM)")
    parser.add_argument("--header", type=_header, action="append", default=[], help="NAME:VALUE, repeatable")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds")
    parser.add_argument("--out", help="write the summary and every request record here (JSON)")
    parser.add_argument("--per-second", action="store_true", help="print the per-second table too")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    gen = LoadGenerator(args.url, rate=args.rate, headers=dict(args.header), duration=args.duration, timeout=args.timeout)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    gen.start()
    _log(f"sending {args.rate:g} requests/s to {args.url}")
    try:
        while gen.running and not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    _log("stopping: SIGTERM or Ctrl-C" if gen.running else "the load ended by itself")
    error = None
    try:
        summary = gen.stop()
    except RuntimeError as exc:  # the load's own thread failed: say so, keep what it recorded
        error = str(exc)
        _log(f"the load failed: {error}")
        summary = gen.summary()
    summary["error"] = error
    if args.out:
        gen.dump(args.out, error)
        _log(f"wrote {len(gen.records)} records to {args.out}")
    shown = dict(summary)
    if not args.per_second:
        shown.pop("per_second")
    print(json.dumps(shown, indent=2))
    return 0 if error is None and summary["failed"] == 0 and summary["not_sent"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
