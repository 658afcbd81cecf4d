"""kong_conf main() with a declarative configuration: installed 0640 when its content differs, left alone
when equal, checked against the controller's sha256, compared only in check mode, never shown."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from ansible_collections.kongops.upgrade.tests.unit.conftest import run_module
from ansible_collections.kongops.upgrade.plugins.modules import kong_conf

CONFIG = b'_format_version: "3.0"\nconsumers:\n- username: demo\n  keyauth_credentials:\n  - key: demo-secret-key\n'


def run(capsys, args):
    return run_module(kong_conf.main, capsys, args)[:2]


@pytest.fixture
def node(tmp_path):
    conf = tmp_path / "kong.conf"
    conf.write_text("database = off\n")
    src = tmp_path / "transfer" / "declarative_config"
    src.parent.mkdir()
    src.write_bytes(CONFIG)
    return {
        "path": str(conf),
        "settings": {"database": "off"},
        "declarative_config_src": str(src),
        "declarative_config_dest": str(tmp_path / "kong.yml"),
        "declarative_config_sha256": hashlib.sha256(CONFIG).hexdigest(),
    }


def test_installed_0640_then_left_alone_and_never_shown(capsys, node):
    rc, res = run(capsys, dict(node, _ansible_diff=True))
    assert rc == 0 and res["changed"] is True and res["declarative_config_changed"] is True
    dest = node["declarative_config_dest"]
    assert open(dest, "rb").read() == CONFIG and oct(os.stat(dest).st_mode & 0o777) == "0o640"
    assert "demo-secret-key" not in json.dumps(res)
    rc, again = run(capsys, node)
    assert rc == 0 and again["changed"] is False and again["declarative_config_changed"] is False
    assert not [n for n in os.listdir(os.path.dirname(dest)) if n.startswith(".kong-declarative.")]


def test_check_mode_compares_with_the_controllers_sha256_and_writes_nothing(capsys, node):
    args = dict(node, declarative_config_src=None, _ansible_check_mode=True)
    rc, res = run(capsys, args)
    assert rc == 0 and res["changed"] is True and res["declarative_config_changed"] is True
    assert not os.path.exists(node["declarative_config_dest"])
    with open(node["declarative_config_dest"], "wb") as fh:
        fh.write(CONFIG)
    rc, res = run(capsys, args)
    assert res["changed"] is False and res["declarative_config_changed"] is False


def test_a_copy_that_does_not_match_the_controllers_file_is_not_installed(capsys, node):
    rc, res = run(capsys, dict(node, declarative_config_sha256="0" * 64))
    assert rc == 1 and "the controller's file" in res["msg"] and "nothing was installed" in res["msg"]
    assert not os.path.exists(node["declarative_config_dest"])


def test_a_destination_that_is_a_directory_or_missing_is_refused(capsys, node, tmp_path):
    rc, res = run(capsys, dict(node, declarative_config_dest=str(tmp_path)))
    assert rc == 1 and res["msg"].startswith("declarative_config_dest:") and "is a directory" in res["msg"]
    rc, res = run(capsys, {k: v for k, v in node.items() if k != "declarative_config_dest"})
    assert rc == 1 and res["msg"].startswith("declarative_config_dest: required")
