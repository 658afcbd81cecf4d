"""The `kong` command where Kong is less forgiving than a simulator would naturally be.

Each test names the Kong source (repository Kong/kong, tag, file:line) it follows. All run the
installed `bin/kong` of tests/kongsim/install.sh as a subprocess.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time

import pytest

from tests.services.ports import free_port

HINT = "\n  Run with --v (verbose) or --vv (debug) for more details\n"
TS = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d"
DECLARATIVE = "_format_version: '3.0'\nservices:\n- name: s1\n  url: http://127.0.0.1:9/\n"
DECLARATIVE_285 = "_format_version: '2.1'\nservices:\n- name: s1\n  url: http://127.0.0.1:9/\n"


def run(kong, *args, cwd=None, env=None, nofile=None, timeout=60):
    full = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
    full.update(env or {})

    def limit():
        if nofile is not None:
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    return subprocess.run([kong, *args], capture_output=True, text=True, cwd=cwd, env=full, timeout=timeout, check=False, preexec_fn=limit)


def write_conf(path, **settings) -> str:
    path.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    return str(path)


# ------------------------------------------------------------------------------ kong config parse


@pytest.mark.parametrize("version", ["2.8.5", "3.4.2", "3.9.3"])
def test_config_parse_without_conf_connects_to_the_default_postgres(kong_install, tmp_path, version):
    """kong/cmd/config.lua:83-85 at 3.4.2/3.9.3 (:90-92 at 2.8.5): `assert(db:init_connector())`
    and `assert(db:connect())` run before the file is parsed; Kong's default `database` is
    `postgres` (kong/templates/kong_defaults.lua). Without `-c` naming a DB-less kong.conf the
    parse fails on a host whose database does not answer, with the connector's error
    (kong/db/init.lua DB:init_connector -> prefix_err, connector.lua init)."""
    kong = kong_install(version)
    dec = tmp_path / "kong.yml"
    dec.write_text(DECLARATIVE_285 if version == "2.8.5" else DECLARATIVE)
    # no /etc/kong/kong.conf on the test host: Kong's defaults apply (pg_host 127.0.0.1); the
    # port is made unreachable through KONG_PG_PORT, which conf_loader reads as Kong does.
    assert not os.path.exists("/etc/kong/kong.conf") and not os.path.exists("/etc/kong.conf")
    env = {"KONG_PREFIX": str(tmp_path / "prefix"), "KONG_PG_PORT": str(free_port())}
    res = run(kong, "config", "parse", str(dec), env=env)
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == ("Error: [PostgreSQL error] failed to retrieve PostgreSQL server_version_num: connection refused\n" + HINT)
    # the database is reached before the missing file argument is noticed
    res = run(kong, "config", "parse", env=env)
    assert res.returncode == 1 and "connection refused" in res.stderr
    # with -c naming a DB-less kong.conf the same file parses
    conf = write_conf(tmp_path / "kong.conf", prefix=tmp_path / "prefix", database="off")
    res = run(kong, "config", "parse", "-c", conf, str(dec), env={"KONG_PG_PORT": env["KONG_PG_PORT"]})
    assert (res.returncode, res.stdout, res.stderr) == (0, "parse successful\n", "")


def test_config_parse_with_a_reachable_database(kong_install, tmp_path, postgres):
    """kong/cmd/config.lua:83-85 at 3.9.3: connecting is all parse needs from the database (no
    schema): an empty database parses; a wrong password fails with the server's message."""
    kong = kong_install("3.9.3")
    info = postgres.create_database("kongsim_parse")
    dec = tmp_path / "kong.yml"
    dec.write_text(DECLARATIVE)
    settings = {
        "prefix": tmp_path / "prefix",
        "database": "postgres",
        "pg_host": info["host"],
        "pg_port": info["port"],
        "pg_user": info["user"],
        "pg_database": "kongsim_parse",
    }
    conf = write_conf(tmp_path / "kong.conf", pg_password=info["password"], **settings)
    res = run(kong, "config", "parse", "-c", conf, str(dec))
    assert (res.returncode, res.stdout, res.stderr) == (0, "parse successful\n", "")
    bad = write_conf(tmp_path / "bad.conf", pg_password="not-the-password", **settings)
    res = run(kong, "config", "parse", "-c", bad, str(dec))
    assert res.returncode == 1
    assert res.stderr.startswith("Error: [PostgreSQL error] failed to retrieve PostgreSQL server_version_num: FATAL: password authentication failed")


def test_config_parse_reads_the_prefix_kong_env_instead_of_conf(kong_install, tmp_path):
    """kong/cmd/config.lua:56-59 at 3.4.2/3.9.3 (:63-66 at 2.8.5): when `<prefix>/.kong_env`
    exists it replaces the loaded kong.conf ("load <PREFIX>/kong.conf containing running node's
    config"). A prefix once prepared with `database = postgres` makes a DB-less `-c` irrelevant,
    and the other way round."""
    kong = kong_install("3.9.3")
    dec = tmp_path / "kong.yml"
    dec.write_text(DECLARATIVE)
    prefix = tmp_path / "prefix"
    pg_conf = write_conf(tmp_path / "pg.conf", prefix=prefix, database="postgres", pg_port=free_port())
    off_conf = write_conf(tmp_path / "off.conf", prefix=prefix, database="off")
    assert run(kong, "config", "parse", "-c", off_conf, str(dec)).returncode == 0
    assert run(kong, "prepare", "-c", pg_conf).returncode == 0
    res = run(kong, "config", "parse", "-c", off_conf, str(dec))
    assert res.returncode == 1 and "[PostgreSQL error] failed to retrieve PostgreSQL server_version_num: connection refused" in res.stderr
    assert run(kong, "prepare", "-c", off_conf).returncode == 0
    res = run(kong, "config", "parse", "-c", pg_conf, str(dec))
    assert (res.returncode, res.stdout) == (0, "parse successful\n")


# ------------------------------------------------------------------------------ prefix handling


@pytest.mark.parametrize("version", ["2.8.5", "3.9.3"])
def test_migrations_create_a_missing_prefix_and_say_so_on_stdout(kong_install, tmp_path, version):
    """kong/cmd/migrations.lua:95 (3.4.2-3.9.3; :96 at 2.8.5) calls prefix_handler.prepare_prefix
    before touching the database; a missing prefix is announced with `log("prefix directory %s
    not found, trying to create it")` (prefix_handler.lua:338 at 2.8.5, :498 at 3.9.3), an info
    line kong/cmd/utils/log.lua prints on stdout without a timestamp; `-q` silences it."""
    kong = kong_install(version)
    prefix = tmp_path / "new" / "prefix"
    conf = write_conf(tmp_path / "kong.conf", prefix=prefix, database="off")
    res = run(kong, "migrations", "list", "-c", conf, nofile=8192)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"prefix directory {prefix} not found, trying to create it\nExecuted migrations:\n")
    assert res.stderr == ""
    assert os.path.isdir(prefix / "logs") and os.path.isdir(prefix / "pids")
    res = run(kong, "migrations", "list", "-c", conf, nofile=8192)
    assert res.returncode == 0 and res.stdout.startswith("Executed migrations:\n")
    quiet_prefix = tmp_path / "quiet"
    conf = write_conf(tmp_path / "quiet.conf", prefix=quiet_prefix, database="off")
    res = run(kong, "migrations", "bootstrap", "-q", "-c", conf, nofile=8192)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert os.path.isdir(quiet_prefix)
    verbose_prefix = tmp_path / "verbose"
    conf = write_conf(tmp_path / "verbose.conf", prefix=verbose_prefix, database="off")
    res = run(kong, "migrations", "up", "--v", "-c", conf, nofile=8192)
    assert re.search(rf"^{TS} \[info\] prefix directory {verbose_prefix} not found, trying to create it$", res.stdout, re.MULTILINE), res.stdout


def test_migrations_prefix_that_is_a_file(kong_install, tmp_path):
    """prefix_handler.lua:503-504 at 3.9.3: `return nil, kong_config.prefix .. " is not a directory"`,
    raised by the `assert` of kong/cmd/migrations.lua:95; `kong prepare` wraps it in `could not
    prepare Kong prefix at <prefix>: <err>` (kong/cmd/prepare.lua:10-12)."""
    kong = kong_install("3.9.3")
    prefix = tmp_path / "file"
    prefix.write_text("")
    conf = write_conf(tmp_path / "kong.conf", prefix=prefix, database="off")
    res = run(kong, "migrations", "list", "-c", conf)
    assert (res.returncode, res.stdout, res.stderr) == (1, "", f"Error: {prefix} is not a directory\n" + HINT)
    res = run(kong, "prepare", "-c", conf)
    assert (res.returncode, res.stderr) == (1, f"Error: could not prepare Kong prefix at {prefix}: {prefix} is not a directory\n" + HINT)


@pytest.mark.parametrize("version", ["2.8.5", "3.4.2", "3.9.3"])
def test_low_open_files_limit_warns_on_stderr(kong_install, tmp_path, version):
    """prefix_handler.lua:416-420 at 2.8.5, :647-651 at 3.4.2, :709-713 at 3.9.3: `ulimit -n`
    below 4096 logs `ulimit is currently set to "<n>". For better performance set it to at least
    "4096" using "ulimit -n"` at warn level (stderr, timestamped, log.lua); 4096 is quiet."""
    kong = kong_install(version)
    conf = write_conf(tmp_path / "kong.conf", prefix=tmp_path / "prefix", database="off")
    res = run(kong, "migrations", "list", "-c", conf, nofile=1024)
    assert res.returncode == 0
    assert re.fullmatch(
        rf'{TS} \[warn\] ulimit is currently set to "1024". For better performance set it '
        r'to at least "4096" using "ulimit -n"\n',
        res.stderr,
    ), res.stderr
    assert "ulimit" not in res.stdout
    res = run(kong, "migrations", "list", "-c", conf, nofile=4096)
    assert (res.returncode, res.stderr) == (0, "")
    res = run(kong, "prepare", "-c", conf, nofile=2048)
    assert res.returncode == 0 and '[warn] ulimit is currently set to "2048".' in res.stderr


def test_start_and_prepare_create_the_prefix_and_say_so(kong_install, tmp_path):
    """kong/cmd/prepare.lua:10 and kong/cmd/start.lua:59 (3.9.3) run the same prepare_prefix:
    the `prefix directory ... not found, trying to create it` line is on their stdout too."""
    kong = kong_install("3.9.3")
    prefix = tmp_path / "p"
    conf = write_conf(tmp_path / "kong.conf", prefix=prefix, database="off")
    res = run(kong, "prepare", "-c", conf, nofile=8192)
    assert (res.returncode, res.stdout, res.stderr) == (0, f"prefix directory {prefix} not found, trying to create it\n", "")
    res = run(kong, "prepare", "-c", conf, nofile=8192)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


# ------------------------------------------------------------------------------ kong stop

SLOW_TERM = """
import signal, sys, time
def term(*_):
    time.sleep(float(sys.argv[1]))
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


@pytest.fixture
def slow_nginx(tmp_path):
    """A process standing in for an nginx master that takes 2 s to exit after SIGTERM."""
    procs = []

    def spawn(prefix, delay=2.0):
        proc = subprocess.Popen([sys.executable, "-c", SLOW_TERM, str(delay)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "ready\n"
        os.makedirs(os.path.join(prefix, "pids"), exist_ok=True)
        with open(os.path.join(prefix, "pids", "nginx.pid"), "w", encoding="utf-8") as fh:
            fh.write(f"{proc.pid}\n")
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stop_sends_term_and_does_not_wait(kong_install, tmp_path, slow_nginx):
    """kong/cmd/stop.lua:26 -> nginx_signals.stop (nginx_signals.lua:142 at 2.8.5, :207 at
    3.4.2/3.7.1, :221 at 3.9.3) is `send_signal(conf, "TERM")`: `kill -s TERM` and return.
    `Kong stopped` is printed while nginx may still be exiting; a `kong start` in that window
    meets the old process: `assert(not kill.is_running(conf.nginx_pid), "Kong is already running
    in " .. conf.prefix)` (kong/cmd/start.lua:56-57 at 3.9.3, :26-27 at 2.8.5)."""
    kong = kong_install("3.9.3")
    prefix = tmp_path / "prefix"
    conf = write_conf(tmp_path / "kong.conf", prefix=prefix, database="off", declarative_config=tmp_path / "kong.yml")
    (tmp_path / "kong.yml").write_text(DECLARATIVE)
    assert run(kong, "prepare", "-c", conf).returncode == 0
    proc = slow_nginx(str(prefix), delay=2.0)
    t0 = time.monotonic()
    res = run(kong, "stop", "-p", str(prefix))
    elapsed = time.monotonic() - t0
    assert (res.returncode, res.stdout, res.stderr) == (0, "Kong stopped\n", "")
    assert elapsed < 1.5, elapsed
    assert proc.poll() is None, "kong stop waited for the process to exit"
    assert os.path.exists(prefix / "pids" / "nginx.pid")
    res = run(kong, "start", "-c", conf)
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == f"Error: Kong is already running in {prefix}\n" + HINT
    assert proc.wait(10) == 0
    # a second stop once it is gone: nginx_signals.lua send_signal's own check
    res = run(kong, "stop", "-p", str(prefix))
    assert (res.returncode, res.stderr) == (1, f"Error: nginx not running in prefix: {prefix}\n" + HINT)


def test_stop_does_not_escalate_to_sigkill(kong_install, tmp_path, slow_nginx):
    """nginx_signals.lua:221-223 at 3.9.3: TERM only, never KILL, even when nginx lingers."""
    kong = kong_install("3.9.3")
    prefix = tmp_path / "prefix"
    conf = write_conf(tmp_path / "kong.conf", prefix=prefix, database="off")
    assert run(kong, "prepare", "-c", conf).returncode == 0
    proc = slow_nginx(str(prefix), delay=12.0)
    assert run(kong, "stop", "-p", str(prefix)).returncode == 0
    time.sleep(0.5)
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("version,rewritten", [("2.8.5", True), ("3.4.2", False), ("3.9.3", False)])
def test_refused_start_and_the_running_prefix(kong_install, tmp_path, slow_nginx, version, rewritten):
    """kong/cmd/start.lua:24-27 at 2.8.5 prepares the prefix (writes .kong_env) before
    `assert(not kill.is_running(conf.nginx_pid), "Kong is already running in " .. conf.prefix)`;
    3.x checks first (start.lua:56-59 at 3.4.2 and 3.9.3). A refused 2.8.5 start rewrites the
    running node's .kong_env."""
    kong = kong_install(version)
    prefix = tmp_path / "prefix"
    conf = write_conf(tmp_path / "kong.conf", prefix=prefix, database="off")
    assert run(kong, "prepare", "-c", conf).returncode == 0
    slow_nginx(str(prefix), delay=0.1)
    conf = write_conf(tmp_path / "kong.conf", prefix=prefix, database="off", log_level="debug")
    res = run(kong, "start", "-c", conf)
    assert (res.returncode, res.stderr) == (1, f"Error: Kong is already running in {prefix}\n" + HINT)
    assert ("log_level = debug\n" in (prefix / ".kong_env").read_text()) == rewritten


def test_restart_waits_at_most_five_seconds_then_starts_anyway(kong_install, tmp_path, slow_nginx):
    """kong/cmd/restart.lua:21-33 at 3.9.3 and 2.8.5: quiet stop (SIGTERM), then
    `repeat ngx.sleep(0.1) ... until not running or ngx.time() >= texp` with texp = now + 5 s,
    then start.execute: a node that takes longer to exit makes the restart fail."""
    kong = kong_install("3.9.3")
    prefix = tmp_path / "prefix"
    conf = write_conf(tmp_path / "kong.conf", prefix=prefix, database="off")
    assert run(kong, "prepare", "-c", conf).returncode == 0
    proc = slow_nginx(str(prefix), delay=8.0)
    t0 = time.monotonic()
    res = run(kong, "restart", "-c", conf)
    elapsed = time.monotonic() - t0
    assert (res.returncode, res.stderr) == (1, f"Error: Kong is already running in {prefix}\n" + HINT)
    assert 4.0 <= elapsed < 6.5, elapsed
    assert proc.poll() is None
