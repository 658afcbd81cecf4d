"""X's database on dc-pg-x is as X left it (3.6.1's migrations, every entity); Y's clone on dc-pg-y has
every migration of 3.7.1 executed, none pending, and the same entities."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))

from kongops_verify import RUNNER, missing_migrations, schema_meta  # noqa: E402

X_HOST, Y_HOST = RUNNER.get_hosts("kong_db")[0], RUNNER.get_hosts("kong_db_y")[0]
testinfra_hosts = [X_HOST, Y_HOST]
DATABASE = {X_HOST: "kong", Y_HOST: "kong_y"}
TARGET = "3.7.1"
COUNTS = {"services": 1, "routes": 1, "plugins": 1, "consumers": 51, "keyauth_credentials": 51}


def _database(host):
    return DATABASE[host.backend.get_hostname()]


def test_no_migration_pending(host):
    meta = schema_meta(host, _database(host))
    assert meta, "schema_meta is empty"
    assert {s: m["pending"] for s, m in meta.items() if m["pending"]} == {}


def test_x_database_never_migrated_and_y_fully(host):
    meta = schema_meta(host, _database(host))
    if host.backend.get_hostname() == X_HOST:
        assert "023_360_to_370" not in meta["core"]["executed"], meta["core"]
        assert "001_360_to_370" not in meta.get("ai-proxy", {}).get("executed", []), meta.get("ai-proxy")
    else:
        assert missing_migrations(meta, TARGET) == {}


@pytest.mark.parametrize("table", sorted(COUNTS))
def test_entities_on_both_databases(host, table):
    count = host.check_output("runuser -u postgres -- psql -d %s -tA -c %s", _database(host), "SELECT count(*) FROM %s" % table)
    assert int(count.strip()) == COUNTS[table], table
