"""kong_conf main(): the operator's file kept, backup, diff with secrets masked, errors change nothing."""

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.kongops.upgrade.plugins.modules import kong_conf

TEXT = "# operator comment\npg_host = old   # db\nnginx_http_client_max_body_size = 64m\npg_password = oldpw\n"


def run(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        kong_conf.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "kong.conf"
    path.write_text(TEXT)
    os.chmod(path, 0o640)
    return path


def test_apply_keeps_lines_backs_up_and_masks_secrets(capsys, conf):
    rc, res = run(capsys, {"path": str(conf), "settings": {"pg_host": "db"}, "secret_settings": {"pg_password": "n#w"}, "_ansible_diff": True})
    assert rc == 0 and res["changed"] is True
    text = conf.read_text()
    assert "# operator comment" in text and "nginx_http_client_max_body_size = 64m" in text
    assert "pg_host = db   # db" in text and "pg_password = n\\#w" in text
    assert open(res["backup_file"]).read() == TEXT
    assert oct(os.stat(conf).st_mode & 0o777) == "0o640"
    out = json.dumps(res)
    assert "n#w" not in out and "n\\\\#w" not in out and "oldpw" not in out
    assert "pg_host = db" in res["diff"]["after"]
    rc, again = run(capsys, {"path": str(conf), "settings": {"pg_host": "db"}, "secret_settings": {"pg_password": "n#w"}})
    assert again["changed"] is False


def test_check_mode_writes_nothing(capsys, conf):
    rc, res = run(capsys, {"path": str(conf), "settings": {"pg_host": "db"}, "_ansible_check_mode": True})
    assert res["changed"] is True and conf.read_text() == TEXT
    assert not [p for p in os.listdir(conf.parent) if p != "kong.conf"]


def test_newline_refused_nothing_written(capsys, conf):
    rc, res = run(capsys, {"path": str(conf), "secret_settings": {"pg_password": "a\nplugins = evil"}})
    assert rc == 1 and res["failed"] and "'pg_password' contains a newline" in res["msg"]
    assert res["setting"] == "pg_password" and conf.read_text() == TEXT
    assert "evil" not in json.dumps(res)


def test_fresh_host_gets_a_file_0640(capsys, tmp_path):
    path = tmp_path / "etc" / "kong.conf"
    path.parent.mkdir()
    rc, res = run(capsys, {"path": str(path), "settings": {"database": "off"}})
    assert res["changed"] and res["created"] and path.read_text().splitlines()[-1] == "database = off"
    assert oct(os.stat(path).st_mode & 0o777) == "0o640"


def test_custom_plugins_reported(capsys, tmp_path):
    path = tmp_path / "kong.conf"
    path.write_text("plugins = bundled, my-header ,audit   # ours\n")
    rc, res = run(capsys, {"path": str(path), "settings": {"log_level": "info"}})
    assert res["custom_plugins"] == ["my-header", "audit"]


def test_create_settings_only_on_a_fresh_host_with_its_directory(capsys, tmp_path, conf):
    fresh = tmp_path / "etc" / "kong" / "kong.conf"
    args = {
        "settings": {"log_level": "notice"},
        "create_settings": {"pg_host": "db", "log_level": "debug"},
        "create_secret_settings": {"pg_password": "fr#sh"},
        "kong_version": "3.9.3",
    }
    rc, res = run(capsys, dict(args, path=str(fresh)))
    assert rc == 0 and res["created"] is True and "fr#sh" not in json.dumps(res)
    text = fresh.read_text()
    assert "pg_host = db" in text and "log_level = notice" in text and "pg_password = fr\\#sh" in text
    assert oct(os.stat(fresh.parent).st_mode & 0o777) == "0o755" and oct(os.stat(fresh).st_mode & 0o777) == "0o640"
    # an existing file keeps its own values of the create-only settings
    rc, res = run(capsys, dict(args, path=str(conf)))
    text = conf.read_text()
    assert rc == 0 and "pg_host = old   # db" in text and "pg_password = oldpw" in text and "log_level = notice" in text


def test_a_setting_both_plain_and_secret_is_refused(capsys, tmp_path):
    path = tmp_path / "kong.conf"
    rc, res = run(capsys, {"path": str(path), "create_settings": {"pg_password": "plain-pw"}, "secret_settings": {"pg_password": "secret-pw"}})
    assert rc == 1 and "create_settings and secret_settings both name pg_password" in res["msg"]
    assert not path.exists()
