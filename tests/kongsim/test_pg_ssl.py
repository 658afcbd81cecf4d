"""pg_ssl / pg_ssl_verify against a PostgreSQL that has TLS, as Kong's connector passes them.

Kong/kong kong/db/strategies/postgres/connector.lua hands pgmoon `ssl = pg_ssl`, `ssl_verify =
pg_ssl_verify` and `cafile = lua_ssl_trusted_certificate_combined` (:915-917 at 2.8.5, :966-968
at 3.4.2, :958-960 at 3.9.3), and nothing else about TLS: there is no `pg_ssl_required` setting at
2.8.5, 3.4.2, 3.7.1 or 3.9.3 (`git grep ssl_required` finds nothing in kong/), so pgmoon's
`ssl_required` stays unset and a server that declines TLS is used in plain text even with
pg_ssl = on. Defaults: pg_ssl = off, pg_ssl_verify = off (kong/templates/kong_defaults.lua:108-109
at 2.8.5, :130-131 at 3.9.3); lua_ssl_trusted_certificate = NONE at 2.8.5 (:168), `system` at
3.4.2 (:170) and 3.9.3 (:192).
"""

from __future__ import annotations

import os
import subprocess

import psycopg2
import pytest

from tests.services.postgres import PostgresServer

HINT = "\n  Run with --v (verbose) or --vv (debug) for more details\n"
DB = "kongsim_ssl"


@pytest.fixture(scope="module")
def tls_pg(tmp_path_factory):
    server = PostgresServer(str(tmp_path_factory.mktemp("pg-tls")), tls=True, require_tls=False).start()
    server.psql("ALTER SYSTEM SET log_connections = on")
    server.psql("SELECT pg_reload_conf()")
    info = server.create_database(DB)
    yield server, info
    server.destroy()


def _ssl_of_kong_sessions(server) -> list:
    """ssl flag of every session the `kong` application opened and still holds, or just closed."""
    return server.psql("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'kong%'").split()


def _conf(tmp_path, info, db=DB, **extra) -> str:
    lines = {
        "prefix": tmp_path / "prefix",
        "database": "postgres",
        "pg_host": info["host"],
        "pg_port": info["port"],
        "pg_user": info["user"],
        "pg_password": info["password"],
        "pg_database": db,
        **extra,
    }
    path = tmp_path / "kong.conf"
    path.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
    (tmp_path / "prefix").mkdir(exist_ok=True)
    return str(path)


def _kong(kong, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
    return subprocess.run([kong, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def _require_tls_for_kong(server, on: bool):
    """pg_hba: the kong role only over TLS (hostssl) or also in plain text."""
    hba = os.path.join(server.data_dir, "pg_hba.conf")
    text = server.psql("SHOW hba_file")
    assert text == hba
    lines = [ln for ln in open(hba, encoding="utf-8").read().splitlines() if "# kongsim-ssl" not in ln]
    if on:
        lines.insert(0, "hostnossl all kong 0.0.0.0/0 reject # kongsim-ssl")
    with open(hba, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    server.psql("SELECT pg_reload_conf()")


@pytest.mark.parametrize("version", ["2.8.5", "3.9.3"])
def test_pg_ssl_on_uses_tls_off_does_not(kong_install, tmp_path, tls_pg, version):
    """pg_ssl = on: TLS (pgmoon's SSLRequest); off (the default): plain text, which a server that
    refuses non-TLS logins (hostnossl ... reject) turns away with its own FATAL text."""
    server, info = tls_pg
    kong = kong_install(version)
    _require_tls_for_kong(server, True)
    try:
        res = _kong(kong, "migrations", "list", "-c", _conf(tmp_path, info))
        assert res.returncode == 1
        assert res.stderr.startswith("Error: [PostgreSQL error] failed to retrieve PostgreSQL server_version_num: FATAL: pg_hba.conf rejects connection"), (
            res.stderr
        )
        res = _kong(kong, "migrations", "list", "-c", _conf(tmp_path, info, pg_ssl="on"))
        assert res.returncode == 3, res.stderr
    finally:
        _require_tls_for_kong(server, False)


def test_pg_ssl_verify_checks_the_certificate_against_lua_ssl_trusted_certificate(kong_install, tmp_path, tls_pg):
    """pg_ssl_verify = on verifies the server certificate against lua_ssl_trusted_certificate
    (cafile, connector.lua:958-960 at 3.9.3): the self-signed certificate is refused with the
    default CA set and accepted once it is the trusted certificate."""
    server, info = tls_pg
    kong = kong_install("3.9.3")
    system = _conf(tmp_path, info, pg_ssl="on", pg_ssl_verify="on")
    res = _kong(kong, "migrations", "list", "-c", system)
    assert res.returncode == 1
    assert res.stderr.startswith("Error: [PostgreSQL error] failed to retrieve PostgreSQL server_version_num: ")
    assert "certificate verify failed" in res.stderr, res.stderr
    trusted = _conf(tmp_path, info, pg_ssl="on", pg_ssl_verify="on", lua_ssl_trusted_certificate=server.ca_file)
    res = _kong(kong, "migrations", "list", "-c", trusted)
    assert res.returncode == 3, res.stderr
    # pg_ssl_verify alone does nothing: pgmoon verifies only a TLS session
    res = _kong(kong, "migrations", "list", "-c", _conf(tmp_path, info, pg_ssl_verify="on"))
    assert res.returncode == 3, res.stderr


def test_pg_ssl_against_a_server_without_tls_falls_back_to_plain_text(kong_install, tmp_path, postgres):
    """Kong passes no `ssl_required` to pgmoon (connector.lua:958-960 at 3.9.3; no pg_ssl_required
    setting at any simulated tag): when the server declines TLS, pgmoon goes on in plain text, with
    and without pg_ssl_verify. `pg_ssl_required = on` is no Kong setting and changes nothing."""
    info = postgres.create_database("kongsim_nossl")
    kong = kong_install("3.9.3")
    for extra in ({"pg_ssl": "on"}, {"pg_ssl": "on", "pg_ssl_verify": "on"}, {"pg_ssl": "on", "pg_ssl_required": "on"}):
        conf = _conf(tmp_path, info, db="kongsim_nossl", **extra)
        res = _kong(kong, "migrations", "list", "-c", conf)
        assert res.returncode == 3, (extra, res.stderr)
    with psycopg2.connect(postgres.dsn("kongsim_nossl")) as conn, conn.cursor() as cur:
        cur.execute("SHOW ssl")
        assert cur.fetchone()[0] == "off"
