# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Facts about one Kong node from its Admin API and status listener."""

from __future__ import annotations

import re
import time

from ansible_collections.kongops.upgrade.plugins.module_utils._dp_skew import hash_divergence
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    KongAdminError,
    node_mode,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._poll import poll

MODES = ("dbless", "traditional", "hybrid_cp", "hybrid_dp", "konnect_dp")
EMPTY_CONFIG_HASH = "0" * 32
DB_MODES = ("traditional", "hybrid_cp")
CONNECTION_KEYS = (
    "connections_accepted",
    "connections_active",
    "connections_handled",
    "connections_reading",
    "connections_writing",
    "connections_waiting",
    "total_requests",
)
DATA_PLANE_KEYS = (
    "id",
    "hostname",
    "ip",
    "version",
    "sync_status",
    "config_hash",
    "last_seen",
    "updated_at",
    "ttl",
    "labels",
)


def detect_mode(node: dict) -> str:
    """dbless | traditional | hybrid_cp | hybrid_dp | konnect_dp from `GET /` configuration.database/role."""
    return node_mode(node)


def _message(resp) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200].strip()
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return resp.text[:200].strip()


def ready_from_status(mode: str, status: dict) -> tuple:
    """Readiness derived from `GET /status`, for nodes without `/status/ready` (before 3.3, or no
    status listener): DB modes need the database, DB-less nodes and DPs a loaded configuration."""
    if mode in DB_MODES:
        reachable = (status.get("database") or {}).get("reachable")
        if reachable:
            return True, "database reachable (derived from GET /status)"
        return (
            False,
            "failed to connect to database (derived from GET /status: database.reachable is false)",
        )
    conf_hash = status.get("configuration_hash")
    if not conf_hash:
        return (
            False,
            "no configuration available (derived from GET /status: no configuration_hash)",
        )
    if conf_hash == EMPTY_CONFIG_HASH:
        return (
            False,
            "no configuration available (derived from GET /status: configuration_hash is all zeros)",
        )
    return (
        True,
        "configuration loaded (derived from GET /status: configuration_hash is set)",
    )


# Per-status request counters of Kong's prometheus plugin: kong_http_requests_total (3.x, with
# status_code_metrics enabled) and kong_http_status (2.x).
_STATUS_COUNTER = re.compile(r"^(kong_http_requests_total|kong_http_status)\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.eE+-]+)\s*$")
_CODE_LABEL = re.compile(r'(?:^|,)code="(\d{3})"')


def parse_status_counters(text: str) -> dict:
    """Sum the prometheus plugin's per-status request counters of a node's /metrics text.

    Returns ``available`` (whether any per-status counter was exposed), ``requests`` (all answers
    counted), ``errors`` (answers with a 5xx status) and ``by_class`` ("2xx" -> count, ...).
    """
    by_class: dict = {}
    found = False
    for line in text.splitlines():
        match = _STATUS_COUNTER.match(line.strip())
        if not match:
            continue
        code = _CODE_LABEL.search(match.group("labels"))
        if not code:
            continue
        try:
            value = int(float(match.group("value")))
        except ValueError:
            continue
        found = True
        cls = f"{code.group(1)[0]}xx"
        by_class[cls] = by_class.get(cls, 0) + value
    return {"available": found, "requests": sum(by_class.values()), "errors": by_class.get("5xx", 0), "by_class": by_class}


class KongNodeInfo:
    """`admin` is a KongAdminClient on the node's Admin API; `status` an optional one on its status
    listener (where `/status/ready` lives from Kong 3.3)."""

    def __init__(self, admin, status=None):
        self.admin, self.status_api = admin, status

    def readiness(self, mode: str, status: dict) -> dict:
        note = None
        if self.status_api is not None:
            answer, other = ask_ready(self.status_api)
            if answer is not None:
                return answer
            note = f"GET {other.url} answered HTTP {other.status_code} (no /status/ready before Kong 3.3)"
        ready, reason = ready_from_status(mode, status)
        if note:
            reason = f"{reason}; {note}"
        elif self.status_api is None:
            reason = f"{reason}; status_url not set, so /status/ready was not asked"
        return {
            "ready": ready,
            "ready_reason": reason,
            "ready_source": "status",
            "ready_http_status": None,
        }

    def data_planes(self) -> list:
        planes = []
        for entry in self.admin.paged("/clustering/data-planes"):
            planes.append({key: entry.get(key) for key in DATA_PLANE_KEYS})
        return sorted(
            planes,
            key=lambda dp: (str(dp.get("hostname") or ""), str(dp.get("id") or "")),
        )

    def _data_planes_or_outage(self) -> tuple:
        """(data planes, None), or ([], why) while the control plane's Admin API does not answer (refused,
        timed out, 5xx): a control plane restarting or lost for a while during a wait. Its data planes keep
        serving their configuration meanwhile, so the wait goes on until its end; an answer that says the
        request is wrong (4xx: a token, a path) stops it at once."""
        try:
            return self.data_planes(), None
        except KongAdminError as exc:
            _raise_unless_outage(exc)
            return [], f"the control plane at {exc.url} did not answer ({exc})"

    def wait_data_plane(self, want: dict, timeout: float, interval: float = 1.0, sleep=None, clock=None) -> dict:
        """Poll this control plane's data-plane list until the row of ``want['id']`` is in sync:
        sync_status normal and, where given, ``version`` and ``config_hash`` equal. Returns
        {synced, data_plane (the last row seen, {} when not listed), waited_seconds, reason}."""

        seen = {"row": {}}

        def attempt():
            planes, gone = self._data_planes_or_outage()
            if gone:
                return False, (seen["row"], gone)
            row = seen["row"] = next((dp for dp in planes if dp.get("id") == want["id"]), {})
            reason = data_plane_out_of_sync(row, want)
            return reason is None, (row, reason)

        synced, (row, reason), waited = poll(attempt, timeout, interval, sleep, clock)
        return {"synced": synced, "data_plane": row, "waited_seconds": round(waited, 1), "reason": reason}

    def wait_config_sync(self, timeout: float, stale_after: int, interval: float = 1.0, sleep=None, clock=None, now=None) -> tuple:
        """Poll until every live data plane reports sync_status normal and one configuration hash
        (_dp_skew.hash_divergence). Returns (hash, []) or (None, what still differs) when time is up."""
        now = now or time.time

        def attempt():
            planes, gone = self._data_planes_or_outage()
            if gone:
                return False, (None, [gone])
            conf_hash, problems = hash_divergence(planes, now(), stale_after)
            return not problems, (conf_hash, problems)

        return poll(attempt, timeout, interval, sleep, clock)[1]

    def metrics(self) -> dict:
        """The node's own request counters from GET /metrics (the prometheus plugin), on the status
        listener when known, else on the Admin API. Never fails: ``available`` false and a ``reason``
        when the node exposes no per-status counters."""
        api = self.status_api if self.status_api is not None else self.admin
        try:
            resp = api.raw("GET", "/metrics")
        except KongAdminError as exc:
            return {"available": False, "requests": 0, "errors": 0, "by_class": {}, "url": None, "reason": f"/metrics unreachable: {exc}"}
        if resp.status_code != 200:
            return {
                "available": False,
                "requests": 0,
                "errors": 0,
                "by_class": {},
                "url": resp.url,
                "reason": f"GET {resp.url} answered HTTP {resp.status_code}: is the prometheus plugin enabled?",
            }
        counts = parse_status_counters(resp.text)
        counts["url"] = resp.url
        counts["reason"] = (
            None
            if counts["available"]
            else ("no per-status request counters in /metrics: enable the prometheus plugin globally (with status_code_metrics: true from Kong 3.0)")
        )
        return counts

    def gather(self, include_data_planes: bool = True, include_metrics: bool = False) -> dict:
        node = self.admin.node()
        status = self.admin.status()
        conf = node.get("configuration") or {}
        mode = detect_mode(node)
        plugins = node.get("plugins") or {}
        server = status.get("server") or {}
        facts = {
            "version": node.get("version"),
            "edition": node.get("edition"),
            "node_id": node.get("node_id"),
            "hostname": node.get("hostname"),
            "mode": mode,
            "role": conf.get("role") or "traditional",
            "database": conf.get("database"),
            "database_reachable": ((status.get("database") or {}).get("reachable") if mode in DB_MODES else None),
            "configuration_hash": status.get("configuration_hash"),
            "cluster_control_plane": conf.get("cluster_control_plane") if conf.get("role") == "data_plane" else None,
            "connections": {key: server.get(key) for key in CONNECTION_KEYS if key in server},
            "plugins_enabled": sorted(plugins.get("enabled_in_cluster") or []),
            "plugins_available": sorted(plugins.get("available_on_server") or {}),
            "data_planes": [],
        }
        facts.update(self.readiness(mode, status))
        if mode == "hybrid_cp" and include_data_planes:
            facts["data_planes"] = self.data_planes()
        if include_metrics:
            facts["metrics"] = self.metrics()
        return facts

    def gather_through_outage(
        self, timeout: float, include_data_planes: bool = True, include_metrics: bool = False, interval: float = 1.0, sleep=None, clock=None
    ):
        """gather(), read again through an outage (refused, timed out, 5xx) for at most ``timeout``
        seconds: a wait on a control plane that restarts or is lost for a while starts with this read, and
        its data planes keep serving meanwhile. Returns ``(facts, waited_seconds)``; raises the last error
        when the time is up, and at once an answer that says the request is wrong (4xx)."""

        def attempt():
            try:
                return True, self.gather(include_data_planes=include_data_planes, include_metrics=include_metrics)
            except KongAdminError as exc:
                _raise_unless_outage(exc)
                return False, exc

        done, value, waited = poll(attempt, timeout, interval, sleep, clock)
        if not done:
            raise value
        return value, waited


def ask_ready(status) -> tuple:
    """GET /status/ready on a node's status listener (``status``, a client there): (readiness, None) when
    it answered 200 or 503 or did not answer, (None, the response) for another answer (Kong before 3.3 has
    no /status/ready: 404), whose readiness must then be derived otherwise."""
    try:
        resp = status.raw("GET", "/status/ready")
    except KongAdminError as exc:
        return {"ready": False, "ready_reason": f"status listener unreachable: {exc}", "ready_source": "status_ready", "ready_http_status": None}, None
    if resp.status_code in (200, 503):
        return {"ready": resp.status_code == 200, "ready_reason": _message(resp), "ready_source": "status_ready", "ready_http_status": resp.status_code}, None
    return None, resp


def status_reading(status, include_metrics: bool = True) -> dict:
    """A node's readiness (GET /status/ready) and, with ``include_metrics``, its own request counters
    (GET /metrics), both on its status listener alone (``status``, a client there): the reading a gate
    takes of many nodes at once from one place, shaped as kong_node_info's result. Never raises: a
    listener that does not answer, or one without /status/ready, reads as not ready with the reason
    (readiness derived from GET /status would need the node's Admin API)."""
    answer, other = ask_ready(status)
    if answer is None:
        answer = {
            "ready": False,
            "ready_reason": f"GET {other.url} answered HTTP {other.status_code}: no /status/ready (Kong before 3.3, or not a status listener); "
            "without it readiness needs the node's Admin API",
            "ready_source": "status_ready",
            "ready_http_status": other.status_code,
        }
    reading = dict(answer, url=status.base_url)
    if include_metrics:
        reading["metrics"] = KongNodeInfo(None, status).metrics()
    return reading


def _raise_unless_outage(exc: KongAdminError) -> None:
    """A wait goes on through an outage (refused, timed out, 5xx); an answer that says the request is wrong
    (4xx: a token, a path) is raised at once."""
    if exc.status is not None and exc.status < 500:
        raise exc


def data_plane_out_of_sync(row: dict, want: dict):
    """None when the control plane's ``row`` shows the data plane in sync as ``want`` asks (id,
    optional version and config_hash), else what differs."""
    if not row:
        return "not listed"
    problems = []
    if row.get("sync_status") != "normal":
        problems.append(f"sync_status {row.get('sync_status')}")
    if want.get("version") and row.get("version") != want["version"]:
        problems.append(f"version {row.get('version')} (expected {want['version']})")
    if want.get("config_hash") and row.get("config_hash") != want["config_hash"]:
        problems.append(f"configuration hash {row.get('config_hash')} (the node reports {want['config_hash']})")
    return ", ".join(problems) or None
