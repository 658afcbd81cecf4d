"""Bad options to the modules, refused before anything is contacted or written: each case runs the
module's main() in-process and asserts it failed with a message that names the option, without a
traceback (no `exception` in the result), and that the files it would write do not exist. The
playbooks' variables have their own table in tests/integration/test_bad_input.py."""

from __future__ import annotations

import importlib
import json

import pytest
from ansible.module_utils.testing import patch_module_args

MISSING_SOCKET = "/nonexistent/haproxy.sock"  # a module that got as far as the load balancer would say so
LB = {"backend": "haproxy", "socket": MISSING_SOCKET, "haproxy_backend": "kong"}

# id: (module, options ({tmp} is the test's directory), what the message must say)
CASES = {
    "lb_weight: weight above 256": ("lb_weight", dict(LB, weights={"x1": 300}), ["weights.x1: weight 300 is out of range"]),
    "lb_weight: weight not a number": ("lb_weight", dict(LB, weights={"x1": "heavy"}), ["weights.x1: 'heavy' is not a weight"]),
    "lb_weight: share above 100": (
        "lb_weight",
        dict(LB, groups={"kong_x": ["x1"], "kong_y": ["y1"]}, share={"kong_y": 120}),
        ["share.kong_y: 120 is not a percentage"],
    ),
    "lb_weight: a server in two groups": (
        "lb_weight",
        dict(LB, groups={"kong_x": ["a"], "kong_y": ["a"]}, share={"kong_y": 50}),
        ["groups: server a is in both kong_x and kong_y"],
    ),
    "lb_weight: share of an unknown group": ("lb_weight", dict(LB, groups={"kong_x": ["x1"]}, share={"kong_z": 50}), ["share: no such group: kong_z"]),
    "lb_weight: unknown backend": ("lb_weight", {"backend": "f5", "haproxy_backend": "kong"}, ["backend must be one of: haproxy, nginx"]),
    "lb_weight: state without servers": ("lb_weight", dict(LB, state="drain"), ["required by 'state': servers"]),
    "lb_weight: negative drain timeout": ("lb_weight", dict(LB, servers=["x1"], state="drain", drain_timeout=-1), ["drain_timeout: must be 0 or more seconds"]),
    "kong_gate: error rate above 100 %": (
        "kong_gate",
        {"backend": "none", "soak_seconds": 1, "max_error_rate": 150},
        ["max_error_rate: must be a percentage from 0 to 100"],
    ),
    "kong_gate: negative soak": ("kong_gate", {"backend": "none", "soak_seconds": -1}, ["soak_seconds: must be 0 or more"]),
    "kong_gate: haproxy without its backend": ("kong_gate", {"backend": "haproxy", "soak_seconds": 1}, ["haproxy_backend: name the HAProxy backend"]),
    "kong_conf: value with a newline": ("kong_conf", {"path": "{tmp}/kong.conf", "settings": {"pg_host": "a\nb"}}, ["setting 'pg_host' contains a newline"]),
    "kong_conf: setting name with a space": (
        "kong_conf",
        {"path": "{tmp}/kong.conf", "settings": {"pg host": "a"}},
        ["'pg host' is not a kong.conf setting name"],
    ),
    "kong_conf: path is a directory": ("kong_conf", {"path": "{tmp}", "settings": {"a": "b"}}, ["is a directory, not a kong.conf"]),
    "kong_conf: '#' for Kong before 3.2": (
        "kong_conf",
        {"path": "{tmp}/kong.conf", "secret_settings": {"pg_password": "pa#ss"}, "kong_version": "3.1.1"},
        ["pg_password"],
    ),
    "kong_service: start without kong.conf": ("kong_service", {"state": "started"}, ["state=started needs kong_conf"]),
    "kong_service: negative quit timeout": ("kong_service", {"quit_timeout": -1}, ["quit_timeout must be 0 or more"]),
    "kong_service: admin_url not a URL": ("kong_service", {"admin_url": "127.0.0.1:8001"}, ["admin_url: '127.0.0.1:8001' is not a URL"]),
    "kong_node_info: admin_url not http": ("kong_node_info", {"admin_url": "ftp://x"}, ["admin_url: 'ftp://x' is not a URL"]),
    "kong_migrations: unknown state": ("kong_migrations", {"state": "bogus"}, ["value of state must be one of", "kong_migrations_info"]),
    "kong_migrations: kong binary missing": ("kong_migrations", {"state": "up", "kong_bin": "{tmp}/bin/kong"}, ["kong_bin: '{tmp}/bin/kong' was not found"]),
    "kong_backup: unknown kind": ("kong_backup", {"kinds": ["tarball"], "dest": "{tmp}/backups"}, ["kinds must be one or more of"]),
    "kong_backup: negative retention": (
        "kong_backup",
        {"kinds": ["declarative"], "dest": "{tmp}/backups", "retention": -1},
        ["retention must be 0 (keep every run) or a positive number"],
    ),
    "kong_restore: no source": ("kong_restore", {"manifest": "{tmp}/manifest.json"}, ["missing required arguments"]),
    "kong_config_freeze: unknown enforcement": (
        "kong_config_freeze",
        {"state": "frozen", "enforce": "f5"},
        ["value of enforce must be one of: none, nginx, haproxy"],
    ),
}


def _fill(value, tmp: str):
    if isinstance(value, str):
        return value.replace("{tmp}", tmp)
    if isinstance(value, dict):
        return {k: _fill(v, tmp) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, tmp) for v in value]
    return value


@pytest.mark.parametrize("case", list(CASES))
def test_bad_module_option_is_refused_before_anything_changes(capsys, tmp_path, case):
    name, options, expected = CASES[case]
    tmp = str(tmp_path)
    module = importlib.import_module(f"ansible_collections.kongops.upgrade.plugins.modules.{name}")
    before = sorted(p.name for p in tmp_path.iterdir())
    with patch_module_args(_fill(options, tmp)), pytest.raises(SystemExit) as exc:
        module.main()
    result = json.loads(capsys.readouterr().out)
    assert exc.value.code == 1 and result.get("failed") is True, f"{case}: not refused: {result}"
    assert all(_fill(text, tmp) in result["msg"] for text in expected), f"{case}: expected {expected} in {result['msg']!r}"
    assert "exception" not in result, f"{case}: a traceback: {result.get('exception')}"
    assert "socket" not in result["msg"] or name != "lb_weight", f"{case}: the load balancer was contacted first"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, f"{case}: files were written"
