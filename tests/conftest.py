"""Session fixtures shared by every test suite: real PostgreSQL, HAProxy and nginx."""

from __future__ import annotations

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
# `ansible_collections.kongops.upgrade` resolves through the venv's collection symlink (make venv).
COLLECTIONS = os.path.join(REPO, ".venv", "collections")
if os.path.isdir(COLLECTIONS) and COLLECTIONS not in sys.path:
    sys.path.append(COLLECTIONS)

from tests.services.haproxy import HaproxyServer  # noqa: E402
from tests.services.nginx import NginxServer  # noqa: E402
from tests.services.postgres import PostgresServer  # noqa: E402


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def haproxy_factory():
    started: list[HaproxyServer] = []

    def make(config_body: str) -> HaproxyServer:
        server = HaproxyServer(config_body)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.destroy()


@pytest.fixture
def nginx_factory():
    started: list[NginxServer] = []

    def make(http_body: str) -> NginxServer:
        server = NginxServer(http_body)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.destroy()


# The end-to-end files that wait longest (soaks, drains, Kong's timers), longest first. Under
# `-n 2 --dist loadfile --no-loadscope-reorder` (make pytest) the files are handed to the workers in
# collection order, so these start first and the short files fill in behind them; xdist's default
# order (most tests first) would start them last and leave one worker waiting on the tail.
LONGEST_FILES = (
    "test_rolling_upgrade.py",
    "test_in_place_hops.py",
    "test_in_place_upgrade.py",
    "test_faults.py",
    "test_dual_cluster.py",
    "test_hybrid_upgrade.py",
    "test_awx_runner.py",
    "test_rehearse.py",
    "test_route_replay.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES)

    items.sort(key=rank)  # stable: each file's tests keep their order and stay together
