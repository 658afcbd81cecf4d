"""The database bounds on a real PostgreSQL (issue 27 item 10): a slow statement, a lock held by another
session, a pg_dump waiting for a table lock and a pg_dump that does not finish are each stopped, with a
message naming the option."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import psycopg2
import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils import _backup as bk
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import KongDb, KongDbError


def _run_command(argv, environ_update=None, **_kw):
    proc = subprocess.run(argv, env={**os.environ, **(environ_update or {})}, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def database(postgres):
    name = "kong_bounds_" + uuid.uuid4().hex[:8]
    db = postgres.create_database(name, owner="kong_bounds", password="bounds-pw")
    postgres.psql("CREATE TABLE services (id int); INSERT INTO services VALUES (1)", database=name)
    postgres.psql("ALTER TABLE services OWNER TO kong_bounds", database=name)
    yield db
    postgres.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def kong_db(db, **bounds) -> KongDb:
    return KongDb(pg_host=db["host"], pg_port=db["port"], pg_user=db["user"], pg_password=db["password"], pg_database=db["database"], **bounds)


def hold_lock(db):
    conn = psycopg2.connect(host=db["host"], port=db["port"], user=db["user"], password=db["password"], dbname=db["database"])
    conn.cursor().execute("LOCK TABLE services IN ACCESS EXCLUSIVE MODE")
    return conn


def test_a_slow_statement_is_cancelled_naming_pg_statement_timeout(database):
    db = kong_db(database, pg_statement_timeout=1)
    start = time.monotonic()
    with pytest.raises(KongDbError, match="pg_statement_timeout"):
        db.query("SELECT pg_sleep(30)")
    assert time.monotonic() - start < 10
    db.close()


def test_a_lock_held_elsewhere_is_not_waited_for_beyond_pg_lock_timeout(database):
    holder = hold_lock(database)
    try:
        db = kong_db(database, pg_lock_timeout=1)
        start = time.monotonic()
        with pytest.raises(KongDbError, match="pg_lock_timeout"):
            db.query("SELECT count(*) FROM services")
        assert time.monotonic() - start < 10
        db.close()
    finally:
        holder.close()


def test_pg_dump_waiting_for_a_table_lock_gives_up(database, tmp_path):
    holder = hold_lock(database)
    try:
        db = kong_db(database, pg_lock_timeout=1)
        tools = bk.PgTools(_run_command, timeout=120, timeout_bin="timeout", lock_timeout=1)
        start = time.monotonic()
        with pytest.raises(bk.BackupError, match="pg_dump of database"):
            tools.dump(str(tmp_path / "x.dump"), db.libpq_env())
        assert time.monotonic() - start < 30
    finally:
        holder.close()


def test_a_pg_tool_that_does_not_finish_is_stopped_naming_pg_tool_timeout(database, tmp_path):
    slow = tmp_path / "pg_dump"
    slow.write_text("#!/bin/sh\nexec sleep 60\n")
    slow.chmod(0o755)
    tools = bk.PgTools(_run_command, pg_dump=str(slow), timeout=1, timeout_bin="timeout")
    start = time.monotonic()
    with pytest.raises(bk.BackupError, match="did not finish within 1 s.*pg_tool_timeout"):
        tools.dump(str(tmp_path / "x.dump"), kong_db(database).libpq_env())
    assert time.monotonic() - start < 15
