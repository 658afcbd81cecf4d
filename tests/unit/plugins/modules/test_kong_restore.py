"""kong_restore main(): checksums before anything, DB-less restore with check_hash (fake Admin API),
refusal while Kong nodes answer, check and diff mode, no secrets in the output."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import requests
import yaml
from ansible_collections.kongops.upgrade.tests.unit.conftest import run_module
from ansible_collections.kongops.upgrade.plugins.modules import (
    kong_backup,
    kong_restore,
)

ADMIN = "http://127.0.0.1:8001"
OTHER_NODE = "http://127.0.0.1:8101"
TOKEN = "tok-SECRET-4711"
PG_PASSWORD = "pg-SECRET-0815"

ORIGINAL = """_format_version: "3.0"
services:
- id: 5d0c1d5e-0000-4000-8000-000000000001
  name: echo
  url: http://127.0.0.1:9000
routes:
- id: 5d0c1d5e-0000-4000-8000-000000000002
  name: echo-route
  paths: [/echo]
  service: 5d0c1d5e-0000-4000-8000-000000000001
"""
CHANGED = ORIGINAL.replace("/echo]", "/changed]")


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


class FakeKong:
    def __init__(self, text):
        self.calls, self.answering = [], {ADMIN}
        self.load(text)

    def load(self, text):
        self.doc, self.hash = yaml.safe_load(text), md5(text)

    def response(self, code, body):
        resp = requests.Response()
        resp.status_code = code
        resp._content = b"" if body is None else json.dumps(body).encode()
        return resp

    def __call__(self, session, method, url, **kwargs):
        self.calls.append((method, url))
        base = next((b for b in self.answering if url.startswith(b)), None)
        if base is None:
            raise requests.ConnectionError(f"connection refused: {url}")
        path, _sep, query = url[len(base) :].partition("?")
        resp = self.route(method, path or "/", query, kwargs)
        resp.url = url
        return resp

    role = "traditional"

    def route(self, method, path, query, kwargs):
        if path == "/":
            return self.response(200, {"version": "3.9.3", "configuration": {"database": "off", "role": self.role}})
        if path == "/status":
            return self.response(200, {"configuration_hash": self.hash})
        if path == "/config" and method == "GET":
            return self.response(200, {"config": yaml.safe_dump(self.doc)})
        if path == "/config" and method == "POST":
            text = kwargs["data"].decode()
            if "check_hash=1" in query and md5(text) == self.hash:
                return self.response(304, None)
            self.load(text)
            return self.response(201, {})
        name = path.strip("/")
        if name in ("services", "routes", "consumers", "plugins", "key-auths"):
            key = "keyauth_credentials" if name == "key-auths" else name
            return self.response(200, {"data": self.doc.get(key) or [], "next": None})
        return self.response(404, {"message": "Not found"})

    def posts(self):
        return [c for c in self.calls if c[0] == "POST"]


@pytest.fixture
def kong(monkeypatch):
    fake = FakeKong(ORIGINAL)

    def request(self, method, url, **kwargs):
        return fake(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)
    return fake


@pytest.fixture
def commands(monkeypatch):
    calls = []

    def run_command(self, args, **kwargs):
        calls.append(args)
        return 127, "", "no command expected in this test"

    for mod in (kong_backup, kong_restore):
        monkeypatch.setattr(mod.AnsibleModule, "run_command", run_command)
        monkeypatch.setattr(mod.AnsibleModule, "get_bin_path", lambda self, *a, **kw: None)
    return calls


def call(module, capsys, args):
    return run_module(module.main, capsys, args, {"admin_url": ADMIN, "admin_token": TOKEN})


@pytest.fixture
def backup(kong, commands, tmp_path, capsys):
    loaded = tmp_path / "kong.yml"
    loaded.write_text(ORIGINAL)
    rc, r, _out = call(kong_backup, capsys, {"dest": str(tmp_path / "b"), "run_id": "r1", "declarative_config": str(loaded)})
    assert rc == 0 and r["manifest"]["declarative"]["hash_exact"] is True
    kong.calls.clear()
    return r["backup_dir"]


def test_restore_brings_the_original_hash_back(kong, commands, backup, capsys):
    kong.load(CHANGED)
    rc, r, out = call(kong_restore, capsys, {"src": backup, "kinds": ["declarative"], "_ansible_diff": True})
    assert rc == 0 and r["changed"] is True, r
    assert kong.hash == md5(ORIGINAL) and r["declarative"]["status"] == 201
    assert r["declarative"]["configuration_hash_after"] == r["declarative"]["original_configuration_hash"]
    assert r["diff"] == {"before": {"declarative": {"configuration_hash": md5(CHANGED)}}, "after": {"declarative": {"configuration_hash": md5(ORIGINAL)}}}
    assert [f["name"] for f in r["verified_files"]] == ["declarative.yml"]
    assert TOKEN not in out


def test_restore_when_the_node_already_runs_the_backup_is_unchanged(kong, commands, backup, capsys):
    rc, r, _out = call(kong_restore, capsys, {"src": backup, "kinds": ["declarative"]})
    assert rc == 0 and r["changed"] is False and r["declarative"]["status"] == 304


def test_check_mode_predicts_without_loading(kong, commands, backup, capsys):
    kong.load(CHANGED)
    rc, r, _out = call(kong_restore, capsys, {"src": os.path.join(backup, "manifest.json"), "kinds": ["declarative"], "_ansible_check_mode": True})
    assert rc == 0 and r["changed"] is True and kong.posts() == [] and kong.hash == md5(CHANGED)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_backup_is_refused_before_anything_is_touched(kong, commands, backup, capsys, damage):
    path = os.path.join(backup, "declarative.yml")
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    if damage == "flip":
        data[10] ^= 0x01
    else:
        data = data[:-7]
    os.chmod(path, 0o600)
    with open(path, "wb") as fh:
        fh.write(bytes(data))
    kong.load(CHANGED)
    rc, r, _out = call(kong_restore, capsys, {"src": backup, "kinds": ["declarative"]})
    assert rc == 1 and ("sha256" in r["msg"] if damage == "flip" else "truncated" in r["msg"])
    assert kong.calls == [] and commands == [] and kong.hash == md5(CHANGED)


def test_missing_backup_and_missing_kind(kong, commands, backup, tmp_path, capsys):
    rc, r, _out = call(kong_restore, capsys, {"src": str(tmp_path / "nothing"), "kinds": ["declarative"]})
    assert rc == 1 and "manifest.json does not exist" in r["msg"]
    rc, r, _out = call(kong_restore, capsys, {"src": backup, "kinds": ["database"]})
    assert rc == 1 and "has no 'database' part" in r["msg"]
    assert kong.calls == []


def write_database_backup(tmp_path):
    """A run directory with a database part (the dump content does not matter before pg_restore)."""
    run_dir = tmp_path / "db-run"
    run_dir.mkdir()
    dump = b"PGDMP fake"
    (run_dir / "database.dump").write_bytes(dump)
    manifest = {
        "format": 1,
        "run_id": "db-run",
        "created": "2025-01-01T00:00:00Z",
        "kinds": ["database"],
        "files": [{"name": "database.dump", "kind": "database", "size": len(dump), "sha256": hashlib.sha256(dump).hexdigest()}],
        "database": {"file": "database.dump", "tables": {}, "schema_meta": {}},
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return str(run_dir)


def test_database_restore_is_refused_while_a_kong_node_answers(kong, commands, tmp_path, capsys):
    kong.answering.add(OTHER_NODE)
    rc, r, out = call(
        kong_restore,
        capsys,
        {"src": write_database_backup(tmp_path), "kinds": ["database"], "kong_nodes": ["http://127.0.0.1:1", OTHER_NODE], "pg_password": PG_PASSWORD},
    )
    assert rc == 1 and "Kong nodes still answer" in r["msg"] and r["answering_nodes"] == [OTHER_NODE]
    assert commands == []
    assert PG_PASSWORD not in out and TOKEN not in out


def test_database_restore_with_an_unreadable_dump(kong, commands, tmp_path, capsys):
    rc, r, out = call(
        kong_restore, capsys, {"src": write_database_backup(tmp_path), "kinds": ["database"], "kong_nodes": ["http://127.0.0.1:1"], "pg_password": PG_PASSWORD}
    )
    assert rc == 1 and "pg_restore --list" in r["msg"]
    assert commands == [["pg_restore", "--list", os.path.join(str(tmp_path), "db-run", "database.dump")]]
    assert PG_PASSWORD not in out


def test_restore_into_a_cluster_of_another_name_is_refused_unless_force(kong, commands, tmp_path, capsys):
    loaded = tmp_path / "kong.yml"
    loaded.write_text(ORIGINAL)
    rc, r, _out = call(kong_backup, capsys, {"dest": str(tmp_path / "b"), "run_id": "r1", "cluster": "prod-us", "declarative_config": str(loaded)})
    assert rc == 0 and r["manifest"]["cluster"]["name"] == "prod-us"
    assert r["manifest"]["cluster"]["database"] is None
    kong.load(CHANGED)
    kong.calls.clear()
    args = {"src": r["backup_dir"], "kinds": ["declarative"], "cluster": "prod-eu"}
    rc, r, _out = call(kong_restore, capsys, args)
    assert rc == 1 and "set force: true" in r["msg"] and "prod-us" in r["msg"] and "prod-eu" in r["msg"]
    assert kong.posts() == [] and kong.hash == md5(CHANGED)

    rc, r, _out = call(kong_restore, capsys, dict(args, cluster="prod-us"))
    assert rc == 0 and r["changed"] is True and r["cluster"]["mismatches"] == []
    kong.load(CHANGED)
    rc, r, _out = call(kong_restore, capsys, dict(args, force=True))
    assert rc == 0 and r["changed"] is True and kong.hash == md5(ORIGINAL)
    assert any("another cluster" in w["event"]["msg"] for w in r["warnings"]), r["warnings"]


@pytest.mark.parametrize("method", ["auto", "config"])
def test_declarative_restore_into_a_data_plane_is_refused(kong, commands, backup, capsys, method):
    """A data plane runs with database=off, but its control plane overwrites whatever is loaded into it."""
    kong.role = "data_plane"
    kong.load(CHANGED)
    rc, r, _out = call(kong_restore, capsys, {"src": backup, "kinds": ["declarative"], "declarative_method": method})
    assert rc == 1 and "is a data plane" in r["msg"] and "control plane" in r["msg"]
    assert kong.posts() == [] and kong.hash == md5(CHANGED)
