"""`kong migrations bootstrap|up|finish|list|reset|status` (FACTS 1.1-1.4, 2.1, 8.1).

`run(conf, args, version)` takes the effective kong.conf values (keys pg_*, database, plugins) and
the words after `kong migrations`, prints exactly what Kong prints on stdout/stderr and returns
Kong's exit code. Flow and texts follow kong/cmd/migrations.lua and kong/cmd/utils/migrations.lua.
"""

from __future__ import annotations

import json
import sys
import time
from typing import ClassVar

from . import migrations as M
from . import pgdb
from . import prefix as prefixmod
from .pgdb import PgError

VERSIONS_WITH_STATUS = (3, 0, 0)
VERSIONS_DB_TIMEOUT_OPTIONAL = (3, 7, 0)
LUA_UTILS = "/usr/local/share/lua/5.1/kong/cmd/utils/migrations.lua"

# UNCONFIRMED: Kong's universal options as kong/cmd/init.lua appends them to every usage text.
_UNIVERSAL = """ --v              verbose
 --vv             debug
"""

# Usage of 2.8.x (kong/cmd/migrations.lua at 2.8.5; exact spacing UNCONFIRMED).
_USAGE_28 = """Usage: kong migrations COMMAND [OPTIONS]

Manage database schema migrations.

The available commands are:
  bootstrap                         Bootstrap the database and run all
                                    migrations.

  up                                Run any new migrations.

  finish                            Finish running any pending migrations after
                                    'up'.

  list                              List executed migrations.

  reset                             Reset the database.

Options:
 -y,--yes                           Assume "yes" to prompts and run
                                    non-interactively.

 -q,--quiet                         Suppress all output.

 -f,--force                         Run migrations even if database reports
                                    as already executed.

 --db-timeout     (default 60)      Timeout, in seconds, for all database
                                    operations (including schema consensus for
                                    Cassandra).

 --lock-timeout   (default 60)      Timeout, in seconds, for nodes waiting on
                                    the leader node to finish running
                                    migrations.

 -c,--conf        (optional string) Configuration file.

"""

# 3.0-3.6: `status` added, --db-timeout still (default 60) (FACTS 1.1); the other lines are
# assumed equal to 3.7's (UNCONFIRMED).
_USAGE_30 = """Usage: kong migrations COMMAND [OPTIONS]

Manage database schema migrations.

The available commands are:
  bootstrap                         Bootstrap the database and run all
                                    migrations.

  up                                Run any new migrations.

  finish                            Finish running any pending migrations after
                                    'up'.

  list                              List executed migrations.

  reset                             Reset the database.

  status                            Dump the database migration status in JSON format

Options:
 -y,--yes                           Assume "yes" to prompts and run
                                    non-interactively.

 -q,--quiet                         Suppress all output.

 -f,--force                         Run migrations even if database reports
                                    as already executed.

 --db-timeout     (default 60)      Timeout, in seconds, for all database
                                    operations.

 --lock-timeout   (default 60)      Timeout, in seconds, for nodes waiting on
                                    the leader node to finish running
                                    migrations.

 -c,--conf        (optional string) Configuration file.

"""

# 3.7+ (kong/cmd/migrations.lua at 3.7.1/3.9.3, FACTS 1.1).
_USAGE_37 = """Usage: kong migrations COMMAND [OPTIONS]

Manage database schema migrations.

The available commands are:
  bootstrap                         Bootstrap the database and run all
                                    migrations.

  up                                Run any new migrations.

  finish                            Finish running any pending migrations after
                                    'up'.

  list                              List executed migrations.

  reset                             Reset the database. The `reset` command erases all of the data in Kong's database and deletes all of the schemas.

  status                            Dump the database migration status in JSON format

Options:
 -y,--yes                           Assume "yes" to prompts and run
                                    non-interactively.

 -q,--quiet                         Suppress all output.

 -f,--force                         Run migrations even if database reports
                                    as already executed.

 --db-timeout     (optional number) Timeout, in seconds, for all database
                                    operations.


 --lock-timeout   (default 60)      Timeout, in seconds, for nodes waiting on
                                    the leader node to finish running
                                    migrations.

 -c,--conf        (optional string) Configuration file.

 -p,--prefix      (optional string)   Override prefix directory.

"""


def _vt(version: str) -> tuple:
    return tuple(int(x) for x in version.split(".")[:3])


def usage(version: str) -> str:
    vt = _vt(version)
    if vt >= VERSIONS_DB_TIMEOUT_OPTIONAL:
        text = _USAGE_37
    elif vt >= VERSIONS_WITH_STATUS:
        text = _USAGE_30
    else:
        text = _USAGE_28
    return text + _UNIVERSAL


def sub_commands(version: str) -> tuple:
    base = ("bootstrap", "up", "finish", "list", "reset")
    return base + ("status",) if _vt(version) >= VERSIONS_WITH_STATUS else base


class KongError(Exception):
    """An uncaught Lua error: printed as `Error: <message>` and exit 1."""


class _Quit(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class Log:
    """kong/cmd/utils/log.lua: info on stdout, warn/error on stderr with a timestamp prefix."""

    VERBOSE, INFO, WARN, ERROR = 1, 2, 3, 4
    NAMES: ClassVar[dict] = {1: "verbose", 2: "info", 3: "warn", 4: "error"}

    def __init__(self, out, err):
        self.out = out
        self.err = err
        self.level = self.INFO
        self.disabled = False

    def _emit(self, lvl: int, msg: str) -> None:
        if self.disabled or lvl < self.level:
            return
        if self.level < self.INFO or lvl >= self.WARN:
            msg = f"{time.strftime('%Y/%m/%d %H:%M:%S')} [{self.NAMES[lvl]}] {msg}"
        stream = self.out if lvl < self.WARN else self.err
        stream.write(msg + "\n")
        stream.flush()

    def __call__(self, msg: str) -> None:
        self._emit(self.INFO, msg)

    def verbose(self, msg: str) -> None:
        self._emit(self.VERBOSE, msg)

    def warning(self, msg: str) -> None:
        self._emit(self.WARN, msg)

    def error(self, msg: str) -> None:
        self._emit(self.ERROR, msg)


def _lua_error(message: str, line: int) -> str:
    """A Lua error raised with `error()` inside a locked section, as its traceback reads."""
    # UNCONFIRMED: the exact traceback lines; FACTS 1.4 only gives the prefix.
    return f"{LUA_UTILS}:{line}: {message}\nstack traceback:\n\t[C]: in function 'error'\n\t{LUA_UTILS}:{line}: in function <{LUA_UTILS}:{line - 3}>"


class _Args:
    def __init__(self):
        self.command = None
        self.yes = False
        self.quiet = False
        self.force = False
        self.db_timeout = None
        self.lock_timeout = 60.0
        self.verbose = 0


def _parse(args: list, version: str, err) -> _Args:
    """Penlight lapp's parsing of the migrations usage (flags, `--opt value`, `--opt=value`)."""
    vt = _vt(version)
    text = usage(version)
    out = _Args()
    if vt < VERSIONS_DB_TIMEOUT_OPTIONAL:
        out.db_timeout = 60.0
    flags = {"y": "yes", "yes": "yes", "q": "quiet", "quiet": "quiet", "f": "force", "force": "force", "v": "v", "vv": "vv"}
    valued = {"db-timeout": "db_timeout", "lock-timeout": "lock_timeout", "c": "conf", "conf": "conf"}
    # -p/--prefix is only in the 3.7+ usage; the simulator's CLI may pass it for every version.
    valued.update({"p": "prefix", "prefix": "prefix"})

    def fail(msg: str):
        err.write(f"kong: {msg}\n\n{text}")
        err.flush()
        raise _Quit(1)

    tokens = list(args)
    if any(t in ("-h", "--help") for t in tokens):
        err.write(text)
        err.flush()
        raise _Quit(1)
    positional = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        name = None
        value = None
        if tok.startswith("--") and len(tok) > 2:
            name = tok[2:]
        elif tok.startswith("-") and len(tok) > 1:
            short = tok[1:]
            if len(short) > 1 and short not in flags and short[0] in flags and "=" not in short:
                tokens[i + 1 : i + 1] = ["-" + ch for ch in short[1:]]
                short = short[0]
            name = short
        if name is None:
            positional.append(tok)
            i += 1
            continue
        for sep in ("=", ":"):
            if sep in name:
                name, value = name.split(sep, 1)
                break
        if name in flags:
            attr = flags[name]
            if attr == "v":
                out.verbose = max(out.verbose, 1)
            elif attr == "vv":
                out.verbose = 2
            else:
                setattr(out, attr, True)
            i += 1
            continue
        if name in valued:
            if value is None:
                if i + 1 >= len(tokens):
                    fail(f"{name if len(name) > 1 else valued[name]} was expecting a value")
                value = tokens[i + 1]
                i += 1
            attr = valued[name]
            if attr in ("db_timeout", "lock_timeout"):
                try:
                    num = float(value)
                except ValueError:
                    fail(f"unable to convert to number: {value}")
                setattr(out, attr, num)
            i += 1
            continue
        fail(f"unrecognized parameter: {name}")
    if not positional:
        err.write(text)
        err.flush()
        raise _Quit(1)
    out.command = positional[0]
    if out.command not in sub_commands(version):
        err.write(f"No such command for migrations: {out.command}\n\n{text}")
        err.flush()
        raise _Quit(1)
    return out


def _confirm(question: str, version: str, stdin, out) -> bool | None:
    prompt = "[Y/n]" if _vt(version) < (3, 0, 0) else "[y/n]"
    answers = {"y": True, "Y": True, "yes": True, "YES": True, "n": False, "N": False, "no": False, "NO": False}
    for _ in range(3):
        out.write(f"> {question} {prompt} ")
        out.flush()
        line = stdin.readline()
        if not line:
            return None
        answer = answers.get(line.rstrip("\n"))
        if answer is not None:
            return answer
    return None


class _Runner:
    def __init__(self, conf: dict, args: _Args, version: str, log: Log, out, stdin):
        self.conf = conf
        self.args = args
        self.version = version
        self.log = log
        self.out = out
        self.stdin = stdin
        self.conn = None
        self.db_name = str(conf.get("pg_database") or "kong")

    # -- database plumbing -------------------------------------------------------------------

    def connect(self) -> None:
        self.conn = pgdb.connect(self.conf, application_name="kong migrations")

    def state(self) -> M.State:
        self.log.verbose("retrieving database schema state...")
        st = M.load_state(self.conn, self.conf, self.version)
        self.log.verbose("schema state retrieved")
        return st

    def mutex(self, callback, *, no_wait: bool, no_cleanup: bool = False):
        return M.cluster_mutex(self.conn, M.MUTEX_KEY, self.args.lock_timeout, callback, no_wait=no_wait, no_cleanup=no_cleanup)

    def run_migrations(self, entries, **opts) -> None:
        M.run_migrations(self.conn, self.db_name, entries, log=self.log, **opts)

    # -- commands ----------------------------------------------------------------------------

    def cmd_list(self, st: M.State) -> int:
        log = self.log
        if st.needs_bootstrap:
            log(M.NEEDS_BOOTSTRAP_MSG)
            return 3
        r = ""
        if st.executed:
            log("Executed migrations:\n" + st.block("executed"))
            r = "\n"
        if st.pending:
            log(f"{r}Pending migrations:\n" + st.block("pending"))
            r = "\n"
        if st.new:
            log(f"{r}New migrations available:\n" + st.block("new"))
            r = "\n"
        if st.pending and st.new:
            if r:
                log("")
            log.warning(f"Database has pending migrations from a previous upgrade, and new migrations from this upgrade (version {self.version})")
            log(
                "\nRun 'kong migrations finish' when ready to complete pending migrations "
                "(postgres database will be incompatible with the previous Kong version)"
            )
            return 4
        if st.pending:
            log("\nRun 'kong migrations finish' when ready")
            return 4
        if st.new:
            log("\nRun 'kong migrations up' to proceed")
            return 5
        return 0

    def cmd_status(self, st: M.State) -> int:
        if any(m.has_teardown for _, migs in st.migrations("missing") for m in migs):
            # UNCONFIRMED (FACTS 1.2/8.4): cjson cannot encode a migration's teardown function.
            raise KongError("Cannot serialise function: type not supported")
        status = st.as_status()
        self.out.write(json.dumps(status, separators=(",", ":")) + "\n")
        self.out.flush()
        return 0

    def cmd_bootstrap(self, st: M.State) -> int:
        log = self.log
        if self.args.force:
            self.reset(st)
            st = self.state()
        if not st.needs_bootstrap:
            log("Database already bootstrapped")
            return 0
        log("Bootstrapping database...")
        M.schema_bootstrap(self.conn, self.conf)
        entries = st.migrations("new")

        def body():
            self.run_migrations(entries, run_up=True, run_teardown=True)
            log("Database is up-to-date")

        ok, err = self.mutex(body, no_wait=True)
        if err:
            raise PgError(err)
        if not ok:
            log(M.NOT_LEADER_MSG)
        return 0

    def cmd_up(self, st: M.State) -> int:
        log = self.log
        force = self.args.force
        if st.needs_bootstrap:
            raise KongError("Cannot run migrations: " + M.NEEDS_BOOTSTRAP_MSG)
        if not force and st.pending:
            raise KongError("Database has pending migrations; run 'kong migrations finish'")

        def body():
            cur = self.state()
            if not force and cur.pending:
                raise KongError(_lua_error("Database has pending migrations; run 'kong migrations finish'", 88))
            if force and cur.executed:
                skip = {name: set(names) for name, names in cur.pending.items()}
                self.run_migrations(cur.migrations("executed"), run_up=True, run_teardown=True, skip_teardown=skip)
                cur = self.state()
                if cur.pending:
                    log("\nDatabase has pending migrations; run 'kong migrations finish' when ready")
                    return
            if not cur.new:
                if not force:
                    log("Database is already up-to-date")
                return
            self.run_migrations(cur.migrations("new"), run_up=True)
            cur = self.state()
            if cur.pending:
                log("\nDatabase has pending migrations; run 'kong migrations finish' when ready")

        ok, err = self.mutex(body, no_wait=False)
        if err:
            raise PgError(err)
        if not ok:
            log(M.NOT_LEADER_MSG)
        return 0

    def cmd_finish(self, st: M.State) -> int:
        log = self.log
        force = self.args.force
        if st.needs_bootstrap:
            raise KongError("Cannot run migrations: " + M.NEEDS_BOOTSTRAP_MSG)

        def body():
            cur = self.state()
            if force and cur.executed:
                self.run_migrations(cur.migrations("executed"), run_up=True, run_teardown=True)
                cur = self.state()
            if cur.pending:
                self.run_migrations(cur.migrations("pending"), run_teardown=True)
                cur = self.state()
            if cur.new:
                log("\nNew migrations available; run 'kong migrations up' to proceed")
                return
            if not force and not cur.pending:
                log("No pending migrations to finish")

        ok, err = self.mutex(body, no_wait=True)
        if err:
            raise PgError(err)
        if not ok:
            log(M.NOT_LEADER_MSG)
        return 0

    def reset(self, st: M.State) -> bool:
        log = self.log
        if st.needs_bootstrap:
            log("Database not bootstrapped, nothing to reset")
            return False

        def body():
            log("Resetting database...")
            M.schema_reset(self.conn, self.conf)
            log("Database successfully reset")

        ok, err = self.mutex(body, no_wait=True, no_cleanup=True)
        if err:
            log.error(f"{pgdb.ERROR_PREFIX}{err} - retrying without cluster lock")
            log("Resetting database...")
            M.schema_reset(self.conn, self.conf)
            log("Database successfully reset")
            return True
        if not ok:
            log(M.NOT_LEADER_MSG)
            return None
        return True

    def cmd_reset(self, st: M.State) -> int:
        if not self.args.yes:
            if not self.stdin.isatty():
                raise KongError("not a tty: invoke 'reset' non-interactively with the --yes flag")
            if not st.needs_bootstrap and not _confirm("Are you sure? This operation is irreversible.", self.version, self.stdin, self.out):
                self.log("cancelled")
                return 0
        # kong/cmd/migrations.lua:197-201 (3.4.2-3.9.3; :177-181 at 2.8.5): `if not ok then
        # os.exit(1)`; reset() returns false after NOT_LEADER_MSG when another node holds the lock
        # (kong/cmd/utils/migrations.lua:204-205 at 2.8.5/3.4.2, :207-208 at 3.7.1/3.9.3).
        ok = self.reset(st)
        return 0 if ok else 1


class _OfflineRunner:
    """`database = off`: every command succeeds (FACTS 1.2, `off` strategy tests)."""

    def __init__(self, conf, args, version, log, out, stdin):
        self.runner = _Runner(conf, args, version, log, out, stdin)
        self.log = log
        self.args = args

    def run(self, st: M.State) -> int:
        cmd = self.args.command
        if cmd == "list":
            return self.runner.cmd_list(st)
        if cmd == "status":
            return self.runner.cmd_status(st)
        if cmd == "bootstrap":
            self.log("Database already bootstrapped")
            return 0
        if cmd == "up":
            self.log("Database is already up-to-date")
            return 0
        if cmd == "finish":
            self.log("No pending migrations to finish")
            return 0
        if not self.args.yes and not self.runner.stdin.isatty():
            raise KongError("not a tty: invoke 'reset' non-interactively with the --yes flag")
        # UNCONFIRMED: `reset` against the off strategy.
        self.log("Resetting database...")
        self.log("Database successfully reset")
        return 0


def _effective_conf(conf: dict, args: _Args) -> dict:
    eff = dict(conf)
    if args.db_timeout is not None:
        eff["pg_timeout"] = int(args.db_timeout * 1000)
    return eff


def run(conf: dict, args: list, version: str, *, stdout=None, stderr=None, stdin=None) -> int:
    """Execute `kong migrations <args>` as Kong `version`; returns the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    stdin = stdin or sys.stdin
    try:
        parsed = _parse(list(args), version, err)
    except _Quit as q:
        return q.code
    log = Log(out, err)
    if parsed.verbose:
        log.level = Log.VERBOSE
    if parsed.quiet:
        log.disabled = True
    eff = _effective_conf(conf, parsed)
    if eff.get("prefix"):
        # kong/cmd/migrations.lua:95 (:96 at 2.8.5): prepare_prefix(conf, nginx_conf, true) runs
        # before the database is touched (see kongsim/prefix.py). In-process callers that pass a
        # partial conf without `prefix` skip it; the installed `kong` always has one.
        log.verbose(f"preparing nginx prefix directory at {eff['prefix']}")
        try:
            prefixmod.prepare(str(eff["prefix"]), log, log.warning)
        except prefixmod.PrefixError as exc:
            _print_error(err, str(exc), parsed.verbose)
            return 1
    try:
        if str(eff.get("database", "postgres")).strip() == "off":
            return _OfflineRunner(eff, parsed, version, log, out, stdin).run(M.offline_state(eff, version))
        runner = _Runner(eff, parsed, version, log, out, stdin)
        try:
            runner.connect()
            st = runner.state()
            return getattr(runner, f"cmd_{parsed.command}")(st)
        finally:
            if runner.conn is not None:
                pgdb.close(runner.conn)
    except (KongError, PgError) as exc:
        _print_error(err, str(exc), parsed.verbose)
        return 1


def _print_error(err, message: str, verbose: int) -> None:
    if verbose:
        # UNCONFIRMED: with --v/--vv Kong prints the Lua traceback instead of the hint.
        err.write(f"Error: \n{message}\nstack traceback:\n\t[C]: in function 'error'\n")
    else:
        err.write(f"Error: {message}\n\n  Run with --v (verbose) or --vv (debug) for more details\n")
    err.flush()
