"""Kong's pg_ssl options against a PostgreSQL that requires TLS: psycopg2 and pg_dump get them the
way Kong's settings mean them, and a plain-text connection is refused as it is for Kong."""

from __future__ import annotations

import os
import subprocess

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import KongDb, KongDbError

from tests.services.postgres import PostgresServer


@pytest.fixture(scope="module")
def tls_pg():
    server = PostgresServer(tls=True).start()
    try:
        db = server.create_database("kong_tls")
        yield server, db
    finally:
        server.destroy()


def kdb(db, **ssl):
    return KongDb(
        pg_host=db["host"], pg_port=db["port"], pg_user=db["user"], pg_password=db["password"], pg_database=db["database"], pg_connect_timeout=5, **ssl
    )


def ssl_in_use(conn) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        return bool(cur.fetchone()[0])


def test_pg_ssl_off_is_refused_like_kong(tls_pg):
    _, db = tls_pg
    with pytest.raises(KongDbError, match="no encryption|pg_hba.conf"):
        kdb(db).connect()


def test_pg_ssl_required_connects_over_tls(tls_pg):
    _, db = tls_pg
    conn = kdb(db, pg_ssl=True, pg_ssl_required=True).connect()
    try:
        assert ssl_in_use(conn)
    finally:
        conn.close()


def test_pg_ssl_verify_with_the_ca(tls_pg):
    server, db = tls_pg
    conn = kdb(db, pg_ssl=True, pg_ssl_verify=True, pg_ssl_ca=server.ca_path).connect()
    try:
        assert ssl_in_use(conn)
    finally:
        conn.close()


def test_pg_ssl_verify_with_another_ca_fails(tls_pg, tmp_path):
    _, db = tls_pg
    other = tmp_path / "other.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other", "-keyout", str(tmp_path / "k"), "-out", str(other)],
        check=True,
        capture_output=True,
    )
    with pytest.raises(KongDbError, match="certificate verify failed"):
        kdb(db, pg_ssl=True, pg_ssl_verify=True, pg_ssl_ca=str(other)).connect()


def test_pg_dump_gets_tls_through_its_environment(tls_pg, tmp_path):
    server, db = tls_pg
    env = kdb(db, pg_ssl=True, pg_ssl_verify=True, pg_ssl_ca=server.ca_path).libpq_env()
    proc = subprocess.run(["pg_dump", "--schema-only", "-f", str(tmp_path / "d.sql")], env=dict(os.environ, **env), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    plain = dict(os.environ, **kdb(db).libpq_env())
    proc = subprocess.run(["pg_dump", "--schema-only", "-f", str(tmp_path / "e.sql")], env=plain, capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "no encryption" in proc.stderr
