# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""One request through a Kong node's proxy, repeated until it answers the expected status; then,
optionally, the same request without its headers (an auth plugin must refuse it) and the version
the node names in its Via or Server header."""

from __future__ import annotations

import time

try:
    import requests
except ImportError:  # the module reports missing_required_lib through _kong_admin's HAS_REQUESTS
    requests = None


class KongProxyError(Exception):
    def __init__(self, msg: str, status=None, attempts: int = 0, last: str = ""):
        super().__init__(msg)
        # last: the last answer (HTTP status and the start of its body) or the connection error
        self.status, self.attempts, self.last = status, attempts, last


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
        f"GET {url} did not answer {'/'.join(str(s) for s in expect)} after {retries + 1} attempt(s): {last}", status=status, attempts=retries + 1, last=last
    )


def served_by(answer: dict, version: str) -> bool:
    """Whether an answer names Kong `version` (``kong/<version>``) in Via or Server. An answer without
    Via passes: Kong leaves Via out where the operator hides its headers (the `headers` property of
    kong.conf), and a proxied answer's Server header is the upstream's."""
    via, server = answer.get("via") or "", answer.get("server") or ""
    needle = "kong/" + version
    return not via or needle in via or needle in server


def smoke(url: str, expect=(200,), headers=None, refused=(), version: str = "", session=None, **kw) -> dict:
    """`check` (retried until the route answers), then without `headers` once, expecting one of
    `refused` (when given), then the version check. Raises KongProxyError naming what failed."""
    session = session or requests.Session()
    result = check(url, expect=expect, headers=headers, session=session, **kw)
    if refused:
        bare = dict(kw, retries=0)
        try:
            answer = check(url, expect=tuple(refused), headers={}, session=session, **bare)
        except KongProxyError as exc:
            raise KongProxyError(
                f"GET {url} without the request headers (the key) should be refused with {'/'.join(str(s) for s in refused)}: {exc.last}",
                status=exc.status,
                attempts=result["attempts"] + 1,
            ) from None
        result["refused_status"] = answer["status"]
        result["attempts"] += 1
    if version and not served_by(result, version):
        raise KongProxyError(
            f"GET {url} answered with Via '{result['via']}' and Server '{result['server']}', not Kong {version}",
            status=result["status"],
            attempts=result["attempts"],
        )
    return result
