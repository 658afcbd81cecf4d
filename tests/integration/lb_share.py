"""Each traffic step's share read from the outside: HAProxy's servers sampled while a load runs, the
weights the collection set read back, and the share Y could get from the servers HAProxy's health checks
had in service (a check that times out twice on a busy machine takes a server out for a second or two)."""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass

from tests.loadgen import share_between
from tests.sandbox.core import haproxy_servers


@dataclass
class LbSample:
    wall: float
    servers: dict  # haproxy_servers(): name -> status, weight, uweight, ...


class PeriodicSampler:
    """Calls ``sample()`` every ``interval`` seconds on a thread of its own until stopped and keeps what
    it returns (None is not kept)."""

    def __init__(self, interval: float = 0.3, name: str = "sampler"):
        self.interval = interval
        self.samples: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> list:
        self._stop.set()
        self._thread.join(30)
        return self.samples

    def sample(self):
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            found = self.sample()
            if found is not None:
                self.samples.append(found)


class HaproxySampler(PeriodicSampler):
    """HAProxy's servers of the pool, every ``interval`` seconds."""

    def __init__(self, socket_path: str, interval: float = 0.3):
        super().__init__(interval, "haproxy-sampler")
        self.socket_path = socket_path

    def sample(self) -> LbSample | None:
        wall = time.time()
        try:
            return LbSample(wall, haproxy_servers(self.socket_path))
        except OSError:
            return None


def weight_share(servers: dict, y_names: list[str]) -> float:
    """Y's percent of the pool's weights as HAProxy holds them (the operator's weights, health aside)."""
    total = sum(s["uweight"] for s in servers.values() if "MAINT" not in s["status"])
    return round(100.0 * sum(servers[n]["uweight"] for n in y_names if n in servers and "MAINT" not in servers[n]["status"]) / total, 1) if total else 0.0


def served_share(records, samples: list, start: float, end: float, y_names: list[str]) -> tuple[float, list]:
    """Y's percent of the requests sent in [start, end) that HAProxy's weights gave it, each request
    weighed by the servers the sample before it saw serving (``UP``, or ``UP 1/2`` still up while
    falling), and the samples that saw a weighted server out of service. ``samples`` have ``wall`` and
    ``servers`` (LbSample, or the hybrid test's cluster samples)."""
    walls = [s.wall for s in samples]
    total = hit = 0.0
    flaps = []
    for record in records:
        if not (record.ok and start <= record.wall < end):
            continue
        i = bisect.bisect_right(walls, record.wall) - 1
        servers = samples[max(i, 0)].servers
        serving = {n: s["weight"] for n, s in servers.items() if s["status"].startswith("UP") and s["weight"] > 0}
        if serving:
            total += 1
            hit += sum(w for n, w in serving.items() if n in y_names) / sum(serving.values())
    for s in samples:
        if start <= s.wall < end:
            out = sorted(n for n, v in s.servers.items() if v["uweight"] > 0 and not v["status"].startswith("UP"))
            if out:
                flaps.append((round(s.wall - start, 1), out))
    return (round(100.0 * hit / total, 1) if total else 0.0), flaps


def assert_step_shares(steps: list[dict], records, samples: list, y_names: list[str], version: str, epoch) -> None:
    """Per step of a run journal, from the moment HAProxy had the step's weights (``shifted_at``) + 0.2 s
    to ``ended_at``: HAProxy's weights give Y the step's share (within 1 point), and Y served what the
    servers in service could give it (within 3 points)."""
    for step in steps:
        start, end = epoch(step.get("shifted_at") or step["started_at"]) + 0.2, epoch(step["ended_at"])
        weights = {weight_share(s.servers, y_names) for s in samples if start <= s.wall < end and s.servers}
        assert weights and all(abs(w - step["share"]) <= 1.0 for w in weights), f"step {step['share']} %: HAProxy's weights gave Y {weights} %"
        measured = share_between(records, start, end, version)
        assert measured is not None, f"no request was answered during the {step['share']} % step"
        expected, flaps = served_share(records, samples, start, end, y_names)
        assert abs(measured - expected) <= 3.0, f"step {step['share']} %: Y served {measured} %, its servers in HAProxy's health {expected} % ({flaps})"
