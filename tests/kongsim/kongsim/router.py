"""Route matching (traditional router priorities), plugin lookup and target balancing."""

from __future__ import annotations

import re

from . import versions

_NOT_REGEX_28 = re.compile(r"^[a-zA-Z0-9.\-_~/%]*$")
_PCRE_NAMED = re.compile(r"\(\?<(?![=!])")


class CompiledRoute:
    __slots__ = (
        "headers",
        "hosts_exact",
        "hosts_wild",
        "methods",
        "path_handling",
        "prefixes",
        "preserve_host",
        "priority",
        "protocols",
        "regexes",
        "route",
        "service",
        "strip_path",
        "v3",
    )

    def __init__(self, route: dict, service: dict | None, v3: bool):
        self.route = route
        self.service = service
        self.v3 = v3
        self.methods = frozenset(route.get("methods") or ())
        hosts = route.get("hosts") or ()
        self.hosts_exact = frozenset(h.lower() for h in hosts if "*" not in h)
        self.hosts_wild = [re.compile("^" + re.escape(h.lower()).replace(r"\*", ".+") + "$") for h in hosts if "*" in h]
        self.prefixes = []
        self.regexes = []
        for p in route.get("paths") or ():
            if v3:
                # the ATC router searches (unanchored) for "^" .. the path minus "~", `?<` turned into
                # `?P<` (Kong/kong kong/router/compat.lua:231-236 at 3.4.2): "^" binds the first
                # alternative only, where 2.8 anchors the whole regex (kong/router.lua:977,1786 "ajo")
                if p.startswith("~"):
                    self.regexes.append(re.compile("^" + p[1:].replace("?<", "?P<")))
                else:
                    self.prefixes.append(p)
            elif _NOT_REGEX_28.match(p):
                self.prefixes.append(p)
            else:
                # PCRE's named group (?<name>...) is Python's (?P<name>...)
                self.regexes.append(re.compile(_PCRE_NAMED.sub("(?P<", p)))
        self.headers = {k.lower(): [v.lower() for v in vals] for k, vals in (route.get("headers") or {}).items()}
        self.protocols = route.get("protocols") or ["http", "https"]
        weight = sum(1 for x in (self.methods, hosts, self.headers, route.get("paths")) if x)
        max_len = max((len(p) for p in self.prefixes), default=0)
        # Traditional-compatible priority: more matching fields first, plain hosts, regex paths
        # before prefix paths (ordered by regex_priority), then the longest prefix.
        self.priority = (
            weight,
            1 if self.hosts_exact and not self.hosts_wild else 0,
            1 if self.regexes else 0,
            route.get("regex_priority") or 0,
            max_len,
            -(route.get("created_at") or 0),
        )
        self.strip_path = route.get("strip_path", True)
        self.preserve_host = route.get("preserve_host", False)
        self.path_handling = route.get("path_handling") or "v0"

    def match(self, method: str, host: str, path: str, headers):
        if self.methods and method not in self.methods:
            return None
        if (self.hosts_exact or self.hosts_wild) and host not in self.hosts_exact and not any(r.match(host) for r in self.hosts_wild):
            return None
        for name, values in self.headers.items():
            got = headers.get(name)
            if got is None or got.lower() not in values:
                return None
        if not self.prefixes and not self.regexes:
            return ""
        best = None
        for rx in self.regexes:
            m = rx.search(path) if self.v3 else rx.match(path)
            if m:
                return m.group(0)
        for p in self.prefixes:
            if path.startswith(p) and (best is None or len(p) > len(best)):
                best = p
        return best

    def captures(self, path: str):
        """The URI captures of the regex path that matched (kong.request.get_uri_captures)."""
        for rx in self.regexes:
            m = rx.search(path) if self.v3 else rx.match(path)
            if m:
                return list(m.groups()), {k: v for k, v in m.groupdict().items() if v is not None}
        return [], {}


def join_upstream_path(service_path: str | None, remainder: str, handling: str) -> str:
    base = service_path or "/"
    if base == "/":
        return remainder if remainder.startswith("/") else "/" + remainder
    if handling == "v1":
        if base.endswith("/") and remainder.startswith("/"):
            return base + remainder[1:]
        if remainder in ("", "/"):
            return base
        if not base.endswith("/") and not remainder.startswith("/"):
            return base + "/" + remainder
        return base + remainder
    if remainder in ("", "/"):
        return base
    if base.endswith("/") and remainder.startswith("/"):
        return base + remainder[1:]
    return base + remainder


class Balancer:
    """Smooth weighted round-robin across an upstream's targets (weight 0 = disabled)."""

    def __init__(self, targets: list):
        self.peers = []
        for t in targets:
            if (t.get("weight") or 0) > 0:
                host, _, port = t["target"].rpartition(":")
                self.peers.append([host.strip("[]"), int(port), t["weight"], 0])
        self.total = sum(p[2] for p in self.peers)

    def pick(self):
        if not self.peers:
            return None
        best = None
        for p in self.peers:
            p[3] += p[2]
            if best is None or p[3] > best[3]:
                best = p
        best[3] -= self.total
        return best[0], best[1]


class Router:
    def __init__(self, cfg, version: str):
        info = versions.get(version)
        services = cfg.data["services"]
        routes = []
        for r in cfg.data["routes"].values():
            svc = services.get((r.get("service") or {}).get("id")) if r.get("service") else None
            if svc is not None and svc.get("enabled") is False:
                continue
            routes.append(CompiledRoute(r, svc, info.major >= 3))
        routes.sort(key=lambda c: c.priority, reverse=True)
        self.routes = routes
        upstream_by_name = {u["name"]: u for u in cfg.data["upstreams"].values()}
        targets_by_up = {}
        for t in cfg.data["targets"].values():
            targets_by_up.setdefault((t.get("upstream") or {}).get("id"), []).append(t)
        self.balancers = {}
        for name, up in upstream_by_name.items():
            self.balancers[name] = Balancer(sorted(targets_by_up.get(up["id"], []), key=lambda t: t.get("created_at") or 0))
        self.plugins = {}
        for p in cfg.data["plugins"].values():
            if p.get("enabled") is False:
                continue
            key = ((p.get("route") or {}).get("id"), (p.get("service") or {}).get("id"), (p.get("consumer") or {}).get("id"))
            self.plugins.setdefault(p["name"], {})[key] = p
        self.credentials = {c["key"]: c for c in cfg.data["keyauth_credentials"].values()}
        self.consumers = cfg.data["consumers"]
        self.has_prometheus = "prometheus" in self.plugins

    def find(self, method: str, host: str, path: str, headers):
        for c in self.routes:
            matched = c.match(method, host, path, headers)
            if matched is not None:
                return c, matched
        return None, None

    def plugin_for(self, name: str, route_id, service_id, consumer_id=None):
        """Most specific plugin instance wins (Kong's precedence order)."""
        table = self.plugins.get(name)
        if not table:
            return None
        for key in (
            (route_id, service_id, consumer_id) if consumer_id else None,
            (route_id, None, consumer_id) if consumer_id else None,
            (None, service_id, consumer_id) if consumer_id else None,
            (route_id, service_id, None),
            (None, None, consumer_id) if consumer_id else None,
            (route_id, None, None),
            (None, service_id, None),
            (None, None, None),
        ):
            if key is None:
                continue
            p = table.get(key)
            if p is not None:
                return p
        return None
