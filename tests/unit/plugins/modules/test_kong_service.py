"""kong_service main(): manager reported in result and facts, check mode, secrets off argv and output."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.kongops.upgrade.plugins.modules import kong_service
from tests.unit.plugins.module_utils.test_kong_service_manager import FakeHost

SECRET = "pg-pass-#1"


@pytest.fixture
def host(monkeypatch):
    fake = FakeHost()
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, argv, environ_update=None, **kw: fake(argv, environ_update))
    monkeypatch.setattr("os.path.isdir", lambda p: False if p == "/run/systemd/system" else True)
    return fake


def run(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        kong_service.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def test_start_through_cli_reports_manager_and_keeps_secret_off_argv(capsys, host):
    rc, res = run(
        capsys, {"state": "started", "kong_conf": "/etc/kong/kong.conf", "kong_bin": "kong", "kong_env": {"KONG_PG_PASSWORD": SECRET}, "ready_timeout": 5}
    )
    assert rc == 0 and res["changed"] and res["manager"] == "cli" and res["ready"] is True
    assert res["ansible_facts"]["kong_service"]["manager"] == "cli"
    assert ["kong", "start", "-c", "/etc/kong/kong.conf", "-p", "/usr/local/kong"] in res["commands"]
    assert SECRET not in json.dumps(res)
    assert all(SECRET not in " ".join(argv) for argv, _env in host.calls)
    assert any(env.get("KONG_PG_PASSWORD") == SECRET for _argv, env in host.calls)


def test_check_mode_runs_nothing(capsys, host):
    rc, res = run(capsys, {"state": "started", "kong_conf": "/etc/kong/kong.conf", "_ansible_check_mode": True, "_ansible_diff": True})
    assert res["changed"] is True and res["diff"] == {"before": {"running": False, "enabled": None}, "after": {"running": True, "enabled": None}}
    assert [a for a, _env in host.calls if a[1] == "start"] == []


def test_observe_only(capsys, host):
    host.cli_running = True
    rc, res = run(capsys, {})
    assert res["changed"] is False and res["running"] is True and res["commands"] == []


def test_start_without_conf_refused(capsys, host):
    rc, res = run(capsys, {"state": "started"})
    assert rc == 1 and "needs kong_conf" in res["msg"] and host.calls == []


def test_unready_node_fails_with_reason(capsys, host):
    rc, res = run(capsys, {"state": "started", "kong_conf": "/c", "ready_url": "http://127.0.0.1:9/status/ready", "ready_timeout": 1, "timeout": 1})
    assert rc == 1 and "did not answer ready within 1s" in res["msg"]


@pytest.fixture
def node_version(monkeypatch):
    """The version the running node's Admin API reports (GET /)."""
    seen = {"version": "3.8.1", "asked": 0}

    def fake(p):
        seen["asked"] += 1
        return seen["version"] if (p["admin_url"] and host_running["yes"]) else ""

    host_running = {"yes": True}
    monkeypatch.setattr(kong_service, "running_version", fake)
    return seen


def test_started_with_another_version_running_quits_and_starts_again(capsys, host, node_version):
    host.cli_running = True
    rc, res = run(
        capsys, {"state": "started", "kong_conf": "/c", "kong_bin": "kong", "version": "3.9.3", "admin_url": "http://127.0.0.1:8001", "ready_timeout": 0}
    )
    assert rc == 0 and res["changed"] is True and res["replaced_version"] == "3.8.1"
    verbs = [argv[1] for argv in host.argvs()]
    assert verbs == ["quit", "start"], res["commands"]


def test_started_with_the_same_version_running_changes_nothing(capsys, host, node_version):
    host.cli_running = True
    node_version["version"] = "3.9.3"
    rc, res = run(
        capsys, {"state": "started", "kong_conf": "/c", "kong_bin": "kong", "version": "3.9.3", "admin_url": "http://127.0.0.1:8001", "ready_timeout": 0}
    )
    assert rc == 0 and res["changed"] is False and "replaced_version" not in res and host.argvs() == []


def test_started_on_a_stopped_node_does_not_ask_its_version(capsys, host, node_version):
    rc, res = run(
        capsys, {"state": "started", "kong_conf": "/c", "kong_bin": "kong", "version": "3.9.3", "admin_url": "http://127.0.0.1:8001", "ready_timeout": 0}
    )
    assert rc == 0 and res["changed"] is True and [argv[1] for argv in host.argvs()] == ["start"]
    assert node_version["asked"] == 1  # only the closing report of what runs, not before the start


def test_enabled_without_a_unit_is_ignored_under_auto_and_refused_under_cli(capsys, host):
    rc, res = run(capsys, {"state": "started", "kong_conf": "/c", "enabled": True, "ready_timeout": 0})
    assert rc == 0 and res["enabled"] is None and res["manager"] == "cli"
    rc, res = run(capsys, {"state": "started", "kong_conf": "/c", "enabled": True, "manager": "cli", "ready_timeout": 0})
    assert rc == 1 and "enabled needs systemd" in res["msg"]
