"""Sandboxes of any size for the bench, built from the local sandbox's own pieces.

``FleetSandbox(nodes=N)`` lays out N X nodes and N Y nodes instead of the sandbox's fixed three of
each (the sandbox's own layout with its node count); with ``nodes=3`` it is the sandbox unchanged.
Everything else (ports, inventory, HAProxy configuration, start and stop) is the sandbox's.
"""

from __future__ import annotations

from tests.sandbox.core import Sandbox


class FleetSandbox(Sandbox):
    def __init__(self, *args, nodes: int = 3, **kwargs):
        super().__init__(*args, **kwargs)
        if nodes < 1:
            raise ValueError("nodes must be at least 1")
        self.nodes = nodes

    def _layout_nodes(self, mode: str, ports, count: int = 3) -> None:
        super()._layout_nodes(mode, ports, self.nodes if self.nodes != 3 else count)
