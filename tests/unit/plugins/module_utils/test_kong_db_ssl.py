"""Kong's pg_ssl settings mapped onto libpq's sslmode and environment."""

from __future__ import annotations

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import KongDb, KongDbConfigError, sslmode


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({}, ("disable", None)),
        ({"pg_ssl": True}, ("prefer", None)),
        ({"pg_ssl": True, "pg_ssl_required": True}, ("require", None)),
        ({"pg_ssl": True, "pg_ssl_ca": "/ca.pem"}, ("prefer", "/ca.pem")),
        ({"pg_ssl": True, "pg_ssl_verify": True, "pg_ssl_ca": "/ca.pem"}, ("verify-full", "/ca.pem")),
    ],
)
def test_sslmode(kw, expected):
    assert sslmode(**kw) == expected


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"pg_ssl_required": True}, "need pg_ssl"),
        ({"pg_ssl": True, "pg_ssl_verify": True}, "pg_ssl_verify needs pg_ssl_ca"),
    ],
)
def test_inconsistent_options_refused(kw, msg):
    with pytest.raises(KongDbConfigError, match=msg):
        KongDb(**kw)


def test_params_and_env_carry_tls_never_the_password_on_argv():
    db = KongDb(pg_password="pw", pg_ssl=True, pg_ssl_verify=True, pg_ssl_ca="/etc/kong/pg-ca.pem")
    assert db.params["sslmode"] == "verify-full" and db.params["sslrootcert"] == "/etc/kong/pg-ca.pem"
    env = db.libpq_env()
    assert env["PGSSLMODE"] == "verify-full" and env["PGSSLROOTCERT"] == "/etc/kong/pg-ca.pem"
    assert env["PGPASSWORD"] == "pw"


def test_from_params_reads_the_module_options():
    db = KongDb.from_params({"pg_host": "db", "pg_ssl": True, "pg_ssl_required": True, "pg_ssl_verify": False, "pg_ssl_ca": None})
    assert db.params["sslmode"] == "require" and "PGSSLROOTCERT" not in db.libpq_env()
