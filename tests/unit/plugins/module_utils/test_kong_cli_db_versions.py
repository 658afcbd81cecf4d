"""_kong_cli, _kong_db and _versions directly."""

from __future__ import annotations

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import KongCli, KongCliError, kong_error_line
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import KongDb
from ansible_collections.kongops.upgrade.plugins.module_utils._versions import (
    KongVersion,
    KongVersionError,
    parse_version,
)


class Run:
    def __init__(self, rc=0, out="", err=""):
        self.rc, self.out, self.err, self.calls = rc, out, err, []

    def __call__(self, argv, environ_update=None):
        self.calls.append((argv, environ_update))
        return self.rc, self.out, self.err


def test_cli_argv_conf_prefix_and_env_as_strings():
    run = Run(out="3.9.3\n")
    cli = KongCli(run, "/usr/bin/kong", "/etc/kong/kong.conf", "/usr/local/kong", {"KONG_PG_PASSWORD": 12})
    assert cli.argv("migrations", "list") == ["/usr/bin/kong", "migrations", "list", "-c", "/etc/kong/kong.conf"]
    assert cli.argv("health", conf=False, prefix=True) == ["/usr/bin/kong", "health", "-p", "/usr/local/kong"]
    assert cli.version() == "3.9.3"
    assert run.calls[0] == (["/usr/bin/kong", "version"], {"KONG_PG_PASSWORD": "12"})


def test_cli_failure_carries_kongs_error_line():
    err = "Error: /usr/local/share/lua/5.1/kong/cmd/utils/migrations.lua:20: New migrations available\n\n  Run with --v\n"
    with pytest.raises(KongCliError) as exc:
        KongCli(Run(rc=1, err=err)).run("start")
    assert "New migrations available" in str(exc.value) and exc.value.context()["rc"] == 1
    assert kong_error_line("warn\nError: boom\n") == "boom" and kong_error_line("a\nlast\n") == "last"


def test_cli_missing_binary_names_kong_bin():
    with pytest.raises(KongCliError, match="set kong_bin"):
        KongCli(Run(rc=127, err="not found")).run("version", conf=False)


def test_cli_unexpected_version_output():
    with pytest.raises(KongCliError, match="unexpected `kong version` output"):
        KongCli(Run(out="nonsense\n")).version()


def test_db_describe_and_libpq_env_hold_the_password_only_in_pgpassword():
    db = KongDb(pg_host="db", pg_port=6432, pg_user="kong", pg_password="s3cr3t", pg_database="kdb", pg_schema="k")
    assert db.describe() == "postgresql://kong@db:6432/kdb" and "s3cr3t" not in db.describe()
    env = db.libpq_env(database="other")
    assert env["PGDATABASE"] == "other" and env["PGPASSWORD"] == "s3cr3t" and "search_path=k" in env["PGOPTIONS"]
    assert "PGPASSWORD" not in KongDb(pg_password=None).libpq_env()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3.9.3", "3.9.3"),
        ("Kong 3.4.2", "3.4.2"),
        ("Kong Enterprise 3.7.1.2", "3.7.1.2"),
        (" 2.8.5\n", "2.8.5"),
    ],
)
def test_versions_parse(text, expected):
    assert str(parse_version(text)) == expected


@pytest.mark.parametrize("text", ["", "3.9", "v3.9.3", "3.9.3-rc1", "Kong"])
def test_versions_refused(text):
    with pytest.raises(KongVersionError):
        parse_version(text)


def test_versions_order_and_series():
    assert KongVersion("2.8.5") < KongVersion("3.4.2") < KongVersion("3.10.0")
    assert KongVersion("3.7.1") < KongVersion("3.7.1.2") and KongVersion("3.4.2").series == "3.4"
    assert KongVersion("3.4.2").major == 3 and KongVersion("3.4.2").minor == 4


def test_kong_error_message_keeps_the_lines_after_error_and_drops_the_hint():
    from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import kong_error_message

    stderr = "Error: Failed parsing:\nin 'services': expected an array\n\n  Run with --v (verbose) or --vv (debug) for more details\n"
    assert kong_error_message(stderr) == "Failed parsing: in 'services': expected an array"
    assert kong_error_message("Error: \nstack traceback:\n  kong.lua:1\n") == "stack traceback: kong.lua:1"
    assert kong_error_message("nginx: [emerg] bind() failed\n") == "nginx: [emerg] bind() failed"
