"""schema_meta shows every migration of 3.7.1 executed and none pending; no entity was lost."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))

from kongops_verify import RUNNER, missing_migrations, schema_meta  # noqa: E402

testinfra_hosts = RUNNER.get_hosts("kong_db")

TARGET = "3.7.1"
COUNTS = {"services": 1, "routes": 1, "plugins": 1, "consumers": 51, "keyauth_credentials": 51}


def _psql(host, sql):
    return host.check_output("runuser -u postgres -- psql -d kong -tA -F '|' -c %s", sql)


def test_postgresql_listens(host):
    assert host.socket("tcp://0.0.0.0:5432").is_listening


def test_no_migration_pending(host):
    meta = schema_meta(host)
    assert meta, "schema_meta is empty"
    assert {s: m["pending"] for s, m in meta.items() if m["pending"]} == {}


def test_target_migrations_executed(host):
    meta = schema_meta(host)
    assert "023_360_to_370" in meta["core"]["executed"]
    assert meta["core"]["last"] == "023_360_to_370"
    assert "001_360_to_370" in meta["ai-proxy"]["executed"]
    assert missing_migrations(meta, TARGET) == {}


def test_entity_counts_survived(host):
    for table, count in COUNTS.items():
        assert int(_psql(host, "SELECT count(*) FROM %s" % table).strip()) == count, table
