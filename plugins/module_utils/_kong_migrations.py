# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""`kong migrations` on a node: output parsers, cross-checks and the migrations state machine."""

from __future__ import annotations

import json
import os
import re
import time

from ansible_collections.kongops.upgrade.plugins.module_utils._argspec import kong_argument_spec
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    KongAdminError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import (
    KongCliError,
    kong_error_line,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import (
    KongDbError,
    pg_params_problem,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._versions import (
    KongVersionError,
    parse_version,
)

DESIRED_STATES = ("bootstrapped", "up", "finished", "current", "list")

# `kong migrations list` exit codes (Kong's docs: 0 up-to-date, 1 failed inspecting,
# 3 needs bootstrapping, 4 pending, 5 new). 4 is also used when pending AND new exist.
LIST_RC_CURRENT, LIST_RC_ERROR, LIST_RC_BOOTSTRAP, LIST_RC_PENDING, LIST_RC_NEW = (
    0,
    1,
    3,
    4,
    5,
)
LIST_OK_RCS = (LIST_RC_CURRENT, LIST_RC_BOOTSTRAP, LIST_RC_PENDING, LIST_RC_NEW)

NEEDS_BOOTSTRAP_MARK = "Database needs bootstrapping or is older than Kong 1.0."
LOCK_ABORTED_MARK = "aborted: another node is performing database changes"
UP_REFUSED_PENDING_MARK = "Database has pending migrations; run 'kong migrations finish'"

_HEADERS = {
    "Executed migrations:": "executed",
    "Pending migrations:": "pending",
    "New migrations available:": "new",
}
# Lines Kong prints after the blocks; anything else outside a block is unexpected.
_TRAILERS = (
    "Run 'kong migrations finish' when ready",
    "Run 'kong migrations up' to proceed",
)
# Subsystem names are right-aligned to the longest name of their block: `%<W>s: a, b`.
_BLOCK_LINE = re.compile(r"^\s*([A-Za-z0-9_.-]+):(?: (.*))?$")
_RUN_MIGRATING = re.compile(r"^migrating (\S+) on database '([^']*)'\.\.\.$")
_RUN_MIGRATED = re.compile(r"^(\S+) migrated up to: (\S+) \((executed|pending)\)$")
_RUN_PROCESSED = re.compile(r"^(\d+) migrations? processed$")
# Every `kong migrations` command prepares the prefix before reading the database
# (Kong/kong kong/cmd/migrations.lua:95 at 3.9.3, :96 at 2.8.5); a missing prefix is created after
# this info line on stdout (kong/cmd/utils/prefix_handler.lua:498 at 3.9.3, :338 at 2.8.5).
_PREFIX_CREATED = re.compile(r"^prefix directory .+ not found, trying to create it$")

_DB_HINTS = (
    (
        "password authentication failed",
        ("wrong database credentials: pass the password as kong_env.KONG_PG_PASSWORD (or set pg_password in kong.conf) and check pg_user"),
    ),
    (
        "no pg_hba.conf entry",
        "PostgreSQL refuses this node's address or user (pg_hba.conf)",
    ),
    ("does not exist", "the database or role named in kong.conf does not exist"),
    (
        "connection refused",
        ("the database is unreachable from this node: check pg_host/pg_port in kong.conf and that PostgreSQL is running"),
    ),
    (
        "timeout",
        "the database did not answer in time: check the network, or raise db_timeout",
    ),
    ("no route to host", "the database host is unreachable from this node"),
    ("could not resolve", "the database host name does not resolve on this node"),
    (
        "failed to retrieve PostgreSQL server_version_num",
        "the database is unreachable from this node",
    ),
)


class KongMigrationsError(Exception):
    """Anything that keeps the migrations from reaching or reporting a state; carries context."""

    def __init__(self, msg: str, cmd=None, rc=None, stdout=None, stderr=None, **extra):
        super().__init__(msg)
        self.cmd, self.rc, self.stdout, self.stderr = cmd, rc, stdout, stderr
        self.extra = extra

    def context(self) -> dict:
        ctx = {
            k: v
            for k, v in {
                "cmd": self.cmd,
                "rc": self.rc,
                "stdout": self.stdout,
                "stderr": self.stderr,
            }.items()
            if v is not None
        }
        ctx.update(self.extra)
        return ctx


class MigrationsParseError(KongMigrationsError):
    """Kong printed something the parser does not understand."""


class MigrationsState:
    """Executed, pending and new migration names per subsystem, as one `kong` binary sees the database."""

    def __init__(
        self,
        needs_bootstrap: bool = False,
        executed: dict | None = None,
        pending: dict | None = None,
        new: dict | None = None,
    ):
        self.needs_bootstrap = needs_bootstrap
        self.executed = _clean(executed)
        self.pending = _clean(pending)
        self.new = _clean(new)

    @property
    def status(self) -> str:
        if self.needs_bootstrap:
            return "needs_bootstrap"
        if self.pending and self.new:
            return "pending_and_new"
        if self.pending:
            return "pending"
        if self.new:
            return "new"
        return "current"

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "needs_bootstrap": self.needs_bootstrap,
            "executed": self.executed,
            "pending": self.pending,
            "new": self.new,
            "counts": {
                "executed": _count(self.executed),
                "pending": _count(self.pending),
                "new": _count(self.new),
            },
        }

    def key(self):
        return (
            self.needs_bootstrap,
            _frozen(self.executed),
            _frozen(self.pending),
            _frozen(self.new),
        )

    def __eq__(self, other):
        return isinstance(other, MigrationsState) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        return f"MigrationsState({self.status}, pending={self.pending}, new={self.new})"


def _clean(blocks: dict | None) -> dict:
    return {sub: list(names) for sub, names in (blocks or {}).items() if names}


def _count(blocks: dict) -> int:
    return sum(len(names) for names in blocks.values())


def _frozen(blocks: dict):
    return tuple(sorted((sub, tuple(names)) for sub, names in blocks.items()))


def parse_list(rc: int, stdout: str, stderr: str = "") -> MigrationsState:
    """Parse `kong migrations list`; the exit code and the text must tell the same story."""
    if rc not in LIST_OK_RCS:
        raise MigrationsParseError(
            f"kong migrations list exited {rc}, which Kong does not use for a state (expected 0, 3, 4 or 5)",
            rc=rc,
            stdout=stdout,
            stderr=stderr,
        )
    text = stdout or ""
    if rc == LIST_RC_BOOTSTRAP:
        if NEEDS_BOOTSTRAP_MARK not in text:
            raise MigrationsParseError(
                "kong migrations list exited 3 (needs bootstrap) without Kong's 'Database needs bootstrapping' text",
                rc=rc,
                stdout=stdout,
                stderr=stderr,
            )
        return MigrationsState(needs_bootstrap=True)
    if NEEDS_BOOTSTRAP_MARK in text:
        raise MigrationsParseError(
            f"kong migrations list printed the needs-bootstrap text but exited {rc}",
            rc=rc,
            stdout=stdout,
            stderr=stderr,
        )
    blocks: dict = {}
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped in _HEADERS:
            section = _HEADERS[stripped]
            if section in blocks:
                raise MigrationsParseError(
                    f"kong migrations list printed '{stripped}' twice",
                    rc=rc,
                    stdout=stdout,
                    stderr=stderr,
                )
            blocks[section] = {}
            continue
        if not stripped:
            section = None
            continue
        if section is None:
            if stripped.startswith(_TRAILERS):
                continue
            if not blocks and _PREFIX_CREATED.match(stripped):
                continue
            raise MigrationsParseError(
                f"unexpected line in kong migrations list output: {stripped!r}",
                rc=rc,
                stdout=stdout,
                stderr=stderr,
            )
        match = _BLOCK_LINE.match(line)
        if not match:
            raise MigrationsParseError(
                f"cannot parse migrations line {stripped!r} (expected 'subsystem: a, b')",
                rc=rc,
                stdout=stdout,
                stderr=stderr,
            )
        names = [n.strip() for n in (match.group(2) or "").split(",") if n.strip()]
        blocks[section][match.group(1)] = names
    state = MigrationsState(
        executed=blocks.get("executed"),
        pending=blocks.get("pending"),
        new=blocks.get("new"),
    )
    expected = {
        LIST_RC_CURRENT: ("current",),
        LIST_RC_PENDING: ("pending", "pending_and_new"),
        LIST_RC_NEW: ("new",),
    }[rc]
    if state.status not in expected:
        raise MigrationsParseError(
            f"kong migrations list exited {rc} but its text says '{state.status}'",
            rc=rc,
            stdout=stdout,
            stderr=stderr,
        )
    return state


def parse_status_json(stdout: str) -> MigrationsState:
    """Parse `kong migrations status` (3.0+): one line of JSON; keys only present when non-empty."""
    line = next((ln for ln in (stdout or "").splitlines() if ln.strip().startswith("{")), None)
    if line is None:
        raise MigrationsParseError("kong migrations status printed no JSON", stdout=stdout)
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise MigrationsParseError(f"kong migrations status printed invalid JSON: {exc}", stdout=stdout) from exc
    if not isinstance(data, dict):
        raise MigrationsParseError("kong migrations status JSON is not an object", stdout=stdout)

    def blocks(key):
        out = {}
        for entry in data.get(key) or []:
            if not isinstance(entry, dict) or "subsystem" not in entry:
                raise MigrationsParseError(f"kong migrations status: unexpected entry in {key}", stdout=stdout)
            out[entry["subsystem"]] = [m if isinstance(m, str) else str(m.get("name")) for m in entry.get("migrations") or []]
        return out

    return MigrationsState(
        needs_bootstrap=bool(data.get("needs_bootstrap")),
        executed=blocks("executed_migrations"),
        pending=blocks("pending_migrations"),
        new=blocks("new_migrations"),
    )


def state_differences(listed: MigrationsState, other: MigrationsState) -> list:
    """Where two views of the same database disagree (empty when they agree)."""
    if listed.needs_bootstrap != other.needs_bootstrap:
        return [f"needs_bootstrap: {listed.needs_bootstrap} vs {other.needs_bootstrap}"]
    if listed.needs_bootstrap:
        # `list` exits 3 saying so and lists nothing, while `status` dumps the whole schema state, every
        # migration among new_migrations (Kong/kong 3.9.3 kong/cmd/migrations.lua lines 105-108 and 156-177):
        # both say the database needs bootstrapping, which is all there is to compare
        return []
    diffs = []
    for kind in ("executed", "pending", "new"):
        mine, theirs = getattr(listed, kind), getattr(other, kind)
        for sub in sorted(set(mine) | set(theirs)):
            if list(mine.get(sub, [])) != list(theirs.get(sub, [])):
                diffs.append(f"{kind} {sub}: {mine.get(sub, [])} vs {theirs.get(sub, [])}")
    return diffs


def schema_meta_differences(listed: MigrationsState, rows: dict | None) -> list:
    """Check `kong migrations list` against `schema_meta` rows ({subsystem: {executed, pending, ...}}).

    Kong ignores names in the table that the binary does not know, and only lists subsystems of
    loaded plugins, so the check is one-way: every name the binary reports must sit in the right array.
    """
    if rows is None:
        return (
            []
            if listed.needs_bootstrap
            else [("schema_meta does not exist (database needs bootstrap), but kong migrations list reports a bootstrapped database")]
        )
    if listed.needs_bootstrap:
        return [(f"kong migrations list reports that the database needs bootstrapping, but schema_meta exists with {len(rows)} subsystem row(s)")]
    diffs = []
    for sub, names in listed.executed.items():
        have = set((rows.get(sub) or {}).get("executed") or [])
        missing = [n for n in names if n not in have]
        if missing:
            diffs.append(f"{sub}: listed as executed but not in schema_meta.executed: {', '.join(missing)}")
    for sub, names in listed.pending.items():
        have = set((rows.get(sub) or {}).get("pending") or [])
        missing = [n for n in names if n not in have]
        if missing:
            diffs.append(f"{sub}: listed as pending but not in schema_meta.pending: {', '.join(missing)}")
    for sub, names in listed.new.items():
        row = rows.get(sub) or {}
        recorded = set(row.get("executed") or []) | set(row.get("pending") or [])
        found = [n for n in names if n in recorded]
        if found:
            diffs.append(f"{sub}: listed as new but recorded in schema_meta: {', '.join(found)}")
    return diffs


def parse_run_output(stdout: str, stderr: str = "") -> dict:
    """What a bootstrap/up/finish run did, from Kong's `migrating ...`/`migrated up to` lines."""
    migrated: dict = {}
    processed = 0
    for line in (stdout or "").splitlines():
        stripped = line.strip()
        match = _RUN_MIGRATED.match(stripped)
        if match:
            migrated.setdefault(match.group(1), []).append({"name": match.group(2), "state": match.group(3)})
            continue
        match = _RUN_PROCESSED.match(stripped)
        if match:
            processed += int(match.group(1))
    text = (stdout or "") + "\n" + (stderr or "")
    return {
        "migrated": migrated,
        "count": sum(len(v) for v in migrated.values()),
        "processed": processed,
        "lock_aborted": LOCK_ABORTED_MARK in text,
        "bootstrapped": "Bootstrapping database..." in (stdout or ""),
    }


def db_error_hint(line: str) -> str | None:
    low = (line or "").lower()
    for needle, hint in _DB_HINTS:
        if needle.lower() in low:
            return hint
    return None


def next_command(desired: str, state: MigrationsState, force: bool = False) -> str | None:
    """The `kong migrations` sub-command that moves `state` toward `desired`, None when it is there.

    Raises KongMigrationsError when the state cannot be reached without the operator's decision.
    """
    if desired not in DESIRED_STATES:
        raise KongMigrationsError(f"state must be one of {', '.join(DESIRED_STATES)}, got '{desired}'")
    if desired == "list":
        return None
    if state.needs_bootstrap:
        if desired == "bootstrapped":
            return "bootstrap"
        raise KongMigrationsError(
            f"the database needs bootstrapping, so state={desired} cannot run; "
            "use state=bootstrapped first (new installation), or check that kong.conf "
            "points at the existing Kong database",
            status=state.status,
        )
    if desired == "bootstrapped":
        return None
    if desired == "up":
        if not state.new:
            return None
        if state.pending and not force:
            raise KongMigrationsError(
                "the database has pending migrations from a previous upgrade "
                f"({_names(state.pending)}) and new ones ({_names(state.new)}); Kong refuses 'up' until the "
                "pending ones are finished: run state=finished first (once no node of the older version "
                "remains), or set force=true to run 'up -f'",
                status=state.status,
            )
        return "up"
    if desired == "finished":
        return "finish" if state.pending else None
    if state.pending:
        return "finish"
    return "up" if state.new else None


def _names(blocks: dict) -> str:
    return "; ".join(f"{sub}: {', '.join(names)}" for sub, names in blocks.items())


def plan(desired: str, state: MigrationsState, force: bool = False) -> list:
    """The commands a run would issue, with the names each one would process (check mode).

    Names are None where Kong decides them while running: bootstrap runs every migration the
    binary knows, and which `up` migrations stay pending depends on each one having a teardown.
    """
    steps = []
    if desired == "list":
        return steps
    cmd = next_command(desired, state, force)
    if cmd == "bootstrap":
        return [{"command": "bootstrap", "migrations": None}]
    if cmd is None:
        return steps
    if cmd == "finish":
        steps.append({"command": "finish", "migrations": state.pending})
        if desired == "current" and state.new:
            steps.append({"command": "up", "migrations": state.new})
            steps.append(
                {
                    "command": "finish",
                    "migrations": None,
                    "condition": "only if 'up' leaves migrations pending",
                }
            )
        return steps
    steps.append({"command": "up", "migrations": state.new})
    if desired == "current":
        steps.append(
            {
                "command": "finish",
                "migrations": None,
                "condition": "only if 'up' leaves migrations pending",
            }
        )
    return steps


def predict_after(desired: str, state: MigrationsState) -> MigrationsState | None:
    """The state after a run, where it can be known without running (None otherwise)."""
    if satisfied(desired, state):
        return state
    if desired == "finished":
        executed = _merge(state.executed, state.pending)
        return MigrationsState(executed=executed, new=state.new)
    if desired == "current":
        return MigrationsState(executed=_merge(_merge(state.executed, state.pending), state.new))
    return None


def _merge(a: dict, b: dict) -> dict:
    out = {sub: list(names) for sub, names in a.items()}
    for sub, names in b.items():
        out.setdefault(sub, [])
        out[sub].extend(n for n in names if n not in out[sub])
    return out


def satisfied(desired: str, state: MigrationsState) -> bool:
    """Whether `state` already is what `desired` asks for."""
    if desired == "list":
        return True
    if state.needs_bootstrap:
        return False
    if desired == "up":
        return not state.new
    if desired == "finished":
        return not state.pending
    if desired == "current":
        return not state.new and not state.pending
    return True


class KongMigrations:
    """Reads the migrations state of the database a node's kong.conf points at, and moves it.

    `cli` is a KongCli; `db` an optional KongDb for the schema_meta cross-check and for seeing
    Kong's migration lock; `sleep`/`clock` are injectable for tests.
    """

    POLL_INTERVAL = 2.0
    MAX_STEPS = 6
    READ_ATTEMPTS = 3

    def __init__(
        self,
        cli,
        db=None,
        db_timeout: int | None = None,
        lock_timeout: int | None = None,
        force: bool = False,
        sleep=time.sleep,
        clock=time.monotonic,
    ):
        self.cli, self.db = cli, db
        self.db_timeout, self.lock_timeout, self.force = db_timeout, lock_timeout, force
        self.sleep, self.clock = sleep, clock
        self.commands: list = []
        self.kong_version: str | None = None
        self.warnings: list = []
        self.status_checked = False
        self.status_available: bool | None = None
        self.schema_meta_checked = False

    def _options(self, with_force: bool = False) -> list:
        opts = []
        if self.db_timeout is not None:
            opts += ["--db-timeout", str(self.db_timeout)]
        if self.lock_timeout is not None:
            opts += ["--lock-timeout", str(self.lock_timeout)]
        if with_force and self.force:
            opts.append("-f")
        return opts

    def _record(self, result) -> None:
        self.commands.append(result.as_dict())

    def _run(self, *args, ok_rcs=(0,), record=True):
        try:
            result = self.cli.run("migrations", *args, prefix=True, ok_rcs=None)
        except KongCliError as exc:
            raise KongMigrationsError(str(exc), **exc.context()) from exc
        if record:
            self._record(result)
        if ok_rcs is not None and result.rc not in ok_rcs:
            line = kong_error_line(result.stderr) or (result.stdout or "").strip()
            hint = db_error_hint(line)
            msg = f"'{' '.join(result.cmd)}' failed (rc={result.rc}): {line}"
            raise KongMigrationsError(
                msg + (f" ({hint})" if hint else ""),
                cmd=result.cmd,
                rc=result.rc,
                stdout=result.stdout,
                stderr=result.stderr,
                kong_error=line,
            )
        return result

    def version(self) -> str:
        if self.kong_version is None:
            try:
                self.kong_version = self.cli.version()
            except KongCliError as exc:
                raise KongMigrationsError(f"cannot tell the kong binary's version: {exc}", **exc.context()) from exc
        return self.kong_version

    def _status_cross_check(self, listed: MigrationsState) -> list:
        """Differences between `list` and `status` (3.0+); 2.8 has no `status` sub-command."""
        if self.status_available is False:
            return []
        status = self._run("status", *self._options(), ok_rcs=None)
        if status.rc != 0:
            if "No such command for migrations: status" in (status.stderr or ""):
                self.status_available = False
            else:
                self._warn_once(f"kong migrations status failed (rc={status.rc}), so only 'list' was used: {kong_error_line(status.stderr)}")
            return []
        self.status_available = True
        try:
            other = parse_status_json(status.stdout)
        except MigrationsParseError as exc:
            self._warn_once(f"kong migrations status could not be used as a cross-check: {exc}")
            return []
        self.status_checked = True
        return [f"kong migrations status: {d}" for d in state_differences(listed, other)]

    def _read_once(self, with_status: bool = False) -> tuple:
        result = self._run("list", *self._options(), ok_rcs=LIST_OK_RCS)
        listed = parse_list(result.rc, result.stdout, result.stderr)
        diffs: list = self._status_cross_check(listed) if with_status else []
        if self.db is not None:
            rows = self._schema_meta()
            self.schema_meta_checked = True
            diffs += [f"schema_meta in {self.db.describe()}: {d}" for d in schema_meta_differences(listed, rows)]
        return listed, diffs

    def _warn_once(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def _schema_meta(self):
        try:
            return self.db.schema_meta()
        except KongDbError as exc:
            raise KongMigrationsError(f"cannot read schema_meta: {exc}", query=exc.query) from exc

    def lock_held(self) -> bool | None:
        """Whether another process holds Kong's migration lock (None when the database is not reachable here)."""
        if self.db is None:
            return None
        try:
            if not self.db.table_exists("locks"):
                return False
            rows = self.db.query("SELECT count(*) FROM locks WHERE key = 'migrations' AND ttl >= now()")
        except KongDbError as exc:
            raise KongMigrationsError(f"cannot read Kong's migration lock: {exc}", query=exc.query) from exc
        return bool(rows and rows[0][0])

    def read(self, with_status: bool = False) -> MigrationsState:
        """The state, re-read while the views disagree (another node may be migrating right now).

        `with_status` adds the `kong migrations status` cross-check (one more CLI call)."""
        diffs: list = []
        listed = None
        attempts = 0
        deadline = self.clock() + (self.lock_timeout or 60)
        while True:
            listed, diffs = self._read_once(with_status)
            if not diffs:
                return listed
            if self.lock_held() and self.clock() < deadline:
                self.sleep(self.POLL_INTERVAL)
                continue
            attempts += 1
            if attempts >= self.READ_ATTEMPTS:
                break
            self.sleep(self.POLL_INTERVAL)
        raise KongMigrationsError(
            "the views of the migrations state disagree: kong migrations list (through the node's kong.conf) vs "
            + "; ".join(diffs)
            + ". Check that pg_* point at the same database as kong.conf",
            differences=diffs,
            listed=listed.as_dict() if listed else None,
        )

    def wait_for_lock(self) -> MigrationsState | None:
        """When the lock is visible and held, wait (bounded by lock_timeout) until it is released."""
        if not self.lock_held():
            return None
        deadline = self.clock() + (self.lock_timeout or 60)
        while self.lock_held():
            if self.clock() >= deadline:
                raise KongMigrationsError(
                    f"another node held Kong's migration lock for more than {self.lock_timeout or 60} s (table 'locks', key 'migrations')"
                )
            self.sleep(self.POLL_INTERVAL)
        return self.read()

    def settle(self, state: MigrationsState) -> MigrationsState:
        """Re-read until two reads agree: a state seen while another node migrates is in flux."""
        deadline = self.clock() + (self.lock_timeout or 60)
        while self.clock() < deadline:
            self.sleep(self.POLL_INTERVAL)
            again = self.read()
            if again == state:
                return again
            state = again
        return state

    def wait_for_other_node(self, desired: str, cmd: str) -> MigrationsState:
        """Another node ran (or is running) `cmd`: poll until its effect shows, bounded by lock_timeout."""
        deadline = self.clock() + (self.lock_timeout or 60) + self.POLL_INTERVAL
        state = self.read()
        while True:
            if cmd == "bootstrap" and not state.needs_bootstrap:
                return state
            if cmd == "up" and not state.new:
                return state
            if cmd == "finish" and not state.pending:
                return state
            if satisfied(desired, state) or self.clock() >= deadline:
                return state
            if self.lock_held() is False:
                return state
            self.sleep(self.POLL_INTERVAL)
            state = self.read()

    def converge(self, desired: str, gate=None, check_mode: bool = False) -> dict:
        """Move the database to `desired`; returns the run's report (before/after states, what ran).

        `gate` is called (and may raise) before the first `finish`, or before anything runs when the
        plan may need a `finish`, so that a refusal changes nothing.
        """
        before = self.read(with_status=True)
        waited = self.wait_for_lock()
        if waited is not None:
            before = waited
        if before.status == "pending_and_new" and desired == "up" and not self.force and self.db is None:
            before = self.settle(before)
        steps = plan(desired, before, self.force)
        report = {
            "before": before,
            "after": before,
            "plan": steps,
            "ran": [],
            "migrated": {},
            "lock_aborted": False,
            "concurrent": False,
            "changed": False,
        }
        gate_passed = False
        if gate is not None and any(step["command"] == "finish" for step in steps):
            gate()
            gate_passed = True
        if check_mode or not steps:
            report["after"] = predict_after(desired, before)
            report["changed"] = bool(steps)
            return report
        state = before
        for _step in range(self.MAX_STEPS):
            cmd = next_command(desired, state, self.force)
            if cmd is None:
                break
            if cmd == "finish" and gate is not None and not gate_passed:
                gate()
                gate_passed = True
            args = [cmd] + self._options(with_force=cmd in ("up", "finish"))
            result = self._run(*args, ok_rcs=None)
            outcome = parse_run_output(result.stdout, result.stderr)
            error = kong_error_line(result.stderr) if result.rc != 0 else ""
            if result.rc == 0 and outcome["lock_aborted"]:
                report["lock_aborted"] = True
                report["concurrent"] = True
                state = self.wait_for_other_node(desired, cmd)
                continue
            if result.rc != 0 and cmd == "up" and UP_REFUSED_PENDING_MARK in error and not state.pending:
                # Another node's `up` recorded pending migrations after our read: it is doing the work.
                report["concurrent"] = True
                state = self.wait_for_other_node(desired, cmd)
                continue
            if result.rc != 0:
                hint = db_error_hint(error)
                raise KongMigrationsError(
                    f"'{' '.join(result.cmd)}' failed (rc={result.rc}): {error or result.stdout.strip()}" + (f" ({hint})" if hint else ""),
                    cmd=result.cmd,
                    rc=result.rc,
                    stdout=result.stdout,
                    stderr=result.stderr,
                    kong_error=error,
                    ran=report["ran"],
                    migrated=report["migrated"],
                )
            report["ran"].append(cmd)
            for sub, entries in outcome["migrated"].items():
                report["migrated"].setdefault(sub, []).extend(entries)
            if outcome["count"] or outcome["bootstrapped"]:
                report["changed"] = True
            state = self.read()
        else:
            raise KongMigrationsError(
                f"state={desired} not reached after {self.MAX_STEPS} commands; last state: {state.status}",
                ran=report["ran"],
            )
        report["after"] = state
        if not satisfied(desired, state):
            raise KongMigrationsError(
                f"state={desired} was not reached: the database is '{state.status}' after {', '.join(report['ran']) or 'waiting for another node'}",
                after=state.as_dict(),
                ran=report["ran"],
                lock_aborted=report["lock_aborted"],
            )
        return report


def check_finish_gate(nodes: list, target: str, unreachable: str, client_factory) -> dict:
    """Refuse `finish` while a listed node (Admin API URL) runs a version older than `target`.

    `client_factory(url)` returns a KongAdminClient. A node that cannot be reached counts as gone
    only with `unreachable='absent'`; a node that answers with an error never does.
    """
    wanted = parse_version(target)
    checked, offenders = [], []
    for url in nodes:
        entry = {"url": url, "version": None, "verdict": "ok", "reason": None}
        try:
            info = client_factory(url).node()
        except KongAdminError as exc:
            if exc.status is None and unreachable == "absent":
                entry.update(verdict="absent", reason=f"unreachable, counted as absent: {exc}")
            else:
                entry.update(
                    verdict="unreachable" if exc.status is None else "error",
                    reason=str(exc),
                )
        else:
            entry["version"] = info.get("version")
            try:
                running = parse_version(str(info.get("version")))
            except KongVersionError:
                entry.update(
                    verdict="unknown_version",
                    reason=f"GET / reported version {info.get('version')!r}",
                )
            else:
                if running < wanted:
                    entry.update(verdict="older", reason=f"runs {running}, older than {wanted}")
        checked.append(entry)
        if entry["verdict"] not in ("ok", "absent"):
            offenders.append(entry)
    result = {"version": str(wanted), "nodes": checked, "passed": not offenders}
    if offenders:
        raise KongMigrationsError(
            "refusing 'kong migrations finish': these nodes still use the database with a version older "
            f"than {wanted}, or could not be checked: "
            + "; ".join(f"{o['url']} ({o['reason']})" for o in offenders)
            + ". Upgrade or stop them first (set finish_gate_unreachable=absent if stopped nodes "
            "cannot answer)",
            finish_gate=result,
        )
    return result


# Kong names its PostgreSQL connections `kong` (kong/db/strategies/postgres/connector.lua,
# `application_name = "kong"`, Kong/kong 3.9.3 line 950; the same in 2.8.x).
KONG_APPLICATION_NAME = "kong"
_LOOPBACK = ("127.", "::1", "localhost")


def kong_sessions(db) -> list:
    """[(client address or None for a Unix socket, sessions)] of Kong's connections to db's database."""
    rows = db.query(
        "SELECT host(client_addr), count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = %s AND pid <> pg_backend_pid() GROUP BY 1 ORDER BY 1",
        (KONG_APPLICATION_NAME,),
    )
    return [(row[0], int(row[1])) for row in rows]


def resolve_clients(names: list, resolver=None) -> set:
    """Addresses of the Kong nodes allowed to hold sessions; a loopback entry also allows Unix sockets."""
    import socket

    resolver = resolver or (lambda name: {info[4][0] for info in socket.getaddrinfo(name, None)})
    allowed = set()
    for name in names:
        try:
            allowed |= resolver(name)
        except OSError:
            allowed.add(name)
    if any(a.startswith(_LOOPBACK) for a in allowed):
        allowed |= {None, "127.0.0.1", "::1"}
    return allowed


def check_db_sessions(sessions: list, allowed: set) -> dict:
    """Refuse `finish` while a Kong connection comes from an address that is none of the checked nodes."""
    foreign = [(addr, count) for addr, count in sessions if addr not in allowed]
    result = {
        "sessions": [{"client": addr or "local socket", "count": count} for addr, count in sessions],
        "foreign": [{"client": addr or "local socket", "count": count} for addr, count in foreign],
        "passed": not foreign,
    }
    if foreign:
        raise KongMigrationsError(
            "refusing 'kong migrations finish': PostgreSQL shows Kong connections (application_name 'kong') "
            "from "
            + ", ".join(f"{addr or 'a local socket'} ({count} session(s))" for addr, count in foreign)
            + ", none of the nodes that were checked to run the new version. Stop or upgrade the Kong node "
            "there, or add its address to finish_gate_db_clients",
            finish_gate_db=result,
        )
    return result


def summary(desired: str, report: dict) -> str:
    """One sentence for `msg`."""
    after = report.get("after")
    before = report["before"]
    state = after.status if after is not None else "unknown"
    if report.get("concurrent") and not report.get("changed"):
        how = "held Kong's migration lock and " if report.get("lock_aborted") else ""
        return f"another node {how}ran the migrations at the same time; the database is now '{state}'"
    if report.get("concurrent"):
        return f"ran {', '.join(report['ran'])} while another node migrated too; the database is now '{state}'"
    if desired == "list":
        return f"the database is '{before.status}'"
    if report.get("plan") and report.get("check_mode"):
        steps = ", ".join(step["command"] for step in report["plan"])
        return f"would run: {steps}"
    if report.get("ran"):
        return f"ran {', '.join(report['ran'])}; the database is now '{after.status}'"
    if desired == "up" and before.pending:
        return (
            f"already up: no new migrations; {_count(before.pending)} migration(s) wait for "
            f"'finish' ({_names(before.pending)}): use state=finished once no older node uses the database"
        )
    if desired == "finished" and before.new:
        return f"nothing to finish, but {_count(before.new)} new migration(s) wait for 'up' ({_names(before.new)})"
    return f"the database is already '{before.status}' (state={desired})"


# ---------------------------------------------------------------------------------------------
# Shared by kong_migrations and kong_migrations_info: options, their checks, and the runner.


def migrations_argument_spec() -> dict:
    """The options both migrations modules take: the kong CLI, the database and the read bounds."""
    return kong_argument_spec(
        pg=True,
        cli=True,
        db_timeout={"type": "int"},
        lock_timeout={"type": "int"},
        schema_meta_check={"type": "bool"},
    )


def check_migrations_params(p: dict, isfile=None) -> str | None:
    """The first problem with the shared options, as a message naming the option; None when fine."""
    isfile = isfile or os.path.isfile
    problem = pg_params_problem(p)
    if problem:
        return problem
    for name in ("db_timeout", "lock_timeout"):
        if p.get(name) is not None and p[name] <= 0:
            return f"{name} must be a positive number of seconds, got {p[name]}"
    if p.get("kong_conf") and not isfile(p["kong_conf"]):
        return f"kong_conf: {p['kong_conf']} does not exist on this host; set kong_conf to the node's kong.conf"
    return None


def uses_schema_meta(p: dict) -> bool:
    return p["schema_meta_check"] if p.get("schema_meta_check") is not None else bool(p.get("pg_password"))


def find_kong(kong_bin: str, get_bin_path) -> str | None:
    """The kong executable: an absolute path that is executable, or a name looked up in PATH."""
    if os.sep in kong_bin:
        return kong_bin if os.path.isfile(kong_bin) and os.access(kong_bin, os.X_OK) else None
    return get_bin_path(kong_bin)


def kong_not_found(kong_bin: str) -> str:
    return f"kong_bin: '{kong_bin}' was not found on this host (not in PATH or not executable); set kong_bin to the path of the kong executable"


def read_state(runner: "KongMigrations", db=None) -> dict:
    """Read-only: the state as the local binary sees it, cross-checked; the fields of kong_migrations_info."""
    try:
        report = runner.converge("list", check_mode=True)
        entity_counts = db.entity_counts() if db is not None else None
    except KongDbError as exc:
        raise KongMigrationsError(f"cannot count entities: {exc}", query=exc.query) from exc
    before = report["before"]
    return {
        "status": before.status,
        "migrations": before.as_dict(),
        "commands": runner.commands,
        "schema_meta_checked": runner.schema_meta_checked,
        "status_checked": runner.status_checked,
        "entity_counts": entity_counts,
        "warnings": list(runner.warnings),
        "msg": summary("list", report),
    }
