# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Database backups and restores: snapshots, table digests, pg_dump/pg_restore, the restore swap, cluster identity."""

from __future__ import annotations

import re
import time

from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import (
    KONG_TABLES,
    KongDb,
    KongDbError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_common import (
    ASIDE_SUFFIX,
    BackupError,
    FILE_NAMES,
    STAGING_SUFFIX,
    StagedRun,
    commit_partial,
    discard,
    partial_path,
)

try:
    from psycopg2 import Error as PgError, sql
except ImportError:
    PgError, sql = Exception, None

# Seconds a restore waits for the sessions of nodes that have just stopped to go away.
SESSION_GRACE_S = 5

# Row text must not depend on the session's settings, so that digests taken before a dump
# and after a restore (possibly on another server) compare equal.
_DIGEST_SETTINGS = (
    "SET TIME ZONE 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
)


# --- database ---------------------------------------------------------------------------------


class SnapshotDb(KongDb):
    """A KongDb whose reads share one REPEATABLE READ snapshot, exported for pg_dump --snapshot."""

    def begin(self) -> str:
        conn = self.connect()
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        self._conn = conn
        return self.query("SELECT pg_export_snapshot()")[0][0]

    def end(self) -> None:
        """Roll the snapshot back and close. A connection the server cut (it restarted during the
        backup) has nothing left to roll back: the error that stopped the backup is the one to report."""
        try:
            if self._conn is not None and not self._conn.closed:
                self._conn.rollback()
        except PgError:
            pass
        finally:
            self.close()


def database_state(db: KongDb) -> dict:
    """schema_meta, row counts and a content digest of every table in Kong's schema."""
    for statement in _DIGEST_SETTINGS:
        db.query(statement)
    schema = db.query("SELECT current_schema()")[0][0]
    names = [
        r[0]
        for r in db.query(
            "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname = current_schema() ORDER BY c.relname"
        )
    ]
    tables = {}
    for name in names:
        rows, digest = db.query(
            sql.SQL("SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM (SELECT md5(t::text) AS h FROM {} t) s").format(
                sql.Identifier(schema, name)
            )
        )[0]
        tables[name] = {"rows": int(rows), "digest": digest}
    size, encoding, version = db.query(
        "SELECT pg_database_size(current_database()), pg_encoding_to_char(encoding), "
        "current_setting('server_version') FROM pg_database WHERE datname = current_database()"
    )[0]
    return {
        "schema": schema,
        "tables": tables,
        "schema_meta": db.schema_meta(),
        "entity_counts": {t: tables[t]["rows"] for t in KONG_TABLES if t in tables},
        "size_bytes": int(size),
        "encoding": encoding,
        "server_version": version,
    }


def compare_tables(expected: dict, actual: dict) -> tuple:
    """(tables of the backup missing or different in actual, tables only in actual)."""
    differing = [name for name, want in sorted(expected.items()) if actual.get(name) != want]
    extra = sorted(set(actual) - set(expected))
    return differing, extra


_TOC_RE = re.compile(r"^\s*\d+;\s+\d+\s+\d+\s+(TABLE DATA|TABLE)\s+(\S+)\s+(\S+)")


class PgTools:
    """pg_dump / pg_restore through a `run_command(argv, environ_update=...)` callable; the
    password travels in PGPASSWORD only."""

    # `timeout` exits 124 when it stopped the command, 137 when it had to kill it (coreutils).
    TIMED_OUT = (124, 137)

    def __init__(
        self, run_command, pg_dump: str = "pg_dump", pg_restore: str = "pg_restore", timeout: int = 0, timeout_bin: str | None = None, lock_timeout: int = 0
    ):
        self._run = run_command
        self.pg_dump, self.pg_restore = pg_dump, pg_restore
        # pg_dump and pg_restore set statement_timeout and lock_timeout to 0 in their own sessions, so
        # the session bounds of the pg_* options do not reach them: their wall time is bounded by
        # running them under `timeout` (pg_tool_timeout), and pg_dump's table locks by --lock-wait-timeout.
        self.timeout, self.timeout_bin, self.lock_timeout = int(timeout or 0), timeout_bin, int(lock_timeout or 0)

    def _bounded(self, argv: list) -> list:
        if self.timeout > 0 and self.timeout_bin:
            return [self.timeout_bin, "--kill-after=10", f"{self.timeout}s"] + argv
        return argv

    def _call(self, argv: list, env: dict | None, what: str) -> str:
        try:
            rc, out, err = self._run(self._bounded(argv), environ_update=env or {})
        except (OSError, ValueError) as exc:
            raise BackupError(f"could not run {argv[0]}: {exc}", cmd=argv) from exc
        if rc in self.TIMED_OUT and self.timeout > 0 and self.timeout_bin:
            raise BackupError(
                f"{what} did not finish within {self.timeout} s and was stopped (pg_tool_timeout); raise pg_tool_timeout for a large database or a slow server",
                cmd=argv,
                rc=rc,
                stderr=(err or "")[-4000:],
            )
        if rc != 0:
            lines = [ln for ln in (err or "").splitlines() if ln.strip()]
            raise BackupError(f"{what} failed (rc={rc}): {lines[0] if lines else 'no error output'}", cmd=argv, rc=rc, stderr=(err or "")[-4000:])
        return out or ""

    def version(self) -> str:
        return self._call([self.pg_dump, "--version"], None, "pg_dump --version").strip()

    def dump(self, path: str, env: dict, snapshot: str | None = None, schema: str | None = None) -> list:
        argv = [self.pg_dump, "--format=custom", "--no-password", "--file", path]
        if self.lock_timeout > 0:
            argv.append(f"--lock-wait-timeout={self.lock_timeout * 1000}")
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
        argv = [self.pg_restore, "--no-password", "--no-owner", "--exit-on-error", "--single-transaction", "--dbname", database]
        if clean:
            argv += ["--clean", "--if-exists"]
        argv.append(path)
        self._call(argv, env, f"pg_restore into database {database}")
        return argv


def verify_dump_toc(toc: dict, schema: str, tables) -> None:
    for name in tables:
        for entry in ("TABLE", "TABLE DATA"):
            if (schema, name) not in toc[entry]:
                raise BackupError(f"the dump does not list {entry} {schema}.{name} (pg_restore --list); it is incomplete")


class DatabaseBackup:
    kind = "database"

    def __init__(self, db: SnapshotDb, tools: PgTools, schema: str | None = None):
        self.db, self.tools, self.schema = db, tools, schema
        self.snapshot, self.state, self.section, self.warnings = None, None, {}, []
        self.estimate = 0
        self.identity = None

    def prepare(self) -> None:
        self.snapshot = self.db.begin()
        self.state = database_state(self.db)
        self.identity = database_identity(self.db)
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
            file=name,
            format="custom",
            host=params["host"],
            port=params["port"],
            user=params["user"],
            database=self.db.database,
            schema=self.state["schema"],
            encoding=self.state["encoding"],
            server_version=self.state["server_version"],
            pg_dump_version=self.tools.version(),
            schema_meta=self.state["schema_meta"],
            entity_counts=self.state["entity_counts"],
            tables=self.state["tables"],
        )
        return [dict(entry, name=name, kind=self.kind)]


def _q(db: KongDb, template: str, *idents, args=None):
    return db.query(sql.SQL(template).format(*[sql.Identifier(i) for i in idents]), args)


class DatabaseRestore:
    """pg_restore of a custom-format dump, verified against the manifest's table digests.

    recreate: restore into a new database, verify it, rename the target aside, rename the new one into
    its place and drop the old copy last (the target is untouched until the copy is proven, and a failed
    swap renames it back). clean: pg_restore --clean --if-exists in a single transaction into the
    target itself."""

    def __init__(self, params: dict, admin_params: dict, tools: PgTools, mode: str = "recreate", force: bool = False, only_if_different: bool = True):
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
            # a node that has just exited leaves its session for as long as PostgreSQL takes to notice
            # the closed connection: wait a little (bounded) before calling a session someone else's
            deadline = time.monotonic() + SESSION_GRACE_S
            while True:
                sessions = admin.query("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (self.target,))[0][0]
                if not sessions or time.monotonic() >= deadline:
                    break
                time.sleep(0.25)
            if sessions:
                raise BackupError(f"database {self.target} still has {sessions} open session(s); stop every Kong node using it (or set force to end them)")
        if self.mode == "recreate" or not exists:
            can_create = admin.query("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
            if not (can_create and can_create[0][0]):
                raise BackupError(
                    f"restoring database {self.target} needs to create a database and role "
                    f"{admin.params['user']} may not (no CREATEDB): set pg_admin_user to a role that "
                    "may, grant CREATEDB, or use database_mode=clean on an existing database"
                )
        if exists and self.mode == "recreate":
            owns = admin.query(
                "SELECT pg_has_role(current_user, datdba, 'MEMBER') OR "
                "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
                "FROM pg_database WHERE datname = %s",
                (self.target,),
            )
            if not (owns and owns[0][0]):
                raise BackupError(
                    f"role {admin.params['user']} does not own database {self.target} and cannot drop it: set pg_admin_user to its owner or a superuser"
                )
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
            raise BackupError(f"{where} does not match the backup after pg_restore: tables differing: {', '.join(differing)}", tables_differing=differing)
        if state["schema_meta"] != section.get("schema_meta"):
            raise BackupError(f"{where} does not match the backup after pg_restore: schema_meta differs")
        return extra

    def _create(self, admin: KongDb, name: str, encoding: str) -> None:
        admin.query(
            sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING %s").format(sql.Identifier(name), sql.Identifier(self.params["pg_user"])),
            (encoding,),
        )

    def run(self, dump: str, section: dict, check_mode: bool) -> dict:
        admin = self._admin()
        try:
            exists = self._preflight(admin)
            before = self._state(self.target) if exists else None
            result = {"database": self.target, "mode": self.mode, "existed": exists, "before": _summary(before), "after": _summary(before)}
            if before is not None and self.only_if_different:
                differing, extra = compare_tables(section.get("tables") or {}, before["tables"])
                if not differing and not extra and before["schema_meta"] == section.get("schema_meta"):
                    result["changed"] = False
                    return result
            result["changed"] = True
            if check_mode:
                result["after"] = {"entity_counts": section.get("entity_counts"), "schema_meta": section.get("schema_meta")}
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
                self.warnings.append(f"tables not in the backup remain in {self.target}: {', '.join(extra)} (database_mode=recreate removes them)")
            result.update(after=_summary(after), extra_tables=extra, verified=True)
            return result
        finally:
            admin.close()

    def _end_sessions(self, admin: KongDb, name: str) -> None:
        admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))

    def _rename(self, admin: KongDb, old: str, new: str, end_sessions: bool = False) -> None:
        """ALTER DATABASE old RENAME TO new; with end_sessions, sessions on old are ended first (and again
        when a client reconnected in between)."""
        for attempt in range(3):
            if end_sessions:
                self._end_sessions(admin, old)
            try:
                _q(admin, "ALTER DATABASE {} RENAME TO {}", old, new)
                return
            except KongDbError as exc:
                if not end_sessions or attempt == 2 or "being accessed by other users" not in str(exc):
                    raise

    def _recreate(self, admin: KongDb, dump: str, section: dict, encoding: str, exists: bool) -> None:
        """Restore into a staging copy and verify it; then rename the target aside, rename the copy into
        place, and drop the old copy last. Until the copy is in place the original keeps its data under
        its own name or, for the moment of the swap, under the aside name, from which a failed swap
        renames it back."""
        staging = self.target[:40] + STAGING_SUFFIX
        aside = self.target[:40] + ASIDE_SUFFIX
        if exists and admin.query("SELECT 1 FROM pg_database WHERE datname = %s", (aside,)):
            raise BackupError(
                f"database {aside} exists: it may be the copy of {self.target} that an interrupted "
                f"restore left aside. Check it, then rename it back to {self.target} or drop it, and "
                "run the restore again",
                database=aside,
            )
        _q(admin, "DROP DATABASE IF EXISTS {}", staging)
        self._create(admin, staging, encoding)
        in_place = False
        try:
            self.tools.restore(dump, self._db(self.target).libpq_env(database=staging), staging)
            self._verify(section, self._state(staging), f"the restored copy {staging}")
            if exists:
                self._rename(admin, self.target, aside, end_sessions=self.force)
                try:
                    self._rename(admin, staging, self.target)
                except BaseException as exc:
                    try:
                        self._rename(admin, aside, self.target)
                    except Exception as back:  # noqa: BLE001 - name where the original is
                        raise BackupError(
                            f"the restored copy could not be renamed into place ({exc}) and the "
                            f"original could not be renamed back ({back}): the original database "
                            f"is intact as {aside}; rename it to {self.target}",
                            database=aside,
                        ) from exc
                    raise
            else:
                self._rename(admin, staging, self.target)
            in_place = True
        finally:
            if not in_place:
                try:
                    _q(admin, "DROP DATABASE IF EXISTS {}", staging)
                except Exception:  # noqa: BLE001 - the original error matters more than the cleanup's
                    self.warnings.append(f"could not drop the staging database {staging}")
        if exists:
            try:
                # DROP DATABASE ... WITH (FORCE) exists from PostgreSQL 13 on.
                force = self.force and int(admin.query("SHOW server_version_num")[0][0]) >= 130000
                _q(admin, "DROP DATABASE {}" + (" WITH (FORCE)" if force else ""), aside)
            except KongDbError as exc:
                self.warnings.append(
                    f"the restored database is in place, but the old copy {aside} could not be dropped ({exc}); drop it once it is no longer needed"
                )


# --- cluster identity --------------------------------------------------------------------------
# Kong node ids are recorded but not compared: Kong generates a new one at every start except on data
# planes, which keep it in <prefix>/kong.id (Kong/kong 3.9.3 kong/pdk/node.lua, node.get_id).

_LOOPBACK = ("localhost", "127.0.0.1", "::1", "")


def database_identity(db: KongDb) -> dict:
    """Where a database is: name, host, port and, where the role may read it, the PostgreSQL server's
    system identifier (pg_control_system(), PostgreSQL 9.6 and later), which names the server whatever
    host name reaches it."""
    ident = {"name": db.database, "host": db.params["host"], "port": db.params["port"], "system_identifier": None}
    if int(db.query("SHOW server_version_num")[0][0]) >= 90600:
        rows = db.query(
            "SELECT CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE') "
            "THEN (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) END"
        )
        ident["system_identifier"] = rows[0][0] if rows else None
    return ident


def cluster_identity(name: str | None = None, database: dict | None = None, node_ids=()) -> dict:
    return {"name": name, "database": database, "node_ids": sorted({i for i in node_ids if i})}


def _host_key(host) -> str:
    text = str(host or "").strip().lower()
    return "loopback" if text in _LOOPBACK or text.startswith("/") else text


def identity_mismatches(recorded: dict | None, target: dict, kinds) -> list:
    """How the target differs from the cluster the backup was taken from (empty: the same, or unknown)."""
    found: list = []
    if not recorded:
        return found
    a, b = recorded.get("name"), target.get("name")
    if a and b and a != b:
        found.append(f"cluster name {a} (backup) differs from {b} (target)")
    ra, ta = recorded.get("database") or {}, target.get("database") or {}
    if "database" in kinds and ra and ta:
        if ra.get("name") != ta.get("name"):
            found.append(f"database name {ra.get('name')} (backup) differs from {ta.get('name')} (target)")
        rs, ts = ra.get("system_identifier"), ta.get("system_identifier")
        if rs and ts:
            if rs != ts:
                found.append(f"the PostgreSQL server differs (system identifier {rs} in the backup, {ts} at the target)")
        elif (_host_key(ra.get("host")), int(ra.get("port") or 0)) != (_host_key(ta.get("host")), int(ta.get("port") or 0)):
            found.append(f"the database server {ra.get('host')}:{ra.get('port')} (backup) differs from {ta.get('host')}:{ta.get('port')} (target)")
    return found


def identity_refusal(mismatches: list) -> str:
    return (
        "the backup was taken from another cluster: " + "; ".join(mismatches) + ". Restoring it would "
        "replace this cluster's configuration with another one's; set force: true to restore it here anyway"
    )


def _summary(state: dict | None) -> dict | None:
    if state is None:
        return None
    return {"entity_counts": state["entity_counts"], "schema_meta": state["schema_meta"]}
