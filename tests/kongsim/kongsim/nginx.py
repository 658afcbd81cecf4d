"""The `nginx` binary of the packaged Kong (/usr/local/openresty/nginx/sbin/nginx), as Kong's
systemd unit calls it (Kong/kong build/package/kong.service at 3.9.3, lines 8-12):

    ExecStartPre=/usr/local/bin/kong prepare -p /usr/local/kong
    ExecStart=/usr/local/openresty/nginx/sbin/nginx -p /usr/local/kong -c nginx.conf
    ExecReload=/usr/local/bin/kong prepare -p /usr/local/kong
    ExecReload=/usr/local/openresty/nginx/sbin/nginx -p /usr/local/kong -c nginx.conf -s reload
    ExecStop=/bin/kill -s QUIT $MAINPID

`nginx -p PREFIX -c nginx.conf` runs the node of PREFIX (prepared by `kong prepare`, which wrote
.kong_env) in the foreground, as nginx does with `daemon off` (the unit sets KONG_NGINX_DAEMON=off):
the process systemd starts is the node, so `kill -s QUIT $MAINPID` is Kong's graceful quit.
Before serving it checks the database schema as Kong's init_by_lua does (kong/init.lua at 3.9.3,
lines 662-669: migrations_utils.check_state). `nginx -s reload|quit|stop|reopen` signals the
master whose pid is in PREFIX/pids/nginx.pid (HUP, QUIT, TERM, USR1), as nginx does.
The simulator models only the foreground start: a `daemon on` start is not modelled.
"""

from __future__ import annotations

import os
import signal
import sys

SIGNALS = {"reload": signal.SIGHUP, "quit": signal.SIGQUIT, "stop": signal.SIGTERM, "reopen": signal.SIGUSR1}
USAGE = "Usage: nginx [-p prefix] [-c filename] [-s signal] [-g directives]\n"


def _emerg(msg: str) -> int:
    sys.stderr.write(f"nginx: [emerg] {msg}\n")
    return 1


def parse(argv: list) -> dict:
    opts = {"prefix": None, "conf": "conf/nginx.conf", "signal": None, "test": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-p", "-c", "-s", "-g") and i + 1 < len(argv):
            key = {"-p": "prefix", "-c": "conf", "-s": "signal", "-g": "directives"}[arg]
            opts[key] = argv[i + 1]
            i += 2
            continue
        if arg in ("-t", "-T"):
            opts["test"] = True
        elif arg in ("-q",):
            pass
        else:
            raise ValueError(f'invalid option: "{arg.lstrip("-")}"')
        i += 1
    return opts


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = parse(argv)
    except ValueError as exc:
        sys.stderr.write(f"nginx: {exc}\n" + USAGE)
        return 1
    prefix = os.path.abspath(opts["prefix"] or "/usr/local/openresty/nginx")
    conf_file = os.path.join(prefix, opts["conf"])
    if not os.path.exists(conf_file):
        return _emerg(f'open() "{conf_file}" failed (2: No such file or directory)')
    pid_file = os.path.join(prefix, "pids", "nginx.pid")
    if opts["signal"]:
        sig = SIGNALS.get(opts["signal"])
        if sig is None:
            sys.stderr.write(f'nginx: invalid option: "-s {opts["signal"]}"\n')
            return 1
        try:
            with open(pid_file, encoding="utf-8") as fh:
                pid = int(fh.read().strip())
        except FileNotFoundError:
            sys.stderr.write(f'nginx: [error] open() "{pid_file}" failed (2: No such file or directory)\n')
            return 1
        except ValueError:
            sys.stderr.write(f'nginx: [error] invalid PID number "" in "{pid_file}"\n')
            return 1
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            sys.stderr.write(f"nginx: [error] kill({pid}, {int(sig)}) failed (3: No such process)\n")
            return 1
        return 0
    version = os.environ.get("KONGSIM_VERSION", "")
    from . import conf as confmod

    try:
        conf = confmod.load_from_prefix(prefix, version)
    except confmod.ConfError as exc:
        return _emerg(f"init_by_lua error: {exc}")
    if opts["test"]:
        sys.stderr.write(f"nginx: the configuration file {conf_file} syntax is ok\nnginx: configuration file {conf_file} test is successful\n")
        return 0
    env = dict(os.environ)
    if conf["database"] != "off":
        from . import cli

        try:
            pending = cli._schema_gate(conf, version, False)
        except cli.KongError as exc:
            sys.stderr.write(f"nginx: [error] init_by_lua error: {exc}\n")
            return 1
        if pending:
            env["KONGSIM_PENDING_MIGRATIONS"] = pending
    # The node is this process from here on (systemd's MAINPID), serving until a signal ends it.
    os.execve(sys.executable, [sys.executable, "-m", "kongsim.server", "--prefix", prefix], env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
