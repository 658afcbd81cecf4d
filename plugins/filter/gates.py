# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
"""Health gates of a traffic step, computed from two readings of the load balancer's counters."""
from __future__ import annotations

_RESPONSES = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")
_ERRORS = ("hrsp_5xx", "eresp", "econ")
_BAD_STATUS = ("DOWN", "NOLB", "MAINT")


def _num(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def gate_eval(current: dict, baseline: dict, servers: list, max_error_rate: float = 1.0,
              max_response_ms: int = 2000, min_requests: int = 0) -> dict:
    """Compare two `stats` readings (server -> counters) for the given servers.

    Errors are 5xx answers plus HAProxy's response and connection errors; the rate is taken
    over every answer and error of those servers between the readings. A server that is in
    rotation (weight > 0) but not UP fails the gate too.
    """
    current, baseline = current or {}, baseline or {}
    requests = errors = 0
    reasons = []
    per_server = {}
    for name in servers:
        now, before = current.get(name) or {}, baseline.get(name) or {}
        s_req = sum(_num(now.get(k)) - _num(before.get(k)) for k in _RESPONSES)
        s_err = sum(_num(now.get(k)) - _num(before.get(k)) for k in _ERRORS)
        s_req += _num(now.get("eresp")) - _num(before.get("eresp")) + _num(now.get("econ")) - _num(before.get("econ"))
        requests += max(s_req, 0)
        errors += max(s_err, 0)
        status = str(now.get("status", ""))
        per_server[name] = dict(requests=max(s_req, 0), errors=max(s_err, 0), status=status,
                                rtime=_num(now.get("rtime")))
        if _num(now.get("weight")) > 0 and status.split(" ")[0] in _BAD_STATUS:
            reasons.append(f"{name} is {status} while in rotation")
        if _num(now.get("rtime")) > max_response_ms:
            reasons.append(f"{name} average response time {now.get('rtime')} ms > {max_response_ms} ms")
    rate = round(100.0 * errors / requests, 3) if requests else 0.0
    if requests and rate > float(max_error_rate):
        reasons.append(f"error rate {rate}% ({errors} of {requests}) > {max_error_rate}%")
    if requests < int(min_requests):
        reasons.append(f"only {requests} requests reached the servers (< {min_requests}): the step is not proven")
    return dict(failed=bool(reasons), reasons=reasons, requests=requests, errors=errors, error_rate=rate,
                servers=per_server)


class FilterModule:
    def filters(self):
        return {"gate_eval": gate_eval}
