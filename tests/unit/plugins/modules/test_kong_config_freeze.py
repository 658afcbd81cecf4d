"""kong_config_freeze main() against a stateful fake Admin API (requests.Session.request patched).

The fake pages collections two entities at a time with Kong's `next` links (FACTS.md 3), answers
405 to writes on a DB-less node (FACTS.md 3.5) and 404 on credential collections it does not
serve. Enforcement through real nginx/HAProxy is tested in tests/integration/test_freeze.py.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.parse
import uuid

import pytest
import requests
from ansible_collections.kongops.upgrade.tests.unit.conftest import run_module, warning_texts
from ansible_collections.kongops.upgrade.plugins.modules import kong_config_freeze

ADMIN = "http://127.0.0.1:8001"
TOKEN = "s3cret-admin-token"
PAGE = 2


class FakeKong:
    def __init__(self, dbless=False):
        self.dbless = dbless
        self.version = "3.6.1"
        self.node_id = "6a0e6ab4-3c3d-4cd0-a2c3-9c6d7ee5c3f1"
        self.config_hash = "5f2c6a0e8e2f4a8f9b0c1d2e3f405162"
        self.data = {
            "services": [],
            "routes": [],
            "consumers": [],
            "plugins": [],
            "upstreams": [],
            "certificates": [],
            "snis": [],
            "ca_certificates": [],
            "key-auths": [],
        }
        self.targets = {}
        self.calls = []
        self.fail_status = None

    def add(self, collection, **fields):
        entity = {"id": str(uuid.uuid4()), "created_at": 1700000000, "tags": None, **fields}
        self.data[collection].append(entity)
        return entity

    def writes(self):
        return [c for c in self.calls if c[0] != "GET"]

    def respond(self, code, body=None):
        resp = requests.Response()
        resp.status_code = code
        resp._content = b"" if body is None else json.dumps(body).encode()
        resp.headers["Content-Type"] = "application/json"
        return resp

    def __call__(self, session, method, url, **kwargs):
        assert session.headers.get("Kong-Admin-Token") == TOKEN
        parsed = urllib.parse.urlsplit(url)
        path, query = parsed.path, dict(urllib.parse.parse_qsl(parsed.query))
        self.calls.append((method, path))
        if self.fail_status:
            return self.respond(self.fail_status, {"message": "Unauthorized"})
        if method == "GET" and path == "/":
            return self.respond(
                200,
                {"version": self.version, "node_id": self.node_id, "configuration": {"database": "off" if self.dbless else "postgres", "role": "traditional"}},
            )
        if method == "GET" and path == "/status":
            body = {"memory": {}, "server": {}}
            if self.dbless:
                body["configuration_hash"] = self.config_hash
            else:
                body["database"] = {"reachable": True}
            return self.respond(200, body)
        parts = path.strip("/").split("/")
        if parts[0] == "upstreams" and len(parts) == 3 and parts[2] == "targets":
            return self.respond(200, {"data": self.targets.get(parts[1], []), "next": None})
        if parts[0] not in self.data:
            return self.respond(404, {"message": "Not found"})
        coll = self.data[parts[0]]
        if len(parts) == 1 and method == "GET":
            offset = int(query.get("offset", 0))
            page = coll[offset : offset + PAGE]
            nxt = f"/{parts[0]}?offset={offset + PAGE}" if offset + PAGE < len(coll) else None
            return self.respond(200, {"data": page, "next": nxt})
        if len(parts) == 2 and parts[0] == "consumers":
            found = [c for c in coll if parts[1] in (c["id"], c.get("username"))]
            if method == "GET":
                return self.respond(200, found[0]) if found else self.respond(404, {"message": "Not found"})
            if self.dbless:
                return self.respond(
                    405, {"code": 12, "name": "operation unsupported", "message": "cannot create or update 'consumers' entities when not using a database"}
                )
            if method == "PUT":
                body = kwargs["json"]
                if found:
                    found[0].update(body)
                    return self.respond(200, found[0])
                return self.respond(200, self.add("consumers", username=parts[1], **body))
            if method == "DELETE":
                for c in found:
                    coll.remove(c)
                return self.respond(204)
        return self.respond(405, {"message": "Method not allowed"})


@pytest.fixture
def kong(monkeypatch):
    fake = FakeKong()
    svc = fake.add("services", name="users", host="users.internal", port=8080)
    fake.add("routes", name="users-route", paths=["/users"], service={"id": svc["id"]})
    fake.add("routes", name="orders-route", paths=["/orders"], service={"id": svc["id"]})
    alice = fake.add("consumers", username="alice")
    fake.add("key-auths", key="alice-secret-key", consumer={"id": alice["id"]})
    fake.add("plugins", name="key-auth", config={"key_names": ["apikey"]})
    up = fake.add("upstreams", name="users-up")
    fake.targets[up["id"]] = [{"id": str(uuid.uuid4()), "target": "10.0.0.1:8080", "weight": 100, "upstream": {"id": up["id"]}}]

    def request(session, method, url, **kwargs):
        return fake(session, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)
    return fake


@pytest.fixture
def lock(tmp_path):
    return str(tmp_path / "locks" / "prod.json")


def run(capsys, args):
    return run_module(kong_config_freeze.main, capsys, args, {"admin_url": ADMIN, "admin_token": TOKEN, "cluster": "prod"})


def warnings(result):
    return warning_texts(result)


def text(path):
    with open(path) as fh:
        return fh.read()


def read_lock(path):
    with open(path) as fh:
        return json.load(fh)


def test_frozen_records_lock_with_fingerprint_of_every_page(kong, lock, capsys):
    rc, r, out = run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock, "holder": "ci@runner", "reason": "upgrade 3.8 -> 3.9"})
    assert rc == 0 and r["changed"] is True
    record = read_lock(lock)
    assert {k: record[k] for k in ("holder", "reason", "run_id", "cluster")} == {
        "holder": "ci@runner",
        "reason": "upgrade 3.8 -> 3.9",
        "run_id": "run-1",
        "cluster": "prod",
    }
    assert record["time"].endswith("Z") and record["expiry"] > record["time"]
    fp = record["fingerprint"]
    assert fp["kind"] == "entities_sha256" and len(fp["value"]) == 64
    types = sorted({k.split("/")[0] for k in fp["entities"]})
    assert types == ["consumers", "keyauth_credentials", "plugins", "routes", "services", "targets", "upstreams"]
    assert r["fingerprint"]["entity_count"] == 8 and r["fingerprint"]["by_type"]["routes"] == 2
    assert ("GET", "/routes") in kong.calls and kong.writes() == []
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(lock)).st_mode) == 0o700
    assert '"entities":' not in json.dumps(r["lock"]) and TOKEN not in out and "alice-secret-key" not in out


def test_frozen_again_with_same_run_id_changes_nothing(kong, lock, capsys):
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})
    before = text(lock)
    rc, r = run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})[:2]
    assert rc == 0 and r["changed"] is False and text(lock) == before
    assert r["drift"]["drifted"] is False


def test_lock_of_another_run_is_reported_loudly_and_refused(kong, lock, capsys):
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock, "holder": "ops@bastion", "reason": "night upgrade"})
    before = text(lock)
    rc, r = run(capsys, {"state": "frozen", "run_id": "run-2", "lock_path": lock})[:2]
    assert rc == 1 and r["failed"] is True
    assert "already frozen" in r["msg"] and "ops@bastion" in r["msg"] and "run_id run-1" in r["msg"]
    assert "night upgrade" in r["msg"] and " ago" in r["msg"]
    assert r["stale_lock"]["holder"] == "ops@bastion" and r["stale_lock"]["age_seconds"] >= 0
    assert text(lock) == before


def test_force_takes_over_a_stale_lock_with_a_warning(kong, lock, capsys):
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock, "holder": "ops@bastion"})
    record = read_lock(lock)
    record["time"], record["expiry"] = "2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"
    with open(lock, "w") as fh:
        json.dump(record, fh)
    rc, r = run(capsys, {"state": "frozen", "run_id": "run-2", "lock_path": lock, "force": True})[:2]
    assert rc == 0 and r["changed"] is True and read_lock(lock)["run_id"] == "run-2"
    assert r["stale_lock"]["expired"] is True
    assert any("Taking over" in w and "ops@bastion" in w and "most likely died" in w for w in warnings(r))


def test_check_mode_predicts_without_writing(kong, lock, capsys):
    rc, r = run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock, "marker": True, "_ansible_check_mode": True, "_ansible_diff": True})[:2]
    assert rc == 0 and r["changed"] is True and not os.path.exists(lock)
    assert kong.writes() == []
    assert r["lock"]["run_id"] == "run-1" and r["fingerprint"]["entity_count"] == 8
    assert r["diff"]["before"]["frozen"] is False and r["diff"]["after"]["frozen"] is True
    assert r["diff"]["after"]["marker_present"] is True


def test_verified_passes_when_nothing_changed(kong, lock, capsys):
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})
    rc, r = run(capsys, {"state": "verified", "run_id": "run-1", "lock_path": lock})[:2]
    assert rc == 0 and r["changed"] is False and r["drift"]["drifted"] is False


def test_verified_names_added_removed_and_changed_entities(kong, lock, capsys):
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})
    sneaky = kong.add("services", name="sneaky", host="evil.internal")
    gone = kong.data["routes"].pop(1)
    kong.data["plugins"][0]["config"] = {"key_names": ["x-api-key"]}
    rc, r = run(capsys, {"state": "verified", "run_id": "run-1", "lock_path": lock})[:2]
    assert rc == 1 and "drifted while frozen by run run-1" in r["msg"]
    assert f"added service 'sneaky' (id {sneaky['id']})" in r["msg"]
    assert f"removed route 'orders-route' (id {gone['id']})" in r["msg"]
    assert "changed plugin 'key-auth'" in r["msg"]
    drift = r["drift"]
    assert [(d["type"], d["name"]) for d in drift["added"]] == [("services", "sneaky")]
    assert [(d["type"], d["id"]) for d in drift["removed"]] == [("routes", gone["id"])]
    assert [d["type"] for d in drift["changed"]] == ["plugins"]


def test_verified_without_lock_or_with_another_run(kong, lock, capsys):
    rc, r = run(capsys, {"state": "verified", "lock_path": lock})[:2]
    assert rc == 1 and "is not frozen: no lock at" in r["msg"]
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})
    rc, r = run(capsys, {"state": "verified", "run_id": "run-9", "lock_path": lock})[:2]
    assert rc == 1 and "belongs to another run" in r["msg"] and "run_id run-1" in r["msg"]


def test_thawed_refuses_on_drift_then_force_releases(kong, lock, capsys):
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})
    kong.add("consumers", username="mallory")
    rc, r = run(capsys, {"state": "thawed", "run_id": "run-1", "lock_path": lock})[:2]
    assert rc == 1 and "Not thawing" in r["msg"] and "added consumer 'mallory'" in r["msg"]
    assert os.path.exists(lock)
    rc, r = run(capsys, {"state": "thawed", "run_id": "run-1", "lock_path": lock, "force": True})[:2]
    assert rc == 0 and r["changed"] is True and not os.path.exists(lock)
    assert r["verification"] == "skipped (force=true)"


def test_thawed_is_idempotent(kong, lock, capsys):
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})
    rc, r = run(capsys, {"state": "thawed", "run_id": "run-1", "lock_path": lock, "_ansible_diff": True})[:2]
    assert rc == 0 and r["changed"] is True and not os.path.exists(lock)
    assert r["diff"]["before"]["frozen"] is True and r["diff"]["after"]["frozen"] is False
    rc, r = run(capsys, {"state": "thawed", "run_id": "run-1", "lock_path": lock})[:2]
    assert rc == 0 and r["changed"] is False


def test_thaw_in_check_mode_keeps_the_lock(kong, lock, capsys):
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})
    rc, r = run(capsys, {"state": "thawed", "lock_path": lock, "_ansible_check_mode": True})[:2]
    assert rc == 0 and r["changed"] is True and os.path.exists(lock)


def test_marker_is_written_excluded_from_fingerprint_and_removed(kong, lock, capsys):
    rc, r = run(capsys, {"state": "frozen", "run_id": "run/42", "lock_path": lock, "marker": True, "reason": "upgrade"})[:2]
    assert rc == 0
    marker = next(c for c in kong.data["consumers"] if c["username"] == "kongops-freeze-prod")
    assert marker["tags"] == ["kongops-freeze", "kongops-run-run_42"]
    assert json.loads(marker["custom_id"])["run_id"] == "run/42"
    assert r["marker"]["username"] == "kongops-freeze-prod"
    assert not any(marker["id"] in key for key in read_lock(lock)["fingerprint"]["entities"])
    rc, r = run(capsys, {"state": "verified", "lock_path": lock})[:2]
    assert rc == 0 and r["drift"]["drifted"] is False
    rc, r = run(capsys, {"state": "thawed", "lock_path": lock})[:2]
    assert rc == 0 and not any(c["username"] == "kongops-freeze-prod" for c in kong.data["consumers"])


def test_marker_restored_when_missing_on_refreeze(kong, lock, capsys):
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock, "marker": True})
    kong.data["consumers"] = [c for c in kong.data["consumers"] if c["username"] != "kongops-freeze-prod"]
    rc, r = run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock, "marker": True})[:2]
    assert rc == 0 and r["changed"] is True and r["restored"] == ["marker"]
    assert any(c["username"] == "kongops-freeze-prod" for c in kong.data["consumers"])


def test_dbless_uses_configuration_hash_and_skips_marker(kong, lock, capsys):
    kong.dbless = True
    rc, r = run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock, "marker": True})[:2]
    assert rc == 0 and r["fingerprint"]["kind"] == "configuration_hash"
    assert r["fingerprint"]["value"] == kong.config_hash and kong.writes() == []
    assert any("marker=true skipped" in w and "405" in w for w in warnings(r))
    kong.config_hash = "0" * 31 + "1"
    rc, r = run(capsys, {"state": "verified", "lock_path": lock})[:2]
    assert rc == 1 and "configuration_hash changed" in r["msg"] and "no entity differs" in r["msg"]


def test_admin_api_error_fails_with_status_and_nothing_written(kong, lock, capsys):
    kong.fail_status = 401
    rc, r, out = run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})
    assert rc == 1 and r["status_code"] == 401 and "admin_token" in r["msg"]
    assert not os.path.exists(lock) and TOKEN not in out


@pytest.mark.parametrize(
    "args,needle",
    [
        ({"state": "frozen"}, "state is frozen but all of the following are missing: run_id"),
        ({"state": "frozen", "run_id": "r", "enforce": "nginx"}, "missing: enforce_file"),
        ({"state": "frozen", "run_id": "r", "enforce": "haproxy", "haproxy_socket": "/x"}, "missing: haproxy_map"),
        ({"state": "frozen", "run_id": "r", "lock_ttl": 0}, "lock_ttl must be a positive"),
    ],
)
def test_bad_input_fails_before_anything_happens(kong, lock, capsys, args, needle):
    rc, r = run(capsys, dict(args, lock_path=lock))[:2]
    assert rc == 1 and needle in r["msg"] and not os.path.exists(lock) and kong.calls == []


def test_unreadable_lock_file_is_reported(kong, lock, capsys):
    os.makedirs(os.path.dirname(lock))
    with open(lock, "w") as fh:
        fh.write("{not json")
    rc, r = run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})[:2]
    assert rc == 1 and "cannot read the lock file" in r["msg"]


def test_after_an_upgrade_new_default_fields_are_not_drift_but_real_changes_are(kong, lock, capsys):
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})
    kong.version = "3.7.1"
    kong.data["plugins"][0]["config"]["realm"] = None
    for route in kong.data["routes"]:
        route["updated_at"] = 1800000000
    rc, r = run(capsys, {"state": "verified", "lock_path": lock})[:2]
    assert rc == 0 and r["drift"]["drifted"] is False
    assert r["drift"]["new_fields"] == {"plugins:key-auth": ["config.realm"]}
    assert (r["drift"]["version_before"], r["drift"]["version_after"]) == ("3.6.1", "3.7.1")
    kong.data["plugins"][0]["config"]["key_names"] = ["x-api-key"]
    rc, r = run(capsys, {"state": "verified", "lock_path": lock})[:2]
    assert rc == 1 and "changed plugin 'key-auth'" in r["msg"]


def test_kong_3_rewrite_of_2x_regex_paths_is_not_drift_but_another_path_is(kong, lock, capsys):
    """Kong's 3.0 migration rewrites a 2.x regex path to `~<path>` (Kong/kong 3.4.2
    kong/db/migrations/core/016_280_to_300.lua): frozen on 2.8.5, verified on 3.4.2, that is the same route."""
    kong.version = "2.8.5"
    route = kong.data["routes"][0]
    route["paths"] = ["/users/\\d+", "/plain"]
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})
    kong.version = "3.4.2"
    route["paths"] = ["~/users/\\d+", "/plain"]
    rc, r = run(capsys, {"state": "verified", "lock_path": lock})[:2]
    assert rc == 0 and r["drift"]["drifted"] is False, r.get("msg")
    route["paths"] = ["~/users/\\d+", "/plain2"]
    rc, r = run(capsys, {"state": "verified", "lock_path": lock})[:2]
    assert rc == 1 and "changed route" in r["msg"], r["msg"]


def test_dbless_hash_of_another_node_is_reported_not_compared(kong, lock, capsys):
    kong.dbless = True
    run(capsys, {"state": "frozen", "run_id": "run-1", "lock_path": lock})
    kong.node_id, kong.config_hash = "0b1e7f5c-9a43-4d58-8f1e-8f0d3c2b1a00", "f" * 32
    rc, r = run(capsys, {"state": "verified", "lock_path": lock})[:2]
    assert rc == 0 and r["drift"]["value_compared"] is False and r["drift"]["value_after"] == "f" * 32
    assert "not comparable" in r["compared"]
    kong.add("services", name="late", host="late.internal")
    rc, r = run(capsys, {"state": "verified", "lock_path": lock})[:2]
    assert rc == 1 and "added service 'late'" in r["msg"]
