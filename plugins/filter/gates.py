# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""Health gates of a traffic step, computed from two readings of the load balancer's counters
and of each new node's own request counters."""
from __future__ import annotations

_ERRORS = ("http_5xx", "response_errors", "connection_errors")
_BAD_STATUS = ("DOWN", "NOLB", "MAINT")


def _num(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def gate_eval(current: dict, baseline: dict, servers: list, max_error_rate: float = 1.0,
              max_response_ms: int = 2000, min_requests: int = 0) -> dict:
    """Compare two readings (server -> counters and state, as lb_weight returns them).

    Requests are the server's sessions (HAProxy opens one per HTTP request); errors are 5xx
    answers plus response and connection errors. A server in rotation (weight above 0) whose
    health is down fails the gate too.
    """
    current, baseline = current or {}, baseline or {}
    requests = errors = 0
    reasons = []
    per_server = {}
    # Only the servers the load balancer knows are judged: a watched host that is not one of its servers
    # (a hybrid control plane has no proxy) is left to the readiness and node gates.
    outside = [name for name in servers if name not in current]
    servers = [name for name in servers if name in current]
    for name in servers:
        now, before = current.get(name) or {}, baseline.get(name) or {}
        s_req = max(_num(now.get("total_sessions")) - _num(before.get("total_sessions")), 0)
        s_err = max(sum(_num(now.get(k)) - _num(before.get(k)) for k in _ERRORS), 0)
        requests += s_req
        errors += s_err
        status = str(now.get("status") or "")
        health = str(now.get("health") or "")
        per_server[name] = dict(requests=s_req, errors=s_err, status=status, health=health)
        if _num(now.get("weight")) > 0 and (health == "down" or status.split(" ", maxsplit=1)[0] in _BAD_STATUS):
            reasons.append(f"{name} is {status or health} while in rotation")
        if _num(now.get("response_time_ms")) > max_response_ms:
            reasons.append(f"{name} average response time {now.get('response_time_ms')} ms > {max_response_ms} ms")
    rate = round(100.0 * errors / requests, 3) if requests else 0.0
    if requests and rate > float(max_error_rate):
        reasons.append(f"error rate {rate}% ({errors} of {requests}) > {max_error_rate}%")
    if servers and requests < int(min_requests):
        reasons.append(f"only {requests} requests reached the servers (< {min_requests}): the step is not proven")
    return dict(failed=bool(reasons), reasons=reasons, requests=requests, errors=errors, error_rate=rate,
                servers=per_server, not_in_lb=outside)


def node_gate_eval(current: dict, baseline: dict, max_error_rate: float = 1.0) -> dict:
    """Judge each node by its own request counters (kong_node_info's ``metrics``), read before and
    after a soak: node -> {available, requests, errors}. A counter that went down means the node
    restarted; its current value is then the whole delta. Nodes without counters are listed, not failed."""
    current, baseline = current or {}, baseline or {}
    reasons, per_node, unavailable = [], {}, []
    for name in sorted(current):
        now, before = current.get(name) or {}, baseline.get(name) or {}
        if not now.get("available"):
            unavailable.append(name)
            continue
        n_req, n_err = _num(now.get("requests")), _num(now.get("errors"))
        b_req, b_err = _num(before.get("requests")), _num(before.get("errors"))
        restarted = n_req < b_req or n_err < b_err
        d_req = n_req if restarted else n_req - b_req
        d_err = n_err if restarted else n_err - b_err
        rate = round(100.0 * d_err / d_req, 3) if d_req else 0.0
        per_node[name] = dict(requests=d_req, errors=d_err, error_rate=rate, restarted=restarted)
        if d_req and rate > float(max_error_rate):
            reasons.append(f"{name} answered {d_err} of {d_req} requests with a 5xx ({rate}%) by its own "
                           f"/metrics > {max_error_rate}%")
    return dict(failed=bool(reasons), reasons=reasons, nodes=per_node, unavailable=unavailable)


class FilterModule:
    def filters(self):
        return {"gate_eval": gate_eval, "node_gate_eval": node_gate_eval}
