"""Every PostgreSQL session, query, pg_dump and pg_restore of the collection is bounded (issue 27 item 10)."""

from __future__ import annotations

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils import _backup as bk
from ansible_collections.kongops.upgrade.plugins.module_utils import _kong_db
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import (
    KONG_PG_ARG_SPEC,
    KongDb,
    bound_hint,
    pg_params_problem,
)


def test_defaults_bound_every_session():
    assert KONG_PG_ARG_SPEC["pg_statement_timeout"]["default"] == 600
    assert KONG_PG_ARG_SPEC["pg_lock_timeout"]["default"] == 30
    db = KongDb.from_params({"pg_password": "pw"})
    assert db.session_options() == "-c statement_timeout=600000 -c lock_timeout=30000"
    env = db.libpq_env()
    assert env["PGOPTIONS"] == db.session_options() and env["PGCONNECT_TIMEOUT"] == "10"


def test_options_carry_schema_and_custom_bounds():
    db = KongDb(pg_schema="kong_s", pg_statement_timeout=5, pg_lock_timeout=0)
    assert db.session_options() == "-c statement_timeout=5000 -c lock_timeout=0 -c search_path=kong_s"


def test_every_connection_gets_the_bounds(monkeypatch):
    seen = {}

    def connect(**params):
        seen.update(params)
        raise _kong_db.psycopg2.OperationalError("stop here")

    monkeypatch.setattr(_kong_db.psycopg2, "connect", connect)
    with pytest.raises(_kong_db.KongDbError):
        KongDb(pg_connect_timeout=3, pg_statement_timeout=7, pg_lock_timeout=2).connect("postgres")
    assert seen["connect_timeout"] == 3 and seen["dbname"] == "postgres"
    assert seen["options"] == "-c statement_timeout=7000 -c lock_timeout=2000"


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"pg_statement_timeout": -1}, "pg_statement_timeout must be 0 (no limit) or a positive"),
        ({"pg_lock_timeout": -5}, "pg_lock_timeout must be 0"),
        ({"pg_connect_timeout": 0}, "pg_connect_timeout must be a positive"),
    ],
)
def test_bad_bounds_name_the_option(params, needle):
    assert needle in pg_params_problem(params)


def test_good_bounds_pass():
    assert pg_params_problem({"pg_connect_timeout": 10, "pg_statement_timeout": 0, "pg_lock_timeout": 0}) is None


def test_cancelled_statements_name_the_option():
    assert "pg_statement_timeout" in bound_hint("ERROR: canceling statement due to statement timeout")
    assert "pg_lock_timeout" in bound_hint("ERROR: canceling statement due to lock timeout")
    assert bound_hint("ERROR: relation does not exist") == ""


class Recorder:
    def __init__(self, rc=0):
        self.calls, self.rc = [], rc

    def __call__(self, argv, environ_update=None, **kw):
        self.calls.append(list(argv))
        return self.rc, "", "" if self.rc in (0, 124) else "boom"


def test_pg_tools_run_under_timeout_with_a_lock_wait_bound():
    run = Recorder()
    tools = bk.PgTools(run, timeout=90, timeout_bin="/usr/bin/timeout", lock_timeout=30)
    tools.dump("/tmp/x.dump", {"PGDATABASE": "kong"})
    tools.restore("/tmp/x.dump", {}, "kong")
    assert run.calls[0][:3] == ["/usr/bin/timeout", "--kill-after=10", "90s"]
    assert run.calls[0][3] == "pg_dump" and "--lock-wait-timeout=30000" in run.calls[0]
    assert run.calls[1][:4] == ["/usr/bin/timeout", "--kill-after=10", "90s", "pg_restore"]


def test_a_tool_stopped_by_the_bound_names_pg_tool_timeout():
    tools = bk.PgTools(Recorder(rc=124), timeout=5, timeout_bin="/usr/bin/timeout")
    with pytest.raises(bk.BackupError, match=r"did not finish within 5 s .*pg_tool_timeout"):
        tools.dump("/tmp/x.dump", {"PGDATABASE": "kong"})


def test_without_a_bound_the_argv_is_the_tools_own():
    run = Recorder()
    bk.PgTools(run, timeout=0, timeout_bin="/usr/bin/timeout").restore("/tmp/x.dump", {}, "kong")
    assert run.calls[0][0] == "pg_restore"
