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


class _OneRequestPerConnection:
    """An HTTP server that answers the first request of each connection with keep-alive and closes the
    connection without an answer when a second request comes on it, as nginx's old workers close their
    idle keep-alive connections at a reload just as a client reuses them. Each answer waits 20 ms, so
    the client's pool holds several idle connections at once."""

    def __init__(self):
        import asyncio
        import threading

        self.port = None
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def handle(reader, writer):
            served = 0
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")  # IncompleteReadError once the client closes
                    if served:
                        break  # a reused connection: closed without an answer
                    await asyncio.sleep(0.02)
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nVia: 1.1 kong/3.9.3\r\n\r\nok")
                    await writer.drain()
                    served += 1
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()

        async def serve():
            self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        self._thread = threading.Thread(target=lambda: (self._loop.run_until_complete(serve()), self._loop.run_forever()), daemon=True)
        self._thread.start()
        assert ready.wait(10)

    def stop(self):
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def test_a_request_whose_keepalive_connection_closes_is_sent_again_on_a_new_connection():
    """The one retry of a GET goes out on a new connection: through the pool it would take another idle
    connection of the same closing server and fail again (tests/loadgen._request)."""
    server = _OneRequestPerConnection()
    try:
        load = LoadGenerator(f"http://127.0.0.1:{server.port}/", rate=200, duration=1.5, timeout=5.0).start()
        summary = load.wait(20)
    finally:
        server.stop()
    assert summary["total"] == 300, summary
    assert load.retried > 0, "the pool reused connections the server closed"
    failed = [(r.status, r.error) for r in load.records if not r.ok][:5]
    assert summary["failed"] == 0, f"{summary['failed']} failed after {load.retried} retries: {failed}"
