# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  socket:
    description:
      - HAProxy runtime API (stats socket) to talk to, a UNIX socket path such as V(/run/haproxy/admin.sock),
        or C(host:port) (C([v6addr]:port) for IPv6) for a C(stats socket ipv4@host:port) line.
      - The socket must be declared with C(level admin); C(level user) and C(level operator) sockets may read
        but every change is refused.
      - Used when O(backend=haproxy).
    type: str
    default: /run/haproxy/admin.sock
  timeout:
    description:
      - Seconds to wait for HAProxy to answer each runtime API command.
      - Used when O(backend=haproxy).
    type: float
    default: 5.0
"""
