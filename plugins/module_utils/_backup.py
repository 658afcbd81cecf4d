# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Verified Kong backups: manifest, checksums, atomic private writes, retention, canonical
declarative YAML, database snapshots and the pg_dump/pg_restore wrappers."""
from __future__ import annotations

import datetime
import grp
import hashlib
import io
import json
import os
import pwd
import re
import shutil
import tarfile
import tempfile
import time
import traceback

from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    KongAdminError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import (
    KongCliError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import (
    KONG_TABLES,
    KongDb,
    KongDbError,
)

try:
    import yaml
except ImportError:
    HAS_YAML, YAML_IMPORT_ERROR = False, traceback.format_exc()
else:
    HAS_YAML, YAML_IMPORT_ERROR = True, None
    _YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    _YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

try:
    from psycopg2 import sql
except ImportError:
    sql = None

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
KINDS = ("declarative", "database", "files")
FILE_NAMES = {"declarative": "declarative.yml", "database": "database.dump", "files": "files.tar.gz"}
FILE_MODE = 0o600
DIR_MODE = 0o700
PARTIAL_SUFFIX = ".partial"
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

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
_NESTED_ENTITIES = frozenset((
    "services", "routes", "plugins", "consumers", "keyauth_credentials", "upstreams", "targets",
    "certificates", "snis", "ca_certificates", "acls", "basicauth_credentials", "hmacauth_credentials",
    "jwt_secrets", "oauth2_credentials", "vaults", "keys", "key_sets",
))
_TIMESTAMPS = ("created_at", "updated_at")

# Row text must not depend on the session's settings, so that digests taken before a dump
# and after a restore (possibly on another server) compare equal.
_DIGEST_SETTINGS = (
    "SET TIME ZONE 'UTC'", "SET DateStyle = 'ISO, YMD'", "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1", "SET bytea_output = 'hex'",
)


class BackupError(Exception):
    """A backup or restore step failed; `context` holds what the module returns beside msg."""

    def __init__(self, msg: str, **context):
        super().__init__(msg)
        self.context = {k: v for k, v in context.items() if v is not None}


def failure_result(exc: BaseException, action: str) -> dict:
    """The fail_json arguments for an error of a backup or restore run (``action``: "write the backup",
    "restore"); the modules' main() passes them on. Unknown errors keep their traceback."""
    if isinstance(exc, BackupError):
        return dict(msg=str(exc), **exc.context)
    if isinstance(exc, KongAdminError):
        return dict(msg=f"Kong Admin API error: {exc}", status_code=exc.status, body=exc.body)
    if isinstance(exc, KongCliError):
        return dict(msg=f"kong command failed: {exc}", **exc.context())
    if isinstance(exc, KongDbError):
        return dict(msg=f"PostgreSQL error: {exc}", query=exc.query)
    if isinstance(exc, OSError):
        return dict(msg=f"cannot {action}: {exc}")
    return dict(msg=f"unexpected error: {exc.__class__.__name__}: {exc}", exception=traceback.format_exc())


# --- checksums and private files -------------------------------------------------------------

def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def kong_text_hash(text: str) -> str:
    """Kong's configuration_hash of a declarative config loaded as text: md5 of the raw bytes."""
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # nosec - Kong's own fingerprint, not security


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def partial_path(path: str) -> str:
    return path + PARTIAL_SUFFIX


def commit_partial(tmp: str, path: str, mode: int = FILE_MODE) -> dict:
    """Give a verified temporary file its final name; returns its size and sha256."""
    os.chmod(tmp, mode)
    _fsync_file(tmp)
    entry = {"size": os.path.getsize(tmp), "sha256": sha256_file(tmp)}
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")
    return entry


def discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_private(path: str, data: bytes, verify=None, mode: int = FILE_MODE) -> dict:
    """Write `data` to `path` through a temporary name, call `verify(tmp)`, then rename."""
    tmp = partial_path(path)
    discard(tmp)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if verify is not None:
            verify(tmp)
        return commit_partial(tmp, path, mode)
    except BaseException:
        discard(tmp)
        raise


# --- destination, free space, run directories -------------------------------------------------

def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)  # noqa: UP017 - targets run Python 3.8+


def iso(ts: datetime.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def default_run_id(ts: datetime.datetime) -> str:
    return ts.strftime("%Y%m%dT%H%M%SZ")


def check_run_id(run_id: str) -> None:
    if not _RUN_ID_RE.match(run_id or "") or run_id.endswith(PARTIAL_SUFFIX):
        raise BackupError(f"run_id {run_id!r} is not usable as a directory name: use letters, digits, "
                          "'.', '_' and '-' (at most 128 characters, not starting with '.' or '-')")


def free_bytes(path: str, statvfs=None) -> int:
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    st = (statvfs or os.statvfs)(probe)
    return st.f_bavail * st.f_frsize


def ensure_free_space(path: str, needed: int, statvfs=None) -> int:
    available = free_bytes(path, statvfs)
    if needed > available:
        raise BackupError(f"not enough free space in {path}: the backup needs about {_human(needed)}, "
                          f"{_human(available)} are available; free space or choose another dest",
                          needed_bytes=needed, available_bytes=available)
    return available


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def prepare_dest(dest: str, check_mode: bool = False) -> None:
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise BackupError(f"dest {dest} exists and is not a directory; point dest at a directory")
    if not os.path.exists(dest):
        if check_mode:
            return
        try:
            os.makedirs(dest, DIR_MODE)
        except OSError as exc:
            raise BackupError(f"cannot create dest {dest}: {exc.strerror}; choose a writable dest") from exc
    if not os.access(dest, os.W_OK | os.X_OK):
        raise BackupError(f"dest {dest} is not writable by this user; choose a writable dest or become root")


class StagedRun:
    """A run directory written under a temporary name and renamed once every file is verified."""

    def __init__(self, dest: str, run_id: str):
        self.dest, self.run_id = dest, run_id
        self.final = os.path.join(dest, run_id)
        self.staging = None

    def open(self) -> StagedRun:
        try:
            self.staging = tempfile.mkdtemp(prefix=f".{self.run_id}.", suffix=PARTIAL_SUFFIX, dir=self.dest)
        except OSError as exc:
            raise BackupError(f"cannot write into dest {self.dest}: {exc.strerror}") from exc
        os.chmod(self.staging, DIR_MODE)
        return self

    def path(self, name: str) -> str:
        return os.path.join(self.staging, name)

    def commit(self, manifest: dict) -> str:
        write_private(self.path(MANIFEST_NAME), dump_manifest(manifest))
        fsync_dir(self.staging)
        try:
            os.rename(self.staging, self.final)
        except OSError as exc:
            raise BackupError(f"cannot move the verified backup to {self.final}: {exc.strerror}") from exc
        fsync_dir(self.dest)
        self.staging = None
        return self.final

    def abort(self) -> None:
        if self.staging:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


# --- manifest ---------------------------------------------------------------------------------

def dump_manifest(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def manifest_path_of(src: str) -> str:
    if os.path.basename(src) == MANIFEST_NAME and not os.path.isdir(src):
        return src
    return os.path.join(src, MANIFEST_NAME)


def load_manifest(src: str) -> dict:
    path = manifest_path_of(src)
    if not os.path.exists(path):
        raise BackupError(f"no backup at {src}: {path} does not exist; pass the run directory a backup "
                          "returned as backup_dir", path=path)
    try:
        with open(path, "rb") as fh:
            manifest = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"the manifest {path} is unreadable or corrupted: {exc}", path=path) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or \
            not isinstance(manifest.get("files"), list):
        raise BackupError(f"{path} is not a kongops.upgrade backup manifest (format {MANIFEST_FORMAT})", path=path)
    return manifest


def verify_files(run_dir: str, manifest: dict, kinds) -> list:
    """Check every file of `kinds` against the manifest's size and sha256; nothing is changed."""
    checked = []
    for kind in kinds:
        if kind not in (manifest.get("kinds") or []):
            raise BackupError(f"the backup in {run_dir} has no '{kind}' part (it holds: "
                              f"{', '.join(manifest.get('kinds') or []) or 'nothing'}); drop it from kinds")
        entries = [f for f in manifest["files"] if f.get("kind") == kind]
        if not entries:
            raise BackupError(f"the manifest in {run_dir} lists no file for '{kind}'")
        for entry in entries:
            name = entry.get("name", "")
            if os.path.basename(name) != name or name in ("", ".", ".."):
                raise BackupError(f"the manifest in {run_dir} names an unsafe file {name!r}")
            path = os.path.join(run_dir, name)
            if not os.path.isfile(path):
                raise BackupError(f"backup file {path} is missing", path=path)
            size = os.path.getsize(path)
            if size != entry.get("size"):
                raise BackupError(f"backup file {path} has {size} bytes, the manifest says {entry.get('size')}: "
                                  "the file is truncated or was changed; refusing to restore it", path=path)
            digest = sha256_file(path)
            if digest != entry.get("sha256"):
                raise BackupError(f"backup file {path} fails its sha256 check (manifest {entry.get('sha256')}, "
                                  f"file {digest}): the file is corrupted; refusing to restore it", path=path)
            checked.append(dict(entry, path=path))
    return checked


def list_runs(dest: str) -> list:
    """Run directories in dest holding a valid manifest, oldest first."""
    runs = []
    if not os.path.isdir(dest):
        return runs
    for name in os.listdir(dest):
        path = os.path.join(dest, name)
        if name.startswith(".") or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            manifest = load_manifest(path)
        except BackupError:
            continue
        runs.append((str(manifest.get("created", "")), name, path))
    runs.sort()
    return runs


def apply_retention(dest: str, keep: int, current: str | None = None, check_mode: bool = False) -> list:
    """Remove all but the newest `keep` run directories (never `current`); returns removed paths."""
    if not keep or keep < 1:
        return []
    runs = list_runs(dest)
    if current:
        runs = [r for r in runs if r[2] != current]
        keep -= 1
    doomed = [path for _created, _name, path in runs[:max(len(runs) - keep, 0)]]
    if not check_mode:
        for path in doomed:
            shutil.rmtree(path)
    return doomed


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
        if isinstance(value, list) and value and all(isinstance(e, dict) and isinstance(e.get("id"), str)
                                                     for e in value):
            value = sorted(value, key=lambda e: e["id"])
        out[key] = value
    return out


def canonical_yaml(doc: dict) -> str:
    require_yaml()
    return yaml.dump(canonical_doc(doc), Dumper=_YAML_DUMPER, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=1 << 20)


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


def _paged_or_none(client, path: str):
    try:
        return client.paged(path)
    except KongAdminError as exc:
        if exc.status == 404:
            return None
        raise


def admin_entities(client) -> tuple:
    """Every entity the Admin API lists, as flat declarative lists; and the types it does not serve."""
    found, skipped = {}, []
    for name, path in ADMIN_COLLECTIONS:
        if name == "targets":
            if "upstreams" not in found:
                skipped.append(name)
                continue
            targets = []
            for upstream in found["upstreams"]:
                items = _paged_or_none(client, f"/upstreams/{upstream['id']}/targets")
                targets.extend(items or [])
            found[name] = targets
            continue
        items = _paged_or_none(client, path)
        if items is None:
            skipped.append(name)
            continue
        found[name] = [_flatten_entity(e) for e in items]
    found["targets"] = [_flatten_entity(e) for e in found.get("targets", [])]
    if "targets" in skipped:
        found.pop("targets")
    return found, skipped


def export_via_admin(client, kong_version) -> tuple:
    entities, skipped = admin_entities(client)
    doc = {"_format_version": format_version_for(kong_version), "_transform": False}
    doc.update({name: items for name, items in entities.items() if items})
    return doc, {name: len(items) for name, items in entities.items()}, skipped


def compare_counts(expected: dict, actual: dict, types=None) -> list:
    names = types if types is not None else sorted(set(expected) | set(actual))
    return [{"type": n, "expected": expected.get(n, 0), "actual": actual.get(n, 0)}
            for n in names if expected.get(n, 0) != actual.get(n, 0)]


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


# --- kong.conf --------------------------------------------------------------------------------

def read_kong_conf(path: str) -> dict:
    """`key = value` pairs of a kong.conf; `#` starts a comment unless written `\\#`."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise BackupError(f"cannot read kong_conf {path}: {exc.strerror}") from exc
    values = {}
    for line in lines:
        text = re.sub(r"(?<!\\)#.*$", "", line).replace("\\#", "#").strip()
        if "=" not in text:
            continue
        key, value = text.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def kong_setting(name: str, conf_path: str | None, kong_env: dict | None):
    """A kong.conf setting as Kong resolves it: KONG_<NAME> in the environment beats the file."""
    env_key = "KONG_" + name.upper()
    if kong_env and env_key in kong_env:
        return str(kong_env[env_key])
    if conf_path:
        return read_kong_conf(conf_path).get(name) or None
    return None


def pg_params_from_kong_conf(params: dict) -> dict:
    """The module's pg_* parameters overridden by the node's kong.conf and KONG_PG_* settings."""
    out = dict(params)
    conf = params.get("kong_conf")
    if not conf:
        raise BackupError("pg_from_kong_conf needs kong_conf (the node's kong.conf)")
    for name in ("pg_host", "pg_port", "pg_user", "pg_password", "pg_database", "pg_schema"):
        value = kong_setting(name, conf, params.get("kong_env"))
        if value:
            out[name] = int(value) if name == "pg_port" else value
    return out


# --- database ---------------------------------------------------------------------------------

class SnapshotDb(KongDb):
    """A KongDb whose reads share one REPEATABLE READ snapshot, exported for pg_dump --snapshot."""

    def begin(self) -> str:
        conn = self.connect()
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        self._conn = conn
        return self.query("SELECT pg_export_snapshot()")[0][0]

    def end(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.rollback()
        self.close()


def database_state(db: KongDb) -> dict:
    """schema_meta, row counts and a content digest of every table in Kong's schema."""
    for statement in _DIGEST_SETTINGS:
        db.query(statement)
    schema = db.query("SELECT current_schema()")[0][0]
    names = [r[0] for r in db.query(
        "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname = current_schema() ORDER BY c.relname")]
    tables = {}
    for name in names:
        rows, digest = db.query(sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
            "FROM (SELECT md5(t::text) AS h FROM {} t) s").format(sql.Identifier(schema, name)))[0]
        tables[name] = {"rows": int(rows), "digest": digest}
    size, encoding, version = db.query(
        "SELECT pg_database_size(current_database()), pg_encoding_to_char(encoding), "
        "current_setting('server_version') FROM pg_database WHERE datname = current_database()")[0]
    return {"schema": schema, "tables": tables, "schema_meta": db.schema_meta(),
            "entity_counts": {t: tables[t]["rows"] for t in KONG_TABLES if t in tables},
            "size_bytes": int(size), "encoding": encoding, "server_version": version}


def compare_tables(expected: dict, actual: dict) -> tuple:
    """(tables of the backup missing or different in actual, tables only in actual)."""
    differing = [name for name, want in sorted(expected.items()) if actual.get(name) != want]
    extra = sorted(set(actual) - set(expected))
    return differing, extra


_TOC_RE = re.compile(r"^\s*\d+;\s+\d+\s+\d+\s+(TABLE DATA|TABLE)\s+(\S+)\s+(\S+)")


class PgTools:
    """pg_dump / pg_restore through a `run_command(argv, environ_update=...)` callable; the
    password travels in PGPASSWORD only."""

    def __init__(self, run_command, pg_dump: str = "pg_dump", pg_restore: str = "pg_restore"):
        self._run = run_command
        self.pg_dump, self.pg_restore = pg_dump, pg_restore

    def _call(self, argv: list, env: dict | None, what: str) -> str:
        try:
            rc, out, err = self._run(argv, environ_update=env or {})
        except (OSError, ValueError) as exc:
            raise BackupError(f"could not run {argv[0]}: {exc}", cmd=argv) from exc
        if rc != 0:
            lines = [ln for ln in (err or "").splitlines() if ln.strip()]
            raise BackupError(f"{what} failed (rc={rc}): {lines[0] if lines else 'no error output'}",
                              cmd=argv, rc=rc, stderr=(err or "")[-4000:])
        return out or ""

    def version(self) -> str:
        return self._call([self.pg_dump, "--version"], None, "pg_dump --version").strip()

    def dump(self, path: str, env: dict, snapshot: str | None = None, schema: str | None = None) -> list:
        argv = [self.pg_dump, "--format=custom", "--no-password", "--file", path]
        if snapshot:
            argv += ["--snapshot", snapshot]
        if schema:
            argv += ["--schema", schema]
        self._call(argv, env, f"pg_dump of database {env.get('PGDATABASE')}")
        return argv

    def toc(self, path: str) -> dict:
        """Tables in a custom-format dump: {'TABLE': {(schema, name)}, 'TABLE DATA': {...}}."""
        out = self._call([self.pg_restore, "--list", path], None, f"pg_restore --list {path}")
        found = {"TABLE": set(), "TABLE DATA": set()}
        for line in out.splitlines():
            match = _TOC_RE.match(line)
            if match:
                found[match.group(1)].add((match.group(2), match.group(3)))
        return found

    def restore(self, path: str, env: dict, database: str, clean: bool = False) -> list:
        argv = [self.pg_restore, "--no-password", "--no-owner", "--exit-on-error", "--single-transaction",
                "--dbname", database]
        if clean:
            argv += ["--clean", "--if-exists"]
        argv.append(path)
        self._call(argv, env, f"pg_restore into database {database}")
        return argv


def verify_dump_toc(toc: dict, schema: str, tables) -> None:
    for name in tables:
        for entry in ("TABLE", "TABLE DATA"):
            if (schema, name) not in toc[entry]:
                raise BackupError(f"the dump does not list {entry} {schema}.{name} (pg_restore --list); "
                                  "it is incomplete")


# --- files --------------------------------------------------------------------------------------

def collect_files(paths) -> list:
    """Absolute paths of the regular files named by `paths` (directories walked, links followed)."""
    found = []
    for raw in paths:
        path = os.path.abspath(raw)
        if os.path.isfile(path):
            found.append(path)
        elif os.path.isdir(path):
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs.sort()
                found.extend(os.path.join(root, f) for f in sorted(files) if os.path.isfile(os.path.join(root, f)))
        else:
            raise BackupError(f"files: {raw} does not exist (or is not a regular file or directory)")
    seen, unique = set(), []
    for path in found:
        if path not in seen:
            seen.add(path)
            unique.append(path)
    return unique


def _arcname(path: str) -> str:
    return path.lstrip("/")


def write_tarball(tmp: str, paths) -> list:
    members = []
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for path in paths:
            with open(path, "rb") as fh:
                info = tar.gettarinfo(arcname=_arcname(path), fileobj=fh)
                data = fh.read()
            info.size = len(data)
            tar.addfile(info, fileobj=io.BytesIO(data))
            members.append({"path": path, "size": len(data), "sha256": sha256_bytes(data),
                            "mode": "%04o" % (info.mode & 0o7777),
                            "owner": info.uname or str(info.uid), "group": info.gname or str(info.gid)})
    return members


def read_tarball(path: str) -> dict:
    """{absolute path: bytes} of a files backup; refuses anything but plain relative files."""
    out = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for info in tar.getmembers():
                name = info.name
                if not info.isreg() or name.startswith("/") or ".." in name.split("/"):
                    raise BackupError(f"the files backup {path} holds an unexpected member {name!r}")
                out["/" + name] = tar.extractfile(info).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"the files backup {path} cannot be read: {exc}") from exc
    return out


def verify_tarball(path: str, members: list) -> None:
    content = read_tarball(path)
    for member in members:
        data = content.get(member["path"])
        if data is None or sha256_bytes(data) != member["sha256"]:
            raise BackupError(f"the files backup {path} does not hold {member['path']} as read")


def _owner_ids(member: dict):
    try:
        uid = pwd.getpwnam(member["owner"]).pw_uid
    except (KeyError, TypeError):
        uid = int(member["owner"]) if str(member.get("owner", "")).isdigit() else -1
    try:
        gid = grp.getgrnam(member["group"]).gr_gid
    except (KeyError, TypeError):
        gid = int(member["group"]) if str(member.get("group", "")).isdigit() else -1
    return uid, gid


def restore_files(tar_path: str, members: list, root: str | None = None, check_mode: bool = False) -> list:
    """Write back every file whose content or mode differs; returns the paths written (or to write)."""
    content = read_tarball(tar_path)
    changed = []
    for member in members:
        data = content.get(member["path"])
        if data is None or sha256_bytes(data) != member["sha256"]:
            raise BackupError(f"the files backup {tar_path} does not hold {member['path']} as the manifest says")
        target = os.path.join(root, _arcname(member["path"])) if root else member["path"]
        mode = int(member.get("mode", "0600"), 8)
        if os.path.isfile(target) and sha256_file(target) == member["sha256"] and \
                (os.stat(target).st_mode & 0o7777) == mode:
            continue
        changed.append(target)
        if check_mode:
            continue
        parent = os.path.dirname(target)
        os.makedirs(parent, 0o755, exist_ok=True)
        tmp = partial_path(target)
        discard(tmp)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if os.geteuid() == 0:
                uid, gid = _owner_ids(member)
                os.chown(tmp, uid, gid)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            discard(tmp)
            raise
    return changed


# --- Admin API probes ---------------------------------------------------------------------------

def answering_nodes(urls, make_client) -> list:
    """The Admin URLs where something still answers HTTP (any status counts as answering)."""
    answering = []
    for url in urls:
        try:
            make_client(url).raw("GET", "/")
        except KongAdminError:
            continue
        answering.append(url)
    return answering


def public_url(url: str) -> str:
    """A URL without user:password@ credentials."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url or "")


# --- backup parts ---------------------------------------------------------------------------
# Each part first gathers what it will write without writing (prepare: enough for check mode
# and for the free-space estimate), then writes into the staged run directory and verifies.

class DeclarativeBackup:
    kind = "declarative"

    def __init__(self, method: str, admin=None, cli=None, node: dict | None = None, kong_version=None,
                 loaded_file: str | None = None):
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
            self.warnings.append(f"{self.loaded_file} is not the configuration the node runs (its md5 is not the "
                                 "node's configuration_hash); GET /config was backed up instead")
        if origin == "declarative_config":
            self.doc = None
        counts = self._source_counts()
        if self.admin.status().get("configuration_hash") != hash_before:
            raise BackupError("the node's configuration changed while it was being backed up (configuration_hash "
                              "moved); freeze the configuration (kong_config_freeze) and retry")
        self.text = text
        self.section.update(text_origin=origin, configuration_hash=hash_before, hash_exact=exact,
                            source_counts=counts)

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
                raise BackupError("the declarative backup does not hold what the node lists: " +
                                  ", ".join(f"{d['type']} {d['actual']} in the file, {d['expected']} on the node"
                                            for d in diff), count_mismatch=diff)

        def verify(tmp):
            with open(tmp, "rb") as fh:
                written = fh.read().decode("utf-8")
            if entity_counts(parse_declarative(written, tmp)) != counts:
                raise BackupError(f"{tmp} does not read back with the entity counts that were written")

        entry = write_private(path, self.text.encode("utf-8"), verify)
        self.section.update(file=FILE_NAMES[self.kind], method=self.method, entity_counts=counts,
                            format_version=str(doc.get("_format_version")), text_md5=kong_text_hash(self.text))
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


class DatabaseBackup:
    kind = "database"

    def __init__(self, db: SnapshotDb, tools: PgTools, schema: str | None = None):
        self.db, self.tools, self.schema = db, tools, schema
        self.snapshot, self.state, self.section, self.warnings = None, None, {}, []
        self.estimate = 0

    def prepare(self) -> None:
        self.snapshot = self.db.begin()
        self.state = database_state(self.db)
        if self.state["schema_meta"] is None:
            self.warnings.append(f"{self.db.describe()} has no schema_meta table: Kong was never bootstrapped there")
        self.estimate = self.state["size_bytes"]

    def close(self) -> None:
        self.db.end()

    def write(self, run: StagedRun) -> list:
        name = FILE_NAMES[self.kind]
        final = run.path(name)
        tmp = partial_path(final)
        try:
            self.tools.dump(tmp, self.db.libpq_env(), snapshot=self.snapshot, schema=self.schema)
            verify_dump_toc(self.tools.toc(tmp), self.state["schema"], self.state["tables"])
            entry = commit_partial(tmp, final)
        finally:
            discard(tmp)
            self.close()
        params = self.db.params
        self.section.update(
            file=name, format="custom", host=params["host"], port=params["port"], user=params["user"],
            database=self.db.database, schema=self.state["schema"], encoding=self.state["encoding"],
            server_version=self.state["server_version"], pg_dump_version=self.tools.version(),
            schema_meta=self.state["schema_meta"], entity_counts=self.state["entity_counts"],
            tables=self.state["tables"])
        return [dict(entry, name=name, kind=self.kind)]


class FilesBackup:
    kind = "files"

    def __init__(self, paths):
        self.requested = list(paths)
        self.paths, self.section, self.warnings = [], {}, []
        self.estimate = 0

    def prepare(self) -> None:
        self.paths = collect_files(self.requested)
        self.estimate = sum(os.path.getsize(p) for p in self.paths)

    def write(self, run: StagedRun) -> list:
        name = FILE_NAMES[self.kind]
        final = run.path(name)
        tmp = partial_path(final)
        discard(tmp)
        try:
            members = write_tarball(tmp, self.paths)
            verify_tarball(tmp, members)
            entry = commit_partial(tmp, final)
        finally:
            discard(tmp)
        self.section.update(file=name, members=members)
        return [dict(entry, name=name, kind=self.kind)]


def existing_run(dest: str, run_id: str, kinds) -> dict | None:
    """The manifest of an intact earlier backup with this run_id, None when there is none."""
    final = os.path.join(dest, run_id)
    if not os.path.lexists(final):
        return None
    try:
        manifest = load_manifest(final)
        verify_files(final, manifest, kinds)
    except BackupError as exc:
        raise BackupError(f"{final} exists but is not an intact backup of {', '.join(kinds)} ({exc}); "
                          "remove it or choose another run_id") from exc
    return manifest


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
    result = {"method": "config", "configuration_hash_before": before, "configuration_hash_expected": want,
              "original_configuration_hash": section.get("configuration_hash"),
              "hash_exact": bool(section.get("hash_exact"))}
    if check_mode:
        result.update(changed=before != want, status=None, configuration_hash_after=want if before != want else before)
        return result
    status = admin.post_config(text, check_hash=True)
    after = wait_for_hash(admin, want, sleep=sleep) if status != 304 else before
    result.update(changed=status != 304, status=status, configuration_hash_after=after)
    if after != want:
        raise BackupError(f"the node reports configuration_hash {after} after loading the backup, expected {want}",
                          declarative=result)
    counts = entity_counts(parse_declarative(admin.get_config(), "GET /config after the restore"))
    diff = compare_counts(section.get("entity_counts") or {}, counts,
                          [t for t, n in (section.get("entity_counts") or {}).items() if n])
    result["entity_counts"] = counts
    if diff:
        raise BackupError("the node does not list the backed-up entities after the restore: " +
                          ", ".join(f"{d['type']} {d['actual']} (backup {d['expected']})" for d in diff),
                          declarative=result)
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
                raise BackupError(f"{len(missing)} backed-up entities are missing or different after db_import, "
                                  f"e.g. {', '.join(missing[:5])}", declarative=result)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _q(db: KongDb, template: str, *idents, args=None):
    return db.query(sql.SQL(template).format(*[sql.Identifier(i) for i in idents]), args)


class DatabaseRestore:
    """pg_restore of a custom-format dump, verified against the manifest's table digests.

    recreate: restore into a new database, verify it, then drop the target and rename the new one
    into its place (the target is untouched until the copy is proven). clean: pg_restore --clean
    --if-exists in a single transaction into the target itself."""

    def __init__(self, params: dict, admin_params: dict, tools: PgTools, mode: str = "recreate",
                 force: bool = False, only_if_different: bool = True):
        self.params, self.admin_params, self.tools = params, admin_params, tools
        self.mode, self.force, self.only_if_different = mode, force, only_if_different
        self.target = params["pg_database"]
        self.warnings = []

    def _db(self, database: str) -> KongDb:
        return KongDb.from_params(dict(self.params, pg_database=database))

    def _admin(self) -> KongDb:
        return KongDb.from_params(self.admin_params)

    def _preflight(self, admin: KongDb) -> bool:
        rows = admin.query("SELECT datname FROM pg_database WHERE datname = %s", (self.target,))
        exists = bool(rows)
        if exists and not self.force:
            sessions = admin.query("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                   "AND pid <> pg_backend_pid()", (self.target,))[0][0]
            if sessions:
                raise BackupError(f"database {self.target} still has {sessions} open session(s); stop every Kong "
                                  "node using it (or set force to end them)")
        if self.mode == "recreate" or not exists:
            can_create = admin.query("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
            if not (can_create and can_create[0][0]):
                raise BackupError(f"restoring database {self.target} needs to create a database and role "
                                  f"{admin.params['user']} may not (no CREATEDB): set pg_admin_user to a role that "
                                  "may, grant CREATEDB, or use database_mode=clean on an existing database")
        if exists and self.mode == "recreate":
            owns = admin.query("SELECT pg_has_role(current_user, datdba, 'MEMBER') OR "
                               "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
                               "FROM pg_database WHERE datname = %s", (self.target,))
            if not (owns and owns[0][0]):
                raise BackupError(f"role {admin.params['user']} does not own database {self.target} and cannot drop "
                                  "it: set pg_admin_user to its owner or a superuser")
        return exists

    def _state(self, database: str) -> dict:
        db = self._db(database)
        try:
            return database_state(db)
        finally:
            db.close()

    def _verify(self, section: dict, state: dict, where: str) -> list:
        differing, extra = compare_tables(section.get("tables") or {}, state["tables"])
        if differing:
            raise BackupError(f"{where} does not match the backup after pg_restore: tables differing: "
                              f"{', '.join(differing)}", tables_differing=differing)
        if state["schema_meta"] != section.get("schema_meta"):
            raise BackupError(f"{where} does not match the backup after pg_restore: schema_meta differs")
        return extra

    def _create(self, admin: KongDb, name: str, encoding: str) -> None:
        admin.query(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING %s").format(
            sql.Identifier(name), sql.Identifier(self.params["pg_user"])), (encoding,))

    def run(self, dump: str, section: dict, check_mode: bool) -> dict:
        admin = self._admin()
        try:
            exists = self._preflight(admin)
            before = self._state(self.target) if exists else None
            result = {"database": self.target, "mode": self.mode, "existed": exists,
                      "before": _summary(before), "after": _summary(before)}
            if before is not None and self.only_if_different:
                differing, extra = compare_tables(section.get("tables") or {}, before["tables"])
                if not differing and not extra and before["schema_meta"] == section.get("schema_meta"):
                    result["changed"] = False
                    return result
            result["changed"] = True
            if check_mode:
                result["after"] = {"entity_counts": section.get("entity_counts"),
                                   "schema_meta": section.get("schema_meta")}
                return result
            encoding = section.get("encoding") or "UTF8"
            if self.mode == "recreate":
                self._recreate(admin, dump, section, encoding, exists)
            else:
                if not exists:
                    self._create(admin, self.target, encoding)
                self.tools.restore(dump, self._db(self.target).libpq_env(), self.target, clean=True)
            after = self._state(self.target)
            extra = self._verify(section, after, f"database {self.target}")
            if extra:
                self.warnings.append(f"tables not in the backup remain in {self.target}: {', '.join(extra)} "
                                     "(database_mode=recreate removes them)")
            result.update(after=_summary(after), extra_tables=extra, verified=True)
            return result
        finally:
            admin.close()

    def _recreate(self, admin: KongDb, dump: str, section: dict, encoding: str, exists: bool) -> None:
        staging = (self.target[:40] + "_kongops_restore")
        _q(admin, "DROP DATABASE IF EXISTS {}", staging)
        self._create(admin, staging, encoding)
        try:
            self.tools.restore(dump, self._db(self.target).libpq_env(database=staging), staging)
            self._verify(section, self._state(staging), f"the restored copy {staging}")
            if exists:
                # DROP DATABASE ... WITH (FORCE) exists from PostgreSQL 13 on.
                force = self.force and int(admin.query("SHOW server_version_num")[0][0]) >= 130000
                _q(admin, "DROP DATABASE {}" + (" WITH (FORCE)" if force else ""), self.target)
            _q(admin, "ALTER DATABASE {} RENAME TO {}", staging, self.target)
        except BaseException:
            try:
                _q(admin, "DROP DATABASE IF EXISTS {}", staging)
            except Exception:  # noqa: BLE001 - the original error matters more than the cleanup's
                self.warnings.append(f"could not drop the staging database {staging}")
            raise


def _summary(state: dict | None) -> dict | None:
    if state is None:
        return None
    return {"entity_counts": state["entity_counts"], "schema_meta": state["schema_meta"]}
