"""kong_backup main() against a fake DB-less Admin API (requests.Session replaced), FACTS 3.1-3.4."""

from __future__ import annotations

import hashlib
import json
import errno
import os
import stat
from types import SimpleNamespace
from typing import ClassVar

import pytest
import requests
import yaml
from ansible_collections.kongops.upgrade.tests.unit.conftest import run_module
from ansible_collections.kongops.upgrade.plugins.modules import kong_backup

ADMIN = "http://127.0.0.1:8001"
TOKEN = "tok-SECRET-4711"

LOADED = """_format_version: "3.0"
services:
- id: 0b3e7a2c-0000-4000-8000-000000000001
  name: echo
  url: http://127.0.0.1:9000
routes:
- id: 0b3e7a2c-0000-4000-8000-000000000002
  name: echo-route
  paths: [/echo]
  service: 0b3e7a2c-0000-4000-8000-000000000001
consumers:
- id: 0b3e7a2c-0000-4000-8000-000000000003
  username: demo
keyauth_credentials:
- id: 0b3e7a2c-0000-4000-8000-000000000004
  consumer: 0b3e7a2c-0000-4000-8000-000000000003
  key: demo-key
plugins:
- id: 0b3e7a2c-0000-4000-8000-000000000005
  name: key-auth
  service: 0b3e7a2c-0000-4000-8000-000000000001
"""


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


class FakeKong:
    """A DB-less node: GET /, /status, GET/POST /config, paginated collections."""

    PATHS: ClassVar[dict] = {
        "services": "services",
        "routes": "routes",
        "consumers": "consumers",
        "plugins": "plugins",
        "key-auths": "keyauth_credentials",
        "upstreams": "upstreams",
        "certificates": "certificates",
        "snis": "snis",
        "ca_certificates": "ca_certificates",
    }

    def __init__(self, text=LOADED, version="3.9.3", database="off"):
        self.version, self.database = version, database
        self.calls = []
        self.load(text)
        self.hash_sequence = None

    def load(self, text):
        self.doc = yaml.safe_load(text)
        self.hash = md5(text)

    def export(self):
        """Kong regenerates the text (so GET /config is not the text that was loaded)."""
        doc = {"_format_version": "3.0", "_transform": False}
        doc.update({k: v for k, v in self.doc.items() if not k.startswith("_")})
        return yaml.safe_dump(doc, sort_keys=False)

    def response(self, code, body):
        resp = requests.Response()
        resp.status_code = code
        resp._content = b"" if body is None else json.dumps(body).encode()
        return resp

    def __call__(self, session, method, url, **kwargs):
        self.calls.append((method, url, dict(session.headers)))
        if not url.startswith(ADMIN):
            raise requests.ConnectionError(f"connection refused: {url}")
        path, _sep, query = url[len(ADMIN) :].partition("?")
        resp = self.route(method, path or "/", query, kwargs)
        resp.url = url
        return resp

    def route(self, method, path, query, kwargs):
        if path == "/":
            return self.response(
                200,
                {
                    "version": self.version,
                    "hostname": "kong-1",
                    "node_id": "n1",
                    "tagline": "Welcome to kong",
                    "configuration": {"database": self.database, "role": "traditional"},
                },
            )
        if path == "/status":
            current = self.hash_sequence.pop(0) if self.hash_sequence else self.hash
            return self.response(200, {"configuration_hash": current, "memory": {}, "server": {}})
        if path == "/config":
            if method == "GET":
                return self.response(200, {"config": self.export()})
            text = kwargs["data"].decode()
            if "check_hash=1" in query and md5(text) == self.hash:
                return self.response(304, None)
            self.load(text)
            return self.response(201, {})
        name = path.strip("/")
        if name in self.PATHS:
            return self.response(200, {"data": list(self.doc.get(self.PATHS[name]) or []), "next": None})
        return self.response(404, {"message": "Not found"})

    def posts(self):
        return [c for c in self.calls if c[0] == "POST"]


@pytest.fixture
def kong(monkeypatch):
    fake = FakeKong()

    def request(self, method, url, **kwargs):
        return fake(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)
    return fake


@pytest.fixture
def no_commands(monkeypatch):
    calls = []

    def run_command(self, args, **kwargs):
        calls.append(args)
        return 127, "", "not expected in this test"

    monkeypatch.setattr(kong_backup.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(kong_backup.AnsibleModule, "get_bin_path", lambda self, *a, **kw: None)
    return calls


def run(capsys, args):
    return run_module(kong_backup.main, capsys, args, {"admin_url": ADMIN, "admin_token": TOKEN})


def test_dbless_backup_keeps_the_loaded_text_and_writes_private_verified_files(kong, no_commands, tmp_path, capsys):
    loaded = tmp_path / "kong.yml"
    loaded.write_text(LOADED)
    dest = tmp_path / "backups"
    rc, r, out = run(capsys, {"dest": str(dest), "run_id": "r1", "declarative_config": str(loaded)})
    assert rc == 0 and r["changed"] is True, r
    run_dir = dest / "r1"
    assert r["backup_dir"] == str(run_dir) and r["manifest_path"] == str(run_dir / "manifest.json")
    assert sorted(os.listdir(run_dir)) == ["declarative.yml", "manifest.json"]
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700
    for name in os.listdir(run_dir):
        assert stat.S_IMODE(os.stat(run_dir / name).st_mode) == 0o600
    assert (run_dir / "declarative.yml").read_text() == LOADED
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest == r["manifest"]
    decl = manifest["declarative"]
    assert decl["method"] == "config" and decl["text_origin"] == "declarative_config"
    assert decl["hash_exact"] is True and decl["configuration_hash"] == md5(LOADED)
    assert decl["entity_counts"] == {"services": 1, "routes": 1, "consumers": 1, "keyauth_credentials": 1, "plugins": 1}
    assert manifest["entity_counts"] == decl["entity_counts"]
    assert manifest["files"] == [{"name": "declarative.yml", "kind": "declarative", "size": len(LOADED), "sha256": hashlib.sha256(LOADED.encode()).hexdigest()}]
    assert manifest["source"]["kong_version"] == "3.9.3" and manifest["source"]["database"] == "off"
    assert r["paths"] == {"declarative": str(run_dir / "declarative.yml")}
    assert TOKEN not in out and TOKEN not in (run_dir / "manifest.json").read_text()
    assert all(c[2].get("Kong-Admin-Token") == TOKEN for c in kong.calls)
    assert kong.posts() == [] and no_commands == []


def test_dbless_backup_without_the_loaded_text_stores_canonical_yaml(kong, no_commands, tmp_path, capsys):
    rc, r, _out = run(capsys, {"dest": str(tmp_path), "run_id": "r1"})
    assert rc == 0, r
    decl = r["manifest"]["declarative"]
    assert decl["hash_exact"] is False and decl["text_origin"] == "config_canonical"
    text = (tmp_path / "r1" / "declarative.yml").read_text()
    assert yaml.safe_load(text)["routes"][0]["paths"] == ["/echo"]
    assert decl["text_md5"] == md5(text)


def test_a_file_that_is_not_what_the_node_runs_is_not_backed_up(kong, no_commands, tmp_path, capsys):
    stale = tmp_path / "kong.yml"
    stale.write_text(LOADED + "# edited after start\n")
    rc, r, _out = run(capsys, {"dest": str(tmp_path / "b"), "run_id": "r1", "declarative_config": str(stale)})
    assert rc == 0 and r["manifest"]["declarative"]["text_origin"] == "config_canonical"
    assert "is not the configuration the node runs" in json.dumps(r["warnings"])


def test_check_mode_writes_nothing(kong, no_commands, tmp_path, capsys):
    dest = tmp_path / "backups"
    rc, r, _out = run(capsys, {"dest": str(dest), "run_id": "r1", "_ansible_check_mode": True})
    assert rc == 0 and r["changed"] is True
    assert (
        r["planned"] == [{"kind": "declarative", "path": str(dest / "r1" / "declarative.yml"), "size": r["planned"][0]["size"]}] and r["planned"][0]["size"] > 0
    )
    assert "manifest" not in r and not dest.exists()


def test_rerun_with_the_same_run_id_changes_nothing(kong, no_commands, tmp_path, capsys):
    assert run(capsys, {"dest": str(tmp_path), "run_id": "r1"})[0] == 0
    before = (tmp_path / "r1" / "manifest.json").read_text()
    kong.load(LOADED.replace("demo-key", "other-key"))
    rc, r, _out = run(capsys, {"dest": str(tmp_path), "run_id": "r1"})
    assert rc == 0 and r["changed"] is False
    assert (tmp_path / "r1" / "manifest.json").read_text() == before


def test_retention_keeps_the_newest_runs(kong, no_commands, tmp_path, capsys):
    for name in ("a", "b", "c"):
        assert run(capsys, {"dest": str(tmp_path), "run_id": name})[0] == 0
        manifest = tmp_path / name / "manifest.json"
        data = json.loads(manifest.read_text())
        data["created"] = {"a": "2020-01-01T00:00:00Z", "b": "2020-01-02T00:00:00Z", "c": "2020-01-03T00:00:00Z"}[name]
        os.chmod(manifest, 0o600)
        manifest.write_text(json.dumps(data))
    rc, r, _out = run(capsys, {"dest": str(tmp_path), "run_id": "d", "retention": 2, "_ansible_check_mode": True})
    assert rc == 0 and r["removed"] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "c"]
    rc, r, _out = run(capsys, {"dest": str(tmp_path), "run_id": "d", "retention": 2})
    assert rc == 0 and sorted(os.listdir(tmp_path)) == ["c", "d"]


def test_configuration_changing_during_the_backup_fails_and_leaves_nothing(kong, no_commands, tmp_path, capsys):
    kong.hash_sequence = [md5(LOADED), "f" * 32]
    rc, r, _out = run(capsys, {"dest": str(tmp_path), "run_id": "r1"})
    assert rc == 1 and "changed while it was being backed up" in r["msg"]
    assert os.listdir(tmp_path) == []


def test_unreachable_admin_api(kong, no_commands, tmp_path, capsys):
    rc, r, out = run(capsys, {"dest": str(tmp_path), "run_id": "r1", "admin_url": "http://127.0.0.1:1"})
    assert rc == 1 and r["msg"].startswith("Kong Admin API error: GET http://127.0.0.1:1/ failed")
    assert os.listdir(tmp_path) == [] and TOKEN not in out


def test_not_enough_free_space(kong, no_commands, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_bavail=1, f_frsize=4096))
    rc, r, _out = run(capsys, {"dest": str(tmp_path), "run_id": "r1"})
    assert rc == 1 and "not enough free space" in r["msg"] and r["available_bytes"] == 4096
    assert os.listdir(tmp_path) == []


def test_destination_filling_up_while_written_removes_the_partial_backup_and_says_so(kong, no_commands, tmp_path, capsys, monkeypatch):
    from ansible_collections.kongops.upgrade.plugins.module_utils import _backup_declarative

    def full(path, data, verify=None, mode=0o600):
        with open(path + ".partial", "wb") as fh:
            fh.write(data[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path + ".partial")

    monkeypatch.setattr(_backup_declarative, "write_private", full)
    rc, r, _out = run(capsys, {"dest": str(tmp_path), "run_id": "r1"})
    assert rc == 1, r
    assert r["msg"].startswith(f"the backup destination {tmp_path} filled up while the backup was written ([Errno 28]"), r["msg"]
    assert "the partial backup was removed" in r["msg"] and "Free space in" in r["msg"]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "args, message",
    [
        ({"run_id": "../escape"}, "run_id '../escape' is not usable"),
        ({"kinds": ["files"]}, "files is empty"),
        ({"retention": -1}, "retention must be 0"),
        ({"kinds": ["database"], "pg_from_kong_conf": True}, "pg_from_kong_conf needs kong_conf"),
    ],
)
def test_bad_parameters_are_named(kong, no_commands, tmp_path, capsys, args, message):
    rc, r, _out = run(capsys, dict({"dest": str(tmp_path / "b")}, **args))
    assert rc == 1 and message in r["msg"]
    assert not (tmp_path / "b").exists()


def test_dest_that_is_a_file(kong, no_commands, tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    rc, r, _out = run(capsys, {"dest": str(target)})
    assert rc == 1 and "is not a directory" in r["msg"]


def test_config_method_on_a_database_node_is_refused(kong, no_commands, tmp_path, capsys):
    kong.database = "postgres"
    rc, r, _out = run(capsys, {"dest": str(tmp_path), "declarative_method": "config"})
    assert rc == 1 and "needs a DB-less node" in r["msg"]


def test_files_backup_with_declarative(kong, no_commands, tmp_path, capsys):
    conf = tmp_path / "etc" / "kong.conf"
    conf.parent.mkdir()
    conf.write_text("database = off\n")
    rc, r, _out = run(capsys, {"dest": str(tmp_path / "b"), "run_id": "r1", "kinds": ["declarative", "files"], "files": [str(conf)]})
    assert rc == 0, r
    manifest = r["manifest"]
    assert manifest["kinds"] == ["declarative", "files"]
    assert [f["name"] for f in manifest["files"]] == ["declarative.yml", "files.tar.gz"]
    member = manifest["files_archive"]["members"][0]
    assert member["path"] == str(conf) and member["sha256"] == hashlib.sha256(b"database = off\n").hexdigest()


def test_admin_api_paging_on_a_database_node_without_the_kong_cli(kong, no_commands, tmp_path, capsys):
    kong.database = "postgres"
    rc, r, _out = run(capsys, {"dest": str(tmp_path), "run_id": "r1"})
    assert rc == 0, r
    decl = r["manifest"]["declarative"]
    assert decl["method"] == "admin_api" and decl["skipped_types"] == []
    doc = yaml.safe_load((tmp_path / "r1" / "declarative.yml").read_text())
    assert doc["_format_version"] == "3.0" and doc["_transform"] is False
    assert doc["keyauth_credentials"][0]["key"] == "demo-key"
    assert not any(c[1].endswith("/config") for c in kong.calls)
