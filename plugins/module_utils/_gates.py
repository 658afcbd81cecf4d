# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""PRIVATE to the collection: health gates of a traffic step or of the watch after an upgrade.

A gate compares two readings of the load balancer's per-server counters (the soak's first and the
latest) and each new node's own request counters and readiness (read before and after the soak, by
kong_node_info on the node or by read_nodes on the controller), and says whether the step holds, with the
figures that decided it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.kongops.upgrade.plugins.module_utils._haproxy_runtime import (
    HAPROXY_RUNTIME_ARG_SPEC,
    HaproxyBackend,
    HaproxyRuntime,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import StatusListener, status_context
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_node import status_reading

_ERRORS = ("http_5xx", "response_errors", "connection_errors")
_BAD_STATUS = ("DOWN", "NOLB", "MAINT")

KONG_GATE_ARG_SPEC = dict(
    backend=dict(type="str", default="none", choices=["haproxy", "nginx", "none"]),
    haproxy_backend=dict(type="str", default=""),
    servers=dict(type="list", elements="str", default=[]),
    soak_seconds=dict(type="float", default=0.0),
    interval_seconds=dict(type="float", default=5.0),
    max_error_rate=dict(type="float", default=1.0),
    max_response_ms=dict(type="int", default=2000),
    min_requests=dict(type="int", default=0),
    lb_verdict=dict(type="dict"),
    since=dict(type="dict"),
    nodes_before=dict(type="dict", default={}),
    nodes_after=dict(type="dict"),
    label=dict(type="str", default="gate"),
    fail_on_gate=dict(type="bool", default=True),
    # read by the action on the controller, never sent to the module (see read_nodes)
    node_status_urls=dict(type="dict", default={}),
    node_metrics=dict(type="bool", default=True),
    node_validate_certs=dict(type="bool", default=True),
    node_ca_path=dict(type="path"),
    node_timeout=dict(type="int", default=5),
)
NODE_READ_OPTIONS = ("node_status_urls", "node_metrics", "node_validate_certs", "node_ca_path", "node_timeout")
KONG_GATE_ARG_SPEC.update({k: dict(v) for k, v in HAPROXY_RUNTIME_ARG_SPEC.items()})


class GateParamError(ValueError):
    def __init__(self, msg: str, param: str):
        super().__init__(msg)
        self.param = param


def _num(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def check_params(p: dict) -> None:
    if p["backend"] == "haproxy" and not p.get("haproxy_backend"):
        raise GateParamError("haproxy_backend: name the HAProxy backend whose servers the gate reads", "haproxy_backend")
    if p["soak_seconds"] < 0:
        raise GateParamError(f"soak_seconds: must be 0 or more seconds, got {p['soak_seconds']}", "soak_seconds")
    if p["interval_seconds"] <= 0:
        raise GateParamError(f"interval_seconds: must be more than 0 seconds, got {p['interval_seconds']}", "interval_seconds")
    if not 0 <= p["max_error_rate"] <= 100:
        raise GateParamError(f"max_error_rate: must be a percentage from 0 to 100, got {p['max_error_rate']}", "max_error_rate")
    for name, url in (p.get("node_status_urls") or {}).items():
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise GateParamError(
                f"node_status_urls: {name}'s URL {url!r} is not a URL (expected http:// or https://, the node's status listener)", "node_status_urls"
            )
    since = p.get("since")
    if since is not None:
        missing = [key for key in ("after", "stats", "stats_at") if key not in since]
        if missing or not isinstance(since.get("stats_at"), (int, float)) or isinstance(since.get("stats_at"), bool):
            raise GateParamError(
                "since: pass the registered result of the lb_weight call that set the step's weights on this load balancer "
                f"(HAProxy, not in check mode); it has no {', '.join(missing) or 'numeric stats_at'}",
                "since",
            )
    if p.get("node_timeout", 5) < 1:
        raise GateParamError(f"node_timeout: must be 1 or more seconds, got {p['node_timeout']}", "node_timeout")


def gate_eval(current: dict, baseline: dict, servers: list, max_error_rate: float = 1.0, max_response_ms: int = 2000, min_requests: int = 0) -> dict:
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
        if _num(now.get("total_sessions")) < _num(before.get("total_sessions")):
            # HAProxy was reloaded or restarted since the first reading: its counters start again at 0,
            # so what they hold now is what the servers answered since then
            before = {}
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
    slowest = max((_num(current.get(name, {}).get("response_time_ms")) for name in per_server), default=0)
    if requests and rate > float(max_error_rate):
        reasons.append(f"error rate {rate}% ({errors} of {requests}) > {max_error_rate}%")
    if servers and requests < int(min_requests):
        reasons.append(f"only {requests} requests reached the servers (< {min_requests}): the step is not proven")
    return dict(
        failed=bool(reasons), reasons=reasons, requests=requests, errors=errors, error_rate=rate, response_ms=slowest, servers=per_server, not_in_lb=outside
    )


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
            reasons.append(f"{name} answered {d_err} of {d_req} requests with a 5xx ({rate}%) by its own /metrics > {max_error_rate}%")
    return dict(failed=bool(reasons), reasons=reasons, nodes=per_node, unavailable=unavailable)


def read_nodes(p: dict) -> dict:
    """Every node of ``node_status_urls`` (name -> its status listener as this host reaches it) read at
    once, one thread per node: node -> _kong_node.status_reading (readiness, and the node's own counters
    with ``node_metrics``)."""
    urls = p["node_status_urls"] or {}
    if not urls:
        return {}

    context = status_context(p["node_validate_certs"], p["node_ca_path"])

    def one(url):
        return status_reading(StatusListener(url, timeout=p["node_timeout"], context=context), include_metrics=p["node_metrics"])

    names = sorted(urls)
    with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
        return dict(zip(names, pool.map(one, [urls[name] for name in names])))


def haproxy_reading(lb: HaproxyBackend) -> dict:
    """Every server's state (weight, status, health) and counters, from one read of the runtime API."""
    view = lb.read()
    counters = lb.stats()
    return {name: dict(counters.get(name, {}), **server) for name, server in view.items()}


def make_reader(p: dict):
    if p["backend"] != "haproxy":
        return None
    lb = HaproxyBackend(HaproxyRuntime.from_params(p), p["haproxy_backend"])
    return lambda: haproxy_reading(lb)


def since_reading(since: dict) -> dict:
    """The reading an lb_weight result holds (its ``after`` view with its ``stats`` counters), as
    haproxy_reading makes one."""
    stats = since.get("stats") or {}
    return {name: dict(stats.get(name, {}), **(server or {})) for name, server in (since.get("after") or {}).items()}


def soak(read, p: dict, clock=time.monotonic, sleep=time.sleep, wall=time.time) -> dict:
    """Watch the load balancer for ``soak_seconds``: a first reading, then one every ``interval_seconds``,
    each judged against the first; stop at the first crossed gate. With ``since`` (the lb_weight result
    of the change the soak follows, read on this host) that result is the first reading and the soak's
    seconds count from it: the time the play took to get here is soaked already. Without a reader (no
    per-server counters) only wait. Returns the last verdict with ``polls`` (one line of figures per check)
    and, with a reader, ``closing``: the soak's last reading in the shape ``since`` takes (``after``,
    ``stats``, ``stats_at``), so that a later gate on the same load balancer can watch from where this
    one stopped."""
    started = clock()
    if read is None:
        if p["soak_seconds"] > 0:
            sleep(p["soak_seconds"])
        return dict(failed=False, reasons=[], polls=[], soaked_seconds=round(clock() - started, 3), lb_counters=False)
    since = p.get("since")
    if since:
        # the same host's clock read it: never before it (a clock stepped back), at most the whole soak ago
        started -= min(max(wall() - float(since["stats_at"]), 0.0), p["soak_seconds"])
        baseline = since_reading(since)
    else:
        baseline = read()
    polls = []
    while True:
        elapsed = clock() - started
        remaining = p["soak_seconds"] - elapsed
        if remaining > 0:
            sleep(min(p["interval_seconds"], remaining))
        current = read()
        read_at = wall()
        verdict = gate_eval(current, baseline, p["servers"], max_error_rate=p["max_error_rate"], max_response_ms=p["max_response_ms"])
        polls.append(
            dict(
                at=round(clock() - started, 3),
                requests=verdict["requests"],
                errors=verdict["errors"],
                error_rate=verdict["error_rate"],
                failed=verdict["failed"],
                reasons=verdict["reasons"],
            )
        )
        if verdict["failed"] or clock() - started >= p["soak_seconds"]:
            break
    # the proof of the step (enough requests) is judged over the whole soak, once
    verdict = gate_eval(
        current, baseline, p["servers"], max_error_rate=p["max_error_rate"], max_response_ms=p["max_response_ms"], min_requests=p["min_requests"]
    )
    verdict.update(polls=polls, soaked_seconds=round(clock() - started, 3), lb_counters=True, closing=dict(after=current, stats={}, stats_at=read_at))
    return verdict


def judge(lb: dict, p: dict) -> dict:
    """The gate's verdict: the load balancer's (from a soak) plus each node's readiness and own error
    rate from ``nodes_before``/``nodes_after`` (kong_node_info results per node)."""
    verdict = dict(lb or {})
    verdict.setdefault("failed", False)
    verdict.setdefault("reasons", [])
    verdict["reasons"] = list(verdict["reasons"])
    after = p.get("nodes_after")
    if after is not None:
        not_ready = sorted(name for name, res in after.items() if not (res or {}).get("ready"))
        verdict["not_ready"] = not_ready
        if not_ready:
            verdict["reasons"].append(", ".join(not_ready) + " not ready")
        metrics_after = {name: (res or {}).get("metrics") for name, res in after.items()}
        if any(m is not None for m in metrics_after.values()):
            before = {name: (res or {}).get("metrics") or {} for name, res in (p.get("nodes_before") or {}).items()}
            nodes = node_gate_eval({k: v or {} for k, v in metrics_after.items()}, before, max_error_rate=p["max_error_rate"])
            verdict["reasons"] += nodes["reasons"]
            verdict.update(nodes=nodes["nodes"], nodes_without_metrics=nodes["unavailable"])
    verdict["failed"] = bool(verdict["reasons"])
    verdict["label"] = p.get("label") or "gate"
    return verdict


def summary(verdict: dict) -> str:
    state = "FAILED: " + "; ".join(verdict["reasons"]) if verdict.get("failed") else "passed"
    slowest = f", slowest average response {verdict['response_ms']:g} ms" if verdict.get("response_ms") else ""
    return (
        f"{verdict.get('label', 'gate')}: {verdict.get('requests', 0)} requests, {verdict.get('errors', 0)} errors "
        f"({verdict.get('error_rate', 0.0)} %){slowest}, {state}"
    )


def poll_line(label: str, index: int, poll: dict) -> str:
    state = "crossed: " + "; ".join(poll["reasons"]) if poll.get("failed") else "holding"
    return f"{label}: check {index} at {poll['at']:.1f} s: {poll['requests']} requests, {poll['errors']} errors ({poll['error_rate']} %), {state}"
