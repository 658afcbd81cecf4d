# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Kong upgrade planning: supported paths, hybrid compatibility, strategy, breaking-change scan.

Pure functions over plain data; the rules themselves live in ``_breaking_changes.py``.
"""

from __future__ import annotations

import json
import re
from collections import deque

from ansible_collections.kongops.upgrade.plugins.module_utils import (
    _breaking_changes as data,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._versions import (
    KongVersion,
    KongVersionError,
)

try:
    import yaml
except ImportError:
    HAS_YAML = False
else:
    HAS_YAML = True

MODES = ("dbless", "traditional", "hybrid", "hybrid_cp", "hybrid_dp", "konnect_dp")
SEVERITIES = ("high", "medium", "low", "info")
_ANY_PATCH = 999

# Kong's own test for "this 2.x path is a regex" (kong/db/migrations/migrate_path_280_300.lua,
# `is_not_regex`): anything outside these characters makes it a regex.
_PLAIN_PATH_RE = re.compile(r"[a-zA-Z0-9.\-_~/%]*")
_LOOKAROUND_RE = re.compile(r"\(\?<?[=!]|\\[1-9]")


class UpgradeRulesError(ValueError):
    """Bad input to the planner; ``param`` names the option at fault."""

    def __init__(self, msg: str, param: str | None = None):
        super().__init__(msg)
        self.param = param


def version(text, param: str) -> KongVersion:
    try:
        return KongVersion(str(text))
    except KongVersionError as exc:
        raise UpgradeRulesError(f"{param}: {exc}", param=param) from exc


def series_of(ver: KongVersion) -> str:
    return f"{ver.major}.{ver.minor}"


def _series_key(series: str) -> tuple:
    major, minor = series.split(".")
    return int(major), int(minor)


def _point_series(text: str) -> str:
    return ".".join(text.split(".")[:2])


def _point_key(text: str) -> tuple:
    """Ordering key of a path point: `3.5.x` sorts after every 3.5 patch release."""
    parts = text.split(".")
    nums = [(_ANY_PATCH if p == "x" else int(p)) for p in parts]
    return tuple(nums + [0] * (4 - len(nums)))


def _inherited(table: dict, series: str):
    """The entry for `series` or, failing that, for the nearest older listed series."""
    best = None
    for key in sorted(table, key=_series_key):
        if _series_key(key) <= _series_key(series):
            best = key
    return table[best] if best is not None else None


def sourced(series: str) -> bool:
    """Whether the planner's source-read facts (bundled plugins, `_format_version`) cover `series`."""
    return _series_key(series) <= _series_key(data.LAST_SOURCED_SERIES)


def accepted_format_versions(series: str) -> tuple | None:
    """The `_format_version` values `series` accepts; None when they were never read from its source."""
    if not sourced(series):
        return None
    return tuple(_inherited(data.ACCEPTED_FORMAT_VERSIONS, series) or ())


def bundled_plugins(series: str, table: dict | None = None) -> frozenset | None:
    """The plugins `series` bundles; None when they were never read from its source."""
    if table is None and not sourced(series):
        return None
    return frozenset(_inherited(table or data.BUNDLED_PLUGINS, series) or ())


def _series_graph() -> dict:
    chain = list(data.KNOWN_SERIES)
    graph = {s: [] for s in chain}
    for i in range(len(chain) - 1):
        graph[chain[i]].append(chain[i + 1])
    for older, newer in data.LTS_JUMPS:
        graph[older].append(newer)
    return graph


def _series_route(start: str, goal: str) -> list | None:
    """Shortest chain of guaranteed hops from one series to another (breadth first)."""
    graph = _series_graph()
    prev = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            route = []
            while node is not None:
                route.append(node)
                node = prev[node]
            return route[::-1]
        for nxt in sorted(graph[node], key=_series_key, reverse=True):
            if nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    return None


def _hop_kind(src: str, dst: str) -> str:
    if src == dst:
        return "patch"
    if (src, dst) in data.LTS_JUMPS:
        return "lts"
    return "major" if src.split(".")[0] != dst.split(".")[0] else "minor"


def plan_path(current: KongVersion, target: KongVersion, mode: str = "traditional", database: str | None = None) -> dict:
    """Judge current -> target against Kong's guaranteed upgrade paths (https://docs.konghq.com/gateway/3.9.x/upgrade/).

    `supported` is true only when the direct jump is guaranteed; `reachable` when a chain of
    guaranteed hops exists, named in `path`/`hops`.
    """
    reasons: list = []
    result = {"current": str(current), "target": str(target), "supported": False, "reachable": False, "path": [], "hops": [], "reasons": reasons}
    src, dst = series_of(current), series_of(target)
    known = data.KNOWN_SERIES
    if target < current:
        reasons.append(
            f"{current} -> {target} is a downgrade: Kong migrations are not reversible, so a "
            "downgrade is not an upgrade path; roll back by restoring the backup taken before "
            "the upgrade (https://docs.konghq.com/gateway/3.9.x/upgrade/)."
        )
        return result
    if database == "cassandra" and target >= KongVersion(data.CASSANDRA_REMOVED_IN):
        reasons.append(
            f"Kong {target} does not support Cassandra (removed in {data.CASSANDRA_REMOVED_IN}: "
            "'Cassandra as a datastore for Kong is not supported in versions 3.4 and above. Please "
            "use Postgres.', Kong/kong 3.4.0 kong/conf_loader/init.lua); migrate the data to "
            "PostgreSQL first."
        )
        return result
    for ver, name, param in ((current, src, "current"), (target, dst, "target")):
        if name not in known:
            where = "older than" if _series_key(name) < _series_key(known[0]) else "newer than"
            hint = " Upgrade to 2.8.x first with Kong's 2.x guides (1.x goes to 2.1.0 first)." if where == "older than" else ""
            reasons.append(f"The {param} version {ver} is {where} the release series this planner knows ({known[0]} to {known[-1]}).{hint}")
            return result
    avoid = data.VERSIONS_TO_AVOID.get(str(target))
    if avoid:
        reasons.append(
            f"Kong's documentation says not to upgrade to {target}: {avoid['why']}. Set the target to {avoid['instead']} instead ({avoid['source']})."
        )
        return result
    if current == target:
        result.update(supported=True, reachable=True, path=[str(current)])
        reasons.append(f"Already at {target}: nothing to upgrade.")
        return result

    route = _series_route(src, dst)
    if route is None:
        reasons.append(f"No guaranteed path from {src}.x to {dst}.x.")
        return result
    points = [str(current)] + [f"{s}.x" for s in route[1:-1]] + [str(target)]
    step = data.HYBRID_WIRE_PROTOCOL_STEP
    if mode in ("hybrid", "hybrid_cp", "hybrid_dp") and str(current) in step["from"] and target > KongVersion(step["via"]):
        points.insert(1, step["via"])
        reasons.append(f"Hybrid mode on {current}: go to {step['via']} first (wire-protocol change, https://docs.konghq.com/gateway/3.9.x/upgrade/).")
    hops = [{"from": points[i], "to": points[i + 1], "kind": _hop_kind(_point_series(points[i]), _point_series(points[i + 1]))} for i in range(len(points) - 1)]
    result.update(path=points, hops=hops, reachable=True, supported=len(hops) == 1)
    if len(hops) == 1:
        why = {
            "patch": "patch to patch within one minor",
            "minor": "one minor to the next minor",
            "major": "the next release after 2.8 (3.0 migrates from >= 2.1.x)",
            "lts": f"LTS to the next LTS ({src} -> {dst}, Kong's LTS upgrade guide {data.LTS_SOURCES.get((src, dst), '')})",
        }[hops[0]["kind"]]
        reasons.append(f"{current} -> {target} is a guaranteed upgrade path: {why} (https://docs.konghq.com/gateway/3.9.x/upgrade/).")
    else:
        lts = ", ".join(f"{a} -> {b}" for a, b in data.LTS_JUMPS)
        reasons.append(
            f"{current} -> {target} skips releases: Kong only guarantees patch -> patch, minor -> "
            f"next minor and LTS -> next LTS ({lts}), so go {' -> '.join(points)} ({len(hops)} hops, each one "
            "migrated and verified before the next; https://docs.konghq.com/gateway/3.9.x/upgrade/)."
        )
    return result


def _dp_vs_cp(dp: KongVersion, cp: KongVersion) -> str | None:
    """Kong's CP check of a DP version (Kong/kong 3.9.3 kong/clustering/compat/init.lua
    check_kong_version_compatibility): only major and minor count."""
    if dp.major != cp.major:
        return f"data plane version {dp} is incompatible with control plane version {cp} ({cp.major}.x.y are accepted)"
    if dp.minor > cp.minor:
        return f"data plane version {dp} is incompatible with older control plane version {cp}"
    return None


def hybrid_check(mode: str, target: KongVersion, cp: KongVersion | None, dps: list) -> dict:
    """CP-before-DP ordering and DP/CP version compatibility now, during and after the upgrade."""
    blocking: list = []
    notes: list = []
    for dp in dps:
        if cp is not None:
            err = _dp_vs_cp(dp, cp)
            if err:
                blocking.append(f"Already broken before the upgrade: {err} (Kong/kong 3.9.3 kong/clustering/compat/init.lua).")
    if mode == "hybrid_dp":
        err = _dp_vs_cp(target, cp)
        if err:
            blocking.append(
                f"Upgrading the data planes to {target} while the control plane runs {cp}: {err}. "
                f"Upgrade the control planes to {target} first (CP before DP, "
                "Kong/kong 3.9.3 kong/clustering/compat/init.lua)."
            )
        else:
            notes.append(f"Control plane {cp} accepts data planes on {target} (same major, minor not newer).")
    else:
        for dp in sorted(set(dps)):
            err = _dp_vs_cp(dp, target)
            if err and dp.major != target.major:
                notes.append(
                    f"Data planes on {dp} are rejected by a {target} control plane "
                    f"(sync_status kong_version_incompatible: '{err}') until they are upgraded: "
                    "upgrade them right after the control plane ("
                    "Kong/kong 3.9.3 kong/clustering/compat/init.lua)."
                )
            elif err:
                blocking.append(f"A control plane on {target} would reject data planes on {dp}: {err} (Kong/kong 3.9.3 kong/clustering/compat/init.lua).")
        notes.append(
            "Upgrade the control planes first (in place), then the data planes (rolling); a newer "
            "CP may serve older DPs of the same major for a while, but do not run mixed versions "
            "long-term (https://docs.konghq.com/gateway/3.9.x/production/deployment-topologies/"
            "hybrid-mode/)."
        )
    return {
        "order": ["control_plane", "data_planes"],
        "cp_version": str(cp) if cp is not None else None,
        "dp_versions": sorted({str(d) for d in dps}),
        "compatible": not blocking,
        "blocking": blocking,
        "notes": notes,
    }


# kong_upgrade_hops=auto for nodes without a database (rolling strategy): Kong's step-by-step path
# guards the order of database migrations, which such nodes never run; what they carry from X to Y is
# the declarative configuration (DB-less) or the control plane's version (data planes).
_JUMP_NO_MIGRATIONS = (
    "with database=off every migration of the running version counts as executed and none is "
    "pending, Kong/kong 3.9.3 kong/db/strategies/off/connector.lua:50-65"
)
_JUMP_FORMATS = (
    "Kong 3.x reads the declarative `_format_version` 1.1, 2.1 and 3.0 (Kong/kong 3.9.3 "
    "kong/db/schema/others/declarative_config.lua:254) and converts the older formats' paths on "
    "load (kong/db/declarative/migrations/route_path.lua)"
)
_JUMP_COMPAT = "the control plane only compares major and minor, accepting any older minor of its major (Kong/kong 3.9.3 kong/clustering/compat/init.lua:38-74)"


def rolling_jump(plan: dict, mode: str, cp: KongVersion | None = None) -> dict | None:
    """Whether the nodes may take a path of several hops in one rolling upgrade (X -> final Y).

    None unless the mode is upgraded rolling (dbless, hybrid_dp) and the path is reachable in several
    hops. `allowed` with the `reason` and its source; `covers` names the hops whose breaking-change
    rules the scan evaluated (scan() runs every hop of the plan)."""
    if mode not in ("dbless", "hybrid_dp", "konnect_dp") or not plan["reachable"] or len(plan["hops"]) < 2:
        return None
    current, target = plan["path"][0], plan["path"][-1]
    steps = [f"{h['from']} -> {h['to']}" for h in plan["hops"]]
    out = {"allowed": False, "from": current, "to": target, "covers": steps, "chain": [h["to"] for h in plan["hops"]], "reason": ""}
    via = data.HYBRID_WIRE_PROTOCOL_STEP["via"]
    if via in plan["path"][1:-1]:
        out["reason"] = (
            f"Kong's upgrade guide makes {via} a step of its own for hybrid mode on {current} (wire-"
            f"protocol change, https://docs.konghq.com/gateway/3.9.x/upgrade/): upgrade the data planes "
            f"to {via} in one rolling run, then to {target} in another."
        )
        return out
    if mode == "hybrid_dp":
        cp_text = str(cp) if cp is not None else "(unknown)"
        if cp is None or _dp_vs_cp(KongVersion(target), cp):
            out["reason"] = (
                f"The control plane runs {cp_text}: data planes may only jump to {target} behind a "
                f"control plane that accepts {target}; {_JUMP_COMPAT}. Upgrade the control planes "
                "first (playbooks/hybrid_upgrade.yml does)."
            )
            return out
        out.update(
            allowed=True,
            reason=(
                f"Data planes hold no database ({_JUMP_NO_MIGRATIONS}) and the control plane on {cp_text} accepts data "
                f"planes of {target}: {_JUMP_COMPAT}. So the data planes go {current} -> {target} in one rolling "
                f"upgrade; the breaking-change rules of every hop ({', '.join(steps)}) are evaluated."
            ),
        )
        return out
    formats = accepted_format_versions(_point_series(target))
    read = (
        _JUMP_FORMATS
        if formats is not None
        else f"the `_format_version` values Kong {target} accepts were not read from its source (UNCONFIRMED): "
        "Y's own `kong config parse` of the configuration decides"
    )
    out.update(
        allowed=True,
        reason=(
            f"DB-less nodes run no database migrations ({_JUMP_NO_MIGRATIONS}) and carry only the declarative "
            f"configuration: {read}. So the nodes go {current} -> {target} in one rolling upgrade; the breaking-change "
            f"rules of every hop ({', '.join(steps)}) are evaluated against the configuration."
        ),
    )
    return out


_STRATEGY_SOURCE = "Kong Gateway upgrade guide, upgrade strategies: https://docs.konghq.com/gateway/3.9.x/upgrade/"


def _strategy(name: str, steps: list, reason: str) -> dict:
    return {"name": name, "steps": [{"component": c, "strategy": st} for c, st in steps], "reason": reason, "source": _STRATEGY_SOURCE}


def _and(words) -> str:
    words = list(words)
    return " and ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " and " + words[-1]


def recommend_strategy(mode: str, spare_capacity: bool = False) -> dict:
    if mode in ("dbless", "hybrid_dp", "konnect_dp"):
        what = {"dbless": "DB-less nodes", "hybrid_dp": "hybrid data planes"}.get(mode, "Konnect data planes")
        return _strategy(
            "rolling",
            [("nodes", "rolling")],
            f"{what} hold no database: add Y nodes beside X, move traffic through the load balancer in steps, drain and retire X.",
        )
    if mode == "traditional" and spare_capacity:
        return _strategy(
            "dual_cluster",
            [("cluster", "dual_cluster")],
            "Spare capacity for a second cluster: build Y with its own database restored from "
            "the backup and shift traffic, no downtime (DB-stored counters diverge meanwhile).",
        )
    if mode == "traditional":
        return _strategy(
            "in_place",
            [("cluster", "in_place")],
            "No spare capacity declared: stop X, keep the database, install Y, `kong migrations up` then `finish`, start Y; downtime is expected.",
        )
    if mode == "hybrid_cp":
        return _strategy("in_place", [("control_plane", "in_place")], "Control planes own the database: upgrade them in place, before any data plane.")
    return _strategy(
        "hybrid",
        [("control_plane", "in_place"), ("data_planes", "rolling")],
        "Hybrid: control planes first with a traditional (in-place) upgrade, then the data planes rolling.",
    )


# The strategies an operator may ask for (kong_upgrade_strategy), and the modes each upgrades.
STRATEGY_CHOICES = ("auto", "in_place", "dual_cluster", "rolling")
_STRATEGY_MODES = {
    "in_place": ("traditional", "hybrid_cp"),
    "dual_cluster": ("traditional",),
    "rolling": ("dbless", "hybrid_dp", "konnect_dp"),
}
_STRATEGY_PLAYBOOKS = {
    "in_place": "playbooks/in_place_upgrade.yml",
    "dual_cluster": "playbooks/dual_cluster_upgrade.yml",
    "rolling": "playbooks/rolling_upgrade.yml",
    "hybrid": "playbooks/hybrid_upgrade.yml",
}


def choose_strategy(mode: str, spare_capacity: bool = False, requested: str = "auto") -> dict:
    """The strategy of the run: the operator's when asked for (and fitting the mode), else the planner's.

    The result is recommend_strategy's with `recommended` (the planner's name), `requested`,
    `chosen_by` (operator or planner), `playbook` (the one that runs it) and a `reason` saying why."""
    if requested not in STRATEGY_CHOICES:
        raise UpgradeRulesError(
            f"strategy: '{requested}' is not one of {', '.join(STRATEGY_CHOICES)} (set kong_upgrade_strategy to auto to take the planner's recommendation)",
            param="strategy",
        )
    recommended = recommend_strategy(mode, spare_capacity)
    out = dict(recommended, recommended=recommended["name"], requested=requested, chosen_by="planner")
    if requested != "auto":
        fits = _STRATEGY_MODES[requested]
        if mode not in fits:
            raise UpgradeRulesError(
                f"strategy: {requested} does not upgrade {mode} nodes (it upgrades {_and(fits)} nodes); the "
                f"planner recommends {recommended['name']} for them ({_STRATEGY_PLAYBOOKS[recommended['name']]}). Set "
                "kong_upgrade_strategy to auto or to a strategy that fits the mode.",
                param="strategy",
            )
        if requested != recommended["name"]:
            why = "no spare capacity is declared (kong_spare_capacity=false): Y's hosts must be there" if requested == "dual_cluster" else recommended["reason"]
            out.update(
                name=requested,
                steps=[{"component": "cluster", "strategy": requested}],
                reason=f"Chosen by the operator (kong_upgrade_strategy={requested}); the planner recommends {recommended['name']}: {why}",
            )
        else:
            out["reason"] = f"Chosen by the operator (kong_upgrade_strategy={requested}), as the planner recommends: {recommended['reason']}"
        out["chosen_by"] = "operator"
    out["playbook"] = _STRATEGY_PLAYBOOKS[out["name"]]
    return out


def parse_config_text(text: str, param: str = "config") -> dict:
    """A declarative configuration from YAML or JSON text."""
    try:
        parsed = json.loads(text)
    except ValueError:
        if not HAS_YAML:
            raise UpgradeRulesError(f"{param}: not JSON, and PyYAML is not installed to read YAML", param=param)
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UpgradeRulesError(f"{param}: neither JSON nor YAML: {exc}", param=param) from exc
    if not isinstance(parsed, dict):
        raise UpgradeRulesError(
            f"{param}: a declarative configuration is a mapping with `_format_version` and entity lists, got {type(parsed).__name__}", param=param
        )
    return parsed


def _label(kind: str, entity: dict) -> str:
    for key in ("name", "username", "custom_id", "id"):
        if entity.get(key):
            return f"{kind} '{entity[key]}'"
    return kind


def _collect(config: dict) -> tuple:
    """Routes and plugins of a declarative config, flat (db_export) or nested (decK style)."""
    routes, plugins = [], []

    def add_plugins(owner: dict, where: str, owner_label: str):
        for k, plugin in enumerate(owner.get("plugins") or []):
            if isinstance(plugin, dict):
                plugins.append((plugin, f"{where}.plugins[{k}]", owner_label))

    def add_routes(owner: dict, where: str):
        for j, route in enumerate(owner.get("routes") or []):
            if isinstance(route, dict):
                here = f"{where}routes[{j}]"
                routes.append((route, here))
                add_plugins(route, here, _label("route", route))

    add_routes(config, "")
    for i, service in enumerate(config.get("services") or []):
        if isinstance(service, dict):
            here = f"services[{i}]"
            add_routes(service, here + ".")
            add_plugins(service, here, _label("service", service))
    for i, consumer in enumerate(config.get("consumers") or []):
        if isinstance(consumer, dict):
            add_plugins(consumer, f"consumers[{i}]", _label("consumer", consumer))
    for k, plugin in enumerate(config.get("plugins") or []):
        if isinstance(plugin, dict):
            scope = next(
                (
                    f"{key} {plugin[key] if not isinstance(plugin[key], dict) else plugin[key].get('id')}"
                    for key in ("route", "service", "consumer")
                    if plugin.get(key)
                ),
                "global",
            )
            plugins.append((plugin, f"plugins[{k}]", scope))
    return routes, plugins


def is_regex_path(path: str) -> bool:
    return not path.startswith("~") and _PLAIN_PATH_RE.fullmatch(path) is None


def _rule_applies(rule: dict, hop: dict) -> bool:
    intro = rule.get("introduced")
    if intro is None:
        return True
    return _point_key(hop["from"]) < _point_key(intro) <= _point_key(hop["to"])


def _plugin_where(plugin: dict, where: str, owner: str) -> str:
    return f"{where} plugin '{plugin.get('name')}' on {owner}"


def conf_hits(rule: dict, hop: dict, conf_settings: dict) -> list:
    """(host, property, replacement) for each kong.conf property `rule` names on `hop`."""
    match = rule["match"]
    if match["kind"] == "conf_setting":
        table = match["settings"]
    else:
        table = {}
        for ver, names in match["removed"].items():
            if _point_key(hop["from"]) < _point_key(ver) <= _point_key(hop["to"]):
                table.update(names)
    return [(host, name, table[name]) for host in sorted(conf_settings) for name in sorted(set(conf_settings[host] or ())) if name in table]


def _match(
    rule: dict, hop: dict, config: dict | None, mode: str, collected: tuple, bundled: dict | None, custom_plugins: frozenset, conf_settings: dict | None = None
) -> list:
    """Places in the config (or the deployment) that `rule` hits on `hop`; [] = no hit."""
    match = rule["match"]
    kind = match["kind"]
    to_series, from_series = _point_series(hop["to"]), _point_series(hop["from"])
    if kind == "always":
        return ["every node"]
    if kind == "mode":
        return [f"mode {mode}"] if mode in match["modes"] else []
    if kind in ("conf_setting", "conf_setting_removed"):
        return [f"{host}: {name}" + (f" (set {new} instead)" if new else "") for host, name, new in conf_hits(rule, hop, conf_settings or {})]
    if kind == "custom_plugin_bundled":
        now, before = bundled_plugins(to_series, bundled), bundled_plugins(from_series, bundled)
        if now is None:
            return []  # unknown for a series never read from source: evaluate() says so
        return [
            f"custom plugin '{name}' (kong.conf `plugins`): bundled from {to_series}"
            for name in sorted(custom_plugins)
            if name in now and name not in (before or frozenset())
        ]
    if config is None:
        return []
    routes, plugins = collected
    fmt = config.get("_format_version")
    fmt = None if fmt is None else str(fmt)
    if kind == "format_version_rejected":
        accepted = accepted_format_versions(to_series)
        # unknown for a series never read from source: evaluate() says so instead of guessing
        return [] if accepted is None or fmt in accepted else [f"_format_version: {fmt if fmt is not None else '(missing)'}"]
    if kind == "format_version_legacy":
        return [f"_format_version: {fmt}"] if fmt in match["values"] else []
    if kind in ("route_regex_path", "route_regex_lookaround"):
        if kind == "route_regex_path" and fmt not in match["format_versions"]:
            return []
        hits = []
        for route, where in routes:
            for n, path in enumerate(route.get("paths") or []):
                if not isinstance(path, str):
                    continue
                regex = path.startswith("~") or is_regex_path(path)
                if kind == "route_regex_path" and is_regex_path(path):
                    hits.append(f"{where}.paths[{n}] = '{path}' ({_label('route', route)}) -> '~{path}'")
                elif kind == "route_regex_lookaround" and regex and _LOOKAROUND_RE.search(path):
                    hits.append(f"{where}.paths[{n}] = '{path}' ({_label('route', route)})")
        return hits
    if kind == "has_routes":
        return [f"{len(routes)} route(s)"] if routes else []
    if kind == "plugin_not_bundled":
        now, before = bundled_plugins(to_series, bundled), bundled_plugins(from_series, bundled)
        if now is None:
            return []  # unknown for a series never read from source: evaluate() says so
        before = before or frozenset()
        hits = []
        for plugin, where, owner in plugins:
            name = plugin.get("name")
            if not name or name in now or name in custom_plugins:
                continue
            how = f"removed in {to_series} (bundled in {from_series})" if name in before else "not bundled"
            hits.append(f"{_plugin_where(plugin, where, owner)}: {how}")
        return hits
    names = set(match.get("plugins") or [])
    hits = []
    for plugin, where, owner in plugins:
        if plugin.get("name") not in names:
            continue
        if kind == "plugin_in_use":
            hits.append(_plugin_where(plugin, where, owner))
        elif kind == "plugin_field":
            conf = plugin.get("config") or {}
            for field in match["fields"]:
                if field not in conf or conf[field] is None:
                    continue
                value = conf[field]
                if match.get("value_type") == "list":
                    if isinstance(value, dict) and any(isinstance(v, list) for v in value.values()):
                        hits.append(f"{_plugin_where(plugin, where, owner)}: config.{field} has array values")
                else:
                    hits.append(f"{_plugin_where(plugin, where, owner)}: config.{field}")
    return hits


def _fill(text: str, values: dict) -> str:
    """`{target}`, `{value}` and `{accepted}` placeholders; other braces (JSON in messages) stay."""
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def scan(
    hops: list, config: dict | None, mode: str, rules: list | None = None, bundled: dict | None = None, custom_plugins=(), conf_settings: dict | None = None
) -> list:
    """Findings of the breaking-change rules on each hop; a rule that fires on several hops for the same
    places (e.g. a missing `_format_version`) is reported once, on its first hop."""
    rules = data.RULES if rules is None else rules
    collected = _collect(config) if config is not None else ([], [])
    custom = frozenset(custom_plugins or ())
    findings = []
    seen: set = set()
    for hop in hops:
        for rule in rules:
            if not _rule_applies(rule, hop):
                continue
            hits = [h for h in _match(rule, hop, config, mode, collected, bundled, custom, conf_settings) if (rule["id"], h) not in seen]
            if not hits:
                continue
            seen.update((rule["id"], h) for h in hits)
            values = {"target": hop["to"], "value": (config or {}).get("_format_version", "(missing)")}
            values["accepted"] = ", ".join(accepted_format_versions(_point_series(hop["to"])) or ())
            findings.append(
                {
                    "id": rule["id"],
                    "severity": rule["severity"],
                    "hop": f"{hop['from']} -> {hop['to']}",
                    "introduced": rule.get("introduced"),
                    "message": _fill(rule["message"], values),
                    "where": hits,
                    "source": rule["source"],
                    "fix": rule.get("fix"),
                }
            )
    return findings


def conf_fixes(hops: list, conf_settings: dict | None, rules: list | None = None) -> dict:
    """The mechanical kong.conf conversions the rules of every hop give (kong_conf's `rename` and `remove`):
    renames where Kong names a replacement it reads the same way, removals of what it no longer reads."""
    rename, remove = {}, set()
    for hop in hops:
        for rule in data.RULES if rules is None else rules:
            # "kong": a conversion Kong makes itself (regex paths), nothing for kong.conf
            if rule.get("fix") not in ("rename", "remove") or not _rule_applies(rule, hop):
                continue
            for _host, name, new in conf_hits(rule, hop, conf_settings or {}):
                if rule["fix"] == "rename" and new:
                    rename[name] = new
                else:
                    remove.add(name)
    return {"rename": rename, "remove": sorted(remove - set(rename))}


def severity_at_least(severity: str, threshold: str) -> bool:
    return SEVERITIES.index(severity) <= SEVERITIES.index(threshold)


def _versions_from(items, param: str) -> list:
    out = []
    for item in items or []:
        text = item.get("version") if isinstance(item, dict) else item
        if text is None:
            raise UpgradeRulesError(
                f"{param}: each element is a version string or a dict with a `version` key (as kong_node_info returns), got {item!r}", param=param
            )
        out.append(version(text, param))
    return out


def evaluate(
    current_versions=None,
    target_version=None,
    mode="traditional",
    cp_version=None,
    dp_versions=None,
    database=None,
    spare_capacity=False,
    config=None,
    custom_plugins=(),
    conf_settings=None,
    strategy="auto",
) -> dict:
    """The whole check: path, hybrid compatibility, strategy and breaking-change findings."""
    if mode not in MODES:
        raise UpgradeRulesError(f"mode: '{mode}' is not one of {', '.join(MODES)}", param="mode")
    target = version(target_version, "target_version")
    currents = _versions_from(current_versions, "current_versions")
    dps = _versions_from(dp_versions, "dp_versions")
    cp = version(cp_version, "cp_version") if cp_version else None
    if mode in ("hybrid", "hybrid_cp") and cp is not None:
        currents = currents or [cp]
    if mode == "hybrid_dp":
        if cp is None:
            raise UpgradeRulesError(
                "cp_version: required with mode=hybrid_dp (the control plane version the data planes must stay compatible with)", param="cp_version"
            )
        currents = currents or dps
    if mode == "hybrid" and not (cp and dps):
        raise UpgradeRulesError("cp_version and dp_versions: both required with mode=hybrid", param="cp_version")
    if not currents:
        raise UpgradeRulesError("current_versions: give the versions the nodes run now (or cp_version / dp_versions in hybrid modes)", param="current_versions")
    if database is None:
        database = "off" if mode in ("dbless", "hybrid_dp", "konnect_dp") else "postgres"

    warnings = []
    distinct = sorted(set(currents))
    if len({series_of(v) for v in distinct}) > 1:
        warnings.append(
            f"The nodes run different release series ({', '.join(str(v) for v in distinct)}): "
            f"planning from the oldest, {distinct[0]}. Finish or roll back the interrupted "
            "upgrade first."
        )
    newer = [v for v in distinct if v > target]
    start = distinct[0]
    plan = plan_path(newer[0] if newer else start, target, mode, database)
    reasons = list(plan["reasons"])
    hybrid = None
    if mode.startswith("hybrid"):
        hybrid = hybrid_check(mode, target, cp, dps)
        reasons.extend(hybrid["blocking"])
        if mode == "hybrid":
            hybrid["dp_paths"] = [
                {k: p[k] for k in ("current", "target", "supported", "reachable", "path", "reasons")}
                for p in (plan_path(v, target, "hybrid_dp", "off") for v in sorted(set(dps)))
            ]
    unsourced = [h["to"] for h in plan["hops"] if not sourced(_point_series(h["to"]))]
    if unsourced:
        warnings.append(
            f"Kong {', '.join(unsourced)}: Kong Gateway Enterprise releases whose source is not public. The "
            f"planner knows their upgrade paths from Kong's documentation but read no bundled-plugin list or "
            f"accepted `_format_version` values from their source (those checks stop at "
            f"{data.LAST_SOURCED_SERIES}.x), and its breaking-change rules cover what Kong's source showed up to "
            f"{data.LAST_SOURCED_SERIES}.x: review https://developer.konghq.com/gateway/breaking-changes/ for "
            "these versions."
        )
    enterprise_lts = [f"{h['from']} -> {h['to']}" for h in plan["hops"] if h["kind"] == "lts" and not sourced(_point_series(h["to"]))]
    if enterprise_lts:
        warnings.append(f"The LTS jump {', '.join(enterprise_lts)} is a Kong Gateway Enterprise path: the nodes must run Kong Gateway Enterprise packages.")
    ok = hybrid is None or hybrid["compatible"]
    if conf_settings is not None and not (
        isinstance(conf_settings, dict) and all(isinstance(v, (list, tuple)) and all(isinstance(n, str) for n in v) for v in conf_settings.values())
    ):
        raise UpgradeRulesError(
            "conf_settings: a mapping of host to the list of property names its kong.conf sets (as kong_node_info returns them in conf_settings)",
            param="conf_settings",
        )
    hops = plan["hops"] if plan["reachable"] else []
    findings = scan(hops, config, mode, custom_plugins=custom_plugins, conf_settings=conf_settings)
    return {
        "supported": bool(plan["supported"] and ok),
        "reachable": bool(plan["reachable"] and ok),
        "current_version": str(start),
        "target_version": str(target),
        "path": plan["path"],
        "path_text": " -> ".join(plan["path"]),
        "hops": plan["hops"],
        "rolling_jump": rolling_jump(plan, mode, cp),
        "reasons": reasons,
        "hybrid": hybrid,
        "strategy": choose_strategy(mode, spare_capacity, strategy),
        "findings": findings,
        "findings_by_severity": {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITIES},
        "scanned": config is not None,
        "conf_scanned": conf_settings is not None,
        "conf_fixes": conf_fixes(hops, conf_settings),
        "warnings": warnings,
    }
