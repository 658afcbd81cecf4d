"""Sandboxes of any size for the bench, built from the local sandbox's own pieces.

``FleetSandbox(nodes=N)`` lays out N X nodes and N Y nodes (DB-less) instead of the sandbox's
fixed three of each; with ``nodes=3`` it is the sandbox unchanged. Everything else (ports,
inventory, HAProxy configuration, start and stop) is the sandbox's.
"""

from __future__ import annotations

import os

from tests.sandbox.core import Sandbox


class FleetSandbox(Sandbox):
    def __init__(self, *args, nodes: int = 3, **kwargs):
        super().__init__(*args, **kwargs)
        if nodes < 1:
            raise ValueError("nodes must be at least 1")
        self.nodes = nodes

    def _layout_nodes(self, mode: str, ports) -> None:
        if self.nodes == 3:
            super()._layout_nodes(mode, ports)
            return
        if mode != "dbless":
            raise ValueError("the bench sizes fleets of DB-less nodes only")
        names = [(f"x{i}", "kong_x") for i in range(1, self.nodes + 1)]
        names += [(f"y{i}", "kong_y") for i in range(1, self.nodes + 1)]
        for name, group in names:
            base = self._path("nodes", name)
            self.state["nodes"][name] = {
                "group": group,
                "proxy_port": ports.take(),
                "admin_port": ports.take(),
                "status_port": ports.take(),
                "prefix": os.path.join(base, "prefix"),
                "conf": os.path.join(base, "kong.conf"),
                "declarative": os.path.join(base, "kong.yml"),
            }
