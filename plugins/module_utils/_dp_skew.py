# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""A hybrid control plane's view of its data planes, judged: live and stale rows, data planes newer
than the control plane or a major apart, data planes left behind by an earlier interrupted run, and
whether every live data plane runs the control plane's configuration."""

from __future__ import annotations

import re

EMPTY_CONFIG_HASH = "0" * 32
# A data plane pings its control plane every 30 s (Kong/kong 3.9.3 kong/constants.lua:230,
# CLUSTERING_PING_INTERVAL) and the control plane stores last_seen on each ping
# (kong/clustering/control_plane.lua:376-380): three missed pings make a row stale.
DEFAULT_STALE_AFTER = 90
LEFT_BEHIND_CHOICES = ("stop", "upgrade")

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


def parse(version) -> tuple | None:
    match = _VERSION.match(str(version or ""))
    return tuple(int(x or 0) for x in match.groups()) if match else None


def label(row: dict) -> str:
    """hostname (id ..., ip ..., Kong ...): how a data plane is named in every message."""
    return f"{row.get('hostname') or '?'} (id {row.get('id') or '?'}, ip {row.get('ip') or '?'}, Kong {row.get('version') or '?'})"


def _seen(row: dict) -> int:
    try:
        return int(row.get("last_seen") or 0)
    except (TypeError, ValueError):
        return 0


def split_stale(rows: list, now: float, stale_after: int) -> tuple:
    """(live, stale): a row is stale when its last ping is older than ``stale_after`` seconds. The
    control plane keeps rows for cluster_data_plane_purge_delay (14 days by default) after the data
    plane is gone, so old rows of retired or crashed data planes are still listed."""
    live, stale = [], []
    for row in rows:
        (stale if now - _seen(row) > stale_after else live).append(row)
    return live, stale


def version_problem(dp_version, cp_version) -> str | None:
    """Kong's own test of a data plane against its control plane (Kong/kong 3.9.3
    kong/clustering/compat/init.lua, check_kong_version_compatibility): same major, minor not newer."""
    dp, cp = parse(dp_version), parse(cp_version)
    if dp is None:
        return f"reports no Kong version Kong can compare ({dp_version!r})"
    if cp is None:
        return None
    if dp[0] != cp[0]:
        return f"is a major version apart from its control plane on {cp_version} (Kong accepts only {cp[0]}.x.y)"
    if dp[1] > cp[1]:
        return f"is newer than its control plane on {cp_version} (Kong refuses a data plane of a newer minor)"
    return None


def judge(
    rows: list, cp_version: str, now: float, stale_after: int = DEFAULT_STALE_AFTER, target_version: str | None = None, inventory_ids=None, inventory_names=None
) -> dict:
    """Judge a control plane's ``GET /clustering/data-planes`` rows.

    ``inventory_ids`` maps the node id of each data plane host of the inventory's current groups to its
    host name (None: no inventory check). Returns live/stale labels, the live versions, ``blocking``
    (a message per data plane Kong refuses or would refuse: newer than the control plane or a major
    apart), ``left_behind`` (live data planes an earlier interrupted run left on another version: on
    another version than the target and not in the inventory's current groups, or inventory hosts on an
    older version than another inventory host, the target included) and
    ``unreachable`` (the left-behind ones no inventory host runs, which no run can upgrade)."""
    live, stale = split_stale(rows, now, stale_after)
    blocking = []
    for row in live:
        problem = version_problem(row.get("version"), cp_version)
        if problem:
            blocking.append(
                f"data plane {label(row)} {problem}: upgrade the control plane first "
                f"(playbooks/hybrid_upgrade.yml), or stop that data plane or put it back on a version "
                f"its control plane accepts"
            )
    if target_version:
        problem = version_problem(target_version, cp_version)
        if problem:
            blocking.append(
                f"the data planes would run Kong {target_version}, which {problem}: upgrade the "
                f"control plane to {target_version} first (playbooks/hybrid_upgrade.yml)"
            )
    left_behind, unreachable = [], []
    if inventory_ids is not None:
        names = dict(inventory_ids)
        # inventory hosts on two versions: the older ones were left there (a replace run interrupted after
        # some hosts, or an earlier upgrade never finished on every host)
        known = [r for r in live if r.get("id") in names]
        newest = max((parse(r.get("version")) or (0, 0, 0) for r in known), default=None)
        for row in live:
            if row.get("id") not in names:
                if not (target_version and row.get("version") == target_version):
                    unreachable.append(row)
                    left_behind.append(row)
            elif (parse(row.get("version")) or (0, 0, 0)) < newest:
                left_behind.append(row)
    return {
        "live": [label(r) for r in live],
        "stale": [f"{label(r)} last seen {int(now - _seen(r))} s ago" for r in stale],
        "dp_versions": sorted({str(r.get("version")) for r in live if r.get("version")}),
        "blocking": blocking,
        "left_behind": [dict(r, label=label(r), host=(inventory_ids or {}).get(r.get("id"))) for r in left_behind],
        "unreachable": [label(r) for r in unreachable],
    }


def left_behind_message(result: dict, choice: str) -> str | None:
    """The message that stops the run for the data planes ``judge`` found left behind, or None when
    the run goes on (none found, or ``choice`` is upgrade and every one is an inventory host)."""
    rows = result.get("left_behind") or []
    if not rows:
        return None
    unreachable = [r for r in rows if not r.get("host")]
    if choice == "upgrade" and not unreachable:
        return None
    parts = []
    if unreachable:
        parts.append(
            "not in the inventory's current groups: "
            + "; ".join(r["label"] for r in unreachable)
            + ". No run can upgrade a data plane the inventory does not reach: put its host in kong_x "
            "so this run upgrades it, or stop it (the control plane keeps its row until "
            "cluster_data_plane_purge_delay, then it no longer counts once stale)"
        )
    inventory = [r for r in rows if r.get("host")]
    if inventory and choice != "upgrade":
        parts.append(
            "kong_x hosts on an older version than the other kong_x data planes: "
            + "; ".join(f"{r['host']} = {r['label']}" for r in inventory)
            + ". Set kong_dp_left_behind=upgrade to upgrade it in this run, or finish the earlier run first"
        )
    return "The control plane lists data planes an earlier interrupted run left behind, " + " | ".join(parts) + "."


def hash_divergence(rows: list, now: float, stale_after: int, ignore_ids=(), expected: str | None = None, sync_status: bool = True) -> tuple:
    """(hash, problems): every live data plane (rows not stale, ids not in ``ignore_ids``) must report
    sync_status normal and the one configuration hash the control plane sends to all of them (it
    computes it once per export, Kong/kong 3.9.3 kong/clustering/control_plane.lua:131-158). ``hash``
    is that hash when they all agree, else None; ``problems`` names each data plane that differs.
    ``expected`` is the hash they must all report when the control plane publishes one (Konnect's
    expected-config-hash); ``sync_status=False`` for rows that carry none (Konnect's node records)."""
    live, _stale = split_stale(rows, now, stale_after)
    live = [r for r in live if r.get("id") not in set(ignore_ids)]
    hashes = {}
    for row in live:
        if row.get("config_hash") and row.get("config_hash") != EMPTY_CONFIG_HASH:
            hashes[row["config_hash"]] = hashes.get(row["config_hash"], 0) + 1
    # the hash most live data planes report; newest rows win a tie (the control plane's latest push)
    best = None
    if hashes:
        latest = max(live, key=_seen)
        best = max(hashes, key=lambda h: (hashes[h], h == latest.get("config_hash")))
    if expected:
        best = expected
    problems = []
    for row in live:
        why = []
        if sync_status and row.get("sync_status") != "normal":
            why.append(f"sync_status {row.get('sync_status')}")
        if row.get("config_hash") != best:
            why.append(f"configuration hash {row.get('config_hash')}")
        if why:
            problems.append(f"{label(row)}: {', '.join(why)}")
    if not live:
        problems.append("no live data plane listed")
    if best and not problems:
        return best, []
    if expected:
        return None, problems + ([f"the control plane expects {expected}"] if problems else [])
    return None, problems + ([f"the others report {best}"] if best and problems else [])


# --------------------------------------------------------------------------- Konnect data planes
# Konnect's published compatibility table (https://developer.konghq.com/konnect-platform/compatibility/,
# "Kong Gateway version compatibility", read 2026): Konnect is compatible with Kong Gateway 2.5.x up to
# 3.14.x. A data plane outside that range is one Konnect does not support. The table grows with every
# release: the newest row here is the newest confirmed one, and a newer minor is refused until
# kong_konnect_newest_supported (``newest_supported``) says otherwise. UNCONFIRMED: whether Konnect's
# control plane refuses such a data plane outright or only reports it; the run refuses it either way.
KONNECT_OLDEST_SUPPORTED = "2.5.0"
KONNECT_NEWEST_SUPPORTED = "3.14.0"
KONNECT_POLICY_URL = "https://developer.konghq.com/konnect-platform/compatibility/"


def konnect_version_problem(dp_version, cp_version=None, newest_supported=KONNECT_NEWEST_SUPPORTED) -> str | None:
    """Why Konnect would not take a data plane on ``dp_version``: outside its published compatibility
    table, or newer (major.minor) than the control plane's version when that is known. Konnect's control
    plane serves older majors too (the table lists 2.x), so a major apart is no problem here."""
    dp = parse(dp_version)
    if dp is None:
        return f"reports no Kong version that can be compared ({dp_version!r})"
    oldest, newest = parse(KONNECT_OLDEST_SUPPORTED), parse(newest_supported or KONNECT_NEWEST_SUPPORTED)
    if dp[:2] < oldest[:2]:
        return f"is older than Konnect supports ({KONNECT_OLDEST_SUPPORTED[:3]}.x is the oldest row of {KONNECT_POLICY_URL})"
    if newest and dp[:2] > newest[:2]:
        return (
            f"is newer than the newest version Konnect's published compatibility table lists "
            f"({newest[0]}.{newest[1]}.x, {KONNECT_POLICY_URL}); set kong_konnect_newest_supported once "
            f"Konnect lists it"
        )
    cp = parse(cp_version)
    if cp is not None and dp[:2] > cp[:2]:
        return f"is newer than its Konnect control plane on {cp_version} (kong_konnect_control_plane_version)"
    return None


def konnect_rows(items: list) -> list:
    """Konnect's data-plane node records (``GET /v2/control-planes/{id}/nodes`` items: id, version,
    hostname, last_ping, type, created_at, updated_at, config_hash, compatibility_status) in the shape
    ``judge`` and ``hash_divergence`` read: last_ping is the row's last_seen. Konnect reports no
    sync_status; ``sync_status`` is left out (hash_divergence is then told not to require it)."""
    rows = []
    for item in items or []:
        row = dict(item)
        row["last_seen"] = item.get("last_ping")
        row.setdefault("ip", None)
        rows.append(row)
    return rows


def judge_konnect(
    rows: list,
    now: float,
    stale_after: int = DEFAULT_STALE_AFTER,
    cp_version=None,
    target_version=None,
    newest_supported=KONNECT_NEWEST_SUPPORTED,
    inventory_ids=None,
) -> dict:
    """Judge Konnect's node records: the live ones (last_ping within ``stale_after``) Konnect does not
    support or that are newer than the control plane, and ``target_version`` the same way. A record whose
    id is in ``inventory_ids`` (node id to inventory host) is named with its inventory host too."""
    names = dict(inventory_ids or {})
    live, stale = split_stale(rows, now, stale_after)
    blocking = []
    for row in live:
        problem = konnect_version_problem(row.get("version"), cp_version, newest_supported)
        if problem:
            host = names.get(row.get("id"))
            blocking.append(
                f"data plane {host + ' = ' if host else ''}{label(row)} {problem}: stop that data plane or put it back on a version Konnect supports"
            )
    if target_version:
        problem = konnect_version_problem(target_version, cp_version, newest_supported)
        if problem:
            blocking.append(f"the data planes would run Kong {target_version}, which {problem}: choose a kong_version_target Konnect supports")
    return {
        "live": [label(r) for r in live],
        "stale": [f"{label(r)} last seen {int(now - _seen(r))} s ago" for r in stale],
        "dp_versions": sorted({str(r.get("version")) for r in live if r.get("version")}),
        "blocking": blocking,
        "left_behind": [],
        "unreachable": [],
    }
