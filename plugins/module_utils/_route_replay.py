# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Route-match replay: the same sample of requests, built from every route of a declarative
configuration, sent to a scratch DB-less Kong of version X and one of version Y; which route matched
(and the status) is compared.

Each scratch Kong holds the configuration's services, routes, upstreams, targets, certificates, CA
certificates, SNIs and vaults, without the configuration's plugins, consumers and credentials, plus one
global request-termination plugin with `echo` and `trigger`: a request that carries the trigger header
is answered by the plugin with `matched_route` and `matched_service` (Kong/kong
kong/plugins/request-termination/handler.lua:26-61 at 2.8.5, 26-62 at 3.4.2, `kong.router.get_route()`).
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
import uuid

try:
    from re import _parser as _sre  # the standard library's regex parser (Python >= 3.11)
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_parse as _sre  # type: ignore[no-redef]

from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import KongCli, KongCliError
from ansible_collections.kongops.upgrade.plugins.module_utils._procs import pid_alive

DEFAULT_TRIGGER = "X-Kong-Route-Replay"
SENTINEL_HOST = "kong-route-replay.invalid"
SENTINEL_PATH = "/kong-route-replay-sentinel"
NEAR_MISS_PREFIX = "/kong-route-replay"
_NAMESPACE = uuid.UUID("6f1c7d1e-3a0b-4b8e-9d1f-2c5a7e4b9a10")

# what a scratch Kong keeps of the configuration: routing needs these (a service may name a
# certificate, a certificate a vault); plugins, consumers and every credential are left out
KEPT_ENTITIES = ("services", "routes", "upstreams", "targets", "certificates", "ca_certificates", "snis", "vaults")
# 2.x took a path as a regex unless it held only these characters (Kong/kong kong/router.lua:510 at
# 2.8.5); 3.x takes it as a regex only with a leading "~" (kong/router/utils.lua:260 at 3.4.2)
_PLAIN_PATH = re.compile(r"^[a-zA-Z0-9.\-_~/%]*$")
_PCRE_NAMED = re.compile(r"\(\?<(?![=!])")
_DIGITS, _WORD = "1", "a"


class RouteReplayError(Exception):
    """The replay could not run (unreadable configuration, a Kong that would not start or stop)."""

    def __init__(self, msg: str, cmd=None, rc=None, stdout="", stderr=""):
        super().__init__(msg)
        self.cmd, self.rc, self.stdout, self.stderr = cmd, rc, stdout, stderr


# ---------------------------------------------------------------------------------------------
# the scratch configuration


def iter_routes(doc: dict):
    """(route, service) for every route of the document: top-level and nested under services."""
    services = doc.get("services") or []
    by_key = {}
    for svc in services:
        if isinstance(svc, dict):
            for key in (svc.get("id"), svc.get("name")):
                if key:
                    by_key[key] = svc
            for route in svc.get("routes") or []:
                if isinstance(route, dict):
                    yield route, svc
    for route in doc.get("routes") or []:
        if isinstance(route, dict):
            ref = route.get("service")
            key = ref.get("id") or ref.get("name") if isinstance(ref, dict) else ref
            yield route, by_key.get(key)


def route_label(route: dict) -> str:
    return str(route.get("name") or route.get("id") or "")


def scratch_config(doc: dict, trigger: str) -> dict:
    """The configuration each scratch Kong loads: the routing entities only (every route given an id
    when it has none, the same on both sides), the sentinel route the readiness poll asks for, and the
    global request-termination plugin with echo and trigger."""
    out = {k: v for k, v in doc.items() if k.startswith("_")}
    for key in KEPT_ENTITIES:
        if doc.get(key):
            out[key] = copy.deepcopy(doc[key])
    for svc in out.get("services") or []:
        if isinstance(svc, dict):
            svc.pop("plugins", None)
            for i, route in enumerate(svc.get("routes") or []):
                if isinstance(route, dict):
                    route.pop("plugins", None)
                    route.setdefault("id", str(uuid.uuid5(_NAMESPACE, f"{svc.get('name') or svc.get('id')}:{i}:{route.get('name') or ''}")))
    for i, route in enumerate(out.get("routes") or []):
        if isinstance(route, dict):
            route.pop("plugins", None)
            route.setdefault("id", str(uuid.uuid5(_NAMESPACE, f"route:{i}:{route.get('name') or ''}")))
    out.setdefault("services", []).append(
        {
            "name": "kong-route-replay-sentinel",
            "url": "http://127.0.0.1:9",
            "routes": [
                {
                    "name": "kong-route-replay-sentinel",
                    "id": str(uuid.uuid5(_NAMESPACE, "sentinel")),
                    "hosts": [SENTINEL_HOST],
                    "paths": [SENTINEL_PATH],
                    "methods": ["GET"],
                    "headers": {"x-kong-route-replay-sentinel": ["1"]},
                }
            ],
        }
    )
    out["plugins"] = [{"name": "request-termination", "config": {"echo": True, "trigger": trigger}}]
    return out


# ---------------------------------------------------------------------------------------------
# the requests


def _sample(tokens, groups: dict) -> str:
    out = []
    for op, av in tokens:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(av))
        elif name == "NOT_LITERAL":
            out.append(_WORD if chr(av) != _WORD else "b")
        elif name == "ANY":
            out.append(_WORD)
        elif name == "IN":
            out.append(_sample_in(av))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = av
            count = max(low, 1) if high != 0 else 0
            out.append(_sample(sub, groups) * count)
        elif name == "SUBPATTERN":
            gid, sub = av[0], av[-1]
            text = _sample(sub, groups)
            if gid:
                groups[gid] = text
            out.append(text)
        elif name == "BRANCH":
            out.append(_sample(av[1][0], groups))
        elif name == "GROUPREF":
            out.append(groups.get(av, ""))
        elif name == "CATEGORY":
            out.append(_category(av))
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue
        elif name == "ATOMIC_GROUP":
            out.append(_sample(av, groups))
        else:
            raise ValueError(f"cannot sample {name}")
    return "".join(out)


def _category(cat) -> str:
    name = str(cat)
    if "NOT_DIGIT" in name:
        return _WORD
    if "DIGIT" in name:
        return _DIGITS
    if "NOT_WORD" in name or "NOT_SPACE" in name:
        return "-" if "NOT_WORD" in name else _WORD
    if "WORD" in name:
        return _WORD
    raise ValueError(f"cannot sample {name}")


def _sample_in(items) -> str:
    negate = any(str(item[0]) == "NEGATE" for item in items)
    if negate:
        excluded = set()
        for op, av in items:
            if str(op) == "LITERAL":
                excluded.add(chr(av))
        for candidate in (_WORD, "b", _DIGITS, "-"):
            if candidate not in excluded:
                return candidate
        raise ValueError("cannot sample a negated class")
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            return chr(av)
        if name == "RANGE":
            return chr(av[0])
        if name == "CATEGORY":
            return _category(av)
    raise ValueError("cannot sample an empty class")


def top_level_alternatives(regex: str) -> list:
    """The regex split at its top-level "|" (outside groups, classes and escapes)."""
    parts, depth, in_class, start, i = [], 0, False, 0, 0
    while i < len(regex):
        c = regex[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if regex[i + 1 : i + 2] == "]" or regex[i + 1 : i + 3] == "^]":
                i += 2 if regex[i + 1] == "]" else 3
                continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(regex[start:i])
            start = i + 1
        i += 1
    parts.append(regex[start:])
    return parts


def regex_samples(regex: str) -> list:
    """Strings the regex matches from their start: one per top-level alternative (the alternatives an
    anchor may bind differently: 2.x anchors the whole regex, 3.x prefixes "^" to it)."""
    regex = _PCRE_NAMED.sub("(?P<", regex)
    _sre.parse(regex)
    out = []
    for alternative in top_level_alternatives(regex):
        text = _sample(list(_sre.parse(alternative)), {})
        if text not in out:
            out.append(text)
    return out


def path_samples(path: str) -> tuple:
    """(samples, is_regex) of one route path: a prefix path is its own sample; a regex path (a leading
    "~", or a 2.x path with characters a plain path cannot hold) gives a string each top-level
    alternative matches."""
    if path.startswith("~"):
        return regex_samples(path[1:]), True
    if _PLAIN_PATH.match(path):
        return [path], False
    return regex_samples(path), True


def host_sample(host: str) -> str:
    if host.startswith("*."):
        return "replay" + host[1:]
    if host.endswith(".*"):
        return host[:-1] + "replay"
    return host


def header_sample(values) -> str:
    value = str((values or [""])[0])
    if value.startswith("~*"):
        return regex_samples(value[2:])[0]
    return value


def build_requests(doc: dict, near_misses: bool = True, max_requests: int = 2000) -> tuple:
    """(requests, skipped): the sample of requests built from every route (each path with the first
    host, each host with the first path, the first method, every header the route requires; for a
    regex path also a near miss, a foreign segment in front of its sample), and the routes no HTTP
    request can reach with a reason."""
    requests, skipped, seen = [], [], set()
    for route, _svc in iter_routes(doc):
        label = route_label(route) or "(unnamed)"
        protocols = route.get("protocols") or ["http", "https"]
        if "http" not in protocols:
            skipped.append({"route": label, "reason": "protocols " + ", ".join(protocols) + " (no http)"})
            continue
        hosts = [host_sample(h) for h in route.get("hosts") or []]
        try:
            paths = []
            for path in route.get("paths") or []:
                samples, is_regex = path_samples(str(path))
                paths += [(s, False) for s in samples]
                if is_regex and near_misses:
                    paths += [(NEAR_MISS_PREFIX + s, True) for s in samples]
            headers = {str(k): header_sample(v) for k, v in (route.get("headers") or {}).items() if str(k).lower() != "host"}
            if "host" in {str(k).lower() for k in route.get("headers") or {}}:
                hosts = hosts or [header_sample(v) for k, v in route["headers"].items() if str(k).lower() == "host"]
        except (ValueError, TypeError, OverflowError, re.error) as exc:
            skipped.append({"route": label, "reason": f"no sample could be built: {exc}"})
            continue
        methods = route.get("methods") or ["GET"]
        combos = [(hosts[0] if hosts else None, p) for p in (paths or [("/", False)])]
        combos += [(h, paths[0] if paths else ("/", False)) for h in hosts[1:]]
        for host, (path, near) in combos:
            if not path.startswith("/"):
                path = "/" + path
            key = (methods[0], host, path, tuple(sorted(headers.items())))
            if key in seen:
                continue
            seen.add(key)
            requests.append(
                {
                    "route": label,
                    "route_id": route.get("id"),
                    "method": str(methods[0]).upper(),
                    "host": host,
                    "path": path,
                    "headers": headers,
                    "near_miss": near,
                }
            )
    if len(requests) > max_requests:
        skipped.append({"route": "*", "reason": f"{len(requests) - max_requests} request(s) over max_requests ({max_requests}) not sent"})
        requests = requests[:max_requests]
    return requests, skipped


# ---------------------------------------------------------------------------------------------
# the comparison


def outcome(status: int, body: bytes | str | None) -> dict:
    """Which route and service answered, from the echo body; None where no route matched (Kong's own
    404) or the request never reached the plugin."""
    route = service = None
    try:
        doc = json.loads(body or b"")
    except (ValueError, TypeError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("matched_route"), dict):
        r = doc["matched_route"]
        route = {"id": r.get("id"), "name": r.get("name")}
        s = doc.get("matched_service")
        if isinstance(s, dict):
            service = {"id": s.get("id"), "name": s.get("name")}
    return {"status": status, "route": route, "service": service}


def _name(side: dict) -> str:
    if side.get("error"):
        return "no answer (" + side["error"] + ")"
    r = side.get("route")
    if not r:
        return f"no route (HTTP {side['status']})"
    return f"route '{r.get('name') or r.get('id')}' (HTTP {side['status']})"


def describe(req: dict) -> str:
    text = f"{req['method']} {req['path']}"
    if req.get("host"):
        text += f" Host: {req['host']}"
    for k, v in sorted((req.get("headers") or {}).items()):
        text += f" {k}: {v}"
    return text


def compare(requests: list, x_results: list, y_results: list, x_version: str, y_version: str) -> list:
    """The requests whose matched route (by id) or status differ between X and Y, each naming the route
    the request was built from, the request, and both answers."""
    out = []
    for req, x, y in zip(requests, x_results, y_results):
        xr, yr = (x.get("route") or {}).get("id"), (y.get("route") or {}).get("id")
        if xr == yr and x.get("status") == y.get("status") and not x.get("error") and not y.get("error"):
            continue
        out.append(
            {
                "route": req["route"],
                "request": {k: req[k] for k in ("method", "host", "path", "headers") if req.get(k)},
                "near_miss": req.get("near_miss", False),
                "x": x,
                "y": y,
                "message": (f"{describe(req)} (built from route '{req['route']}'): {_name(x)} on {x_version}, {_name(y)} on {y_version}"),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# the scratch Kong processes


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def send(port: int, req: dict, trigger: str, timeout: float) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = dict(req.get("headers") or {})
        headers[trigger] = "1"
        headers["Host"] = req.get("host") or "127.0.0.1"
        conn.request(req["method"], req["path"], headers=headers)
        resp = conn.getresponse()
        return outcome(resp.status, resp.read(65536))
    except (OSError, http.client.HTTPException) as exc:
        return {"status": None, "route": None, "service": None, "error": str(exc)[:200]}
    finally:
        conn.close()


class ScratchKong:
    """One DB-less Kong in a temporary prefix on a free loopback port: started with `kong start -c`,
    stopped with `kong stop -p` (then its master is waited for), its directory removed."""

    def __init__(self, run_command, kong_bin: str, version: str, base_dir: str, side: str, conf=None):
        self.kong_bin, self.version, self.side = kong_bin, version, side
        self.dir = tempfile.mkdtemp(prefix=f"kong-route-replay-{side}-", dir=base_dir or None)
        os.chmod(self.dir, 0o700)
        self.prefix = os.path.join(self.dir, "prefix")
        self.port = free_port()
        self.started = False
        first = str(version).split(".", maxsplit=1)[0]
        major = int(first) if first.isdigit() else 3
        settings = {
            "prefix": self.prefix,
            "database": "off",
            "role": "traditional",
            "declarative_config": os.path.join(self.dir, "kong.json"),
            "proxy_listen": f"127.0.0.1:{self.port}",
            "admin_listen": "off",
            "status_listen": "off",
            "stream_listen": "off",
            "nginx_worker_processes": "1",
            "anonymous_reports": "off",
            "plugins": "bundled",
        }
        if major >= 3:
            settings["admin_gui_listen"] = "off"  # 3.x OSS serves Kong Manager on 8002 by default
        for key, value in (conf or {}).items():
            if key not in settings:
                settings[str(key)] = str(value)
        self.settings = settings
        # the environment wins over kong.conf: every KONG_* the caller's environment may carry is overridden
        self.env = {"KONG_" + k.upper(): v for k, v in settings.items()}
        self.conf_path = os.path.join(self.dir, "kong.conf")
        self.cli = KongCli(run_command, kong_bin, self.conf_path, self.prefix, self.env)

    def write(self, doc_text: str) -> None:
        for path, text in ((self.settings["declarative_config"], doc_text), (self.conf_path, "".join(f"{k} = {v}\n" for k, v in self.settings.items()))):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)

    def start(self, trigger: str, timeout: float) -> None:
        try:
            self.cli.run("start", conf=True)
        except KongCliError as exc:
            if exc.rc is None or "was not found" in str(exc):
                raise RouteReplayError(f"could not run {self.kong_bin}: {exc}", cmd=exc.cmd) from exc
            raise RouteReplayError(
                f"Kong {self.version} ({self.kong_bin}) did not start with the configuration", cmd=exc.cmd, rc=exc.rc, stdout=exc.stdout, stderr=exc.stderr
            ) from exc
        self.started = True
        probe = {"method": "GET", "host": SENTINEL_HOST, "path": SENTINEL_PATH, "headers": {"x-kong-route-replay-sentinel": "1"}}
        deadline = time.monotonic() + timeout
        # `kong start` returns once nginx's master runs; the workers still build their router
        while time.monotonic() < deadline:
            if send(self.port, probe, trigger, 2.0).get("route"):
                return
            time.sleep(0.2)
        raise RouteReplayError(f"Kong {self.version} on 127.0.0.1:{self.port} did not answer the replay's probe within {timeout} s", cmd=self.cli.argv("start"))

    def _pid(self):
        try:
            with open(os.path.join(self.prefix, "pids", "nginx.pid"), encoding="utf-8") as fh:
                return int(fh.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 15.0) -> list:
        """Stop (when started) and remove the directory; the problems met, as sentences."""
        problems = []
        pid = self._pid()
        if self.started or pid:
            try:
                res = self.cli.run("stop", conf=False, prefix=True, ok_rcs=None)
                rc, err = res.rc, res.stderr
            except KongCliError as exc:
                rc, err = exc.rc if exc.rc is not None else -1, str(exc)
            if rc != 0 and pid:
                problems.append(f"kong stop of {self.version} failed: {(err or '').strip()[-200:]}")
            # `kong stop` sends SIGTERM and returns (kong/cmd/utils/nginx_signals.lua)
            deadline = time.monotonic() + timeout
            while pid and time.monotonic() < deadline and pid_alive(pid):
                time.sleep(0.1)
            if pid and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                problems.append(f"Kong {self.version} (pid {pid}) did not stop within {timeout} s: killed")
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems
