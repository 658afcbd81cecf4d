# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Processes on this host: whether a pid still runs."""

from __future__ import annotations

import os


def pid_alive(pid) -> bool:
    """Whether process ``pid`` runs: it exists (another user's process counts) and is not a zombie (an
    exited child nobody reaped yet, as under a PID 1 that does not reap)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
