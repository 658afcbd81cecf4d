"""X's database on dc-pg-x is as X left it (3.6.1's migrations, every entity); Y's clone on dc-pg-y has
every migration of 3.7.1 executed, none pending, and the same entities."""
import json
import os

import pytest
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("kong_db") + RUNNER.get_hosts("kong_db_y")
X_HOST, Y_HOST = RUNNER.get_hosts("kong_db")[0], RUNNER.get_hosts("kong_db_y")[0]

TARGET = "3.7.1"
CATALOG = os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "kongsim", "kongsim", "data",
                       "migrations-by-version.json")
COUNTS = {"services": 1, "routes": 1, "plugins": 1, "consumers": 51, "keyauth_credentials": 51}
DATABASE = {X_HOST: "kong", Y_HOST: "kong_y"}


def _name(host):
    return host.backend.get_hostname()


def _psql(host, sql):
    return host.check_output("runuser -u postgres -- psql -d %s -tA -F '|' -c %s", DATABASE[_name(host)], sql)


def _schema_meta(host):
    rows = {}
    for line in _psql(host, "SELECT subsystem, last_executed, array_to_string(executed, ','), "
                            "coalesce(array_to_string(pending, ','), '') FROM schema_meta "
                            "WHERE key = 'schema_meta'").splitlines():
        subsystem, last, executed, pending = line.split("|")
        rows[subsystem] = {"last": last, "executed": executed.split(",") if executed else [],
                           "pending": pending.split(",") if pending else []}
    return rows


def test_no_migration_pending(host):
    meta = _schema_meta(host)
    assert meta, "schema_meta is empty"
    assert {s: m["pending"] for s, m in meta.items() if m["pending"]} == {}


def test_x_database_never_migrated_and_y_fully(host):
    meta = _schema_meta(host)
    if _name(host) == X_HOST:
        assert "023_360_to_370" not in meta["core"]["executed"], meta["core"]
        assert "ai-proxy" not in meta or "001_360_to_370" not in meta["ai-proxy"]["executed"], meta.get("ai-proxy")
        return
    with open(CATALOG, encoding="utf-8") as fh:
        catalog = json.load(fh)["versions"][TARGET]["subsystems"]
    missing = {}
    for entry in catalog:
        names = [m["name"] for m in entry["migrations"]]
        lacking = [n for n in names if n not in meta.get(entry["subsystem"], {}).get("executed", [])]
        if lacking:
            missing[entry["subsystem"]] = lacking
    assert missing == {}


@pytest.mark.parametrize("table", sorted(COUNTS))
def test_entities_on_both_databases(host, table):
    assert int(_psql(host, "SELECT count(*) FROM %s" % table).strip()) == COUNTS[table], table
