"""PostgreSQL requires TLS, and Kong's connections use it."""
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("kong_db")


def _psql(host, sql):
    return host.check_output("runuser -u postgres -- psql -d kong -tA -c %s", sql).strip()


def test_tls_on_and_plain_tcp_refused(host):
    assert _psql(host, "SHOW ssl") == "on"
    # pg_hba.conf refuses a connection without TLS before any password is asked.
    plain = host.run("psql 'host=127.0.0.1 dbname=kong user=kong sslmode=disable' -w -c 'select 1'")
    assert plain.rc != 0
    assert "no encryption" in plain.stderr, plain.stderr


def test_no_kong_connection_without_tls(host):
    assert _psql(host, "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                       "WHERE a.usename = 'kong' AND NOT s.ssl") == "0"


def test_schema_is_on_target(host):
    assert _psql(host, "SELECT count(*) FROM schema_meta WHERE pending IS NOT NULL AND pending <> '{}'") == "0"
