"""The bench's realistic load (tests/loadgen.py): slow requests, POSTs with a body, long-lived
keep-alive clients, each counted from the outside against a real echo server."""

from __future__ import annotations

import time

from tests.kongsim.kongsim_testlib import EchoUpstream
from tests.loadgen import KeepAliveClients, LoadGenerator


def test_slow_requests_and_posts_reach_the_upstream_as_sent():
    echo = EchoUpstream().start()
    try:
        slow = LoadGenerator(echo.url + "/echo", rate=10, duration=1.0, sleep_range=(0.3, 0.6)).start()
        post = LoadGenerator(echo.url + "/echo", rate=10, duration=1.0, method="POST", body=b'{"order": 42}').start()
        slow_sum, post_sum = slow.wait(10), post.wait(10)
    finally:
        echo.stop()
    assert slow_sum["failed"] == 0 and slow_sum["total"] == 10, slow_sum
    assert min(r.latency_ms for r in slow.records) >= 300, [r.latency_ms for r in slow.records]
    assert post_sum["failed"] == 0 and post_sum["total"] == 10, post_sum


def test_keepalive_clients_hold_one_connection_each_and_count_a_dead_server():
    echo = EchoUpstream().start()
    clients = KeepAliveClients(echo.url + "/echo", clients=3, think=0.05, timeout=2.0).start()
    try:
        time.sleep(1.0)
        healthy = clients.summary()
        echo.stop()
        time.sleep(0.5)
    finally:
        final = clients.stop()
        echo.stop()
    assert healthy["failed"] == 0 and healthy["total"] >= 30, healthy
    assert healthy["connections"] == 3, "each client keeps its one connection while the server answers"
    assert final["connections"] >= 3
    assert final["failed"] > 0, "a server that went away must show as failed requests"
