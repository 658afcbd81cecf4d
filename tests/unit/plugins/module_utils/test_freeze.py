"""_freeze.py helpers with fakes: nginx through a fake run_command, HAProxy through a fake runtime API.
The same classes run against real nginx and HAProxy in tests/integration/test_freeze.py."""

from __future__ import annotations

import json

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._freeze import (
    FreezeError,
    HaproxyEnforcer,
    LockFile,
    NginxEnforcer,
    _cli_escape,
    compare,
    describe_drift,
    lock_age,
    lock_record,
    refusal_body,
)

RECORD = lock_record("ci@runner", "upgrade $HOME 'now'", "run-7", 3600, "prod", now=1_700_000_000)


class FakeRun:
    def __init__(self, test_rc=0, reload_rc=0):
        self.test_rc, self.reload_rc = test_rc, reload_rc
        self.calls = []

    def __call__(self, cmd):
        self.calls.append(cmd)
        if cmd[-1] == "-t":
            return self.test_rc, "", "" if self.test_rc == 0 else 'nginx: [emerg] unexpected "}"'
        if cmd[-1] == "reload":
            return self.reload_rc, "", "" if self.reload_rc == 0 else "nginx: [error] invalid PID number"
        return 0, "", ""


def test_lock_record_times_and_age():
    assert RECORD["time"] == "2023-11-14T22:13:20Z" and RECORD["expiry"] == "2023-11-14T23:13:20Z"
    info = lock_age(RECORD, now=1_700_000_000 + 7380)
    assert (info["age"], info["age_seconds"], info["expired"]) == ("2h 03m", 7380, True)
    assert lock_age(RECORD, now=1_700_000_060)["expired"] is False


def test_lock_file_create_is_exclusive(tmp_path):
    lock = LockFile(str(tmp_path / "d" / "l.json"))
    assert lock.read() is None
    assert lock.create(RECORD) is True
    assert lock.create(dict(RECORD, run_id="other")) is False
    assert lock.read()["run_id"] == "run-7"
    lock.remove()
    lock.remove()
    assert lock.read() is None


def test_refusal_body_is_json_without_characters_nginx_or_haproxy_interpret():
    body = refusal_body(RECORD)
    parsed = json.loads(body)
    assert parsed["holder"] == "ci@runner" and parsed["run_id"] == "run-7"
    assert parsed["reason"] == "upgrade _HOME _now_" and "$" not in body and "'" not in body and "\\" not in body


def test_nginx_install_validates_then_reloads(tmp_path):
    path = tmp_path / "freeze.conf"
    path.write_text(NginxEnforcer.inactive())
    run = FakeRun()
    enf = NginxEnforcer(str(path), run, "/usr/sbin/nginx", "/etc/nginx/nginx.conf", "/var/lib/nginx")
    assert enf.state()["active"] is False
    enf.apply(RECORD)
    assert run.calls == [
        ["/usr/sbin/nginx", "-p", "/var/lib/nginx", "-c", "/etc/nginx/nginx.conf", "-t"],
        ["/usr/sbin/nginx", "-p", "/var/lib/nginx", "-c", "/etc/nginx/nginx.conf", "-s", "reload"],
    ]
    text = path.read_text()
    assert "if ($request_method ~ ^(POST|PUT|PATCH|DELETE)$)" in text and "return 423" in text
    assert enf.state() == {"type": "nginx", "active": True, "run_id": "run-7", "file": str(path)}
    enf.remove()
    assert path.read_text() == NginxEnforcer.inactive() and enf.state()["active"] is False


def test_nginx_failed_test_restores_previous_file_and_does_not_reload(tmp_path):
    path = tmp_path / "freeze.conf"
    path.write_text(NginxEnforcer.inactive())
    run = FakeRun(test_rc=1)
    enf = NginxEnforcer(str(path), run)
    with pytest.raises(FreezeError) as exc:
        enf.apply(RECORD)
    assert "previous file restored" in str(exc.value) and exc.value.context["rc"] == 1
    assert path.read_text() == NginxEnforcer.inactive()
    assert [c[-1] for c in run.calls] == ["-t"]


def test_nginx_failed_reload_restores_previous_file_too(tmp_path):
    """The same write-test-reload as lb_weight's nginx backend: a file nginx did not load is not left for
    the next reload to pick up."""
    path = tmp_path / "freeze.conf"
    path.write_text(NginxEnforcer.inactive())
    run = FakeRun(reload_rc=1)
    with pytest.raises(FreezeError) as exc:
        NginxEnforcer(str(path), run).apply(RECORD)
    assert "nginx reload failed (previous file restored)" in str(exc.value) and exc.value.context["rc"] == 1
    assert path.read_text() == NginxEnforcer.inactive()
    assert [c[-1] for c in run.calls] == ["-t", "reload"]


def test_nginx_failed_test_of_a_new_include_removes_it(tmp_path):
    path = tmp_path / "freeze.conf"
    with pytest.raises(FreezeError):
        NginxEnforcer(str(path), FakeRun(test_rc=1)).apply(RECORD)
    assert not path.exists() and list(tmp_path.iterdir()) == []


class FakeRuntime:
    """HAProxy's CLI for one map: answers like HAProxy 2.6 (empty on success)."""

    def __init__(self, known=True):
        self.known = known
        self.entries = {}
        self.commands = []

    def __call__(self, cmd):
        self.commands.append(cmd)
        verb, _sep, rest = cmd.partition(" map ")
        if not self.known:
            return "Unknown map identifier. Please use #<id> or <file>.\n"
        parts = rest.split(" ", 2)
        if verb == "show":
            return "".join(f"0x55ced1abbd40 {k} {v}\n" for k, v in self.entries.items()) + "\n"
        if verb in ("add", "set"):
            self.entries[parts[1]] = parts[2].replace("\\ ", " ").replace("\\;", ";")
            return "\n"
        if verb == "del":
            return "\n" if self.entries.pop(parts[1], None) else "Key not found.\n"
        return "Unknown command\n"


def test_haproxy_add_then_set_persist_and_remove(tmp_path, monkeypatch):
    map_file = tmp_path / "freeze.map"
    map_file.write_text('other {"keep":true}\n')
    fake = FakeRuntime()
    enf = HaproxyEnforcer("/run/haproxy/admin.sock", str(map_file), "prod")
    monkeypatch.setattr(enf, "command", fake)
    enf.apply(RECORD)
    assert fake.commands[-1].startswith("add map ") and "\\ " in fake.commands[-1]
    assert enf.state()["active"] is True and enf.state()["run_id"] == "run-7"
    enf.apply(dict(RECORD, reason="again"))
    assert fake.commands[-1].startswith("set map ")
    lines = map_file.read_text().splitlines()
    assert lines[0] == 'other {"keep":true}' and lines[1].startswith("prod {") and len(lines) == 2
    enf.remove()
    assert map_file.read_text() == 'other {"keep":true}\n' and enf.state()["active"] is False
    enf.remove()


def test_haproxy_unknown_map_names_the_missing_rule(tmp_path, monkeypatch):
    enf = HaproxyEnforcer("/run/haproxy/admin.sock", str(tmp_path / "x.map"), "prod")
    monkeypatch.setattr(enf, "command", FakeRuntime(known=False))
    with pytest.raises(FreezeError, match="does not know the map .*add the 423 rule"):
        enf.apply(RECORD)


def test_haproxy_socket_errors_are_freeze_errors(tmp_path):
    enf = HaproxyEnforcer(str(tmp_path / "missing.sock"), str(tmp_path / "x.map"), "prod", timeout=1)
    with pytest.raises(FreezeError, match="HAProxy runtime API failed for .show map.: socket .*missing.sock does not exist"):
        enf.state()


def test_cli_escape():
    assert _cli_escape('{"a":"b c;d\\e"}') == '{"a":"b\\ c\\;d\\\\e"}'


def test_compare_and_describe_drift():
    before = {"kind": "entities_sha256", "value": "a", "entities": {"services/1": ["d1", "users"], "routes/2": ["d2", ""], "consumers/3": ["d3", "alice"]}}
    after = {"kind": "entities_sha256", "value": "b", "entities": {"services/1": ["d1", "users"], "routes/2": ["dX", ""], "plugins/4": ["d4", "rate-limiting"]}}
    drift = compare(before, after)
    assert drift["drifted"] is True
    assert describe_drift(drift) == ("added plugin 'rate-limiting' (id 4); removed consumer 'alice' (id 3); changed route (id 2)")
    assert compare(before, before)["drifted"] is False
