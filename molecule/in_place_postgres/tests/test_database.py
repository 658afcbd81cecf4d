"""schema_meta shows every migration of 3.7.1 executed and none pending; no entity was lost."""
import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("kong_db")

TARGET = "3.7.1"
CATALOG = os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "kongsim", "kongsim", "data",
                       "migrations-by-version.json")
COUNTS = {"services": 1, "routes": 1, "plugins": 1, "consumers": 51, "keyauth_credentials": 51}


def _psql(host, sql):
    return host.check_output("runuser -u postgres -- psql -d kong -tA -F '|' -c %s", sql)


def _schema_meta(host):
    rows = {}
    for line in _psql(host, "SELECT subsystem, last_executed, array_to_string(executed, ','), "
                            "coalesce(array_to_string(pending, ','), '') FROM schema_meta "
                            "WHERE key = 'schema_meta'").splitlines():
        subsystem, last, executed, pending = line.split("|")
        rows[subsystem] = {"last": last, "executed": executed.split(",") if executed else [],
                           "pending": pending.split(",") if pending else []}
    return rows


def test_postgresql_listens(host):
    assert host.socket("tcp://0.0.0.0:5432").is_listening


def test_no_migration_pending(host):
    meta = _schema_meta(host)
    assert meta, "schema_meta is empty"
    assert {s: m["pending"] for s, m in meta.items() if m["pending"]} == {}


def test_target_migrations_executed(host):
    meta = _schema_meta(host)
    assert "023_360_to_370" in meta["core"]["executed"]
    assert meta["core"]["last"] == "023_360_to_370"
    assert "001_360_to_370" in meta["ai-proxy"]["executed"]
    with open(CATALOG, encoding="utf-8") as fh:
        catalog = json.load(fh)["versions"][TARGET]["subsystems"]
    missing = {}
    for entry in catalog:
        names = [m["name"] for m in entry["migrations"]]
        lacking = [n for n in names if n not in meta.get(entry["subsystem"], {}).get("executed", [])]
        if lacking:
            missing[entry["subsystem"]] = lacking
    assert missing == {}


def test_entity_counts_survived(host):
    for table, count in COUNTS.items():
        assert int(_psql(host, "SELECT count(*) FROM %s" % table).strip()) == count, table
