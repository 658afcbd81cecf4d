# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""One polling loop for every wait of the collection that reads until a condition holds or time is up."""

from __future__ import annotations

import time


def poll(attempt, timeout: float, interval: float = 1.0, sleep=None, clock=None) -> tuple:
    """Call ``attempt()`` (returning ``(done, value)``) until it is done or ``timeout`` seconds have
    passed, sleeping ``interval`` between reads; the first read happens at once and one read always
    happens. Returns ``(done, value, waited_seconds)`` of the last read."""
    sleep = sleep or time.sleep
    clock = clock or time.monotonic
    start = clock()
    while True:
        done, value = attempt()
        waited = clock() - start
        if done or waited >= timeout:
            return done, value, waited
        sleep(interval)
