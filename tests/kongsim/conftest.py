"""Fixtures for the simulator's own tests (tests/kongsim): installs, nodes, an echo upstream."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from kongsim_testlib import EchoUpstream, KongNode, install_kong


@pytest.fixture(scope="session")
def kong_install(tmp_path_factory):
    """kong_install(version) -> path of an installed `kong` for that version (cached per session).

    KONGSIM_PYTHON=/path/to/python runs the nodes with another interpreter (e.g. one with
    Debian's aiohttp 3.8) to check the simulator's dependency floor."""
    base = tmp_path_factory.mktemp("kong-installs")
    cache = {}

    def install(version: str) -> str:
        if version not in cache:
            cache[version] = install_kong(version, str(base / version), os.environ.get("KONGSIM_PYTHON"))
        return cache[version]

    return install


class _Factory:
    def __init__(self, kong_install, base_dir):
        self.kong_install = kong_install
        self.base_dir = base_dir
        self.nodes = []

    def __call__(self, version: str, *, start: bool = True, name: str | None = None, **settings) -> KongNode:
        name = name or f"node{len(self.nodes) + 1}"
        node = KongNode(self.kong_install(version), str(self.base_dir), name=name, **settings)
        node.version = version
        self.nodes.append(node)
        if start:
            node.start()
        return node

    def many(self, specs: dict) -> dict:
        """Start several nodes at once: {key: (version, settings)} -> {key: KongNode}."""
        from concurrent.futures import ThreadPoolExecutor

        nodes = {key: self(version, start=False, **settings) for key, (version, settings) in specs.items()}
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda n: n.start(), nodes.values()))
        return nodes

    def cleanup(self):
        for node in self.nodes:
            try:
                node.kill()
            except OSError as exc:
                print(f"could not stop {node.prefix}: {exc}")


@pytest.fixture
def kong_node_factory(kong_install, tmp_path):
    """kong_node_factory(version, declarative=..., **kong_conf) -> started KongNode; always stopped."""
    factory = _Factory(kong_install, tmp_path)
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module")
def module_node_factory(kong_install, tmp_path_factory):
    """Like kong_node_factory, but nodes live for the whole test module."""
    factory = _Factory(kong_install, tmp_path_factory.mktemp("nodes"))
    yield factory
    factory.cleanup()


@pytest.fixture(scope="session")
def echo_upstream():
    server = EchoUpstream().start()
    yield server
    server.stop()
