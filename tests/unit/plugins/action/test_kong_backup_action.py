"""kong_backup's action: the module's backup copied to the controller in the same task, checked
against the manifest's sha256, private from the first byte, never in check mode."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
from unittest import mock

import pytest

BODY = b"_format_version: '3.0'\nconsumers:\n- username: alice\n  keyauth_credentials:\n  - key: s3cret\n"


# the plugin runs in the controller (tests/unit/conftest.py controller_context)
pytestmark = pytest.mark.usefixtures("controller_context")


def module_result(node_file: str, sha: str | None = None) -> dict:
    return dict(
        changed=True,
        paths={"declarative": node_file},
        manifest={"files": [{"name": "declarative.yml", "kind": "declarative", "sha256": sha or hashlib.sha256(BODY).hexdigest()}]},
    )


def run(args: dict, module: dict, check=False, become=False, slurp=None):
    from ansible_collections.kongops.upgrade.plugins.action.kong_backup import ActionModule

    task = mock.MagicMock()
    task.args = args
    task.async_val = 0
    task.check_mode = check
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    connection.fetch_file.side_effect = shutil.copyfile
    play_context = mock.MagicMock()
    play_context.check_mode = check
    play_context.become = become
    action = ActionModule(task, connection, play_context, loader=None, templar=None, shared_loader_obj=None)
    calls = []

    def execute(module_name, module_args, task_vars):
        calls.append((module_name, dict(module_args)))
        if module_name.endswith("slurp"):
            return slurp
        return dict(module)

    with mock.patch.object(ActionModule, "_execute_module", side_effect=execute):
        return action.run(task_vars={}), calls, connection


@pytest.fixture
def node_file(tmp_path):
    path = tmp_path / "node" / "r1" / "declarative.yml"
    path.parent.mkdir(parents=True)
    path.write_bytes(BODY)
    return str(path)


def test_the_copy_is_private_verified_and_the_module_never_sees_the_option(tmp_path, node_file):
    dest = tmp_path / "ctl" / "c1" / "backups" / "r1-declarative.yml"
    result, calls, _connection = run({"dest": "/var/backups/kong", "controller_copy": str(dest)}, module_result(node_file))
    assert not result.get("failed"), result
    assert result["controller_copy"] == str(dest)
    assert dest.read_bytes() == BODY
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dest.parent).st_mode) == 0o700
    assert [call[0] for call in calls] == ["kongops.upgrade.kong_backup"]
    assert "controller_copy" not in calls[0][1]
    assert not [p for p in os.listdir(dest.parent) if p.endswith(".part")]


def test_an_existing_directory_is_made_private(tmp_path, node_file):
    backups = tmp_path / "ctl"
    backups.mkdir(mode=0o755)
    os.chmod(backups, 0o755)
    result, _calls, _connection = run({"dest": "/b", "controller_copy": str(backups / "r1-declarative.yml")}, module_result(node_file))
    assert not result.get("failed"), result
    assert stat.S_IMODE(os.stat(backups).st_mode) == 0o700


def test_a_copy_that_differs_from_the_manifest_fails_and_leaves_nothing(tmp_path, node_file):
    dest = tmp_path / "ctl" / "r1-declarative.yml"
    result, _calls, _connection = run({"dest": "/b", "controller_copy": str(dest)}, module_result(node_file, sha="0" * 64))
    assert result["failed"]
    assert node_file in result["msg"] and str(dest) in result["msg"] and "manifest" in result["msg"]
    assert not dest.parent.exists()  # checked before anything is written


def test_with_become_the_file_is_read_through_slurp(tmp_path, node_file):
    dest = tmp_path / "ctl" / "r1-declarative.yml"
    slurp = {"content": base64.b64encode(BODY).decode(), "encoding": "base64"}
    result, calls, connection = run({"dest": "/b", "controller_copy": str(dest)}, module_result(node_file), become=True, slurp=slurp)
    assert not result.get("failed"), result
    assert [call[0] for call in calls] == ["kongops.upgrade.kong_backup", "ansible.legacy.slurp"]
    assert calls[1][1] == {"src": node_file}
    connection.fetch_file.assert_not_called()
    assert dest.read_bytes() == BODY


@pytest.mark.parametrize(
    "check, module",
    [
        (True, None),  # check mode: the module wrote nothing
        (False, {"changed": True, "paths": {"database": "/b/r1/database.dump"}, "manifest": {"files": []}}),  # no declarative kind
        (False, {"failed": True, "msg": "Kong did not answer"}),
    ],
)
def test_nothing_is_copied_in_check_mode_without_a_declarative_backup_or_after_a_failure(tmp_path, node_file, check, module):
    dest = tmp_path / "ctl" / "r1-declarative.yml"
    result, calls, connection = run({"dest": "/b", "controller_copy": str(dest)}, module or module_result(node_file), check=check)
    assert "controller_copy" not in result
    assert len(calls) == 1
    connection.fetch_file.assert_not_called()
    assert not dest.parent.exists()


def test_without_the_option_it_is_the_module(node_file):
    result, calls, connection = run({"dest": "/b"}, module_result(node_file))
    assert result["paths"] == {"declarative": node_file} and "controller_copy" not in result
    assert len(calls) == 1
    connection.fetch_file.assert_not_called()


def test_a_second_run_of_the_same_backup_changes_nothing_and_a_loosened_copy_is_mended(tmp_path, node_file):
    dest = tmp_path / "ctl" / "r1-declarative.yml"
    intact = dict(module_result(node_file), changed=False)  # the module found the run's backup intact
    first, _calls, _connection = run({"dest": "/b", "controller_copy": str(dest)}, intact)
    assert first["changed"] is True
    again, _calls, _connection = run({"dest": "/b", "controller_copy": str(dest)}, intact)
    assert again["changed"] is False and again["controller_copy"] == str(dest)
    os.chmod(dest, 0o644)
    mended, _calls, _connection = run({"dest": "/b", "controller_copy": str(dest)}, intact)
    assert mended["changed"] is True and stat.S_IMODE(os.stat(dest).st_mode) == 0o600
