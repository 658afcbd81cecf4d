# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Declarative backups and restores: canonical YAML, the Admin API export, POST /config and db_import."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback

from ansible_collections.kongops.upgrade.plugins.module_utils._backup_common import (
    BackupError,
    FILE_NAMES,
    StagedRun,
    discard,
    kong_text_hash,
    write_private,
)

try:
    import yaml
except ImportError:
    HAS_YAML, YAML_IMPORT_ERROR = False, traceback.format_exc()
else:
    HAS_YAML, YAML_IMPORT_ERROR = True, None
    _YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    _YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Admin API collections behind the declarative entity names. Credentials and targets are not
# top-level collections named after their tables: key-auth serves /key-auths, and targets are
# only listed per upstream (kong-oss.yaml paths).
ADMIN_COLLECTIONS = (
    ("ca_certificates", "/ca_certificates"),
    ("certificates", "/certificates"),
    ("snis", "/snis"),
    ("services", "/services"),
    ("routes", "/routes"),
    ("consumers", "/consumers"),
    ("keyauth_credentials", "/key-auths"),
    ("upstreams", "/upstreams"),
    ("targets", None),
    ("plugins", "/plugins"),
)
# Entity names that may appear nested inside another entity in a hand-written declarative file.
_NESTED_ENTITIES = frozenset(
    (
        "services",
        "routes",
        "plugins",
        "consumers",
        "keyauth_credentials",
        "upstreams",
        "targets",
        "certificates",
        "snis",
        "ca_certificates",
        "acls",
        "basicauth_credentials",
        "hmacauth_credentials",
        "jwt_secrets",
        "oauth2_credentials",
        "vaults",
        "keys",
        "key_sets",
    )
)
_TIMESTAMPS = ("created_at", "updated_at")


# --- declarative configuration ------------------------------------------------------------------


def require_yaml() -> None:
    if not HAS_YAML:
        raise BackupError("PyYAML is required for declarative backups on the host that runs the module")


def parse_declarative(text: str, origin: str = "declarative configuration") -> dict:
    require_yaml()
    try:
        doc = yaml.load(text, Loader=_YAML_LOADER)  # nosec - a safe loader (libyaml's when present)
    except yaml.YAMLError as exc:
        raise BackupError(f"{origin} does not parse as YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(doc, dict) or "_format_version" not in doc:
        raise BackupError(f"{origin} is not a Kong declarative configuration (no _format_version)")
    return doc


def canonical_doc(doc: dict) -> dict:
    """The same configuration with entity lists ordered by id (keys are sorted when dumped)."""
    out = {}
    for key, value in doc.items():
        if isinstance(value, list) and value and all(isinstance(e, dict) and isinstance(e.get("id"), str) for e in value):
            value = sorted(value, key=lambda e: e["id"])
        out[key] = value
    return out


def canonical_yaml(doc: dict) -> str:
    require_yaml()
    return yaml.dump(canonical_doc(doc), Dumper=_YAML_DUMPER, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1 << 20)


def entity_counts(doc: dict) -> dict:
    counts: dict = {}

    def walk(name, items):
        for item in items:
            if not isinstance(item, dict):
                continue
            counts[name] = counts.get(name, 0) + 1
            for key, value in item.items():
                if key in _NESTED_ENTITIES and isinstance(value, list) and all(isinstance(v, dict) for v in value):
                    walk(key, value)

    for key, value in doc.items():
        if key.startswith("_") or not isinstance(value, list):
            continue
        counts.setdefault(key, 0)
        walk(key, value)
    return counts


def format_version_for(kong_version) -> str:
    return "3.0" if kong_version is not None and kong_version.major >= 3 else "2.1"


def _flatten_entity(entity: dict) -> dict:
    out = {}
    for key, value in entity.items():
        if key == "ws_id":
            continue
        if isinstance(value, dict) and set(value) == {"id"}:
            value = value["id"]
        out[key] = value
    return out


def admin_entities(client) -> tuple:
    """Every entity the Admin API lists, as flat declarative lists; and the types it does not serve."""
    walk = [(name, path, True) for name, path in ADMIN_COLLECTIONS if path]
    skipped_paths: list = []
    found: dict = {name: [] for name, _path in ADMIN_COLLECTIONS}
    for etype, entity in client.walk_entities(walk, skipped_paths):
        found[etype].append(_flatten_entity(entity))
    missing = {name for name, path in ADMIN_COLLECTIONS if path in skipped_paths}
    if "upstreams" in missing:
        missing.add("targets")
    skipped = [name for name, _path in ADMIN_COLLECTIONS if name in missing]
    return {name: items for name, items in found.items() if name not in missing}, skipped


def export_via_admin(client, kong_version) -> tuple:
    entities, skipped = admin_entities(client)
    doc = {"_format_version": format_version_for(kong_version), "_transform": False}
    doc.update({name: items for name, items in entities.items() if items})
    return doc, {name: len(items) for name, items in entities.items()}, skipped


def compare_counts(expected: dict, actual: dict, types=None) -> list:
    names = types if types is not None else sorted(set(expected) | set(actual))
    return [{"type": n, "expected": expected.get(n, 0), "actual": actual.get(n, 0)} for n in names if expected.get(n, 0) != actual.get(n, 0)]


def entity_index(doc: dict) -> dict | None:
    """{type: {primary key: entity without timestamps}} of a flat configuration (the key is `id`, or
    `key` for parameters); None when an entity has neither, as in hand-written nested files."""
    index = {}
    for name, value in doc.items():
        if name.startswith("_") or not isinstance(value, list):
            continue
        bucket = index.setdefault(name, {})
        for item in value:
            pk = item.get("id") if isinstance(item, dict) else None
            if not isinstance(pk, str):
                pk = item.get("key") if isinstance(item, dict) and name == "parameters" else None
            if not isinstance(pk, str):
                return None
            bucket[pk] = {k: v for k, v in item.items() if k not in _TIMESTAMPS}
    return index


def compare_entities(backup: dict, current: dict) -> tuple:
    """(entities of the backup absent or different in current, entities in current only)."""
    differing, extra = [], []
    for name, items in backup.items():
        have = current.get(name, {})
        differing.extend(f"{name}/{eid}" for eid, ent in sorted(items.items()) if have.get(eid) != ent)
    for name, items in current.items():
        want = backup.get(name, {})
        extra.extend(f"{name}/{eid}" for eid in sorted(items) if eid not in want)
    return differing, extra


# --- backup parts ---------------------------------------------------------------------------
# Each part first gathers what it will write without writing (prepare: enough for check mode
# and for the free-space estimate), then writes into the staged run directory and verifies.


class DeclarativeBackup:
    kind = "declarative"

    def __init__(self, method: str, admin=None, cli=None, node: dict | None = None, kong_version=None, loaded_file: str | None = None):
        self.method, self.admin, self.cli = method, admin, cli
        self.node, self.kong_version, self.loaded_file = node or {}, kong_version, loaded_file
        self.text, self.doc, self.section, self.warnings = None, None, {}, []
        self.estimate = 0

    def _source_counts(self) -> dict | None:
        if self.admin is None or not self.node:
            return None
        entities, _skipped = admin_entities(self.admin)
        return {name: len(items) for name, items in entities.items()}

    def _config_text(self) -> None:
        """DB-less: prefer a text whose md5 is the node's configuration_hash, so that loading it
        back gives the node the very same hash (Kong hashes the raw text it was given)."""
        hash_before = self.admin.status().get("configuration_hash")
        exported = self.admin.get_config()
        candidates = []
        if self.loaded_file:
            try:
                with open(self.loaded_file, "rb") as fh:
                    candidates.append(("declarative_config", fh.read().decode("utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                self.warnings.append(f"cannot read the node's declarative_config {self.loaded_file}: {exc}")
        candidates.append(("config", exported))
        self.doc = parse_declarative(exported, "GET /config")
        chosen = next(((origin, text) for origin, text in candidates if kong_text_hash(text) == hash_before), None)
        if chosen is None:
            chosen = ("config_canonical", canonical_yaml(self.doc))
        exact = kong_text_hash(chosen[1]) == hash_before
        origin, text = chosen
        if self.loaded_file and origin != "declarative_config":
            self.warnings.append(
                f"{self.loaded_file} is not the configuration the node runs (its md5 is not the node's configuration_hash); GET /config was backed up instead"
            )
        if origin == "declarative_config":
            self.doc = None
        counts = self._source_counts()
        if self.admin.status().get("configuration_hash") != hash_before:
            raise BackupError(
                "the node's configuration changed while it was being backed up (configuration_hash "
                "moved); freeze the configuration (kong_config_freeze) and retry"
            )
        self.text = text
        self.section.update(text_origin=origin, configuration_hash=hash_before, hash_exact=exact, source_counts=counts)

    def prepare(self) -> None:
        if self.method == "config":
            self._config_text()
        elif self.method == "admin_api":
            self.doc, counts, skipped = export_via_admin(self.admin, self.kong_version)
            self.text = canonical_yaml(self.doc)
            self.section.update(text_origin="admin_api", source_counts=counts, skipped_types=skipped)
        self.estimate = len(self.text.encode("utf-8")) if self.text is not None else 0

    def write(self, run: StagedRun) -> list:
        path = run.path(FILE_NAMES[self.kind])
        if self.method == "db_export":
            self._db_export(run)
        doc = self.doc if self.doc is not None else parse_declarative(self.text, "the declarative backup")
        counts = entity_counts(doc)
        source = self.section.get("source_counts")
        if source is not None:
            diff = compare_counts(source, counts, [t for t in source if t in counts or source[t]])
            if diff:
                raise BackupError(
                    "the declarative backup does not hold what the node lists: "
                    + ", ".join(f"{d['type']} {d['actual']} in the file, {d['expected']} on the node" for d in diff),
                    count_mismatch=diff,
                )

        def verify(tmp):
            with open(tmp, "rb") as fh:
                written = fh.read().decode("utf-8")
            if entity_counts(parse_declarative(written, tmp)) != counts:
                raise BackupError(f"{tmp} does not read back with the entity counts that were written")

        entry = write_private(path, self.text.encode("utf-8"), verify)
        self.section.update(
            file=FILE_NAMES[self.kind],
            method=self.method,
            entity_counts=counts,
            format_version=str(doc.get("_format_version")),
            text_md5=kong_text_hash(self.text),
        )
        return [dict(entry, name=FILE_NAMES[self.kind], kind=self.kind)]

    def _db_export(self, run: StagedRun) -> None:
        raw = run.path(".db_export.yml")
        try:
            self.cli.run("config", "db_export", raw)
            with open(raw, "rb") as fh:
                exported = fh.read().decode("utf-8")
        finally:
            discard(raw)
        self.doc = parse_declarative(exported, "kong config db_export output")
        self.text = canonical_yaml(self.doc)
        self.section.update(text_origin="db_export", source_counts=self._source_counts())


# --- restore ------------------------------------------------------------------------------


def wait_for_hash(admin, want: str, attempts: int = 20, interval: float = 0.5, sleep=None) -> str | None:
    """Workers pick up a new configuration shortly after POST /config answers; poll /status."""
    sleep = sleep or time.sleep
    current = None
    for _attempt in range(attempts):
        current = admin.status().get("configuration_hash")
        if current == want:
            return current
        sleep(interval)
    return current


def restore_dbless(admin, text: str, section: dict, check_mode: bool, sleep=None) -> dict:
    """POST /config?check_hash=1 with the backed-up text; Kong answers 304 when it already runs it."""
    want = kong_text_hash(text)
    before = admin.status().get("configuration_hash")
    result = {
        "method": "config",
        "configuration_hash_before": before,
        "configuration_hash_expected": want,
        "original_configuration_hash": section.get("configuration_hash"),
        "hash_exact": bool(section.get("hash_exact")),
    }
    if check_mode:
        result.update(changed=before != want, status=None, configuration_hash_after=want if before != want else before)
        return result
    status = admin.post_config(text, check_hash=True)
    after = wait_for_hash(admin, want, sleep=sleep) if status != 304 else before
    result.update(changed=status != 304, status=status, configuration_hash_after=after)
    if after != want:
        raise BackupError(f"the node reports configuration_hash {after} after loading the backup, expected {want}", declarative=result)
    counts = entity_counts(parse_declarative(admin.get_config(), "GET /config after the restore"))
    diff = compare_counts(section.get("entity_counts") or {}, counts, [t for t, n in (section.get("entity_counts") or {}).items() if n])
    result["entity_counts"] = counts
    if diff:
        raise BackupError(
            "the node does not list the backed-up entities after the restore: "
            + ", ".join(f"{d['type']} {d['actual']} (backup {d['expected']})" for d in diff),
            declarative=result,
        )
    return result


def _db_export_index(cli, workdir: str) -> dict | None:
    path = os.path.join(workdir, "current.yml")
    discard(path)
    try:
        cli.run("config", "db_export", path)
        with open(path, encoding="utf-8") as fh:
            return entity_index(parse_declarative(fh.read(), "kong config db_export output"))
    finally:
        discard(path)


def restore_db_import(cli, path: str, text: str, only_if_different: bool, check_mode: bool) -> dict:
    """`kong config parse`, then `kong config db_import` (an upsert: entities created after the
    backup stay and are reported as extra_entities)."""
    cli.run("config", "parse", path)
    wanted = entity_index(parse_declarative(text, path))
    result = {"method": "db_import", "parsed": True, "reload_required": False, "extra_entities": []}
    workdir = tempfile.mkdtemp(prefix="kongops-restore-")
    try:
        differing = None
        if wanted is not None:
            differing, result["extra_entities"] = compare_entities(wanted, _db_export_index(cli, workdir) or {})
            result["differing_entities"] = len(differing)
        if only_if_different and differing == []:
            result["changed"] = False
            return result
        result["changed"] = True
        if check_mode:
            return result
        cli.run("config", "db_import", path)
        result["reload_required"] = True
        if wanted is not None:
            missing, result["extra_entities"] = compare_entities(wanted, _db_export_index(cli, workdir) or {})
            if missing:
                raise BackupError(
                    f"{len(missing)} backed-up entities are missing or different after db_import, e.g. {', '.join(missing[:5])}", declarative=result
                )
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
