"""kong_route_replay main(): check mode builds the requests and starts nothing; bad input is a message
naming the option, never a traceback; no credential of the configuration in the result."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.kongops.upgrade.plugins.modules import kong_route_replay

CONFIG = """_format_version: "2.1"
services:
- name: s
  url: http://127.0.0.1:9
  routes:
  - name: alt
    paths: ['/api/v1|/api/v2']
consumers:
- username: c
  keyauth_credentials:
  - key: SECRETKEY
"""


def run(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        kong_route_replay.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "kong.yml"
    path.write_text(CONFIG)
    return str(path)


def _args(src, **extra):
    return dict(
        {
            "src": src,
            "x": {"version": "2.8.5", "kong_bin": "/nonexistent/2.8.5/bin/kong"},
            "y": {"version": "3.4.2", "kong_bin": "/nonexistent/3.4.2/bin/kong"},
        },
        **extra,
    )


def test_check_mode_builds_the_requests_and_starts_nothing(capsys, src):
    rc, res = run(capsys, _args(src, _ansible_check_mode=True))
    assert rc == 0 and res["changed"] is False and res["routes"] == 1 and res["requests"] == 4
    assert "no Kong was started" in res["summary"] and "SECRETKEY" not in json.dumps(res)


@pytest.mark.parametrize(
    "extra,words",
    [
        ({}, ["x.kong_bin", "/nonexistent/2.8.5/bin/kong", "not an executable"]),
        ({"trigger": "bad header", "_ansible_check_mode": True}, ["trigger", "header name"]),
        ({"max_requests": 0, "_ansible_check_mode": True}, ["max_requests", "at least 1"]),
    ],
)
def test_bad_input_names_the_option(capsys, src, extra, words):
    rc, res = run(capsys, _args(src, **extra))
    assert rc == 1 and res["failed"] is True and "exception" not in res
    assert all(w in res["msg"] for w in words), res["msg"]


def test_a_file_that_is_no_configuration(capsys, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("just: text\n")
    rc, res = run(capsys, _args(str(bad), _ansible_check_mode=True))
    assert rc == 1 and res["msg"].startswith("src: ") and "_format_version" in res["msg"]
    rc, res = run(capsys, _args(str(tmp_path / "missing.yml"), _ansible_check_mode=True))
    assert rc == 1 and res["msg"].startswith("src: cannot read")
