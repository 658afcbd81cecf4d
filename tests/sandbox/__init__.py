"""The local sandbox for kongops.upgrade: ``python -m tests.sandbox up|down|status|upgrade|demo``."""

from tests.sandbox.core import Sandbox, SandboxError, haproxy_servers

__all__ = ["Sandbox", "SandboxError", "haproxy_servers"]
