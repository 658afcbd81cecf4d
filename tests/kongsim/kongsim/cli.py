"""The `kong` command line (FACTS 1.3, 4, 8.1): texts, streams and exit codes as Kong prints them."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

from . import conf as confmod
from . import prefix as prefixmod
from . import versions

HINT = "\n  Run with --v (verbose) or --vv (debug) for more details"
MIGRATIONS_LUA = "/usr/local/share/lua/5.1/kong/cmd/utils/migrations.lua"


class KongError(Exception):
    pass


class Quit(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _ts() -> str:
    return time.strftime("%Y/%m/%d %H:%M:%S")


def out(msg: str = "") -> None:
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def log_error(msg: str) -> None:
    sys.stderr.write(f"{_ts()} [error] {msg}\n")
    sys.stderr.flush()


def log_warn(msg: str) -> None:
    sys.stderr.write(f"{_ts()} [warn] {msg}\n")
    sys.stderr.flush()


def commands(version: str) -> list:
    cmds = ["check", "config", "health", "hybrid", "migrations", "prepare", "quit", "reload", "restart", "roar", "start", "stop", "vault", "version"]
    if versions.get(version).drain:
        cmds.append("drain")
    return sorted(cmds)


def usage(version: str) -> str:
    return (
        "Usage: kong COMMAND [OPTIONS]\n\nThe available commands are:\n "
        + "\n ".join(commands(version))
        + "\n\nOptions:\n --v              verbose\n --vv             debug\n"
    )


COMMAND_USAGE = {
    "start": """Usage: kong start [OPTIONS]

Start Kong (Nginx and other configured services) in the configured
prefix directory.

Options:
 -c,--conf        (optional string)   Configuration file.

 -p,--prefix      (optional string)   Override prefix directory.

 --nginx-conf     (optional string)   Custom Nginx configuration template.

 --run-migrations (optional boolean)  Run migrations before starting.

 --db-timeout     (default 60)        Timeout, in seconds, for all database
                                      operations.

 --lock-timeout   (default 60)        When --run-migrations is enabled, timeout,
                                      in seconds, for nodes waiting on the
                                      leader node to finish running migrations.
""",
    "stop": """Usage: kong stop [OPTIONS]

Stop a running Kong node (Nginx and other configured services) in given
prefix directory.

This command sends a SIGTERM signal to Nginx.

Options:
 -p,--prefix      (optional string) prefix Kong is running at
""",
    "quit": """Usage: kong quit [OPTIONS]

Gracefully quit a running Kong node (Nginx and other
configured services) in given prefix directory.

This command sends a SIGQUIT signal to Nginx, meaning all
requests will finish processing before shutting down.
If the timeout delay is reached, the node will be forcefully
stopped (SIGTERM).

Options:
 -p,--prefix      (optional string) prefix Kong is running at
 -t,--timeout     (default 10) timeout before forced shutdown
 -w,--wait        (default 0) wait time before initiating the shutdown
""",
    "health": """Usage: kong health [OPTIONS]

Check if the necessary services are running for this node.

Options:
 -p,--prefix      (optional string) prefix at which Kong should be running
""",
    "version": """Usage: kong version [OPTIONS]

Print Kong's version. With the -a option, will print
the version of all underlying dependencies.

Options:
 -a,--all         get version of all dependencies
""",
}


def parse_opts(args: list, spec: dict, cmd: str, version: str):
    """Penlight-lapp-like parsing: spec maps option names -> (attr, kind, default)."""
    opts = {attr: default for attr, _kind, default in spec.values()}
    opts["verbose"] = 0
    positional = []
    i = 0
    while i < len(args):
        tok = args[i]
        if tok in ("--v", "-v"):
            opts["verbose"] = max(opts["verbose"], 1)
        elif tok == "--vv":
            opts["verbose"] = 2
        elif tok in ("-h", "--help"):
            sys.stderr.write(COMMAND_USAGE.get(cmd, f"Usage: kong {cmd} [OPTIONS]\n"))
            raise Quit(0)
        elif tok.startswith("-") and len(tok) > 1:
            name, eq, value = tok.lstrip("-").partition("=")
            if name not in spec:
                sys.stderr.write(f"kong: unrecognized parameter: {name}\n\n" + COMMAND_USAGE.get(cmd, f"Usage: kong {cmd} [OPTIONS]\n"))
                raise Quit(1)
            attr, kind, _default = spec[name]
            if kind == "flag":
                opts[attr] = True
            else:
                if not eq:
                    if i + 1 >= len(args):
                        sys.stderr.write(f"kong: {name} was expecting a value\n")
                        raise Quit(1)
                    i += 1
                    value = args[i]
                if kind == "number":
                    try:
                        value = float(value)
                    except ValueError:
                        sys.stderr.write(f"kong: unable to convert to number: {value}\n")
                        raise Quit(1)
                opts[attr] = value
        else:
            positional.append(tok)
        i += 1
    return opts, positional


CONF_OPTS = {"c": ("conf", "string", None), "conf": ("conf", "string", None), "p": ("prefix", "string", None), "prefix": ("prefix", "string", None)}


def _load(opts, version):
    return confmod.load(opts.get("conf"), version, prefix=opts.get("prefix"))


def _default_prefix(opts) -> str:
    if opts.get("prefix"):
        return os.path.abspath(opts["prefix"])
    if os.environ.get("KONG_PREFIX"):
        return os.path.abspath(os.environ["KONG_PREFIX"])
    return confmod.DEFAULT_PREFIX


def pid_path(prefix: str) -> str:
    return os.path.join(prefix, "pids", "nginx.pid")


def read_pid(prefix: str):
    try:
        with open(pid_path(prefix), encoding="utf-8") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def is_running(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def running_pid(prefix: str):
    pid = read_pid(prefix)
    return pid if is_running(pid) else None


def _prefix_conf(prefix: str, version: str) -> dict:
    if not os.path.isdir(prefix):
        raise KongError(f"no such prefix: {prefix}")
    env_path = confmod.kong_env_path(prefix)
    if not os.path.exists(env_path):
        raise KongError(f"no file at: {env_path}")
    return confmod.load_from_prefix(prefix, version)


def prepare_prefix(conf: dict) -> None:
    prefix = conf["prefix"]
    try:
        prefixmod.prepare(prefix, out, log_warn)
    except prefixmod.PrefixError as exc:
        raise KongError(str(exc)) from None
    try:
        for name in ("error.log", "access.log", "admin_access.log"):
            open(os.path.join(prefix, "logs", name), "a").close()
        confmod.write_kong_env(conf)
        with open(os.path.join(prefix, "nginx.conf"), "w", encoding="utf-8") as fh:
            fh.write(
                "# generated by the Kong simulator: the node is served by kongsim.server\n"
                "worker_processes 1;\npid pids/nginx.pid;\nerror_log logs/error.log notice;\n"
            )
    except OSError as exc:
        # UNCONFIRMED: the file error's wording (`<path>: <strerror>` assumed, as in prefix.py)
        raise KongError(f"{exc.filename or prefix}: {exc.strerror}") from None


# -------------------------------------------------------------------------------- commands
def cmd_version(args, version):
    opts, _ = parse_opts(args, {"a": ("all", "flag", False), "all": ("all", "flag", False)}, "version", version)
    if opts["all"]:
        info = versions.get(version)
        nginx = "".join(f"{int(p):03d}" if i else p for i, p in enumerate(info.openresty.split(".")[:3]))
        # UNCONFIRMED: ngx_lua / nginx / Lua numbers depend on the build (FACTS 8.1).
        out(f"Kong: {version}\nngx_lua: 10026\nnginx: {int(nginx)}\nLua: LuaJIT 2.1.0-20231117")
    else:
        out(version)
    return 0


def _schema_gate(conf, version, run_migrations: bool):
    if conf["database"] == "off":
        return None
    from . import migrations

    if run_migrations:
        from . import cmd_migrations

        code = cmd_migrations.run(conf, ["up"], version)
        if code != 0:
            raise Quit(code)
    state = migrations.schema_state(conf, version)
    if state.needs_bootstrap:
        raise KongError(
            f"{MIGRATIONS_LUA}:17: {migrations.NEEDS_BOOTSTRAP_MSG}" if hasattr(migrations, "NEEDS_BOOTSTRAP_MSG") else "Database needs bootstrapping"
        )
    if state.new:
        raise KongError(f"{MIGRATIONS_LUA}:20: New migrations available; run 'kong migrations up' to proceed")
    if state.pending:
        text = migrations.format_block(state.pending)
        out("Database has pending migrations:\n" + text)
        return text
    return None


def cmd_start(args, version):
    spec = dict(CONF_OPTS)
    spec.update(
        {
            "nginx-conf": ("nginx_conf", "string", None),
            "run-migrations": ("run_migrations", "flag", False),
            "db-timeout": ("db_timeout", "number", 60),
            "lock-timeout": ("lock_timeout", "number", 60),
        }
    )
    opts, _ = parse_opts(args, spec, "start", version)
    conf = _load(opts, version)
    return start_node(conf, version, opts)


def start_node(conf, version, opts):
    prefix = conf["prefix"]
    if versions.parse_version(version) < (3, 0, 0):
        # kong/cmd/start.lua:24-27 at 2.8.5: the prefix (.kong_env, nginx.conf) is prepared
        # before the running check, so a refused start still rewrites a running node's prefix;
        # 3.x checks first (start.lua:56-59 at 3.4.2/3.7.1/3.9.3).
        prepare_prefix(conf)
    if running_pid(prefix):
        raise KongError(f"Kong is already running in {prefix}")
    if versions.parse_version(version) >= (3, 0, 0):
        prepare_prefix(conf)
    pending = _schema_gate(conf, version, bool(opts.get("run_migrations")))
    rfd, wfd = os.pipe()
    env = dict(os.environ, KONGSIM_VERSION=version)
    if pending:
        env["KONGSIM_PENDING_MIGRATIONS"] = pending
    try:
        with open(os.path.join(prefix, "logs", "error.log"), "a", encoding="utf-8") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kongsim.server", "--prefix", prefix, "--ready-fd", str(wfd)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(wfd,),
                env=env,
                start_new_session=True,
                cwd=prefix,
            )
    finally:
        os.close(wfd)
    buf = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([rfd], [], [], 0.2)
        if ready:
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            buf += chunk
            if buf.endswith(b"\n"):
                break
        elif proc.poll() is not None:
            break
    os.close(rfd)
    msg = buf.decode(errors="replace").strip()
    if msg == "OK":
        out("Kong started")
        return 0
    if proc.poll() is None and not msg:
        proc.kill()
        raise KongError("timeout while starting Kong")
    if msg.startswith("ERR "):
        raise KongError(msg[4:])
    raise KongError(f"could not start Kong: node exited with code {proc.poll()}, see {os.path.join(prefix, 'logs', 'error.log')}")


def cmd_stop(args, version):
    opts, _ = parse_opts(args, {"p": ("prefix", "string", None), "prefix": ("prefix", "string", None)}, "stop", version)
    prefix = _default_prefix(opts)
    _prefix_conf(prefix, version)
    pid = running_pid(prefix)
    if not pid:
        raise KongError(f"nginx not running in prefix: {prefix}")
    # kong/cmd/stop.lua:26 -> nginx_signals.stop = send_signal(conf, "TERM") (nginx_signals.lua:142
    # at 2.8.5, :207 at 3.4.2/3.7.1, :221 at 3.9.3): `kill -s TERM` and return. Kong does not
    # wait for nginx to exit: `Kong stopped` is printed while the process may still be running
    # (and its pid file still in place), so a `kong start` right after can fail with
    # `Kong is already running in <prefix>` (kong/cmd/start.lua:27 at 2.8.5, :57 at 3.9.3).
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        raise KongError("could not send signal") from None
    out("Kong stopped")
    return 0


def cmd_quit(args, version):
    spec = {
        "p": ("prefix", "string", None),
        "prefix": ("prefix", "string", None),
        "t": ("timeout", "number", 10),
        "timeout": ("timeout", "number", 10),
        "w": ("wait", "number", 0),
        "wait": ("wait", "number", 0),
    }
    opts, _ = parse_opts(args, spec, "quit", version)
    prefix = _default_prefix(opts)
    _prefix_conf(prefix, version)
    pid = running_pid(prefix)
    if not pid:
        raise KongError(f"nginx not running in prefix: {prefix}")
    wait = float(opts["wait"] or 0)
    if wait > 0:
        # kong/cmd/quit.lua:21-31 (2.8.5, 3.4.2, 3.9.3): 0.2 s polls; a node that dies meanwhile is
        # logged as an error and the command ends there, exit code 0
        end = time.monotonic() + wait
        while time.monotonic() < end:
            time.sleep(0.2)
            if not is_running(pid):
                log_error("Kong stopped while waiting (unexpected)")
                return 0
    os.kill(pid, signal.SIGQUIT)
    # kong/cmd/quit.lua:37-55: poll every 0.2 s up to -t (at least 1 s); then SIGTERM through
    # nginx_signals.stop, which does not wait for the process to exit
    timeout = max(float(opts["timeout"]), 1)
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.2)
        if not is_running(pid):
            out("Kong stopped (gracefully)")
            return 0
        if time.monotonic() >= deadline:
            break
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    out("Timeout, Kong stopped forcefully")
    return 0


def cmd_restart(args, version):
    spec = dict(CONF_OPTS)
    spec.update(
        {
            "nginx-conf": ("nginx_conf", "string", None),
            "run-migrations": ("run_migrations", "flag", False),
            "db-timeout": ("db_timeout", "number", 60),
            "lock-timeout": ("lock_timeout", "number", 60),
        }
    )
    opts, _ = parse_opts(args, spec, "restart", version)
    conf = _load(opts, version)
    pid = running_pid(conf["prefix"])
    if pid:
        # kong/cmd/restart.lua:21-33 (2.8.5 and 3.9.3): a quiet `kong stop` (SIGTERM), then up to 5 s
        # (ngx.time(), whole seconds) polling every 0.1 s, then `kong start` whatever happened:
        # a node still exiting makes it fail with `Kong is already running in <prefix>`.
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
        texp = int(time.time()) + 5
        while True:
            time.sleep(0.1)
            if not is_running(pid) or int(time.time()) >= texp:
                break
    return start_node(conf, version, opts)


def cmd_reload(args, version):
    spec = dict(CONF_OPTS)
    spec["nginx-conf"] = ("nginx_conf", "string", None)
    opts, _ = parse_opts(args, spec, "reload", version)
    conf = _load(opts, version)
    prefix = conf["prefix"]
    pid = running_pid(prefix)
    if not pid:
        raise KongError(f"nginx not running in prefix: {prefix}")
    prepare_prefix(conf)
    os.kill(pid, signal.SIGHUP)
    out("Kong reloaded")
    return 0


def cmd_health(args, version):
    opts, _ = parse_opts(args, {"p": ("prefix", "string", None), "prefix": ("prefix", "string", None)}, "health", version)
    prefix = _default_prefix(opts)
    if not os.path.isdir(prefix):
        raise KongError(f"no such prefix: {prefix}")
    if not os.path.exists(confmod.kong_env_path(prefix)):
        raise KongError(f"Kong is not running at {prefix}")
    running = running_pid(prefix)
    name = "nginx"
    out(f"{name.ljust(12, '.')}{'running' if running else 'not running'}")
    if not running:
        raise KongError(f"Kong is not running at {prefix}")
    out()
    out(f"Kong is healthy at {prefix}")
    return 0


def cmd_prepare(args, version):
    spec = dict(CONF_OPTS)
    spec["nginx-conf"] = ("nginx_conf", "string", None)
    opts, _ = parse_opts(args, spec, "prepare", version)
    conf = _load(opts, version)
    try:
        prepare_prefix(conf)
    except KongError as exc:
        # kong/cmd/prepare.lua:10-12 (3.9.3): error("could not prepare Kong prefix at " .. prefix .. ": " .. err)
        raise KongError(f"could not prepare Kong prefix at {conf['prefix']}: {exc}") from None
    return 0


def cmd_check(args, version):
    _opts, positional = parse_opts(args, {}, "check", version)
    path = positional[0] if positional else None
    try:
        conf = confmod.load(path, version)
    except confmod.ConfError as exc:
        for line in str(exc).split("\n"):
            log_error(line)
        return 1
    out(f"configuration at {conf['_conf_path'] or path} is valid")
    return 0


def cmd_drain(args, version):
    opts, _ = parse_opts(args, dict(CONF_OPTS), "drain", version)
    conf = _load(opts, version)
    listeners = conf["_listeners"].get("status_listen") or []
    if not listeners:
        out("No status listeners found in configuration.")
        return 0
    entry = listeners[0]
    host = "127.0.0.1" if entry["ip"] in ("0.0.0.0", "*") else entry["ip"]
    scheme = "https" if entry.get("ssl") else "http"
    import urllib.error
    import urllib.request

    url = f"{scheme}://{host}:{entry['port']}/status/ready"
    req = urllib.request.Request(url, data=json.dumps({"status": "draining"}).encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            code = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        out(f"Failed to send request to {url}: {reason}")
        return 0
    if code != 204:
        out(f"Unexpected response status from {url}: {code}")
        return 0
    out("Kong's status successfully changed to 'draining'")
    return 0


def _pretty_error(err, item=None, indent="") -> str:
    lines = []
    if isinstance(err, list):
        items = [(i + 1, v) for i, v in enumerate(err) if v is not None]
    else:
        items = sorted(err.items(), key=lambda kv: str(kv[0]))
    for k, v in items:
        prefix = f"{indent}- in entry {k} of '{item}'" if item is not None else f"{indent}in '{k}'"
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            v = v[0] if len(v) == 1 else "; ".join(v)
        if isinstance(v, (dict, list)):
            lines.append(prefix + ":")
            lines.append(_pretty_error(v, k if isinstance(v, list) else None, indent + "  "))
        else:
            lines.append(f"{prefix}: {v}")
    return "\n".join(lines)


def cmd_config(args, version):
    from . import declarative

    spec = dict(CONF_OPTS)
    opts, positional = parse_opts(args, spec, "config", version)
    if not positional:
        sys.stderr.write(CONFIG_USAGE)
        return 1
    sub = positional[0]
    if sub in ("db_export", "db_import", "parse"):
        conf = _config_conf(opts, version)
    if sub in ("db_export", "db_import"):
        try:
            from . import cmd_config_db
        except ImportError as exc:
            raise KongError(f"'kong config {sub}' is not available in this build: {exc}")
        return cmd_config_db.run(conf, args, version)
    if sub == "init":
        target = positional[1] if len(positional) > 1 else "kong.yml"
        target = os.path.abspath(target)
        if os.path.exists(target):
            raise KongError(f"{target} already exists in the current directory.\nWill not overwrite it.")
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(declarative.init_template(version))
        return 0
    if sub == "parse":
        # kong/cmd/config.lua:83-85 (3.4.2-3.9.3; :90-92 at 2.8.5): DB.new, init_connector and
        # connect run before the file is even looked at. With `database = postgres` (Kong's
        # default) an unreachable database fails the parse with the connector's error.
        _connect_database(conf)
        if len(positional) < 2:
            raise KongError("expected a declarative configuration file; see `kong config --help`")
        filename = positional[1]
        if not filename.endswith((".json", ".yml", ".yaml")):
            raise KongError(f"Failed parsing:\nunknown file type: {filename}. (Accepted types: json, yaml)")
        try:
            with open(filename, "rb") as fh:
                raw = fh.read()
        except OSError:
            raise KongError(f"Failed parsing:\nNo such file or directory: {filename}")
        from .node import Node  # noqa: F401  (plugins list as the node computes it)

        plugins = _enabled_plugins(conf, version)
        try:
            declarative.load_text(raw, version, filename=filename, enabled_plugins=plugins)
        except declarative.DeclarativeError as exc:
            if "error" in exc.fields and len(exc.fields) == 1:
                raise KongError("Failed parsing:\n" + exc.fields["error"])
            raise KongError("Failed parsing:\n" + _pretty_error(exc.fields))
        out("parse successful")
        return 0
    sys.stderr.write(f"No such command for config: {sub}\n\n" + CONFIG_USAGE)
    return 1


def _config_conf(opts, version):
    """kong/cmd/config.lua:51-59 (3.4.2-3.9.3; :58-66 at 2.8.5): conf_loader(-c or the default
    /etc/kong/kong.conf, /etc/kong.conf; -p), then, when `<prefix>/.kong_env` exists, that file
    *replaces* it ("load <PREFIX>/kong.conf containing running node's config"): a node prepared or
    started in the prefix decides the database, whatever `-c` says."""
    conf = _load(opts, version)
    env_path = confmod.kong_env_path(conf["prefix"])
    if os.path.exists(env_path):
        conf = confmod.load(env_path, version)
    return conf


def _connect_database(conf):
    """DB.new + init_connector + connect (kong/db/init.lua DB:init_connector, prefix_err): for
    postgres the connector's init fails with `[PostgreSQL error] failed to retrieve PostgreSQL
    server_version_num: <reason>`; the `off` strategy connects to nothing."""
    if conf["database"] == "off":
        return
    from . import pgdb

    pgdb.close(pgdb.connect(conf, application_name="kong"))


def _enabled_plugins(conf, version):
    info = versions.get(version)
    names = []
    for part in str(conf.get("plugins") or "bundled").split(","):
        part = part.strip()
        if part == "bundled":
            names.extend(info.bundled_plugins)
        elif part and part != "off":
            names.append(part)
    return tuple(names)


CONFIG_USAGE = """Usage: kong config COMMAND [OPTIONS]

Use declarative configuration files with Kong.

The available commands are:
  init [<file>]                       Generate an example config file to
                                      get you started. If a filename
                                      is not given, ./kong.yml is used
                                      by default.

  db_import <file>                    Import a declarative config file into
                                      the Kong database.

  db_export [<file>]                  Export the Kong database into a
                                      declarative config file. If a filename
                                      is not given, ./kong.yml is used
                                      by default.

  parse <file>                        Parse a declarative config file (check
                                      its syntax) but do not load it into Kong.

Options:
 -c,--conf        (optional string)   Configuration file.
 -p,--prefix      (optional string)   Override prefix directory.
"""


def cmd_migrations(args, version):
    conf_path = prefix = None
    i = 0
    while i < len(args):
        tok = args[i]
        for names, attr in ((("-c", "--conf"), "conf"), (("-p", "--prefix"), "prefix")):
            for n in names:
                if tok == n and i + 1 < len(args):
                    if attr == "conf":
                        conf_path = args[i + 1]
                    else:
                        prefix = args[i + 1]
                elif tok.startswith(n + "="):
                    if attr == "conf":
                        conf_path = tok.split("=", 1)[1]
                    else:
                        prefix = tok.split("=", 1)[1]
        i += 1
    conf = confmod.load(conf_path, version, prefix=prefix)
    try:
        from . import cmd_migrations as cm
    except ImportError as exc:
        raise KongError(f"'kong migrations' is not available in this build: {exc}")
    return cm.run(conf, args, version)


def cmd_hybrid(args, version):
    opts, positional = parse_opts(args, {"d": ("days", "number", 1095), "days": ("days", "number", 1095)}, "hybrid", version)
    if not positional or positional[0] != "gen_cert":
        sys.stderr.write(
            "Usage: kong hybrid COMMAND [OPTIONS]\n\nHybrid mode utilities for Kong.\n\n"
            "The available commands are:\n  gen_cert [<cert> <key>]           "
            "Generate a certificate/key pair that is suitable\n"
        )
        return 1
    cert = os.path.abspath(positional[1] if len(positional) > 1 else "cluster.crt")
    key = os.path.abspath(positional[2] if len(positional) > 2 else "cluster.key")
    for path in (cert, key):
        if os.path.exists(path):
            raise KongError(f"{path} already exists.\nWill not overwrite it.")
    proc = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:secp384r1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            str(int(opts["days"])),
            "-subj",
            "/CN=kong_clustering",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise KongError("could not generate certificate: " + proc.stderr.strip())
    os.chmod(key, 0o600)
    return 0


COMMANDS = {
    "start": cmd_start,
    "stop": cmd_stop,
    "quit": cmd_quit,
    "restart": cmd_restart,
    "reload": cmd_reload,
    "health": cmd_health,
    "version": cmd_version,
    "prepare": cmd_prepare,
    "check": cmd_check,
    "drain": cmd_drain,
    "config": cmd_config,
    "migrations": cmd_migrations,
    "hybrid": cmd_hybrid,
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    version = os.environ.get("KONGSIM_VERSION", "")
    if version not in versions.VERSIONS:
        sys.stderr.write(f"Error: KONGSIM_VERSION={version!r} is not a simulated Kong version\n")
        return 2
    words = [a for a in argv if a not in ("--v", "--vv")]
    if not words or words[0] in ("-h", "--help", "help"):
        sys.stderr.write(usage(version))
        return 1 if not words else 0
    cmd = words[0]
    idx = argv.index(cmd)
    rest = argv[:idx] + argv[idx + 1 :]
    verbose = "--v" in argv or "--vv" in argv
    if cmd not in commands(version) or cmd not in COMMANDS and cmd not in ("roar", "vault"):
        sys.stderr.write(f"No such command: {cmd}\n\n{usage(version)}")
        return 1
    if cmd == "roar":
        out("Kong, Monolith destroyer.")
        return 0
    if cmd == "vault":
        raise_error = "the vault command is not simulated"
        sys.stderr.write(f"Error: {raise_error}\n{HINT}\n")
        return 1
    try:
        return COMMANDS[cmd](rest, version)
    except Quit as q:
        return q.code
    except (KongError, confmod.ConfError) as exc:
        _print_error(str(exc), verbose)
        return 1
    except Exception as exc:  # noqa: BLE001
        msg = getattr(exc, "kong_message", None) or str(exc)
        _print_error(msg, verbose)
        return 1


def _print_error(message: str, verbose: bool) -> None:
    if verbose:
        sys.stderr.write(f"Error: \n{message}\n")
    else:
        sys.stderr.write(f"Error: {message}\n{HINT}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
