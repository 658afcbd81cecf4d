"""Conformance of the simulator's `kong migrations` with FACTS.md sections 1, 2 and 8.2.

Everything runs against real PostgreSQL (one database for this module, its schema dropped and
recreated between tests), in-process through `cmd_migrations.run` and, where it matters (the
two-`up` race, the TTY prompt, the 2.8.5 -> 3.4.2 upgrade), through `bin/kong` installed by
tests/kongsim/install.sh. Expected names below are copied from FACTS.md, not computed from the
simulator's catalog.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
import time

import psycopg2
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from kongsim import cmd_migrations, migrations

DB = "kongsim_migrations"
VERSIONS = ("2.8.5", "3.4.2", "3.5.0", "3.6.1", "3.7.1", "3.8.1", "3.9.3")
REFERENCE_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "reference", "kong", "migrations-by-version.json")
HINT = "\n  Run with --v (verbose) or --vv (debug) for more details\n"
TS = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d"
NOT_LEADER = "aborted: another node is performing database changes\n"

NEEDS_BOOTSTRAP = (
    "Database needs bootstrapping or is older than Kong 1.0.\n\n"
    "To start a new installation from scratch, run 'kong migrations bootstrap'.\n\n"
    "To migrate from a version older than 1.0, migrated to Kong 1.5.0 first. \n"
    "If you still have 'apis' entities, you can convert them to Routes and Services\n"
    "using the 'kong migrations migrate-apis' command in Kong 1.5.0.\n\n"
)

# FACTS 2.2
CORE_285 = [
    "000_base",
    "003_100_to_110",
    "004_110_to_120",
    "005_120_to_130",
    "006_130_to_140",
    "007_140_to_150",
    "008_150_to_200",
    "009_200_to_210",
    "010_210_to_211",
    "011_212_to_213",
    "012_213_to_220",
    "013_220_to_230",
    "014_230_to_270",
    "015_270_to_280",
]
CORE_393 = CORE_285 + [
    "016_280_to_300",
    "017_300_to_310",
    "018_310_to_320",
    "019_320_to_330",
    "020_330_to_340",
    "021_340_to_350",
    "022_350_to_360",
    "023_360_to_370",
    "024_380_to_390",
]
# FACTS 1.2, example of `list` on a fully migrated 3.9.3 database (plugin lines verbatim).
PLUGINS_393_BLOCK = """\
                  acl: 000_base_acl, 002_130_to_140, 003_200_to_210, 004_212_to_213
                 acme: 000_base_acme, 001_280_to_300, 002_320_to_330, 003_350_to_360
             ai-proxy: 001_360_to_370
           basic-auth: 000_base_basic_auth, 002_130_to_140, 003_200_to_210
        bot-detection: 001_200_to_210
            hmac-auth: 000_base_hmac_auth, 002_130_to_140, 003_200_to_210
             http-log: 001_280_to_300
       ip-restriction: 001_200_to_210
                  jwt: 000_base_jwt, 002_130_to_140, 003_200_to_210
             key-auth: 000_base_key_auth, 002_130_to_140, 003_200_to_210, 004_320_to_330
               oauth2: 000_base_oauth2, 003_130_to_140, 004_200_to_210, 005_210_to_211, 006_320_to_330, 007_320_to_330
        opentelemetry: 001_331_to_332
        post-function: 001_280_to_300
         pre-function: 001_280_to_300
        rate-limiting: 000_base_rate_limiting, 003_10_to_112, 004_200_to_210, 005_320_to_330, 006_350_to_360
response-ratelimiting: 000_base_response_rate_limiting, 001_350_to_360
              session: 000_base_session, 001_add_ttl_index, 002_320_to_330"""

# FACTS 2.3 / 8.2: (new names, pending after up, list exit codes before up / after up / after finish)
NEW_285_342 = {
    "core": ["016_280_to_300", "017_300_to_310", "018_310_to_320", "019_320_to_330", "020_330_to_340"],
    "acme": ["001_280_to_300", "002_320_to_330"],
    "http-log": ["001_280_to_300"],
    "key-auth": ["004_320_to_330"],
    "oauth2": ["006_320_to_330", "007_320_to_330"],
    "post-function": ["001_280_to_300"],
    "pre-function": ["001_280_to_300"],
    "rate-limiting": ["005_320_to_330"],
    "session": ["002_320_to_330"],
}
PENDING_285_342 = {"core": ["016_280_to_300"], "http-log": ["001_280_to_300"], "post-function": ["001_280_to_300"], "pre-function": ["001_280_to_300"]}
PENDING_342_371 = {
    "acme": ["003_350_to_360"],
    "ai-proxy": ["001_360_to_370"],
    "opentelemetry": ["001_331_to_332"],
    "rate-limiting": ["006_350_to_360"],
    "response-ratelimiting": ["001_350_to_360"],
}
NEW_342_371 = {"core": ["021_340_to_350", "022_350_to_360", "023_360_to_370"], **PENDING_342_371}
HOPS = {
    ("2.8.5", "3.4.2"): (NEW_285_342, PENDING_285_342, (5, 4, 0)),
    ("3.4.2", "3.5.0"): ({"core": ["021_340_to_350"]}, {}, (5, 0, 0)),
    ("3.5.0", "3.6.1"): (
        {
            "core": ["022_350_to_360"],
            "acme": ["003_350_to_360"],
            "opentelemetry": ["001_331_to_332"],
            "rate-limiting": ["006_350_to_360"],
            "response-ratelimiting": ["001_350_to_360"],
        },
        {"opentelemetry": ["001_331_to_332"]},
        (5, 4, 0),
    ),
    ("3.6.1", "3.7.1"): ({"core": ["023_360_to_370"], "ai-proxy": ["001_360_to_370"]}, {"ai-proxy": ["001_360_to_370"]}, (5, 4, 0)),
    ("3.7.1", "3.8.1"): ({}, {}, (0, 0, 0)),
    ("3.8.1", "3.9.3"): ({"core": ["024_380_to_390"]}, {}, (5, 0, 0)),
    ("3.4.2", "3.7.1"): (NEW_342_371, PENDING_342_371, (5, 4, 0)),
    ("3.4.2", "3.9.3"): ({**NEW_342_371, "core": NEW_342_371["core"] + ["024_380_to_390"]}, PENDING_342_371, (5, 4, 0)),
    ("3.7.1", "3.9.3"): ({"core": ["024_380_to_390"]}, {}, (5, 0, 0)),
}

# FACTS 1.2: `kong migrations up`, 3.4.2 database, 3.7.1 binary (database 'kong').
UP_342_371 = """\
migrating core on database 'kong'...
core migrated up to: 021_340_to_350 (executed)
core migrated up to: 022_350_to_360 (executed)
core migrated up to: 023_360_to_370 (executed)
migrating acme on database 'kong'...
acme migrated up to: 003_350_to_360 (pending)
migrating ai-proxy on database 'kong'...
ai-proxy migrated up to: 001_360_to_370 (pending)
migrating opentelemetry on database 'kong'...
opentelemetry migrated up to: 001_331_to_332 (pending)
migrating rate-limiting on database 'kong'...
rate-limiting migrated up to: 006_350_to_360 (pending)
migrating response-ratelimiting on database 'kong'...
response-ratelimiting migrated up to: 001_350_to_360 (pending)
8 migrations processed
3 executed
5 pending

Database has pending migrations; run 'kong migrations finish' when ready
"""
# FACTS 8.2: `kong migrations up` with 3.6.1 on a 3.5.0 database.
UP_350_361 = """\
migrating core on database 'kong'...
core migrated up to: 022_350_to_360 (executed)
migrating acme on database 'kong'...
acme migrated up to: 003_350_to_360 (executed)
migrating opentelemetry on database 'kong'...
opentelemetry migrated up to: 001_331_to_332 (pending)
migrating rate-limiting on database 'kong'...
rate-limiting migrated up to: 006_350_to_360 (executed)
migrating response-ratelimiting on database 'kong'...
response-ratelimiting migrated up to: 001_350_to_360 (executed)
5 migrations processed
4 executed
1 pending

Database has pending migrations; run 'kong migrations finish' when ready
"""


class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    def __repr__(self):
        return f"Result(rc={self.rc}, out={self.out!r}, err={self.err!r})"


@pytest.fixture(scope="module")
def pg(postgres):
    info = postgres.create_database(DB)
    su = psycopg2.connect(postgres.dsn(DB))
    su.autocommit = True
    yield postgres, info, su
    su.close()


def sql(pg, text: str) -> str:
    """Superuser statement over a kept connection (setup and polling); '|'-joined first row."""
    with pg[2].cursor() as cur:
        cur.execute(text)
        if cur.description is None:
            return ""
        row = cur.fetchone()
        return "|".join("" if v is None else str(v) for v in row) if row else ""


@pytest.fixture
def conf(pg):
    _server, info, _su = pg
    sql(pg, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public AUTHORIZATION kong")
    return {
        "database": "postgres",
        "pg_host": info["host"],
        "pg_port": info["port"],
        "pg_user": info["user"],
        "pg_password": info["password"],
        "pg_database": DB,
        "pg_timeout": 5000,
        "plugins": "bundled",
    }


def kong(conf, version, *args, stdin=None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    rc = cmd_migrations.run(conf, list(args), version, stdout=out, stderr=err, stdin=stdin or io.StringIO())
    return Result(rc, out.getvalue(), err.getvalue())


def bootstrap(conf, version):
    res = kong(conf, version, "bootstrap", "-q")
    assert res.rc == 0 and res.out == "" and res.err == "", res


def psql(pg, sql):
    return pg[0].psql(sql, database=DB)


def schema_meta(pg) -> dict:
    """{subsystem: (executed list, pending list, last_executed)} read with psql."""
    text = psql(
        pg,
        "SELECT subsystem, array_to_string(executed, ','), array_to_string(pending, ','), "
        "coalesce(last_executed, '') FROM schema_meta WHERE key = 'schema_meta' ORDER BY subsystem",
    )
    out = {}
    for line in text.splitlines():
        sub, executed, pending, last = line.split("|")
        out[sub] = ([n for n in executed.split(",") if n], [n for n in pending.split(",") if n], last)
    return out


def block(by_subsystem: dict) -> str:
    width = max(len(k) for k in by_subsystem)
    return "\n".join(" " * (width - len(k)) + f"{k}: " + ", ".join(v) for k, v in by_subsystem.items())


def ordered(mapping: dict) -> dict:
    """core first, then plugin subsystems in byte order (FACTS 1.2)."""
    keys = sorted(mapping, key=lambda k: (k != "core", k.encode()))
    return {k: mapping[k] for k in keys}


def migrated_lines(text: str) -> dict:
    out = {}
    for sub, name, state in re.findall(r"^(\S+) migrated up to: (\S+) \((executed|pending)\)$", text, re.MULTILINE):
        out.setdefault(sub, []).append((name, state))
    return out


# --------------------------------------------------------------------------------------------
# catalog
# --------------------------------------------------------------------------------------------


def test_catalog_data_is_the_reference_file():
    if not os.path.exists(REFERENCE_JSON):
        pytest.skip("shared reference folder not mounted")
    with open(REFERENCE_JSON, encoding="utf-8") as ref, open(migrations.DATA_FILE, encoding="utf-8") as own:
        assert json.load(own) == json.load(ref)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_migration_has_sql_and_teardowns_match_the_binary(version):
    for subsys in migrations.catalog(version):
        for mig in subsys.migrations:
            up, teardown = migrations.migration_sql(subsys.name, mig)
            assert isinstance(up, str)
            assert (teardown is not None) == mig.has_teardown, (subsys.name, mig.name)
    names = {s.name: s.names() for s in migrations.catalog(version)}
    core_len = {"2.8.5": 14, "3.4.2": 19, "3.5.0": 20, "3.6.1": 21, "3.7.1": 22, "3.8.1": 22, "3.9.3": 23}
    assert len(names["core"]) == core_len[version]
    assert names["core"] == CORE_393[: core_len[version]] if version != "3.9.3" else names["core"] == CORE_393
    n_plugins = {"2.8.5": 12, "3.4.2": 15, "3.5.0": 15, "3.6.1": 16, "3.7.1": 17, "3.8.1": 17, "3.9.3": 17}
    assert len(names) - 1 == n_plugins[version]


def test_plugins_setting_limits_subsystems(conf):
    only = dict(conf, plugins="key-auth,acl,cors")
    st = migrations.schema_state(only, "3.9.3")
    assert st.needs_bootstrap
    assert list(st.new) == ["core", "acl", "key-auth"]
    st = migrations.schema_state(dict(conf, plugins="off"), "3.9.3")
    assert list(st.new) == ["core"]


# --------------------------------------------------------------------------------------------
# list: every exit code and text (FACTS 1.2)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_list_needs_bootstrap_exit_3(conf, pg, version):
    res = kong(conf, version, "list")
    assert res.rc == 3
    assert res.out == NEEDS_BOOTSTRAP + "\n"
    assert res.err == ""
    assert psql(pg, "SELECT to_regclass('schema_meta') IS NULL") == "t"


def test_list_up_to_date_exit_0_block_format(conf, pg):
    bootstrap(conf, "3.9.3")
    res = kong(conf, "3.9.3", "list")
    assert res.rc == 0, res
    core_line = "                 core: " + ", ".join(CORE_393)
    assert res.out == "Executed migrations:\n" + core_line + "\n" + PLUGINS_393_BLOCK + "\n"
    assert res.err == ""


def test_list_new_only_exit_5(conf, pg):
    bootstrap(conf, "2.8.5")
    res = kong(conf, "3.4.2", "list")
    assert res.rc == 5, res
    executed, new = res.out.split("\n\nNew migrations available:\n")
    assert executed.startswith("Executed migrations:\n                 core: 000_base, ")
    assert new == block(NEW_285_342) + "\n\nRun 'kong migrations up' to proceed\n"
    assert res.err == ""


def test_list_pending_only_exit_4(conf, pg):
    bootstrap(conf, "2.8.5")
    assert kong(conf, "3.4.2", "up").rc == 0
    res = kong(conf, "3.4.2", "list")
    assert res.rc == 4, res
    executed, pending = res.out.split("\n\nPending migrations:\n")
    assert "016_280_to_300" not in executed and "017_300_to_310" in executed
    assert pending == block(PENDING_285_342) + "\n\nRun 'kong migrations finish' when ready\n"
    assert res.err == ""


def test_list_pending_and_new_exit_4_warns_on_stderr(conf, pg):
    bootstrap(conf, "2.8.5")
    assert kong(conf, "3.4.2", "up").rc == 0
    res = kong(conf, "3.9.3", "list")
    assert res.rc == 4, res
    _head, rest = res.out.split("\n\nPending migrations:\n")
    pending, rest = rest.split("\n\nNew migrations available:\n")
    assert pending == block(PENDING_285_342)
    new_393 = ordered({"core": ["021_340_to_350", "022_350_to_360", "023_360_to_370", "024_380_to_390"], **PENDING_342_371})
    assert rest == (
        block(new_393) + "\n\n\nRun 'kong migrations finish' when ready to complete pending "
        "migrations (postgres database will be incompatible with the previous Kong version)\n"
    )
    assert re.fullmatch(
        TS + r" \[warn\] Database has pending migrations from a previous upgrade, and new "
        r"migrations from this upgrade \(version 3\.9\.3\)\n",
        res.err,
    ), res.err
    # and `up` refuses while pending migrations exist (FACTS 1.2 up step 2)
    up = kong(conf, "3.9.3", "up")
    assert up.rc == 1
    assert up.out == ""
    assert up.err == "Error: Database has pending migrations; run 'kong migrations finish'\n" + HINT


def test_list_unreachable_database_exit_1(conf, pg):
    from tests.services.ports import free_port

    res = kong(dict(conf, pg_port=free_port()), "3.9.3", "list")
    assert res.rc == 1
    assert res.out == ""
    assert res.err == ("Error: [PostgreSQL error] failed to retrieve PostgreSQL server_version_num: connection refused\n" + HINT)


def test_wrong_password_and_unknown_database(conf):
    res = kong(dict(conf, pg_password="wrong"), "3.4.2", "list")
    assert res.rc == 1
    assert res.err == (
        'Error: [PostgreSQL error] failed to retrieve PostgreSQL server_version_num: FATAL: password authentication failed for user "kong"\n' + HINT
    )
    res = kong(dict(conf, pg_database="no_such_db"), "3.4.2", "up")
    assert res.rc == 1
    assert res.err == ('Error: [PostgreSQL error] failed to retrieve PostgreSQL server_version_num: FATAL: database "no_such_db" does not exist\n' + HINT)


def test_verbose_prefixes_every_line_and_quiet_silences(conf, pg):
    res = kong(conf, "3.9.3", "list", "--v")
    assert res.rc == 3
    lines = res.out.splitlines()
    assert re.fullmatch(TS + r" \[verbose\] retrieving database schema state\.\.\.", lines[0]), lines
    assert re.fullmatch(TS + r" \[info\] Database needs bootstrapping or is older than Kong 1\.0\.", lines[2])
    res = kong(conf, "3.9.3", "bootstrap", "-q")
    assert (res.rc, res.out, res.err) == (0, "", "")
    assert "core" in schema_meta(pg)
    res = kong(conf, "3.9.3", "list", "-q")
    assert (res.rc, res.out, res.err) == (0, "", "")


# --------------------------------------------------------------------------------------------
# usage, sub-commands, status (FACTS 1.1, 1.2, 8.1)
# --------------------------------------------------------------------------------------------


def test_unknown_and_missing_sub_command(conf):
    res = kong(conf, "3.9.3", "frobnicate")
    assert res.rc == 1 and res.out == ""
    assert res.err.startswith("No such command for migrations: frobnicate\n\nUsage: kong migrations COMMAND [OPTIONS]\n")
    res = kong(conf, "3.9.3")
    assert res.rc == 1 and res.err.startswith("Usage: kong migrations COMMAND [OPTIONS]\n")


@pytest.mark.parametrize(
    "version,has_status,db_timeout",
    [
        ("2.8.5", False, "(default 60)"),
        ("3.4.2", True, "(default 60)"),
        ("3.6.1", True, "(default 60)"),
        ("3.7.1", True, "(optional number)"),
        ("3.9.3", True, "(optional number)"),
    ],
)
def test_usage_per_version(version, has_status, db_timeout):
    text = cmd_migrations.usage(version)
    assert text.startswith("Usage: kong migrations COMMAND [OPTIONS]\n")
    assert ("  status " in text) == has_status
    assert re.search(r"^ --db-timeout +" + re.escape(db_timeout) + " +Timeout, in seconds", text, re.MULTILINE)
    assert re.search(r"^ --lock-timeout +\(default 60\) ", text, re.MULTILINE)
    for flag in (" -y,--yes ", " -q,--quiet ", " -f,--force ", " -c,--conf "):
        assert flag in text
    assert text.endswith(" --v              verbose\n --vv             debug\n")


def test_status_absent_in_285(conf):
    res = kong(conf, "2.8.5", "status")
    assert res.rc == 1 and res.out == ""
    assert res.err == "No such command for migrations: status\n\n" + cmd_migrations.usage("2.8.5")


def test_status_json(conf, pg):
    res = kong(conf, "3.4.2", "status")
    assert res.rc == 0
    doc = json.loads(res.out)
    assert doc["needs_bootstrap"] is True
    assert set(doc) == {"needs_bootstrap", "new_migrations"}
    assert doc["new_migrations"][0] == {"subsystem": "core", "namespace": "kong.db.migrations.core", "migrations": CORE_393[:19]}
    bootstrap(conf, "2.8.5")
    assert kong(conf, "3.4.2", "up").rc == 0
    res = kong(conf, "3.9.3", "status")
    assert res.rc == 0 and res.out.count("\n") == 1 and ": " not in res.out
    doc = json.loads(res.out)
    assert doc["needs_bootstrap"] is False
    assert set(doc) == {"needs_bootstrap", "executed_migrations", "pending_migrations", "new_migrations"}
    pending = {e["subsystem"]: e["migrations"] for e in doc["pending_migrations"]}
    assert pending == PENDING_285_342
    namespaces = {e["subsystem"]: e["namespace"] for e in doc["new_migrations"]}
    assert namespaces["ai-proxy"] == "kong.plugins.ai-proxy.migrations"
    assert {e["subsystem"]: e["migrations"] for e in doc["new_migrations"]}["core"] == CORE_393[19:]


# --------------------------------------------------------------------------------------------
# bootstrap / up / finish texts (FACTS 1.2)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_bootstrap_runs_everything_and_records_executed(conf, pg, version):
    res = kong(conf, version, "bootstrap")
    assert res.rc == 0, res
    lines = res.out.splitlines()
    total = sum(len(s.migrations) for s in migrations.catalog(version))
    assert lines[0] == "Bootstrapping database..."
    assert lines[-3:] == [f"{total} migrations processed", f"{total} executed", "Database is up-to-date"]
    migrated = migrated_lines(res.out)
    assert all(state == "executed" for items in migrated.values() for _n, state in items)
    assert sum(len(v) for v in migrated.values()) == total
    meta = schema_meta(pg)
    for subsys in migrations.catalog(version):
        executed, pending, last = meta[subsys.name]
        assert executed == subsys.names()
        assert pending == []
        assert last == subsys.names()[-1]
    assert psql(pg, "SELECT count(*) FROM locks") == "0"
    again = kong(conf, version, "bootstrap")
    assert (again.rc, again.out) == (0, "Database already bootstrapped\n")


def test_up_and_finish_need_bootstrap(conf):
    for cmd in ("up", "finish"):
        res = kong(conf, "3.9.3", cmd)
        assert res.rc == 1 and res.out == ""
        assert res.err == "Error: Cannot run migrations: " + NEEDS_BOOTSTRAP + "\n" + HINT


@pytest.mark.parametrize("hop", list(HOPS), ids=[f"{a}-{b}" for a, b in HOPS])
def test_upgrade_hop(conf, pg, hop):
    src, dst = hop
    new, pending, codes = HOPS[hop]
    new = ordered(new)
    pending = ordered(pending)
    bootstrap(conf, src)
    before = schema_meta(pg)

    res = kong(conf, dst, "list")
    assert res.rc == codes[0], res
    if new:
        assert res.out.endswith("\n\nNew migrations available:\n" + block(new) + "\n\nRun 'kong migrations up' to proceed\n")
    st = migrations.schema_state(conf, dst)
    assert (st.new, st.pending, st.missing) == (new, {}, {})

    up = kong(conf, dst, "up")
    assert up.rc == 0, up
    if not new:
        assert up.out == "Database is already up-to-date\n"
    else:
        migrated = migrated_lines(up.out)
        assert {k: [n for n, _s in v] for k, v in migrated.items()} == new
        assert {k: [n for n, s in v if s == "pending"] for k, v in migrated.items() if any(s == "pending" for _n, s in v)} == pending
        n = sum(len(v) for v in new.values())
        p = sum(len(v) for v in pending.values())
        assert f"\n{n} migration{'s' if n > 1 else ''} processed\n" in up.out
        assert (f"\n{n - p} executed\n" in up.out) == (n - p > 0)
        assert (f"\n{p} pending\n" in up.out) == (p > 0)
        tail = "\n\nDatabase has pending migrations; run 'kong migrations finish' when ready\n"
        assert up.out.endswith(tail) == bool(pending)
    meta = schema_meta(pg)
    for sub, names in new.items():
        executed, pend, _last = meta[sub]
        assert pend == pending.get(sub, [])
        assert [x for x in names if x not in pending.get(sub, [])] == [x for x in executed if x in names]
    for sub, (executed, _p, _l) in before.items():
        assert meta[sub][0][: len(executed)] == executed

    res = kong(conf, dst, "list")
    assert res.rc == codes[1], res
    if pending:
        assert res.out.endswith("\n\nPending migrations:\n" + block(pending) + "\n\nRun 'kong migrations finish' when ready\n")

    fin = kong(conf, dst, "finish")
    assert fin.rc == 0, fin
    assert fin.out.endswith("No pending migrations to finish\n")
    if pending:
        migrated = migrated_lines(fin.out)
        assert {k: [n for n, _s in v] for k, v in migrated.items()} == pending
        assert all(s == "executed" for v in migrated.values() for _n, s in v)
    else:
        assert fin.out == "No pending migrations to finish\n"

    res = kong(conf, dst, "list")
    assert res.rc == codes[2] == 0, res
    meta = schema_meta(pg)
    for subsys in migrations.catalog(dst):
        executed, pend, _last = meta[subsys.name]
        assert pend == []
        assert sorted(executed) == sorted(subsys.names())
    again = kong(conf, dst, "up")
    assert again.out == "Database is already up-to-date\n"


@pytest.mark.parametrize("src,dst,expected", [("3.4.2", "3.7.1", UP_342_371), ("3.5.0", "3.6.1", UP_350_361)])
def test_up_output_matches_facts_examples(conf, src, dst, expected):
    bootstrap(conf, src)
    res = kong(dict(conf), dst, "up")
    assert res.rc == 0
    assert res.out == expected.replace("database 'kong'", f"database '{DB}'")


def test_same_name_teardown_depends_on_the_upgrading_binary(conf, pg):
    """FACTS 8.3: 3.5.0 -> 3.6.1 records rate-limiting 006 executed; 3.7.1 then never runs its teardown."""
    bootstrap(conf, "3.5.0")
    assert kong(conf, "3.6.1", "up").rc == 0
    assert schema_meta(pg)["rate-limiting"][1] == []
    assert kong(conf, "3.6.1", "finish").rc == 0
    st = migrations.schema_state(conf, "3.7.1")
    assert st.pending == {} and st.new == {"core": ["023_360_to_370"], "ai-proxy": ["001_360_to_370"]}
    assert "006_350_to_360" in st.executed["rate-limiting"]


def test_finish_reports_new_migrations_after_teardowns(conf, pg):
    bootstrap(conf, "2.8.5")
    assert kong(conf, "3.4.2", "up").rc == 0
    res = kong(conf, "3.9.3", "finish")
    assert res.rc == 0
    assert res.out.endswith("4 migrations processed\n4 executed\n\nNew migrations available; run 'kong migrations up' to proceed\n")
    assert all(p == [] for _e, p, _l in schema_meta(pg).values())


def test_up_force_reruns_executed_migrations(conf, pg):
    bootstrap(conf, "3.8.1")
    total = sum(len(s.migrations) for s in migrations.catalog("3.8.1"))
    res = kong(conf, "3.9.3", "up", "-f")
    assert res.rc == 0, res
    assert f"\n{total} migrations processed\n{total} executed\n" in res.out
    assert res.out.endswith("1 migration processed\n1 executed\n")
    assert "Database is already up-to-date" not in res.out
    executed = schema_meta(pg)["core"][0]
    # array_append recording (FACTS 2.1): re-run names are appended again
    assert executed.count("000_base") == 2 and executed.count("024_380_to_390") == 1
    assert kong(conf, "3.9.3", "list").rc == 0


# --------------------------------------------------------------------------------------------
# schema_meta reading rules (FACTS 2.1, 8.4)
# --------------------------------------------------------------------------------------------


def test_reading_rules_missing_new_and_unknown_names(conf, pg):
    bootstrap(conf, "3.9.3")
    st = migrations.schema_state(conf, "3.4.2")
    assert st.new == {} and st.missing == {}
    assert st.executed["core"] == CORE_393[:19]
    assert kong(conf, "3.4.2", "list").rc == 0
    sql(pg, "UPDATE schema_meta SET executed = array_remove(executed, '024_380_to_390') WHERE subsystem = 'core'")
    st = migrations.schema_state(conf, "3.9.3")
    assert st.missing == {"core": ["024_380_to_390"]} and st.new == {}
    assert kong(conf, "3.9.3", "list").rc == 0
    doc = json.loads(kong(conf, "3.9.3", "status").out)
    assert doc["missing_migrations"][0]["migrations"][0]["name"] == "024_380_to_390"
    sql(pg, "UPDATE schema_meta SET executed = array_remove(executed, '010_210_to_211') WHERE subsystem = 'core'")
    st = migrations.schema_state(conf, "3.9.3")
    assert st.new == {"core": ["010_210_to_211"]}
    sql(pg, "DELETE FROM schema_meta")
    st = migrations.schema_state(conf, "3.9.3")
    assert not st.needs_bootstrap and st.new["core"] == CORE_393 and st.executed == {}


def test_schema_meta_table_exists_without_rows_means_bootstrapped(conf, pg):
    sql(
        pg,
        "SET ROLE kong; CREATE TABLE schema_meta (key TEXT, subsystem TEXT, last_executed TEXT, "
        "executed TEXT[], pending TEXT[], PRIMARY KEY (key, subsystem)); RESET ROLE",
    )
    res = kong(conf, "3.9.3", "list")
    assert res.rc == 5
    assert res.out.startswith("New migrations available:\n                 core: 000_base, ")


# --------------------------------------------------------------------------------------------
# teardowns do real work
# --------------------------------------------------------------------------------------------


def test_teardowns_change_data_only_at_finish(conf, pg):
    bootstrap(conf, "2.8.5")
    sql(
        pg,
        """
        INSERT INTO upstreams (id, name, slots) VALUES ('11111111-1111-1111-1111-111111111111', 'u', 100);
        INSERT INTO targets (id, created_at, upstream_id, target, weight, ws_id) VALUES
          ('22222222-2222-2222-2222-222222222221', now() - interval '1 hour', '11111111-1111-1111-1111-111111111111',
           'a:80', 10, (SELECT id FROM workspaces WHERE name = 'default')),
          ('22222222-2222-2222-2222-222222222222', now(), '11111111-1111-1111-1111-111111111111',
           'a:80', 20, (SELECT id FROM workspaces WHERE name = 'default'));
        INSERT INTO plugins (id, name, config, enabled) VALUES
          ('33333333-3333-3333-3333-333333333331', 'pre-function', '{"functions": ["return 1"]}', true),
          ('33333333-3333-3333-3333-333333333332', 'rate-limiting', '{"policy": "redis", "redis_host": "r1", "redis_port": 6379}', true);
    """,
    )
    assert kong(conf, "3.4.2", "up").rc == 0
    assert psql(pg, "SELECT count(*), count(cache_key) FROM targets") == "2|0"
    assert psql(pg, "SELECT config ? 'functions' FROM plugins WHERE name = 'pre-function'") == "t"
    assert kong(conf, "3.4.2", "finish").rc == 0
    assert psql(pg, "SELECT id, weight, cache_key FROM targets") == (
        "22222222-2222-2222-2222-222222222222|20|targets:11111111-1111-1111-1111-111111111111:a:80::::"
        + psql(pg, "SELECT id FROM workspaces WHERE name = 'default'")
    )
    assert psql(pg, "SELECT config::text FROM plugins WHERE name = 'pre-function'") == '{"access": ["return 1"]}'
    # 3.4.2 -> 3.7.1: the redis move keeps the old keys until finish (pending teardown)
    assert kong(conf, "3.7.1", "up").rc == 0
    assert psql(pg, "SELECT config -> 'redis' ->> 'host', config ? 'redis_host' FROM plugins WHERE name = 'rate-limiting'") == "r1|t"
    assert kong(conf, "3.7.1", "finish").rc == 0
    assert psql(pg, "SELECT config -> 'redis' ->> 'host', config ? 'redis_host' FROM plugins WHERE name = 'rate-limiting'") == "r1|f"


def test_361_up_does_the_whole_redis_move_at_once(conf, pg):
    bootstrap(conf, "3.5.0")
    sql(
        pg,
        "INSERT INTO plugins (id, name, config, enabled) VALUES ('33333333-3333-3333-3333-333333333332', "
        '\'rate-limiting\', \'{"policy": "redis", "redis_host": "r1"}\', true)',
    )
    assert kong(conf, "3.6.1", "up").rc == 0
    assert psql(pg, "SELECT config -> 'redis' ->> 'host', config ? 'redis_host' FROM plugins") == "r1|f"


# --------------------------------------------------------------------------------------------
# cluster mutex (FACTS 1.4)
# --------------------------------------------------------------------------------------------


def hold_lock(pg, seconds=60, owner="another-node"):
    sql(pg, f"INSERT INTO locks (key, owner, ttl) VALUES ('migrations', '{owner}', now() + interval '{seconds} seconds')")


def test_bootstrap_finish_reset_do_not_wait_for_the_lock(conf, pg):
    sql(pg, "SET ROLE kong; CREATE TABLE locks (key TEXT PRIMARY KEY, owner TEXT, ttl TIMESTAMP WITH TIME ZONE); RESET ROLE")
    hold_lock(pg)
    res = kong(conf, "2.8.5", "bootstrap")
    assert (res.rc, res.out, res.err) == (0, "Bootstrapping database...\n" + NOT_LEADER, "")
    assert psql(pg, "SELECT count(*) FROM schema_meta") == "0"
    sql(pg, "DELETE FROM locks")
    # the aborted bootstrap left an empty schema_meta: the database counts as bootstrapped
    assert kong(conf, "2.8.5", "bootstrap").out == "Database already bootstrapped\n"
    sql(pg, "DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION kong")
    bootstrap(conf, "2.8.5")
    assert kong(conf, "3.4.2", "up").rc == 0
    hold_lock(pg)
    t0 = time.monotonic()
    res = kong(conf, "3.4.2", "finish")
    assert (res.rc, res.out, res.err) == (0, NOT_LEADER, "")
    assert schema_meta(pg)["core"][1] == ["016_280_to_300"]
    # kong/cmd/migrations.lua:197-200 at 3.4.2 (:177-180 at 2.8.5): reset() returned false after
    # NOT_LEADER_MSG (kong/cmd/utils/migrations.lua:204-205), so `os.exit(1)`.
    res = kong(conf, "3.4.2", "reset", "--yes")
    assert (res.rc, res.out) == (1, NOT_LEADER)
    res = kong(conf, "2.8.5", "reset", "--yes")
    assert (res.rc, res.out) == (1, NOT_LEADER)
    assert time.monotonic() - t0 < 30
    assert psql(pg, "SELECT to_regclass('services') IS NOT NULL") == "t"


def test_up_waits_then_times_out(conf, pg):
    bootstrap(conf, "3.8.1")
    hold_lock(pg)
    t0 = time.monotonic()
    res = kong(conf, "3.9.3", "up", "--lock-timeout", "1")
    elapsed = time.monotonic() - t0
    assert (res.rc, res.out) == (1, "")
    assert res.err == "Error: [PostgreSQL error] timeout\n" + HINT
    assert 0.9 <= elapsed < 30
    assert "024_380_to_390" not in schema_meta(pg)["core"][0]
    assert psql(pg, "SELECT owner FROM locks") == "another-node"


def _wait_for(predicate, timeout=30.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def _polling_the_lock(pg) -> bool:
    return sql(pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kong migrations' AND query LIKE 'SELECT 1 FROM locks WHERE key%'") != "0"


def test_up_aborts_when_the_holder_releases(conf, pg):
    bootstrap(conf, "3.8.1")
    hold_lock(pg)
    box = {}
    thread = threading.Thread(target=lambda: box.update(res=kong(conf, "3.9.3", "up", "--lock-timeout", "60")))
    thread.start()
    _wait_for(lambda: _polling_the_lock(pg))
    sql(pg, "DELETE FROM locks")
    thread.join(60)
    res = box["res"]
    assert (res.rc, res.out, res.err) == (0, NOT_LEADER, "")
    assert "024_380_to_390" not in schema_meta(pg)["core"][0]


def test_expired_lock_is_taken_over(conf, pg):
    bootstrap(conf, "3.8.1")
    sql(pg, "INSERT INTO locks VALUES ('migrations', 'crashed-node', now() - interval '1 second')")
    res = kong(conf, "3.9.3", "up")
    assert res.rc == 0 and "core migrated up to: 024_380_to_390 (executed)" in res.out
    assert psql(pg, "SELECT count(*) FROM locks") == "0"


def _blocking_connection(pg, table):
    server = pg[0]
    conn = psycopg2.connect(server.dsn(DB))
    cur = conn.cursor()
    cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return conn


def _blocking_create(pg, table):
    """A transaction that created `table` and did not commit: a `CREATE TABLE IF NOT EXISTS` of the
    same name (core 024_380_to_390's clustering_sync_version) waits for it."""
    conn = psycopg2.connect(pg[0].dsn(DB))
    conn.cursor().execute(f'CREATE TABLE {table} ("version" SERIAL PRIMARY KEY)')
    return conn


def test_db_timeout_defaults_per_version(conf, pg):
    """FACTS 1.1: 2.8-3.6 --db-timeout defaults to 60 s and overrides pg_timeout; 3.7+ uses pg_timeout."""
    short = dict(conf, pg_timeout=1000)
    bootstrap(conf, "3.8.1")
    blocker = _blocking_create(pg, "clustering_sync_version")
    try:
        res = kong(short, "3.9.3", "up")
    finally:
        blocker.rollback()
        blocker.close()
    assert res.rc == 1
    assert res.err.startswith(
        "Error: [PostgreSQL error] cluster_mutex callback threw an error: [PostgreSQL error] failed to run migration '024_380_to_390' up: timeout"
    )
    assert "024_380_to_390" not in schema_meta(pg)["core"][0]
    assert psql(pg, "SELECT count(*) FROM locks") == "0"

    blocker = _blocking_create(pg, "clustering_sync_version")
    try:
        res = kong(dict(conf, pg_timeout=600000), "3.9.3", "up", "--db-timeout", "1")
    finally:
        blocker.rollback()
        blocker.close()
    assert res.rc == 1 and "up: timeout" in res.err

    conf_fresh = dict(conf)
    sql(pg, "DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION kong")
    bootstrap(conf_fresh, "3.5.0")
    blocker = _blocking_connection(pg, "clustering_data_planes")
    timer = threading.Timer(2.5, lambda: (blocker.rollback(), blocker.close()))
    timer.start()
    try:
        res = kong(short, "3.6.1", "up")
    finally:
        timer.join()
    assert res.rc == 0, res
    assert "core migrated up to: 022_350_to_360 (executed)" in res.out


def test_effective_timeouts():
    for version, args, expected in (
        ("2.8.5", [], 60000),
        ("3.6.1", [], 60000),
        ("3.6.1", ["--db-timeout", "7"], 7000),
        ("3.7.1", [], 1234),
        ("3.9.3", ["--db-timeout=2"], 2000),
    ):
        parsed = cmd_migrations._parse(["list", *args], version, io.StringIO())
        assert cmd_migrations._effective_conf({"pg_timeout": 1234}, parsed)["pg_timeout"] == expected


# --------------------------------------------------------------------------------------------
# reset (FACTS 1.2)
# --------------------------------------------------------------------------------------------


def test_reset_rules(conf, pg):
    res = kong(conf, "3.9.3", "reset")
    assert res.rc == 1 and res.out == ""
    assert res.err == "Error: not a tty: invoke 'reset' non-interactively with the --yes flag\n" + HINT
    res = kong(conf, "3.9.3", "reset", "--yes")
    assert (res.rc, res.out) == (1, "Database not bootstrapped, nothing to reset\n")
    bootstrap(conf, "3.9.3")
    res = kong(conf, "3.9.3", "reset", "-y")
    assert (res.rc, res.out, res.err) == (0, "Resetting database...\nDatabase successfully reset\n", "")
    assert psql(pg, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'") == "0"
    assert kong(conf, "3.9.3", "list").rc == 3


def test_bootstrap_force_resets_first(conf, pg):
    bootstrap(conf, "3.4.2")
    sql(pg, "INSERT INTO consumers (id, username) VALUES (gen_random_uuid(), 'gone')")
    res = kong(conf, "3.9.3", "bootstrap", "--force")
    assert res.rc == 0
    assert res.out.startswith("Resetting database...\nDatabase successfully reset\nBootstrapping database...\n")
    assert psql(pg, "SELECT count(*) FROM consumers") == "0"
    assert schema_meta(pg)["core"][0] == CORE_393


def test_pg_schema_setting(conf, pg):
    """FACTS 2.1: tables live in `pg_schema`; bootstrap creates it, reset recreates it."""
    custom = dict(conf, pg_schema="kong_custom")
    sql(pg, "DROP SCHEMA IF EXISTS kong_custom CASCADE")
    assert kong(custom, "3.9.3", "list").rc == 3
    assert kong(custom, "3.9.3", "bootstrap").rc == 0
    assert psql(pg, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'schema_meta'") == "kong_custom"
    assert psql(pg, "SELECT count(*) FROM kong_custom.services") == "0"
    assert kong(conf, "3.9.3", "list").rc == 3
    assert kong(custom, "3.9.3", "list").rc == 0
    res = kong(custom, "3.9.3", "reset", "-y")
    assert res.rc == 0
    assert psql(pg, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'kong_custom'") == "0"
    assert psql(pg, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'kong_custom'") == "1"


def test_dbless_every_command_succeeds(conf):
    from tests.services.ports import free_port

    off = dict(conf, database="off", pg_port=free_port())
    res = kong(off, "3.9.3", "list")
    assert res.rc == 0 and res.out.startswith("Executed migrations:\n                 core: 000_base, ")
    assert PLUGINS_393_BLOCK in res.out
    assert kong(off, "3.9.3", "bootstrap").out == "Database already bootstrapped\n"
    assert kong(off, "3.9.3", "up").out == "Database is already up-to-date\n"
    assert kong(off, "3.9.3", "finish").out == "No pending migrations to finish\n"


# --------------------------------------------------------------------------------------------
# through the installed `kong` binary
# --------------------------------------------------------------------------------------------


@pytest.fixture
def kong_bin(kong_install):
    """kong_bin(version) -> `bin/kong` installed by tests/kongsim/install.sh (cached per session)."""
    return kong_install


@pytest.fixture
def kong_conf(conf, tmp_path):
    """kong.conf with an existing prefix (a missing one adds prefix_handler's line to stdout,
    see test_cli_as_kong.py)."""
    (tmp_path / "prefix").mkdir()
    path = tmp_path / "kong.conf"
    path.write_text(
        f"prefix = {tmp_path / 'prefix'}\ndatabase = postgres\npg_host = {conf['pg_host']}\n"
        f"pg_port = {conf['pg_port']}\npg_user = {conf['pg_user']}\npg_password = {conf['pg_password']}\n"
        f"pg_database = {conf['pg_database']}\n"
    )
    return str(path)


def _env():
    return {k: v for k, v in os.environ.items() if not k.startswith("KONG_") and k != "PYTHONDONTWRITEBYTECODE"}


def run_bin(kong_bin, version, kong_conf, *args, **kw):
    proc = subprocess.run([kong_bin(version), "migrations", *args, "-c", kong_conf], check=False, capture_output=True, text=True, env=_env(), timeout=120, **kw)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_binary_285_to_342_upgrade_read_back_with_psql(conf, pg, kong_bin, kong_conf):
    """Issue 3 'done when': 2.8.5 bootstrapped, then 3.4.2 up and finish, names as FACTS lists."""
    res = run_bin(kong_bin, "2.8.5", kong_conf, "list")
    assert (res.rc, res.out) == (3, NEEDS_BOOTSTRAP + "\n")
    assert run_bin(kong_bin, "2.8.5", kong_conf, "bootstrap").rc == 0
    res = run_bin(kong_bin, "3.4.2", kong_conf, "list")
    assert res.rc == 5 and res.out.endswith(block(NEW_285_342) + "\n\nRun 'kong migrations up' to proceed\n")
    res = run_bin(kong_bin, "3.4.2", kong_conf, "up")
    assert res.rc == 0, res
    meta = schema_meta(pg)
    assert {k: v[1] for k, v in meta.items() if v[1]} == PENDING_285_342
    assert run_bin(kong_bin, "3.4.2", kong_conf, "list").rc == 4
    res = run_bin(kong_bin, "3.4.2", kong_conf, "up")
    assert res.rc == 1 and res.err.startswith("Error: Database has pending migrations; run 'kong migrations finish'\n")
    res = run_bin(kong_bin, "3.4.2", kong_conf, "finish")
    assert res.rc == 0 and res.out.endswith("4 migrations processed\n4 executed\nNo pending migrations to finish\n")
    meta = schema_meta(pg)
    assert all(v[1] == [] for v in meta.values())
    # recorded in execution order: 017..020 at `up`, 016 at `finish` (FACTS 2.1 recording rules)
    assert meta["core"][0] == CORE_285 + CORE_393[15:19] + ["016_280_to_300"]
    assert meta["core"][2] == "016_280_to_300"
    assert run_bin(kong_bin, "3.4.2", kong_conf, "list").rc == 0
    res = run_bin(kong_bin, "2.8.5", kong_conf, "status")
    assert res.rc == 1 and res.err.startswith("No such command for migrations: status\n\nUsage:")


def test_binary_two_ups_at_once(conf, pg, kong_bin, kong_conf):
    """FACTS 1.4: the second `up` waits on the lock, then reports the other node did the work."""
    bootstrap(conf, "3.8.1")
    kong_bin("3.9.3")
    blocker = _blocking_create(pg, "clustering_sync_version")
    procs = []
    try:
        cmd = [kong_bin("3.9.3"), "migrations", "up", "-c", kong_conf, "--db-timeout", "120"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()))
        _wait_for(lambda: sql(pg, "SELECT count(*) FROM locks") == "1")
        _wait_for(lambda: sql(pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kong migrations' AND wait_event_type = 'Lock'") == "1")
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()))
        _wait_for(lambda: _polling_the_lock(pg))
    finally:
        blocker.rollback()
        blocker.close()
    first, second = [Result(p.wait(120), p.stdout.read(), p.stderr.read()) for p in procs]
    assert first.rc == 0, first
    assert "core migrated up to: 024_380_to_390 (executed)" in first.out
    assert (second.rc, second.out, second.err) == (0, NOT_LEADER, "")
    assert schema_meta(pg)["core"][0].count("024_380_to_390") == 1
    assert psql(pg, "SELECT count(*) FROM locks") == "0"


@pytest.mark.parametrize(
    "version,answers,prompt,expected_out,reset_done",
    [
        ("3.9.3", b"n\n", "[y/n]", "cancelled\n", False),
        ("3.9.3", b"yes\n", "[y/n]", "Resetting database...\nDatabase successfully reset\n", True),
        ("2.8.5", b"Y\n", "[Y/n]", "Resetting database...\nDatabase successfully reset\n", True),
        ("3.4.2", b"maybe\nsure\nok\n", "[y/n]", "cancelled\n", False),
    ],
)
def test_binary_reset_prompts_on_a_tty(conf, pg, kong_bin, kong_conf, version, answers, prompt, expected_out, reset_done):
    bootstrap(conf, version)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [kong_bin(version), "migrations", "reset", "-c", kong_conf], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
        )
        os.write(master, answers)
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    question = f"> Are you sure? This operation is irreversible. {prompt} "
    tries = answers.count(b"\n") if not reset_done and expected_out == "cancelled\n" else 1
    assert proc.returncode == 0, err
    assert out == question * tries + expected_out
    assert (psql(pg, "SELECT to_regclass('schema_meta') IS NULL") == "t") == reset_done


def test_core_370_and_390_create_the_tables_kong_creates(conf, pg):
    """The SQL of core 023_360_to_370 and 024_380_to_390 is Kong's: Kong/kong 3.7.1
    kong/db/migrations/core/023_360_to_370.lua lines 4-12 (clustering_rpc_requests and its node_id
    index, beside clustering_data_planes.rpc_capabilities) and Kong/kong 3.9.3
    kong/db/migrations/core/024_380_to_390.lua lines 6-17 (clustering_sync_version with only its
    serial version, clustering_sync_delta and its version index). A backup's table digests and a
    restore see the same tables as on a real 3.9.3 database."""
    bootstrap(conf, "3.9.3")
    columns = psql(
        pg,
        "SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_name IN "
        "('clustering_rpc_requests', 'clustering_sync_version', 'clustering_sync_delta') "
        "ORDER BY table_name, ordinal_position",
    ).split()
    assert columns == [
        "clustering_rpc_requests.id",
        "clustering_rpc_requests.node_id",
        "clustering_rpc_requests.reply_to",
        "clustering_rpc_requests.ttl",
        "clustering_rpc_requests.payload",
        "clustering_sync_delta.version",
        "clustering_sync_delta.type",
        "clustering_sync_delta.pk",
        "clustering_sync_delta.ws_id",
        "clustering_sync_delta.entity",
        "clustering_sync_version.version",
    ]
    indexes = psql(
        pg,
        "SELECT indexname FROM pg_indexes WHERE indexname IN ('clustering_rpc_requests_node_id_idx', "
        "'clustering_sync_delta_version_idx', 'clustering_data_planes_last_seen_idx') ORDER BY 1",
    ).split()
    assert indexes == ["clustering_rpc_requests_node_id_idx", "clustering_sync_delta_version_idx"]


def test_up_to_3x_rewrites_regex_paths_of_routes(conf, pg):
    """core 016_280_to_300's up_f (p_migrate_regex_path) runs in `up`: a route path that holds anything but
    [a-zA-Z0-9.-_~/%] is a regex and gets the `~` prefix, plain paths stay (Kong/kong 3.4.2
    kong/db/migrations/core/016_280_to_300.lua:12-42,148, kong/db/migrations/migrate_path_280_300.lua:73-87).
    UNCONFIRMED here: the percent-decoding normalisation of both branches."""
    bootstrap(conf, "2.8.5")
    sql(
        pg,
        "INSERT INTO services (id, name, host, port, protocol) VALUES ('7f3a6b2e-0000-4000-8000-000000000001', 's', 'h', 80, 'http');"
        "INSERT INTO routes (id, name, service_id, protocols, paths) VALUES "
        "('7f3a6b2e-0000-4000-8000-000000000002', 'users', '7f3a6b2e-0000-4000-8000-000000000001', '{http}', "
        "ARRAY['/users/\\d+', '/plain/path-1_x.y~', '/(a|b)$']),"
        "('7f3a6b2e-0000-4000-8000-000000000003', 'hosts-only', '7f3a6b2e-0000-4000-8000-000000000001', '{http}', NULL)",
    )
    assert kong(conf, "3.4.2", "up").rc == 0
    rows = dict(psql(pg, "SELECT name, array_to_string(paths, ' ') FROM routes ORDER BY name").splitlines()[i].split("|", 1) for i in range(2))
    assert rows == {"hosts-only": "", "users": "~/users/\\d+ /plain/path-1_x.y~ ~/(a|b)$"}, rows
