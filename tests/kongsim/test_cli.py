"""`kong` CLI texts, streams and exit codes (FACTS preamble, 4.1-4.3, 8.1)."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
import requests
import yaml

from kongsim_testlib import INSTALL_SH, VERSIONS, simple_config

HINT = "\n  Run with --v (verbose) or --vv (debug) for more details\n"


def run(kong, *args, cwd=None, env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
    full.update(env or {})
    return subprocess.run([kong, *args], capture_output=True, text=True, cwd=cwd, env=full, timeout=60, check=False)


@pytest.mark.parametrize("version", VERSIONS)
def test_version(kong_install, version, tmp_path):
    kong = kong_install(version)
    res = run(kong, "version", cwd=tmp_path)
    assert (res.returncode, res.stdout, res.stderr) == (0, version + "\n", "")
    res = run(kong, "version", "-a")
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and lines[0] == f"Kong: {version}" and len(lines) == 4
    assert [line.split(":")[0] for line in lines] == ["Kong", "ngx_lua", "nginx", "Lua"]


@pytest.mark.parametrize("version", ["2.8.5", "3.9.3"])
def test_usage_and_unknown_command(kong_install, version):
    kong = kong_install(version)
    res = run(kong, "frobnicate")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("No such command: frobnicate\n\nUsage: kong COMMAND [OPTIONS]\n")
    assert (" drain\n" in res.stderr) == (version == "3.9.3")


def test_install_rejects_unknown_version(tmp_path):
    res = subprocess.run(["bash", INSTALL_SH, "3.3.0", str(tmp_path)], capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "unsupported Kong version '3.3.0'" in res.stderr
    assert not os.path.exists(tmp_path / "bin" / "kong")


def test_installed_binary_runs_from_any_directory(kong_install, tmp_path):
    kong = kong_install("3.8.1")
    assert run(kong, "version", cwd="/").stdout == "3.8.1\n"
    lib = os.path.join(os.path.dirname(os.path.dirname(kong)), "lib", "kongsim-3.8.1", "kongsim", "cli.py")
    assert os.path.exists(lib)


def test_health_quit_stop_without_node(kong_install, tmp_path):
    kong = kong_install("3.9.3")
    res = run(kong, "health", "-p", str(tmp_path / "none"))
    assert res.returncode == 1 and res.stderr == f"Error: no such prefix: {tmp_path / 'none'}\n" + HINT
    res = run(kong, "quit", "-p", str(tmp_path / "none"))
    assert res.returncode == 1 and res.stderr.startswith("Error: no such prefix:")


@pytest.mark.parametrize("version", ["2.8.5", "3.7.1"])
def test_lifecycle_texts(kong_node_factory, echo_upstream, version):
    fmt = "2.1" if version == "2.8.5" else "3.0"
    node = kong_node_factory(version, start=False, declarative=simple_config(echo_upstream.url, fmt=fmt))
    res = node.start()
    # a fresh prefix: prefix_handler.lua's `prefix directory ... not found` line (test_cli_as_kong.py)
    assert (res.returncode, res.stdout, res.stderr) == (0, f"prefix directory {node.prefix} not found, trying to create it\nKong started\n", "")
    pid = node.pid()
    assert pid and os.path.exists(os.path.join(node.prefix, ".kong_env"))
    res = node.start(check=False)
    assert res.returncode == 1 and res.stderr == f"Error: Kong is already running in {node.prefix}\n" + HINT
    res = node.cli("health", "-p", node.prefix)
    assert res.returncode == 0
    assert res.stdout == f"nginx.......running\n\nKong is healthy at {node.prefix}\n"
    res = node.cli("reload", "-c", node.conf_path)
    assert (res.returncode, res.stdout) == (0, "Kong reloaded\n")
    assert node.pid() == pid
    res = node.cli("restart", "-c", node.conf_path)
    assert (res.returncode, res.stdout) == (0, "Kong started\n")
    assert node.pid() != pid
    res = node.cli("quit", "-p", node.prefix)
    assert (res.returncode, res.stdout) == (0, "Kong stopped (gracefully)\n")
    res = node.cli("health", "-p", node.prefix)
    assert res.returncode == 1
    assert res.stdout == "nginx.......not running\n"
    assert res.stderr == f"Error: Kong is not running at {node.prefix}\n" + HINT
    res = node.cli("quit", "-p", node.prefix)
    assert res.returncode == 1 and res.stderr == f"Error: nginx not running in prefix: {node.prefix}\n" + HINT


def test_reload_loads_new_declarative_config(kong_node_factory, echo_upstream):
    node = kong_node_factory("3.9.3", declarative=simple_config(echo_upstream.url))
    before = requests.get(node.admin_url + "/status").json()["configuration_hash"]
    with open(node.settings["declarative_config"], "a", encoding="utf-8") as fh:
        fh.write("upstreams:\n- name: extra.internal\n")
    assert node.cli("reload", "-c", node.conf_path).returncode == 0
    import time

    deadline = time.time() + 10
    while time.time() < deadline:
        after = requests.get(node.admin_url + "/status").json()["configuration_hash"]
        if after != before:
            break
        time.sleep(0.1)
    assert after != before
    assert requests.get(node.admin_url + "/upstreams/extra.internal").status_code == 200


def test_env_overrides_conf_file(kong_node_factory, echo_upstream, tmp_path):
    path = tmp_path / "env.yml"
    path.write_text(simple_config(echo_upstream.url))
    node = kong_node_factory("3.9.3", start=False)
    res = node.start(env={"KONG_DECLARATIVE_CONFIG": str(path), "KONG_LOG_LEVEL": "info"})
    assert res.returncode == 0, res.stderr
    conf = requests.get(node.admin_url + "/").json()["configuration"]
    assert conf["declarative_config"] == str(path) and conf["log_level"] == "info"


@pytest.mark.parametrize(
    "version,setting,message",
    [
        ("3.9.3", "database = mongo", "database has an invalid value: 'mongo' (postgres, cassandra, off)"),
        ("3.4.2", "database = cassandra", "Cassandra as a datastore for Kong is not supported in versions 3.4 and above. Please use Postgres."),
        ("3.9.3", "role = primary", "role has an invalid value: 'primary' (traditional, control_plane, data_plane)"),
        ("3.9.3", "pg_port = abc", "pg_port is not a number"),
    ],
)
def test_bad_conf_fails_like_kong(kong_install, tmp_path, version, setting, message):
    conf = tmp_path / "kong.conf"
    conf.write_text(f"prefix = {tmp_path / 'p'}\n{setting}\n")
    kong = kong_install(version)
    res = run(kong, "start", "-c", str(conf))
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == f"Error: {message}\n" + HINT
    res = run(kong, "check", str(conf))
    assert res.returncode == 1
    assert res.stderr.rstrip().endswith(f"[error] {message}")
    good = tmp_path / "good.conf"
    good.write_text("database = off\n")
    res = run(kong, "check", str(good))
    assert (res.returncode, res.stdout) == (0, f"configuration at {good} is valid\n")


def test_start_fails_on_busy_port(kong_node_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        node = kong_node_factory("3.9.3", start=False, admin_port=port)
        res = node.start(check=False)
    assert res.returncode == 1
    assert res.stderr.startswith(f"Error: nginx: [emerg] bind() to 127.0.0.1:{port} failed (98: ")


@pytest.mark.parametrize("version", ["2.8.5", "3.9.3"])
def test_config_parse_and_init(kong_install, tmp_path, echo_upstream, version):
    kong = kong_install(version)
    fmt = "2.1" if version == "2.8.5" else "3.0"
    good = tmp_path / "kong.yml"
    good.write_text(simple_config(echo_upstream.url, fmt=fmt))
    # DB-less kong.conf: without it Kong's default database (postgres) must answer first
    # (test_cli_as_kong.py, kong/cmd/config.lua)
    dbless = tmp_path / "dbless.conf"
    dbless.write_text(f"prefix = {tmp_path / 'prefix'}\ndatabase = off\n")
    res = run(kong, "config", "parse", "-c", str(dbless), str(good), cwd=tmp_path)
    assert (res.returncode, res.stdout) == (0, "parse successful\n")
    bad = tmp_path / "bad.yml"
    bad.write_text(f'_format_version: "{fmt}"\nservices:\n- name: x\n')
    res = run(kong, "config", "parse", "-c", str(dbless), str(bad), cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr == ("Error: Failed parsing:\nin 'services':\n  - in entry 1 of 'services':\n    in 'host': required field missing\n" + HINT)
    res = run(kong, "config", "parse", "-c", str(dbless), str(tmp_path / "x.txt"), cwd=tmp_path)
    assert res.stderr.startswith(f"Error: Failed parsing:\nunknown file type: {tmp_path / 'x.txt'}. (Accepted types: json, yaml)")
    res = run(kong, "config", "parse", "-c", str(dbless), cwd=tmp_path)
    assert res.stderr == "Error: expected a declarative configuration file; see `kong config --help`\n" + HINT
    init_dir = tmp_path / "init"
    init_dir.mkdir()
    res = run(kong, "config", "init", cwd=init_dir)
    assert res.returncode == 0 and res.stdout == ""
    assert yaml.safe_load((init_dir / "kong.yml").read_text())["_format_version"] == fmt
    res = run(kong, "config", "init", cwd=init_dir)
    assert res.returncode == 1


def test_config_db_export_refused_dbless(kong_install, tmp_path):
    conf = tmp_path / "kong.conf"
    conf.write_text("database = off\n")
    res = run(kong_install("3.9.3"), "config", "db_export", "-c", str(conf), cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr == "Error: 'kong config db_export' only works with a database.\n" + HINT


def test_prepare_writes_prefix(kong_install, tmp_path):
    conf = tmp_path / "kong.conf"
    conf.write_text(f"prefix = {tmp_path / 'pfx'}\ndatabase = off\n")
    res = run(kong_install("3.6.1"), "prepare", "-c", str(conf))
    assert (res.returncode, res.stdout, res.stderr) == (0, f"prefix directory {tmp_path / 'pfx'} not found, trying to create it\n", "")
    res = run(kong_install("3.6.1"), "prepare", "-c", str(conf))
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert os.path.exists(tmp_path / "pfx" / ".kong_env")
    assert os.path.isdir(tmp_path / "pfx" / "logs")


@pytest.mark.parametrize(
    "version, written, served",
    [
        # 2.8.5 kong/cmd/utils/prefix_handler.lua line 498: .kong_env gets the value as it is, and the
        # node, which reads .kong_env back through conf_loader, cuts it at the `#`.
        ("2.8.5", "pg_database = kong#1", "kong"),
        # 3.9.3 kong/cmd/utils/prefix_handler.lua lines 855-857 and 892 (`quote_hash`, from 3.2.0): the
        # `#` is written `\#` and the node reads the whole value.
        ("3.9.3", "pg_database = kong\\#1", "kong#1"),
    ],
)
def test_kong_env_quotes_hash_from_3_2(kong_node_factory, echo_upstream, version, written, served):
    fmt = "2.1" if version == "2.8.5" else "3.0"
    node = kong_node_factory(version, start=False, declarative=simple_config(echo_upstream.url, fmt=fmt), pg_database="kong\\#1")
    node.start()
    with open(os.path.join(node.prefix, ".kong_env"), encoding="utf-8") as fh:
        assert written in fh.read().splitlines()
    conf = requests.get(node.admin_url + "/", timeout=10).json()["configuration"]
    assert conf["pg_database"] == served
