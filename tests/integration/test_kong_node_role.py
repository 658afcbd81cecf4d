"""The kong_node role on localhost against a simulated Kong (tests/kongsim), where Kong's command
line is less forgiving than the role once assumed.

- `kong config parse` loads kong.conf (`-c`, else /etc/kong/kong.conf) and connects to the
  database it names before it reads the file; Kong's default is `database = postgres`
  (Kong/kong kong/cmd/config.lua:51-59, 83-85 at 3.9.3). A DB-less node on a host without a
  database must therefore be validated with `-c <its DB-less kong.conf>`, after kong.conf exists.
- `kong stop` sends SIGTERM and returns at once (kong/cmd/utils/nginx_signals.lua:221 at 3.9.3):
  state `stopped` must mean the process is gone.
"""

from __future__ import annotations

import os
import socket

import pytest
import requests

from tests.integration.ansible_run import run_playbook
from tests.kongsim.kongsim_testlib import INSTALL_SH, install_kong
from tests.services.ports import free_port

PLAY = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: kongops.upgrade.kong_node
"""


def _nothing_listens(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _task(res, name: str) -> dict:
    """The localhost result of the role's task `name` (the json callback may prefix the role)."""
    for play in res.data.get("plays", []):
        for task in play.get("tasks", []):
            if task["task"]["name"].split(" : ")[-1] == name:
                return task["hosts"]["localhost"]
    raise AssertionError(f"task {name!r} did not run: {[t['task']['name'] for p in res.data['plays'] for t in p['tasks']]}")


def _alive(pid: int) -> bool:
    """Running and not a zombie left for a reaper (the node is reparented when `kong` exits)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _kill_left_over(prefix: str) -> None:
    """Kill the node a failed test left running under `prefix`."""
    pidfile = os.path.join(prefix, "pids", "nginx.pid")
    if os.path.exists(pidfile):
        try:
            os.kill(int(open(pidfile, encoding="utf-8").read()), 9)
        except (OSError, ValueError):
            pass


def _dbless_node(tmp_path) -> dict:
    """The role's variables for a DB-less node under `tmp_path`, Kong not installed (kong_node_bin empty)."""
    src = tmp_path / "kong.yml"
    src.write_text("_format_version: '3.0'\nservices:\n- name: s1\n  url: http://127.0.0.1:9/\n  routes:\n  - name: r1\n    paths: [/s1]\n")
    admin, status = free_port(), free_port()
    return {
        "kong_node_version": "3.9.3",
        "kong_node_mode": "dbless",
        "kong_node_install_method": "prefix",
        "kong_node_bin": "",
        "kong_node_prefix": str(tmp_path / "prefix"),
        "kong_node_conf_path": str(tmp_path / "etc" / "kong.conf"),
        "kong_node_declarative_config_src": str(src),
        "kong_node_declarative_config": str(tmp_path / "etc" / "kong.yml"),
        "kong_node_proxy_listen": f"127.0.0.1:{free_port()}",
        "kong_node_admin_listen": f"127.0.0.1:{admin}",
        "kong_node_status_listen": f"127.0.0.1:{status}",
        # Kong's default pg_port, empty: `config parse` without a DB-less kong.conf would fail here
        "kong_node_env": {"KONG_PG_PORT": str(free_port())},
        "_admin": f"http://127.0.0.1:{admin}",
    }


@pytest.fixture
def dbless_vars(tmp_path):
    return dict(_dbless_node(tmp_path), kong_node_bin=install_kong("3.9.3", str(tmp_path / "install")))


def test_dbless_node_validated_with_its_own_kong_conf_then_stopped(dbless_vars):
    extra = {k: v for k, v in dbless_vars.items() if not k.startswith("_")}
    prefix = extra["kong_node_prefix"]
    try:
        res = run_playbook(PLAY, extra_vars=extra, timeout=300)
        assert res.rc == 0, res.stdout[-4000:] + res.stderr[-2000:]
        # the start checked the file first (`kong config parse` with the node's kong.conf, in kong_service):
        # without -c the check would have tried the database at KONG_PG_PORT and failed
        started = _task(res, "Start Kong and wait until it answers ready - 3.9.3")
        assert started["declarative_checked"] is True and started["ready"] is True
        assert requests.get(dbless_vars["_admin"] + "/routes/r1", timeout=5).status_code == 200
        pid = int(open(os.path.join(prefix, "pids", "nginx.pid"), encoding="utf-8").read())

        res = run_playbook(PLAY, extra_vars=dict(extra, kong_node_state="stopped"), timeout=300)
        assert res.rc == 0, res.stdout[-4000:] + res.stderr[-2000:]
        # the role returned: the node has exited, not merely been sent SIGTERM
        assert not _alive(pid)
        assert not os.path.exists(os.path.join(prefix, "pids", "nginx.pid"))
        assert _nothing_listens(int(extra["kong_node_admin_listen"].rsplit(":", 1)[1]))
    finally:
        _kill_left_over(prefix)


def test_breaking_change_conversions_are_applied_to_the_operators_kong_conf(tmp_path):
    """kong_node_conf_fixes (what preflight's scan gives with kong_breaking_fix) renames and comments
    out properties in the operator's file, keeping its other lines and comments, shown in --diff."""
    conf = tmp_path / "kong.conf"
    conf.write_text("# grown since 2.x\nclient_max_body_size = 10m  # uploads\nnginx_optimizations = on\ndatabase = postgres\n")
    play = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: kongops.upgrade.kong_node
        tasks_from: configure.yml
"""
    extra = {
        "kong_node_version": "3.4.2",
        "kong_node_mode": "traditional",
        "kong_node_conf_path": str(conf),
        "kong_node_conf_fixes": {"rename": {"client_max_body_size": "nginx_http_client_max_body_size"}, "remove": ["nginx_optimizations"]},
    }
    res = run_playbook(play, extra_vars=extra, diff=True, timeout=120)
    assert res.rc == 0, res.stdout[-4000:] + res.stderr[-2000:]
    lines = conf.read_text().splitlines()
    assert lines[0] == "# grown since 2.x" and "database = postgres" in lines
    assert any(line.startswith("nginx_http_client_max_body_size = 10m") and "# uploads" in line for line in lines)
    assert not any(line.startswith(("client_max_body_size", "nginx_optimizations")) for line in lines)
    assert any(line.lstrip("# ").startswith("nginx_optimizations") for line in lines)


def test_absent_quits_and_removes_the_versioned_directory_only_when_asked(tmp_path):
    """kong_node_state=absent quits the node; kong_node_remove_package removes its versioned install
    directory (install method prefix), and without it the directory stays."""
    root = tmp_path / "opt-kong"
    kong = root / "3.9.3" / "bin" / "kong"
    extra = {k: v for k, v in _dbless_node(tmp_path).items() if not k.startswith("_")}
    # the role installs the version into its own directory with the operator's command
    extra.update(kong_node_install_root=str(root), kong_node_install_command=f"bash {INSTALL_SH} {{version}} {{dest}}")
    prefix = extra["kong_node_prefix"]
    try:
        res = run_playbook(PLAY, extra_vars=extra, timeout=300)
        assert res.rc == 0, res.stdout[-4000:] + res.stderr[-2000:]
        pid = int(open(os.path.join(prefix, "pids", "nginx.pid"), encoding="utf-8").read())

        res = run_playbook(PLAY, extra_vars=dict(extra, kong_node_state="absent"), timeout=300)
        assert res.rc == 0, res.stdout[-4000:] + res.stderr[-2000:]
        assert not _alive(pid) and kong.exists(), "without kong_node_remove_package the directory stays"

        res = run_playbook(PLAY, extra_vars=dict(extra, kong_node_state="absent", kong_node_remove_package=True), timeout=300)
        assert res.rc == 0, res.stdout[-4000:] + res.stderr[-2000:]
        assert not (root / "3.9.3").exists() and root.is_dir()
    finally:
        _kill_left_over(prefix)
