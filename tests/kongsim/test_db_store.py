"""Entities in real PostgreSQL tables (store_pg) and `kong config db_export|db_import` (FACTS 4.1).

One database per purpose in this module, bootstrapped by the simulator's own migrations; every
write is checked by reading the real rows back with psql.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import psycopg2
import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from kongsim import cmd_config_db, cmd_migrations, store_pg
from kongsim import entities as E

DB = "kongsim_store"
DB2 = "kongsim_store_import"
HINT = "\n  Run with --v (verbose) or --vv (debug) for more details\n"
V = "3.9.3"
CERT = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIBfake\n-----END PRIVATE KEY-----\n"
ENTITY_TABLES = (
    "plugins",
    "keyauth_credentials",
    "targets",
    "upstreams",
    "routes",
    "services",
    "snis",
    "certificates",
    "ca_certificates",
    "consumers",
    "acls",
    "cluster_events",
    "tags",
)


def make_conf(info, name):
    return {
        "database": "postgres",
        "pg_host": info["host"],
        "pg_port": info["port"],
        "pg_user": info["user"],
        "pg_password": info["password"],
        "pg_database": name,
        "pg_timeout": 5000,
        "plugins": "bundled",
    }


def migrate(conf, *steps):
    for version, cmd in steps:
        out, err = io.StringIO(), io.StringIO()
        rc = cmd_migrations.run(conf, [cmd, "-q"], version, stdout=out, stderr=err)
        assert rc == 0, err.getvalue()


@pytest.fixture(scope="module")
def pg(postgres):
    info = postgres.create_database(DB)
    conf = make_conf(info, DB)
    migrate(conf, (V, "bootstrap"))
    return postgres, info, conf


@pytest.fixture
def conf(pg):
    postgres, _info, conf = pg
    postgres.psql("TRUNCATE " + ", ".join(ENTITY_TABLES) + " CASCADE", database=DB)
    return conf


@pytest.fixture
def store(conf):
    s = store_pg.PgStore(conf)
    yield s
    s.close()


def psql(pg, sql, database=DB):
    return pg[0].psql(sql, database=database)


def new(store, entity, data, version=V, **kw):
    return store.insert(entity, E.validate(entity, data, version, **kw))


def populate(store):
    cert = new(store, "certificates", {"cert": CERT, "key": KEY, "tags": ["tls"]})
    new(store, "snis", {"name": "example.test", "certificate": {"id": cert["id"]}})
    new(store, "ca_certificates", {"cert": CERT})
    svc = new(store, "services", {"name": "orders", "url": "https://orders.internal:8443/v1", "client_certificate": {"id": cert["id"]}, "tags": ["team-a"]})
    route = new(
        store,
        "routes",
        {"name": "orders-route", "paths": ["/orders"], "methods": ["GET", "POST"], "service": {"id": svc["id"]}, "headers": {"x-env": ["prod"]}},
    )
    alice = new(store, "consumers", {"username": "alice", "custom_id": "a-1"})
    new(store, "keyauth_credentials", {"consumer": {"id": alice["id"]}, "key": "alice-key"})
    new(store, "plugins", {"name": "key-auth", "route": {"id": route["id"]}}, enabled_plugins=("key-auth",))
    new(store, "plugins", {"name": "rate-limiting", "service": {"id": svc["id"]}, "config": {"minute": 10}}, enabled_plugins=("rate-limiting",))
    up = new(store, "upstreams", {"name": "orders-upstream", "algorithm": "least-connections"})
    new(store, "targets", {"upstream": {"id": up["id"]}, "target": "10.0.0.1:80", "weight": 50})
    new(store, "targets", {"upstream": {"id": up["id"]}, "target": "10.0.0.2:80", "weight": 150})
    return {"service": svc, "route": route, "consumer": alice, "upstream": up, "certificate": cert}


# --------------------------------------------------------------------------------------------
# store
# --------------------------------------------------------------------------------------------


def test_entities_land_in_real_columns(pg, store):
    made = populate(store)
    svc = made["service"]
    assert (
        psql(pg, f"SELECT name, protocol, host, port, path, array_to_string(tags, ',') FROM services WHERE id = '{svc['id']}'")
        == "orders|https|orders.internal|8443|/v1|team-a"
    )
    assert (
        psql(
            pg,
            "SELECT s.name, array_to_string(r.paths, ','), array_to_string(r.methods, ','), "
            "r.headers::text FROM routes r JOIN services s ON s.id = r.service_id",
        )
        == 'orders|/orders|GET,POST|{"x-env": ["prod"]}'
    )
    assert psql(pg, "SELECT c.username, k.key FROM keyauth_credentials k JOIN consumers c ON c.id = k.consumer_id") == "alice|alice-key"
    assert psql(pg, "SELECT name, config ->> 'minute' FROM plugins WHERE service_id IS NOT NULL") == "rate-limiting|10"
    assert psql(pg, "SELECT string_agg(target || '=' || weight, ',' ORDER BY target) FROM targets") == "10.0.0.1:80=50,10.0.0.2:80=150"
    assert psql(pg, "SELECT sn.name FROM snis sn JOIN certificates c ON c.id = sn.certificate_id") == "example.test"
    assert psql(pg, "SELECT count(*) FROM ca_certificates WHERE cert_digest IS NOT NULL") == "1"
    # internal columns Kong keeps: default workspace, cache keys, tags table (trigger)
    ws = psql(pg, "SELECT id FROM workspaces WHERE name = 'default'")
    assert psql(pg, "SELECT count(*) FROM services WHERE ws_id = '" + ws + "'") == "1"
    assert psql(pg, "SELECT cache_key FROM plugins WHERE name = 'key-auth'") == f"plugins:key-auth:{made['route']['id']}:::" + f":{ws}"
    assert psql(pg, "SELECT count(*) FROM targets WHERE cache_key LIKE 'targets:%::::" + ws + "'") == "2"
    assert psql(pg, "SELECT entity_name || '=' || array_to_string(tags, ',') FROM tags ORDER BY 1") == "certificates=tls\nservices=team-a"


def test_reads_return_admin_api_shape(store):
    made = populate(store)
    svc = store.get("services", "orders")
    assert svc == store.get("services", made["service"]["id"])
    assert svc["client_certificate"] == {"id": made["certificate"]["id"]}
    assert isinstance(svc["created_at"], int) and svc["tags"] == ["team-a"]
    assert "ws_id" not in svc and "cache_key" not in store.list("plugins")[0]
    route = store.get("routes", "orders-route")
    assert route["service"] == {"id": svc["id"]} and route["hosts"] is None
    assert store.get("consumers", "a-1")["username"] == "alice"
    target = store.list("targets")[0]
    assert target["upstream"] == {"id": made["upstream"]["id"]}
    assert store.get("services", "nope") is None
    ids = [s["id"] for s in store.list("plugins")]
    assert ids == sorted(ids)
    assert store.counts() == {
        **dict.fromkeys(store_pg.ORDER, 0),
        "certificates": 1,
        "snis": 1,
        "ca_certificates": 1,
        "services": 1,
        "routes": 1,
        "consumers": 1,
        "keyauth_credentials": 1,
        "plugins": 2,
        "upstreams": 1,
        "targets": 2,
    }
    loaded = store.load_all()
    assert set(loaded) == set(store_pg.ORDER)
    assert [r["name"] for r in loaded["routes"]] == ["orders-route"]


def test_update_and_delete(pg, store):
    made = populate(store)
    before = store.get("services", "orders")
    time.sleep(1.05)
    after = store.update("services", "orders", {"port": 9443, "tags": None})
    assert after["port"] == 9443 and after["tags"] is None and after["updated_at"] > before["updated_at"]
    assert psql(pg, "SELECT port FROM services WHERE name = 'orders'") == "9443"
    assert psql(pg, "SELECT count(*) FROM tags WHERE entity_name = 'services'") == "0"
    assert store.update("services", "missing", {"port": 1}) is None
    assert store.delete("consumers", made["consumer"]["id"]) is True
    assert psql(pg, "SELECT count(*) FROM keyauth_credentials") == "0"
    assert store.delete("consumers", made["consumer"]["id"]) is False


def test_database_refusals_are_typed(store):
    made = populate(store)
    with pytest.raises(store_pg.PgStoreError) as exc:
        new(store, "services", {"name": "orders", "host": "x"})
    assert exc.value.kind == "unique" and exc.value.fields == {"name": "orders"}
    with pytest.raises(store_pg.PgStoreError) as exc:
        new(store, "routes", {"paths": ["/x"], "service": {"id": "00000000-0000-4000-8000-000000000001"}})
    assert exc.value.kind == "foreign_key"
    assert exc.value.fields == {"service": "00000000-0000-4000-8000-000000000001"}
    with pytest.raises(store_pg.PgStoreError) as exc:
        store.delete("services", made["service"]["id"])
    assert exc.value.kind == "referenced" and exc.value.referenced_by == "routes"
    with pytest.raises(store_pg.PgStoreError) as exc:
        store.insert("services", {"name": "x", "host": "h", "no_such_field": 1})
    assert exc.value.kind == "invalid" and exc.value.fields == {"no_such_field": "unknown field"}
    assert store.get("services", "x") is None


def test_cluster_events_are_shared_through_the_database(pg, conf):
    writer, reader = store_pg.PgStore(conf), store_pg.PgStore(conf)
    try:
        since = reader.now()
        node = "7f0c8a52-4f55-4b0e-9a8e-2b1f6a0e7c31"
        writer.post_cluster_event("invalidations", "services:orders:::::", node_id=node)
        events = reader.cluster_events(since, channels=["invalidations"])
        assert [(e["channel"], e["data"], e["node_id"]) for e in events] == [("invalidations", "services:orders:::::", node)]
        assert reader.cluster_events(events[0]["at"]) == []
        assert psql(pg, "SELECT channel, data, expire_at > at, nbf IS NULL FROM cluster_events") == "invalidations|services:orders:::::|t|t"
    finally:
        writer.close()
        reader.close()


def test_store_follows_the_schema_of_the_migrations_that_ran(pg):
    postgres, info, _conf = pg
    postgres.create_database(DB2)
    conf = make_conf(info, DB2)
    migrate(conf, ("2.8.5", "bootstrap"))
    old = store_pg.PgStore(conf)
    try:
        alice = new(old, "consumers", {"username": "alice"}, version="2.8.5")
        assert "updated_at" not in alice
        with pytest.raises(store_pg.PgStoreError) as exc:
            old.insert("consumers", {"username": "bob", "updated_at": 1})
        assert exc.value.fields == {"updated_at": "unknown field"}
        migrate(conf, ("3.4.2", "up"))
        # blue-green: the 2.8.5 node keeps writing its own shape on the `up`-ed database
        bob = new(old, "consumers", {"username": "bob"}, version="2.8.5")
        assert bob["updated_at"] is None
        assert psql(pg, "SELECT count(*) FROM consumers WHERE updated_at IS NULL", database=DB2) == "2"
        fresh = store_pg.PgStore(conf)
        carol = new(fresh, "consumers", {"username": "carol"}, version="3.4.2")
        assert isinstance(carol["updated_at"], int)
        fresh.close()
    finally:
        old.close()


def test_connection_failure_is_worded_like_kong(conf):
    from tests.services.ports import free_port

    store = store_pg.PgStore(dict(conf, pg_port=free_port()))
    with pytest.raises(store_pg.PgError) as exc:
        store.list("services")
    assert str(exc.value) == ("[PostgreSQL error] failed to retrieve PostgreSQL server_version_num: connection refused")


def test_many_entities(pg, store):
    for i in range(300):
        c = new(store, "consumers", {"username": f"user-{i:03d}"})
        new(store, "keyauth_credentials", {"consumer": {"id": c["id"]}, "key": f"key-{i:03d}"})
    assert psql(pg, "SELECT count(*) FROM consumers") == "300"
    assert (
        psql(pg, "SELECT count(*) FROM keyauth_credentials k JOIN consumers c ON c.id = k.consumer_id WHERE substr(k.key, 5) = substr(c.username, 6)") == "300"
    )
    assert store.counts()["keyauth_credentials"] == 300


# --------------------------------------------------------------------------------------------
# kong config db_export / db_import
# --------------------------------------------------------------------------------------------


def config(conf, version, *args):
    out, err = io.StringIO(), io.StringIO()
    rc = cmd_config_db.run(conf, list(args), version, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_db_export_file_format(conf, store, tmp_path):
    made = populate(store)
    target = tmp_path / "kong.yml"
    assert config(conf, V, "db_export", str(target)) == (0, "", "")
    text = target.read_text()
    doc = yaml.safe_load(text)
    assert doc["_format_version"] == "3.0" and doc["_transform"] is False
    assert text.startswith("_format_version: '3.0'\n_transform: false\n")
    assert "workspaces" not in doc
    assert {k for k in doc if not k.startswith("_")} == {
        "services",
        "routes",
        "plugins",
        "consumers",
        "keyauth_credentials",
        "upstreams",
        "targets",
        "certificates",
        "snis",
        "ca_certificates",
        "parameters",
    }
    route = doc["routes"][0]
    assert route["service"] == made["service"]["id"] and route["hosts"] is None
    assert "  hosts: ~\n" in text
    assert all(isinstance(item, dict) and "routes" not in item for item in doc["services"])
    assert doc["keyauth_credentials"][0]["consumer"] == made["consumer"]["id"]
    assert {p["name"] for p in doc["plugins"]} == {"key-auth", "rate-limiting"}
    assert "expression" not in route  # column exists, but not a field of the exporting version's routes

    rc, out, err = config(conf, V, "db_export", str(target))
    assert (rc, out) == (1, "")
    assert err == f"Error: {target} already exists. Will not overwrite it.\n" + HINT
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert config(conf, V, "db_export")[0] == 1
        os.unlink(target)
        assert config(conf, V, "db_export") == (0, "", "")
        assert (tmp_path / "kong.yml").exists()
    finally:
        os.chdir(cwd)


def test_db_export_285_format(pg, tmp_path):
    postgres, info, _conf = pg
    postgres.create_database(DB2)
    conf = make_conf(info, DB2)
    migrate(conf, ("2.8.5", "bootstrap"))
    s = store_pg.PgStore(conf)
    new(s, "services", {"name": "legacy", "host": "legacy.internal"}, version="2.8.5")
    s.close()
    assert config(conf, "2.8.5", "db_export", str(tmp_path / "old.yml"))[0] == 0
    doc = yaml.safe_load((tmp_path / "old.yml").read_text())
    assert doc["_format_version"] == "2.1" and doc["_transform"] is False
    assert doc["services"][0]["name"] == "legacy"


def test_dbless_refuses_db_export_and_db_import(conf, tmp_path):
    off = dict(conf, database="off")
    assert config(off, V, "db_export", str(tmp_path / "x.yml")) == (1, "", "Error: 'kong config db_export' only works with a database.\n" + HINT)
    assert config(off, V, "db_import", str(tmp_path / "x.yml")) == (
        1,
        "",
        "Error: 'kong config db_import' only works with a database.\nWhen using database=off, reload "
        "your declarative configuration\nusing the /config endpoint.\n" + HINT,
    )
    assert not (tmp_path / "x.yml").exists()


@pytest.fixture
def second_db(pg):
    postgres, info, _conf = pg
    postgres.create_database(DB2)
    conf = make_conf(info, DB2)
    migrate(conf, (V, "bootstrap"))
    return conf


def test_db_export_import_round_trip(pg, conf, store, second_db, tmp_path):
    populate(store)
    dump = tmp_path / "dump.yml"
    assert config(conf, V, "db_export", str(dump))[0] == 0
    target = store_pg.PgStore(second_db)
    try:
        extra = new(target, "services", {"name": "only-in-target", "host": "t.internal"})
        assert config(second_db, V, "db_import", str(dump)) == (0, "parse successful, beginning import\nimport successful\n", "")
        src_counts = store.counts()
        dst_counts = target.counts()
        assert dst_counts == {**src_counts, "services": src_counts["services"] + 1}
        assert target.get("services", extra["id"]) is not None  # import upserts, it never deletes
        cluster_src = psql(pg, "SELECT value FROM parameters WHERE key = 'cluster_id'")
        assert psql(pg, "SELECT value FROM parameters WHERE key = 'cluster_id'", database=DB2) == cluster_src
        for entity in ("routes", "plugins", "keyauth_credentials", "targets", "snis", "certificates"):
            assert target.list(entity) == store.list(entity), entity
        assert psql(pg, "SELECT name, host, port FROM services WHERE name = 'orders'", database=DB2) == "orders|orders.internal|8443"
        # importing again changes nothing
        assert config(second_db, V, "db_import", str(dump))[0] == 0
        assert target.counts() == dst_counts
        # a conflicting row makes the whole import fail and leaves the database untouched
        target.delete("services", extra["id"])
        store.update("services", "orders", {"name": "renamed"})
        new(target, "services", {"name": "renamed", "host": "x"})
        dump2 = tmp_path / "dump2.yml"
        assert config(conf, V, "db_export", str(dump2))[0] == 0
        before = target.export()
        rc, out, err = config(second_db, V, "db_import", str(dump2))
        assert rc == 1 and out == "parse successful, beginning import\n"
        assert err.startswith("Error: Failed importing:\n") and err.endswith(HINT)
        assert target.export() == before
    finally:
        target.close()


def test_db_import_nested_file_with_name_references(pg, conf, tmp_path):
    path = tmp_path / "kong.yaml"
    path.write_text("""
_format_version: "3.0"
services:
- name: billing
  url: http://billing.internal:8080
  routes:
  - name: billing-route
    paths: [/billing]
    plugins:
    - name: key-auth
consumers:
- username: bob
  keyauth_credentials:
  - key: bob-key
plugins:
- name: rate-limiting
  service: billing
  config:
    minute: 5
""")
    assert config(conf, V, "db_import", str(path))[0] == 0
    assert psql(pg, "SELECT r.name FROM routes r JOIN services s ON s.id = r.service_id WHERE s.name = 'billing'") == "billing-route"
    assert psql(pg, "SELECT p.name FROM plugins p JOIN routes r ON r.id = p.route_id") == "key-auth"
    assert psql(pg, "SELECT p.config ->> 'minute' FROM plugins p JOIN services s ON s.id = p.service_id") == "5"
    assert psql(pg, "SELECT k.key FROM keyauth_credentials k JOIN consumers c ON c.id = k.consumer_id WHERE c.username = 'bob'") == "bob-key"


def test_db_import_errors(conf, tmp_path):
    rc, out, err = config(conf, V, "db_import")
    assert (rc, out) == (1, "")
    assert err == "Error: expected a declarative configuration file; see `kong config --help`\n" + HINT
    bad = tmp_path / "bad.yml"
    bad.write_text("_format_version: '3.0'\nservices:\n- name: nohost\n")
    rc, out, err = config(conf, V, "db_import", str(bad))
    assert (rc, out) == (1, "")
    assert err == ("Error: Failed parsing:\nin 'services':\n  - in entry 1 of 'services':\n    in 'host': required field missing\n" + HINT)
    broken = tmp_path / "broken.yml"
    broken.write_text("services: [\n")
    rc, _out, err = config(conf, V, "db_import", str(broken))
    assert rc == 1 and err.startswith("Error: Failed parsing:\nfailed parsing declarative configuration: ")
    txt = tmp_path / "kong.txt"
    txt.write_text("_format_version: '3.0'\n")
    rc, _out, err = config(conf, V, "db_import", str(txt))
    assert err == f"Error: Failed parsing:\nunknown file type: {txt}. (Accepted types: json, yaml)\n" + HINT
    old = tmp_path / "v3.yml"
    old.write_text("_format_version: '3.0'\n")
    rc, _out, err = config(conf, "2.8.5", "db_import", str(old))
    assert rc == 1 and "_format_version" in err


# --------------------------------------------------------------------------------------------
# through the installed binary
# --------------------------------------------------------------------------------------------


def test_binary_db_export_and_import(pg, conf, store, second_db, tmp_path, kong_install):
    populate(store)
    kong = kong_install(V)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_") and k != "PYTHONDONTWRITEBYTECODE"}

    def kong_conf(c, name):
        path = tmp_path / name
        path.write_text(
            f"prefix = {tmp_path / 'prefix'}\npg_host = {c['pg_host']}\npg_port = {c['pg_port']}\n"
            f"pg_user = {c['pg_user']}\npg_password = {c['pg_password']}\npg_database = {c['pg_database']}\n"
        )
        return str(path)

    dump = str(tmp_path / "dump.yml")
    proc = subprocess.run(
        [kong, "config", "db_export", dump, "-c", kong_conf(conf, "a.conf")], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    proc = subprocess.run(
        [kong, "config", "db_import", dump, "-c", kong_conf(second_db, "b.conf")], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert (proc.returncode, proc.stdout) == (0, "parse successful, beginning import\nimport successful\n"), proc.stderr
    assert psql(pg, "SELECT count(*) FROM routes", database=DB2) == "1"
    assert psql(pg, "SELECT string_agg(target, ',' ORDER BY target) FROM targets", database=DB2) == "10.0.0.1:80,10.0.0.2:80"


def test_superuser_view_matches_store(pg, store):
    """The same rows, read by an independent client."""
    populate(store)
    conn = psycopg2.connect(pg[0].dsn(DB))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id::text, name FROM services")
            assert {(s["id"], s["name"]) for s in store.list("services")} == set(cur.fetchall())
    finally:
        conn.close()
