"""kong_backup / kong_restore end to end: simulated Kong nodes (tests/kongsim) on real PostgreSQL,
the modules run through ansible-playbook, every outcome read back independently (psql as the
superuser, the node's Admin and Status API, the files on disk)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest
import requests

from tests.integration.ansible_run import run_playbook
from tests.integration.dbcluster import ADMIN_TOKEN, DBA_PASSWORD, KONG_TABLES, PG_PASSWORD, SECRETS, DbCluster
from tests.kongsim.kongsim_testlib import KongNode, install_kong, wait_until

VERSION = "3.9.3"
BACKUP = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: backup
      kongops.upgrade.kong_backup:
        admin_url: "{{ admin_url }}"
        admin_token: "{{ admin_token }}"
        dest: "{{ dest }}"
        run_id: "{{ run_id }}"
        kinds: "{{ kinds }}"
        declarative_method: "{{ method | default('auto') }}"
        files: "{{ files | default([]) }}"
        kong_bin: "{{ kong_bin }}"
        kong_conf: "{{ kong_conf }}"
        pg_host: "{{ pg_host | default(omit) }}"
        pg_port: "{{ pg_port | default(omit) }}"
        pg_user: "{{ pg_user | default(omit) }}"
        pg_password: "{{ pg_password | default(omit) }}"
        pg_database: "{{ pg_database | default(omit) }}"
"""

RESTORE = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: restore
      kongops.upgrade.kong_restore:
        src: "{{ src }}"
        kinds: "{{ kinds }}"
        admin_url: "{{ admin_url }}"
        admin_token: "{{ admin_token }}"
        kong_nodes: "{{ kong_nodes | default([]) }}"
        kong_bin: "{{ kong_bin }}"
        kong_conf: "{{ kong_conf }}"
        files_root: "{{ files_root | default(omit) }}"
        pg_host: "{{ pg_host | default(omit) }}"
        pg_port: "{{ pg_port | default(omit) }}"
        pg_user: "{{ pg_user | default(omit) }}"
        pg_password: "{{ pg_password | default(omit) }}"
        pg_database: "{{ pg_database | default(omit) }}"
        pg_admin_user: "{{ pg_admin_user | default(omit) }}"
        pg_admin_password: "{{ pg_admin_password | default(omit) }}"
        database_mode: "{{ database_mode | default('recreate') }}"
        force: "{{ force | default(false) }}"
"""


@pytest.fixture(scope="module")
def kong_bin(tmp_path_factory):
    return install_kong(VERSION, str(tmp_path_factory.mktemp("kong-install")))


def assert_no_secret(*texts):
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


@pytest.fixture
def cluster(postgres, kong_bin, tmp_path):
    made = DbCluster(postgres, kong_bin, tmp_path / "cluster")
    os.makedirs(made.base, exist_ok=True)
    yield made
    made.destroy()


def backup(vars_: dict, verbosity: int = 0):
    res = run_playbook(BACKUP, extra_vars=vars_, verbosity=verbosity)
    return res, res.result("backup")


def restore(vars_: dict, verbosity: int = 0, callback: str = "json", check: bool = False):
    res = run_playbook(RESTORE, extra_vars=vars_, verbosity=verbosity, callback=callback, check=check)
    return res, (res.result("restore") if callback == "json" else None)


def test_database_with_1000_entities_dropped_and_restored_identically(cluster, tmp_path):
    total = cluster.seed(services=250, consumers=200, upstreams=40)
    cluster.node.start()
    created = cluster.admin("POST", "/services", json={"name": "via-admin-api", "url": "http://127.0.0.1:9999"})
    assert created.status_code == 201, created.text
    cluster.admin("POST", f"/services/{created.json()['id']}/routes", json={"name": "via-admin", "paths": ["/va"]})
    before = cluster.probe()
    assert sum(before["counts"].values()) >= 1000 and total >= 1000
    assert before["counts"]["services"] == 251 and before["counts"]["targets"] == 80

    dest = tmp_path / "backups"
    res, result = backup(cluster.vars(dest=str(dest), run_id="before-upgrade", kinds=["database", "declarative"]), verbosity=3)
    assert res.rc == 0 and result["changed"] is True, res.stdout[-3000:]
    manifest_text = (dest / "before-upgrade" / "manifest.json").read_text()
    assert_no_secret(res.stdout, res.stderr, manifest_text)
    manifest = json.loads(manifest_text)
    assert {t: manifest["database"]["entity_counts"][t] for t in KONG_TABLES} == before["counts"]
    assert {t: manifest["declarative"]["entity_counts"][t] for t in KONG_TABLES} == before["counts"]
    assert manifest["declarative"]["method"] == "db_export" and manifest["source"]["kong_version"] == VERSION
    assert set(manifest["database"]["schema_meta"]) >= {"core", "key-auth"}
    for name in os.listdir(dest / "before-upgrade"):
        assert stat.S_IMODE(os.stat(dest / "before-upgrade" / name).st_mode) == 0o600
    for entry in manifest["files"]:
        data = (dest / "before-upgrade" / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]

    restore_vars = cluster.vars(
        src=str(dest / "before-upgrade"), kinds=["database"], kong_nodes=[cluster.node.admin_url], pg_admin_user=cluster.dba, pg_admin_password=DBA_PASSWORD
    )
    res, result = restore(restore_vars)
    assert res.rc != 0 and "Kong nodes still answer" in result["msg"]
    assert cluster.probe() == before

    cluster.node.stop()
    cluster.postgres.psql(f'DROP DATABASE "{cluster.name}" WITH (FORCE)')
    assert cluster.name not in cluster.databases()

    res = run_playbook(RESTORE, extra_vars=restore_vars, verbosity=3, callback="default")
    assert res.rc == 0 and "changed=1" in res.stdout, res.stdout[-3000:]
    assert_no_secret(res.stdout, res.stderr)
    assert cluster.probe() == before
    assert [d for d in cluster.databases() if "kongops_restore" in d] == []

    res, result = restore(restore_vars)
    assert res.rc == 0 and result["changed"] is False and result["database"]["changed"] is False

    cluster.node.start()
    sample = cluster.admin("GET", f"/services/{created.json()['id']}")
    assert sample.status_code == 200 and sample.json()["name"] == "via-admin-api"


def _run_command(argv, environ_update=None, **_kw):
    proc = subprocess.run(argv, env={**os.environ, **(environ_update or {})}, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_a_failed_swap_keeps_the_original_database(cluster, tmp_path, monkeypatch):
    """Issue 27 item 6: the rename of the verified copy into place fails; the original stays, with its data."""
    from ansible_collections.kongops.upgrade.plugins.module_utils import _backup as bk
    from ansible_collections.kongops.upgrade.plugins.module_utils import _backup_database as bk_db

    cluster.seed(services=5, consumers=3, upstreams=1)
    dest = tmp_path / "backups"
    res, _result = backup(cluster.vars(dest=str(dest), run_id="r1", kinds=["database"]))
    assert res.rc == 0, res.stdout[-3000:]
    cluster.cli("config", "db_import", os.path.join(cluster.base, "seed.yml"))
    cluster.postgres.psql("INSERT INTO consumers (id, username) VALUES (gen_random_uuid(), 'after-backup')", database=cluster.name)
    before = cluster.probe()
    manifest = json.loads((dest / "r1" / "manifest.json").read_text())

    real_q = bk_db._q

    def failing_q(db, template, *idents, args=None):
        if "RENAME" in template and idents and idents[0].endswith("_kongops_restore"):
            raise bk.KongDbError("simulated failure of the rename into place")
        return real_q(db, template, *idents, args=args)

    monkeypatch.setattr(bk_db, "_q", failing_q)
    params = {"pg_host": cluster.db["host"], "pg_port": cluster.db["port"], "pg_user": cluster.owner, "pg_password": PG_PASSWORD, "pg_database": cluster.name}
    admin = dict(params, pg_database="postgres", pg_user=cluster.dba, pg_password=DBA_PASSWORD)
    job = bk.DatabaseRestore(params, admin, bk.PgTools(_run_command), only_if_different=False)
    with pytest.raises(bk.KongDbError, match="simulated"):
        job.run(str(dest / "r1" / "database.dump"), manifest["database"], check_mode=False)
    assert cluster.probe() == before
    assert [d for d in cluster.databases() if "kongops" in d] == []


def test_restore_into_another_database_is_refused_unless_force(cluster, tmp_path):
    """Issue 27 item 6: the manifest records the cluster's identity; a restore elsewhere names `force`."""
    cluster.seed(services=5, consumers=3, upstreams=1)
    dest = tmp_path / "backups"
    res, result = backup(cluster.vars(dest=str(dest), run_id="r1", kinds=["database"]))
    assert res.rc == 0, res.stdout[-3000:]
    identity = result["manifest"]["cluster"]
    assert identity["database"]["name"] == cluster.name and identity["database"]["port"] == cluster.db["port"]
    assert identity["node_ids"] == []  # the node was not running: nothing answered GET /

    other = cluster.name + "_other"
    cluster.postgres.psql(f'CREATE DATABASE "{other}" OWNER {cluster.owner}')
    cluster.postgres.psql(f"CREATE TABLE precious (v int); INSERT INTO precious VALUES (42); ALTER TABLE precious OWNER TO {cluster.owner}", database=other)
    target = cluster.vars(src=str(dest / "r1"), kinds=["database"], pg_database=other, pg_admin_user=cluster.dba, pg_admin_password=DBA_PASSWORD)
    res, result = restore(target)
    assert res.rc != 0 and "force" in result["msg"] and other in result["msg"] and cluster.name in result["msg"]
    assert cluster.postgres.psql("SELECT v FROM precious", database=other) == "42"

    res, result = restore(dict(target, force=True))
    assert res.rc == 0 and result["changed"] is True, result.get("msg")
    assert "precious" not in cluster.postgres.psql("SELECT string_agg(relname, ',') FROM pg_class", database=other)
    assert [d for d in cluster.databases() if "kongops" in d] == []


def test_damaged_dump_is_refused_before_anything_is_touched(cluster, tmp_path):
    cluster.seed(services=20, consumers=10, upstreams=2)
    cluster.node.start()
    dest = tmp_path / "backups"
    res, result = backup(cluster.vars(dest=str(dest), run_id="r1", kinds=["database"]))
    assert res.rc == 0, res.stdout[-3000:]
    added = cluster.admin("POST", "/consumers", json={"username": "added-after-the-backup"})
    assert added.status_code == 201
    cluster.node.stop()
    before = cluster.probe()

    for damage in ("truncate", "flip"):
        copy = tmp_path / damage
        shutil.copytree(dest / "r1", copy)
        dump = copy / "database.dump"
        data = bytearray(dump.read_bytes())
        if damage == "truncate":
            data = data[: len(data) // 2]
        else:
            data[len(data) // 2] ^= 0x20
        os.chmod(dump, 0o600)
        dump.write_bytes(bytes(data))
        res, result = restore(
            cluster.vars(src=str(copy), kinds=["database"], kong_nodes=[cluster.node.admin_url], pg_admin_user=cluster.dba, pg_admin_password=DBA_PASSWORD)
        )
        assert res.rc != 0
        assert ("truncated" if damage == "truncate" else "fails its sha256 check") in result["msg"]
        assert cluster.probe() == before
        assert [d for d in cluster.databases() if "kongops_restore" in d] == []

    intact = cluster.vars(src=str(dest / "r1"), kinds=["database"], kong_nodes=[cluster.node.admin_url], database_mode="clean")
    res, result = restore(intact, check=True)
    assert res.rc == 0 and result["changed"] is True and cluster.probe() == before

    res, result = restore(intact)
    assert res.rc == 0 and result["changed"] is True and result["database"]["mode"] == "clean", res.stdout[-3000:]
    assert result["database"]["verified"] is True and result["database"]["extra_tables"] == []
    after = cluster.probe()
    assert after["counts"]["consumers"] == before["counts"]["consumers"] - 1
    assert "added-after-the-backup" not in cluster.postgres.psql("SELECT username FROM consumers", database=cluster.name)


def test_wrong_database_password_fails_clearly_and_writes_nothing(cluster, tmp_path):
    cluster.cli("migrations", "bootstrap")
    dest = tmp_path / "backups"
    res, result = backup(cluster.vars(dest=str(dest), run_id="r1", kinds=["database"], pg_password="not-the-password", admin_url="http://127.0.0.1:1"))
    assert res.rc != 0
    assert "password authentication failed" in result["msg"] and cluster.name in result["msg"]
    assert not (dest / "r1").exists() and [p for p in os.listdir(dest) if p.startswith(".")] == []


def test_declarative_backup_of_a_database_node_and_db_import_restore(cluster, tmp_path):
    cluster.seed(services=30, consumers=20, upstreams=3)
    cluster.node.start()
    before = cluster.probe()
    dest = tmp_path / "backups"
    res, exported = backup(cluster.vars(dest=str(dest), run_id="export", kinds=["declarative"], method="db_export"))
    assert res.rc == 0, res.stdout[-3000:]
    res, paged = backup(cluster.vars(dest=str(dest), run_id="paged", kinds=["declarative"], method="admin_api"))
    assert res.rc == 0, res.stdout[-3000:]
    exported_counts = exported["manifest"]["declarative"]["entity_counts"]
    paged_counts = paged["manifest"]["declarative"]["entity_counts"]
    assert {t: paged_counts[t] for t in KONG_TABLES} == {t: exported_counts[t] for t in KONG_TABLES} == before["counts"]

    routes = cluster.admin("GET", "/routes?size=5").json()["data"]
    for route in routes:
        assert cluster.admin("DELETE", f"/routes/{route['id']}").status_code == 204
    extra = cluster.admin("POST", "/consumers", json={"username": "newer-than-the-backup"}).json()
    assert cluster.probe()["counts"]["routes"] == before["counts"]["routes"] - 5

    vars_ = cluster.vars(src=str(dest / "export"), kinds=["declarative"])
    res, result = restore(vars_)
    assert res.rc == 0 and result["changed"] is True, res.stdout[-3000:]
    decl = result["declarative"]
    assert decl["method"] == "db_import" and decl["reload_required"] is True
    assert decl["extra_entities"] == [f"consumers/{extra['id']}"]
    after = cluster.probe()
    assert after["counts"]["routes"] == before["counts"]["routes"]
    assert after["counts"]["consumers"] == before["counts"]["consumers"] + 1
    for route in routes:
        row = cluster.postgres.psql(f"SELECT name FROM routes WHERE id = '{route['id']}'", database=cluster.name)
        assert row == route["name"]

    res, result = restore(vars_)
    assert res.rc == 0 and result["changed"] is False and result["declarative"]["differing_entities"] == 0


DBLESS = """_format_version: "3.0"
# hand-written, loaded at start: its md5 is the node's configuration_hash
services:
- name: echo
  url: http://127.0.0.1:9000
  routes:
  - name: echo-route
    paths: [/echo]
  plugins:
  - name: key-auth
consumers:
- username: demo
  keyauth_credentials:
  - key: demo-key
"""


def test_dbless_backup_change_restore_gives_the_original_hash_back(kong_bin, tmp_path):
    node = KongNode(kong_bin, str(tmp_path / "dbless"), name="dl1", declarative=DBLESS)
    node.start()
    try:

        def status():
            return requests.get(node.admin_url + "/status", timeout=5).json()

        original = status()["configuration_hash"]
        assert original == hashlib.md5(DBLESS.encode()).hexdigest()
        yml = os.path.join(str(tmp_path / "dbless"), "dl1.yml")
        vars_ = {"admin_url": node.admin_url, "admin_token": ADMIN_TOKEN, "kong_bin": kong_bin, "kong_conf": node.conf_path}
        dest = tmp_path / "backups"
        res, result = backup(dict(vars_, dest=str(dest), run_id="r1", kinds=["declarative", "files"], files=[node.conf_path, yml]), verbosity=3)
        assert res.rc == 0, res.stdout[-3000:]
        assert_no_secret(res.stdout, res.stderr)
        decl = result["manifest"]["declarative"]
        assert decl["hash_exact"] is True and decl["text_origin"] == "declarative_config"
        assert decl["entity_counts"] == {"services": 1, "routes": 1, "plugins": 1, "consumers": 1, "keyauth_credentials": 1}

        changed = DBLESS.replace("/echo]", "/moved]").replace("demo-key", "other-key")
        posted = requests.post(node.admin_url + "/config", data=changed, timeout=10, headers={"Content-Type": "application/yaml"})
        assert posted.status_code == 201
        assert status()["configuration_hash"] != original

        restore_vars = dict(vars_, src=str(dest / "r1"), kinds=["declarative"])
        res, result = restore(dict(restore_vars))
        assert res.rc == 0 and result["changed"] is True and result["declarative"]["status"] == 201
        wait_until(lambda: status()["configuration_hash"] == original, timeout=10, message="original hash")
        routes = requests.get(node.admin_url + "/routes", timeout=5).json()["data"]
        assert [r["paths"] for r in routes] == [["/echo"]]
        keys = requests.get(node.admin_url + "/key-auths", timeout=5).json()["data"]
        assert [k["key"] for k in keys] == ["demo-key"]

        res, result = restore(restore_vars)
        assert res.rc == 0 and result["changed"] is False and result["declarative"]["status"] == 304

        root = tmp_path / "files-restored"
        res, result = restore(dict(vars_, src=str(dest / "r1"), kinds=["files"], files_root=str(root)))
        assert res.rc == 0 and result["changed"] is True
        for path in (node.conf_path, yml):
            with open(path, "rb") as fh:
                assert (root / path.lstrip("/")).read_bytes() == fh.read()
    finally:
        node.stop()
