# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""One request through a Kong node's proxy, repeated until it answers the expected status."""

from __future__ import annotations

import time

try:
    import requests
except ImportError:  # the module reports missing_required_lib through _kong_admin's HAS_REQUESTS
    requests = None


class KongProxyError(Exception):
    def __init__(self, msg: str, status=None, attempts: int = 0):
        super().__init__(msg)
        self.status, self.attempts = status, attempts


def check(
    url: str, expect=(200,), headers=None, retries: int = 0, delay: float = 1.0, timeout: int = 10, verify=True, cert=None, session=None, sleep=time.sleep
) -> dict:
    """GET `url` until its status is in `expect` (at most 1 + retries attempts, `delay` apart)."""
    session = session or requests.Session()
    last = ""
    status = None
    for attempt in range(1, retries + 2):
        try:
            resp = session.get(url, headers=headers or {}, timeout=timeout, verify=verify, cert=cert, allow_redirects=False)
        except requests.RequestException as exc:
            last, status = f"{exc.__class__.__name__}: {exc}", None
        else:
            status = resp.status_code
            if status in expect:
                return dict(status=status, attempts=attempt, via=resp.headers.get("Via", ""), server=resp.headers.get("Server", ""))
            last = f"HTTP {status}: {resp.text[:200].strip()}"
        if attempt <= retries:
            sleep(delay)
    raise KongProxyError(
        f"GET {url} did not answer {'/'.join(str(s) for s in expect)} after {retries + 1} attempt(s): {last}", status=status, attempts=retries + 1
    )
