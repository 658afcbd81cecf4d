"""The finish gate's second check (issue 27, item 1): before `kong migrations finish`, Kong's own
connections in pg_stat_activity (application_name 'kong', as Kong's PostgreSQL connector names them)
must all come from nodes that were checked to run the new version. Real PostgreSQL."""

from __future__ import annotations

import psycopg2
import pytest

from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import KongDb
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_migrations import (
    KongMigrationsError,
    check_db_sessions,
    kong_sessions,
    resolve_clients,
)


@pytest.fixture
def kong_database(postgres):
    db = postgres.create_database("gate_sessions", owner="gate", password="gate")
    yield db
    postgres.psql("DROP DATABASE IF EXISTS gate_sessions WITH (FORCE)")


def _connect(db: dict, application_name: str):
    return psycopg2.connect(
        host=db["host"], port=db["port"], user=db["user"], password=db["password"], dbname=db["database"], application_name=application_name
    )


def _kong_db(db: dict) -> KongDb:
    return KongDb(pg_host=db["host"], pg_port=db["port"], pg_user=db["user"], pg_password=db["password"], pg_database=db["database"])


def test_a_kong_session_from_an_unchecked_address_refuses_finish(kong_database):
    node = _connect(kong_database, "kong")
    other = _connect(kong_database, "psql")  # not Kong: never counted
    reader = _kong_db(kong_database)
    try:
        sessions = kong_sessions(reader)
        assert sessions == [("127.0.0.1", 1)]
        with pytest.raises(KongMigrationsError) as exc:
            check_db_sessions(sessions, resolve_clients(["192.0.2.7"]))
        assert "127.0.0.1 (1 session(s))" in str(exc.value) and "finish_gate_db_clients" in str(exc.value)
        assert exc.value.extra["finish_gate_db"]["passed"] is False
        verdict = check_db_sessions(sessions, resolve_clients(["127.0.0.1"]))
        assert verdict["passed"] and verdict["sessions"] == [{"client": "127.0.0.1", "count": 1}]
    finally:
        reader.close()
        node.close()
        other.close()
    reader = _kong_db(kong_database)
    try:
        assert kong_sessions(reader) == []
        assert check_db_sessions([], resolve_clients(["192.0.2.7"]))["passed"]
    finally:
        reader.close()


def test_loopback_entries_accept_unix_socket_sessions_and_names_resolve():
    assert check_db_sessions([(None, 2)], resolve_clients(["localhost"]))["passed"]
    with pytest.raises(KongMigrationsError):
        check_db_sessions([(None, 2)], resolve_clients(["kong-a"], resolver=lambda name: {"10.0.0.5"}))
    assert check_db_sessions([("10.0.0.5", 3)], resolve_clients(["kong-a"], resolver=lambda n: {"10.0.0.5"}))["passed"]
