# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Configuration freeze: fingerprint, lock record, Admin API marker, enforcement at the front."""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import re
import time
import uuid

from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    KongAdminClient,
    KongAdminError,
    node_mode,
    serves_declarative,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._files import (
    atomic_write,
    private_dirs,
    write_temp,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._nginx import (
    NginxStepError,
    write_test_reload,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._upgrade_rules import is_regex_path
from ansible_collections.kongops.upgrade.plugins.module_utils._versions import KongVersionError, parse_version
from ansible_collections.kongops.upgrade.plugins.module_utils._haproxy_runtime import (
    HaproxyRuntime,
    HaproxyRuntimeError,
)

FREEZE_TAG = "kongops-freeze"
LOCK_FORMAT = 1
NGINX_HEADER = "# kongops.upgrade kong_config_freeze:"

# (Admin API collection, entity type, fields naming an entity in reports). Credential collections
# are served under their plugin's admin name (`/key-auths`, not `/keyauth_credentials`); they are
# 404 when the plugin is not loaded, which only means "none here". Secrets are never used as names.
CORE_COLLECTIONS = (
    ("/services", "services", ("name",)),
    ("/routes", "routes", ("name",)),
    ("/consumers", "consumers", ("username", "custom_id")),
    ("/plugins", "plugins", ("instance_name", "name")),
    ("/upstreams", "upstreams", ("name",)),
    ("/certificates", "certificates", ()),
    ("/snis", "snis", ("name",)),
    ("/ca_certificates", "ca_certificates", ()),
)
OPTIONAL_COLLECTIONS = (
    ("/key-auths", "keyauth_credentials", ()),
    ("/basic-auths", "basicauth_credentials", ("username",)),
    ("/hmac-auths", "hmacauth_credentials", ("username",)),
    ("/jwts", "jwt_secrets", ()),
    ("/acls", "acls", ("group",)),
    ("/oauth2", "oauth2_credentials", ("name",)),
    ("/keys", "keys", ("name", "kid")),
    ("/key-sets", "key_sets", ("name",)),
    ("/vaults", "vaults", ("prefix", "name")),
)
_TARGET_LABEL = ("target",)


class FreezeError(Exception):
    """A freeze step failed; carries the command context when a program was run."""

    def __init__(self, msg: str, **context):
        super().__init__(msg)
        self.context = {k: v for k, v in context.items() if v is not None}


_ISO = "%Y-%m-%dT%H:%M:%SZ"


def iso(epoch: float) -> str:
    return time.strftime(_ISO, time.gmtime(epoch))


def parse_iso(text) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(text, _ISO)))
    except (TypeError, ValueError):
        return None


def human_age(seconds: float) -> str:
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def default_lock_path(cluster: str) -> str:
    return os.path.join(os.path.expanduser("~"), ".kongops", "locks", f"{_safe_name(cluster)}.json")


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(text)) or "kong"


def _display(text) -> str:
    """A lock field made safe for nginx and HAProxy literals: no quotes, backslashes, `$`, `%`, `#`,
    control or non-ASCII characters."""
    return re.sub(r"[^A-Za-z0-9 _.,:@/+=()!?*&~^|<>\[\]-]", "_", str(text if text is not None else ""))[:200]


def lock_record(holder: str, reason: str, run_id: str, ttl: int, cluster: str, now: float | None = None) -> dict:
    now = int(time.time() if now is None else now)
    return {
        "format": LOCK_FORMAT,
        "cluster": cluster,
        "holder": holder,
        "time": iso(now),
        "reason": reason,
        "run_id": run_id,
        "expiry": iso(now + ttl),
        "fingerprint": None,
    }


def lock_age(record: dict, now: float | None = None) -> dict:
    """Age and expiry of a lock record, for loud reports."""
    now = time.time() if now is None else now
    since = parse_iso(record.get("time"))
    expiry = parse_iso(record.get("expiry"))
    age = now - since if since is not None else None
    info = {
        "holder": record.get("holder"),
        "run_id": record.get("run_id"),
        "reason": record.get("reason"),
        "time": record.get("time"),
        "expiry": record.get("expiry"),
        "age_seconds": int(age) if age is not None else None,
        "age": human_age(age) if age is not None else "unknown",
        "expired": bool(expiry is not None and expiry <= now),
    }
    return info


def describe_lock(info: dict) -> str:
    text = f"held by {info['holder']} (run_id {info['run_id']}, reason '{info['reason']}') since {info['time']}, {info['age']} ago"
    if info["expired"]:
        text += f"; its expiry {info['expiry']} has passed, so the run that took it most likely died"
    return text


def public_record(record: dict | None) -> dict | None:
    """The lock record without the per-entity digests (those stay in the file)."""
    if record is None:
        return None
    out = {k: v for k, v in record.items() if k != "fingerprint"}
    fp = record.get("fingerprint")
    if fp:
        out["fingerprint"] = summary(fp)
    return out


class LockFile:
    """The lock record as a 0600 JSON file; writes are atomic, a new lock is created exclusively."""

    def __init__(self, path: str):
        self.path = path

    def read(self) -> dict | None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                record = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise FreezeError(f"cannot read the lock file {self.path}: {exc}; inspect it, then remove it or use force=true") from exc
        if not isinstance(record, dict) or "run_id" not in record:
            raise FreezeError(f"the lock file {self.path} is not a kong_config_freeze lock record")
        return record

    def _tmp(self, record: dict) -> str:
        directory = os.path.dirname(self.path) or "."
        try:
            private_dirs(directory)
            tmp = write_temp(directory, json.dumps(record, indent=1, sort_keys=True) + "\n", 0o600, ".freeze-")
        except OSError as exc:
            raise FreezeError(f"cannot write the lock file {self.path}: {exc}") from exc
        return tmp

    def create(self, record: dict) -> bool:
        """Write a new lock; False when another lock appeared meanwhile (nothing written)."""
        tmp = self._tmp(record)
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise FreezeError(f"cannot write the lock file {self.path}: {exc}") from exc
        finally:
            os.unlink(tmp)

    def replace(self, record: dict) -> None:
        tmp = self._tmp(record)
        try:
            os.replace(tmp, self.path)
        except OSError as exc:
            os.unlink(tmp)
            raise FreezeError(f"cannot write the lock file {self.path}: {exc}") from exc

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise FreezeError(f"cannot remove the lock file {self.path}: {exc}") from exc


def _canonical(entity) -> str:
    return json.dumps(entity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _label(etype: str, entity: dict, fields) -> str:
    for field in fields:
        if entity.get(field):
            return f"{entity[field]}"
    consumer = entity.get("consumer")
    if isinstance(consumer, dict) and consumer.get("id"):
        return f"of consumer {consumer['id']}"
    return ""


def _frozen_marker(entity: dict) -> bool:
    return FREEZE_TAG in (entity.get("tags") or [])


def node_kind(client: KongAdminClient) -> dict:
    """Version, identity, database mode and role of the node behind the Admin API (GET /, Kong/kong 3.9.3 kong/api/routes/kong.lua)."""
    node = client.node()
    conf = node.get("configuration") or {}
    mode = node_mode(node)
    return {
        "version": node.get("version"),
        "node_id": node.get("node_id"),
        "database": conf.get("database"),
        "role": conf.get("role", "traditional"),
        "mode": mode,
        "dbless": serves_declarative(mode),
    }


# Set by Kong itself: on a write that changes nothing, and on every DB-less load of a file
# without them, so they say nothing about the configuration.
_AUTO_FIELDS = ("created_at", "updated_at")


def _leaves(entity: dict) -> dict:
    """{json path: canonical value} of every leaf (lists and scalars are leaves, dicts are walked)."""
    out = {}

    def walk(value, path):
        if isinstance(value, dict) and value:
            for key, sub in value.items():
                walk(sub, path + [key])
        else:
            out[json.dumps(path)] = _canonical(value)

    walk({k: v for k, v in entity.items() if k not in _AUTO_FIELDS}, [])
    return out


def _as_kong3(etype: str, entity: dict, version: str | None) -> dict:
    """A route of a Kong before 3.0 with its paths as 3.x keeps them: Kong's 3.0 migration (and its loader of
    1.1/2.1 declarative files) rewrites a regex path to `~<path>` (Kong/kong 3.4.2
    kong/db/migrations/core/016_280_to_300.lua:12-42, kong/db/migrations/migrate_path_280_300.lua:73-87), so
    that rewrite is no drift between a fingerprint taken on X before 3.0 and one taken on Y after it."""
    try:
        before_3 = etype == "routes" and parse_version(version).major < 3
    except KongVersionError:
        before_3 = False
    if not before_3:
        return entity
    paths = entity.get("paths")
    if not isinstance(paths, list):
        return entity
    return dict(entity, paths=["~" + p if isinstance(p, str) and is_regex_path(p) else p for p in paths])


def _shape_key(etype: str, entity: dict) -> str:
    return f"plugins:{entity.get('name')}" if etype == "plugins" else etype


def _digest(leaves: dict) -> str:
    return hashlib.sha256(_canonical(sorted(leaves.items())).encode("utf-8")).hexdigest()


def _entities(client: KongAdminClient, skipped: list):
    """(entity type, entity, label fields) for every entity of every page, the marker left out."""
    labels = {etype: fields for _path, etype, fields in CORE_COLLECTIONS + OPTIONAL_COLLECTIONS}
    labels["targets"] = _TARGET_LABEL
    walk = [(etype, path, False) for path, etype, _f in CORE_COLLECTIONS]
    walk += [(etype, path, True) for path, etype, _f in OPTIONAL_COLLECTIONS]
    for etype, item in client.walk_entities(walk, skipped):
        if not _frozen_marker(item):
            yield etype, item, labels[etype]


def compute_fingerprint(client: KongAdminClient, kind: dict | None = None, shapes: dict | None = None) -> dict:
    """Fingerprint of the whole configuration behind `client`.

    `value` is Kong's `configuration_hash` where the node reports one (DB-less node or data
    plane, Kong/kong 3.9.3 kong/api/routes/health.lua), else a sha256 over every entity of every page. Per-entity digests
    (over the entity's fields, Kong's own timestamps left out) are kept in both cases so that
    drift can be named, with the field paths each entity type had (`shapes`). Given the
    `shapes` of an earlier fingerprint, fields outside them are left out of the digests and
    listed in `new_fields`: a newer Kong version shows new fields with their defaults. Entities
    tagged `kongops-freeze` (the marker) are left out.
    """
    kind = kind or node_kind(client)
    entities: dict = {}
    seen_shapes: dict = {}
    new_fields: dict = {}
    skipped: list = []
    for etype, item, fields in _entities(client, skipped):
        leaves = _leaves(_as_kong3(etype, item, kind.get("version")))
        shape = _shape_key(etype, item)
        seen_shapes.setdefault(shape, set()).update(leaves)
        if shapes is not None and shape in shapes:
            known = set(shapes[shape])
            extra = set(leaves) - known
            if extra:
                new_fields.setdefault(shape, set()).update(extra)
                leaves = {k: v for k, v in leaves.items() if k in known}
        entities[f"{etype}/{item.get('id')}"] = [_digest(leaves), _label(etype, item, fields)]
    canonical = hashlib.sha256("".join(f"{k} {v[0]}\n" for k, v in sorted(entities.items())).encode()).hexdigest()
    fp = {
        "kind": "entities_sha256",
        "value": canonical,
        "entities_sha256": canonical,
        "entities": entities,
        "shapes": {k: sorted(v) for k, v in seen_shapes.items()},
        "skipped": skipped,
        "node": kind,
        "new_fields": {k: sorted(".".join(str(x) for x in json.loads(p)) for p in v) for k, v in new_fields.items()},
    }
    if kind["dbless"]:
        config_hash = client.status().get("configuration_hash")
        if config_hash:
            fp.update(kind="configuration_hash", value=config_hash)
    return fp


def summary(fp: dict) -> dict:
    by_type: dict = {}
    for key in fp.get("entities", {}):
        etype = key.split("/", 1)[0]
        by_type[etype] = by_type.get(etype, 0) + 1
    node = fp.get("node") or {}
    return {
        "kind": fp.get("kind"),
        "value": fp.get("value"),
        "entities_sha256": fp.get("entities_sha256"),
        "entity_count": len(fp.get("entities", {})),
        "by_type": by_type,
        "node_id": node.get("node_id"),
        "version": node.get("version"),
    }


def same_node(before: dict, after: dict) -> bool:
    """Whether two fingerprints come from the same node on the same Kong version."""
    b, a = before.get("node") or {}, after.get("node") or {}
    return b.get("node_id") == a.get("node_id") and b.get("version") == a.get("version")


def compare(before: dict, after: dict) -> dict:
    """Drift between two fingerprints, naming every entity added, removed or changed.

    Kong's `configuration_hash` is the md5 of the text a node loaded (Kong/kong 3.9.3
    kong/db/declarative/init.lua): another node
    fed an export of the same configuration, or the same node on a newer version, reports another
    hash for the same entities. So the hash decides only between fingerprints of the same node on
    the same version; otherwise the entities decide and the hashes are reported.
    """
    old, new = before.get("entities") or {}, after.get("entities") or {}

    def item(key, change, entry):
        etype, eid = key.split("/", 1)
        return {"change": change, "type": etype, "id": eid, "name": entry[1] or None}

    added = [item(k, "added", new[k]) for k in sorted(set(new) - set(old))]
    removed = [item(k, "removed", old[k]) for k in sorted(set(old) - set(new))]
    changed = [item(k, "changed", new[k]) for k in sorted(set(old) & set(new)) if old[k][0] != new[k][0]]
    value_compared = before.get("kind") == after.get("kind") and (before.get("kind") != "configuration_hash" or same_node(before, after))
    value_changed = value_compared and before.get("value") != after.get("value")
    return {
        "drifted": bool(value_changed or added or removed or changed),
        "kind": before.get("kind"),
        "value_before": before.get("value"),
        "value_after": after.get("value"),
        "value_compared": value_compared,
        "version_before": (before.get("node") or {}).get("version"),
        "version_after": (after.get("node") or {}).get("version"),
        "new_fields": after.get("new_fields") or {},
        "added": added,
        "removed": removed,
        "changed": changed,
    }


def _singular(etype: str) -> str:
    return re.sub(r"s$", "", etype)


def describe_drift(drift: dict, limit: int = 20) -> str:
    items = drift["added"] + drift["removed"] + drift["changed"]
    parts = [f"{i['change']} {_singular(i['type'])} {repr(i['name']) + ' ' if i['name'] else ''}(id {i['id']})" for i in items[:limit]]
    if len(items) > limit:
        parts.append(f"... and {len(items) - limit} more")
    if not items:
        parts.append(f"no entity differs, but {drift['kind']} changed from {drift['value_before']} to {drift['value_after']} (the configuration was reloaded)")
    return "; ".join(parts)


# ---------------------------------------------------------------------------- Admin API marker


def marker_name(cluster: str) -> str:
    return f"kongops-freeze-{_safe_name(cluster)}"


def marker_body(record: dict) -> dict:
    run_tag = re.sub(r"[^A-Za-z0-9._~:-]", "_", str(record["run_id"]))[:100]
    info = {k: record.get(k) for k in ("holder", "time", "reason", "run_id", "expiry")}
    return {
        "custom_id": json.dumps(info, sort_keys=True, separators=(",", ":")),
        "tags": [FREEZE_TAG, f"kongops-run-{run_tag}"],
    }


def read_marker(client: KongAdminClient, cluster: str) -> dict | None:
    try:
        consumer = client.get(f"/consumers/{marker_name(cluster)}")
    except KongAdminError as exc:
        if exc.status == 404:
            return None
        raise
    return consumer if _frozen_marker(consumer) else None


def write_marker(client: KongAdminClient, cluster: str, record: dict) -> dict:
    return client.request("PUT", f"/consumers/{marker_name(cluster)}", expected=(200, 201), json=marker_body(record))


def delete_marker(client: KongAdminClient, cluster: str) -> None:
    client.request("DELETE", f"/consumers/{marker_name(cluster)}", expected=(204, 404))


# ---------------------------------------------------------------------------- enforcement


def refusal_body(record: dict) -> str:
    """JSON answered with 423 to write methods while frozen."""
    body = {
        "message": f"Kong configuration is frozen by {_display(record.get('holder'))}: {_display(record.get('reason'))}",
        "holder": _display(record.get("holder")),
        "reason": _display(record.get("reason")),
        "run_id": _display(record.get("run_id")),
        "since": _display(record.get("time")),
        "expiry": _display(record.get("expiry")),
    }
    return json.dumps(body, separators=(",", ":"))


class NginxEnforcer:
    """A server-level include answering write methods with 423 (validated, then nginx reloaded).

    The include must stay present when not frozen (nginx refuses to start on a missing include),
    so thawing writes a comment-only file instead of deleting it.
    """

    kind = "nginx"

    def __init__(self, path: str, run_command, nginx_bin: str = "nginx", nginx_conf: str | None = None, nginx_prefix: str | None = None):
        self.path = path
        self._run = run_command
        self.base = [nginx_bin] + (["-p", nginx_prefix] if nginx_prefix else []) + (["-c", nginx_conf] if nginx_conf else [])

    def settings(self) -> dict:
        return {"type": "nginx", "file": self.path, "nginx_cmd": self.base}

    @staticmethod
    def render(record: dict) -> str:
        # `return 423` in a server-level `if` runs before any location is chosen; the named location
        # gives the refusal a JSON content type (a `return` text inside `if` cannot set one).
        return (
            f"{NGINX_HEADER} frozen run_id={_display(record['run_id'])}\n"
            "error_page 423 = @kongops_config_frozen;\n"
            "if ($request_method ~ ^(POST|PUT|PATCH|DELETE)$) {\n"
            "    return 423;\n"
            "}\n"
            "location @kongops_config_frozen {\n"
            "    default_type application/json;\n"
            f"    return 423 '{refusal_body(record)}\\n';\n"
            "}\n"
        )

    @staticmethod
    def inactive() -> str:
        return f"{NGINX_HEADER} not frozen\n"

    def read(self) -> str | None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FreezeError(f"cannot read enforce_file {self.path}: {exc}") from exc

    def state(self) -> dict:
        text = self.read()
        active = bool(text and text.startswith(f"{NGINX_HEADER} frozen"))
        run_id = None
        if active:
            run_id = text.splitlines()[0].split("run_id=", 1)[-1]
        return {"type": "nginx", "active": active, "run_id": run_id, "file": self.path}

    def _cmd(self, *args):
        cmd = self.base + list(args)
        rc, out, err = self._run(cmd)
        return cmd, rc, out, err

    def _write(self, text: str) -> None:
        try:
            atomic_write(self.path, text, mode=0o644, prefix=".kongops-freeze-")
        except OSError as exc:
            raise FreezeError(f"cannot write enforce_file {self.path}: {exc}") from exc

    def install(self, text: str) -> None:
        """Write the include, `nginx -t`, reload; on a failed test or reload the previous file comes back
        (_nginx.write_test_reload)."""
        previous = self.read()
        try:
            write_test_reload(self.path, text, previous, self._cmd, mode=0o644, prefix=".kongops-freeze-")
        except NginxStepError as exc:
            what = f"nginx rejected the configuration with {self.path}" if exc.step == "test" else "nginx reload failed"
            raise FreezeError(
                f"{what} (previous file restored): {(exc.stderr or exc.stdout).strip()}", cmd=exc.cmd, rc=exc.rc, stdout=exc.stdout, stderr=exc.stderr
            ) from exc
        except OSError as exc:
            raise FreezeError(f"cannot write enforce_file {self.path}: {exc}") from exc

    def apply(self, record: dict) -> None:
        self.install(self.render(record))

    def remove(self) -> None:
        self.install(self.inactive())


def _cli_escape(text: str) -> str:
    """HAProxy's CLI splits arguments on spaces and commands on `;`; a backslash escapes both."""
    return text.replace("\\", "\\\\").replace(" ", "\\ ").replace(";", "\\;")


class HaproxyEnforcer:
    """A map entry read by a fixed `http-request return status 423` rule, set and removed through the
    runtime API (HAProxy cannot add rules at runtime) and persisted to the map file."""

    kind = "haproxy"

    def __init__(self, socket_addr: str, map_path: str, key: str, timeout: int = 10, persist: bool = True):
        self.socket_addr = socket_addr
        self.map_path = map_path
        self.key = key
        self.timeout = timeout
        self.persist = persist

    def settings(self) -> dict:
        return {"type": "haproxy", "socket": self.socket_addr, "map": self.map_path, "key": self.key, "persist": self.persist}

    def command(self, cmd: str) -> str:
        try:
            return HaproxyRuntime(self.socket_addr, timeout=self.timeout).command(cmd)
        except HaproxyRuntimeError as exc:
            raise FreezeError(f"HAProxy runtime API failed for '{' '.join(cmd.split(' ')[:2])}': {exc}", socket=self.socket_addr) from exc

    def _entries(self) -> dict:
        out = self.command(f"show map {self.map_path}")
        first = out.strip().splitlines()[0] if out.strip() else ""
        if first and not re.match(r"^0x[0-9a-f]+ ", first):
            raise FreezeError(
                f"HAProxy does not know the map {self.map_path}: {out.strip()} (add the 423 rule "
                "that references it to the frontend, see the module documentation)",
                socket=self.socket_addr,
            )
        entries = {}
        for line in out.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3:
                entries[parts[1]] = parts[2]
        return entries

    def state(self) -> dict:
        value = self._entries().get(self.key)
        run_id = None
        if value:
            try:
                run_id = json.loads(value).get("run_id")
            except ValueError:
                run_id = None
        return {"type": "haproxy", "active": value is not None, "run_id": run_id, "map": self.map_path, "key": self.key}

    def _check(self, out: str, what: str) -> None:
        if out.strip():
            raise FreezeError(f"HAProxy refused '{what}' on {self.map_path}: {out.strip()}", socket=self.socket_addr)

    def _persist(self, value: str | None) -> None:
        if not self.persist:
            return
        try:
            with open(self.map_path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            lines = []
        except OSError as exc:
            raise FreezeError(f"cannot read the map file {self.map_path} to persist the freeze: {exc}") from exc
        kept = [ln for ln in lines if ln.split(None, 1)[:1] != [self.key]]
        if value is not None:
            kept.append(f"{self.key} {value}")
        try:
            atomic_write(self.map_path, "".join(line + "\n" for line in kept), prefix=".kongops-freeze-")
        except OSError as exc:
            raise FreezeError(f"cannot persist the freeze to the map file {self.map_path}: {exc}") from exc

    def apply(self, record: dict) -> None:
        value = refusal_body(record)
        verb = "set" if self.key in self._entries() else "add"
        self._check(self.command(f"{verb} map {self.map_path} {self.key} {_cli_escape(value)}"), f"{verb} map")
        self._persist(value)

    def remove(self) -> None:
        out = self.command(f"del map {self.map_path} {self.key}")
        if out.strip() and "not found" not in out.lower():
            self._check(out, "del map")
        self._persist(None)


def probe_enforcement(
    url: str, expect_frozen: bool, timeout: float, admin_token: str | None = None, validate_certs: bool = True, ca_path: str | None = None
) -> dict:
    """Check the front of the Admin API really refuses (or accepts) writes.

    The probe deletes a consumer that cannot exist: a no-op answered 204 when writes pass
    (405 on a DB-less node), and 423 when the freeze holds.
    """
    client = KongAdminClient(url, admin_token=admin_token, validate_certs=validate_certs, ca_path=ca_path, timeout=5)
    path = f"/consumers/kongops-freeze-probe-{uuid.uuid4().hex}"
    deadline = time.monotonic() + timeout
    status = None
    while True:
        try:
            status = client.raw("DELETE", path).status_code
        except KongAdminError:
            status = None
        if status is not None and (status == 423) == expect_frozen:
            return {"url": url, "status": status, "verified": True}
        if time.monotonic() >= deadline:
            return {"url": url, "status": status, "verified": False}
        time.sleep(0.25)
