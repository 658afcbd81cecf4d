# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""nginx implementation of the lb_weight backend interface: an upstream include file owned by
the module, validated with `nginx -t` and applied with a graceful reload."""

from __future__ import annotations

import os
import re
import time

from ansible_collections.kongops.upgrade.plugins.module_utils._files import atomic_write
from ansible_collections.kongops.upgrade.plugins.module_utils._lb import (
    LbBackend,
    known,
    read_text,
)

NGINX_ARG_SPEC = {
    "upstream_file": {"type": "path"},
    "upstream_name": {"type": "str"},
    "nginx_bin": {"type": "str", "default": "nginx"},
    "nginx_conf": {"type": "path"},
    "reload": {"type": "bool", "default": True},
}

_UPSTREAM = re.compile(r"^\s*upstream\s+([^\s{]+)\s*\{\s*$")
_SERVER = re.compile(r"^(\s*)server\s+([^\s;]+)((?:\s+[^\s;]+)*)\s*;\s*$")
_WEIGHT = re.compile(r"^weight=(\d+)$")
NEW_WORKER_WAIT = 10.0


class NginxError(Exception):
    """The upstream file cannot be used, or an nginx command failed; carries the command and output."""

    def __init__(self, msg: str, param=None, cmd=None, rc=None, stdout=None, stderr=None):
        super().__init__(msg)
        self.param, self.cmd, self.rc, self.stdout, self.stderr = param, cmd, rc, stdout, stderr

    def context(self) -> dict:
        ctx = {"cmd": self.cmd, "rc": self.rc, "stdout": self.stdout, "stderr": self.stderr}
        return {k: v for k, v in ctx.items() if v is not None}


class NginxStepError(NginxError):
    """`nginx -t` or `nginx -s reload` failed in write_test_reload; the previous file is back."""

    def __init__(self, step: str, cmd, rc, stdout, stderr):
        super().__init__(
            f"nginx {'-t' if step == 'test' else '-s reload'} failed: {(stderr or stdout).strip()[-1500:]}", cmd=cmd, rc=rc, stdout=stdout, stderr=stderr
        )
        self.step = step


def write_test_reload(path: str, text: str, previous, run, conf_args=(), reload: bool = True, mode: int | None = None, prefix: str = ".kongops-") -> None:
    """The one way a file nginx reads is changed: write `text` atomically, `nginx -t`, then (with
    `reload`) `nginx -s reload`. If anything fails, test or reload included, the previous content
    (`previous`; None = the file did not exist) is put back before the error propagates, so nginx
    never reloads, now or later, a file that was not confirmed. `run(*args)` returns
    (cmd, rc, stdout, stderr); failures of the two steps raise NginxStepError."""
    atomic_write(path, text, mode=mode, prefix=prefix)
    try:
        cmd, rc, out, err = run("-t", *conf_args)
        if rc != 0:
            raise NginxStepError("test", cmd, rc, out, err)
        if reload:
            cmd, rc, out, err = run("-s", "reload", *conf_args)
            if rc != 0:
                raise NginxStepError("reload", cmd, rc, out, err)
    except BaseException:
        if previous is None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        else:
            atomic_write(path, previous, mode=mode, prefix=prefix)
        raise


def _split_comment(line: str):
    body, sep, comment = line.partition("#")
    return body, comment if sep else None


class UpstreamServer:
    """One `server` line. nginx has no weight 0 and no drain, so both are written as `down`,
    and the trailing comment keeps what nginx cannot express:
    ``server 10.0.0.7:8000 down; # y1 initial=100 weight=0 state=drain``.
    The comment's first word (without "=") names the server; without it the address does."""

    def __init__(self, index: int, indent: str, address: str, params: list, comment):
        self.index, self.indent, self.address = index, indent, address
        self.weight_param = None
        self.down = False
        self.params = []
        for token in params:
            match = _WEIGHT.match(token)
            if match:
                self.weight_param = int(match.group(1))
            elif token == "down":
                self.down = True
            else:
                self.params.append(token)
        words = (comment or "").split()
        self.name = words.pop(0) if words and "=" not in words[0] else None
        self.meta, self.extra = {}, []
        for word in words:
            key, sep, value = word.partition("=")
            if sep and key in ("initial", "weight", "state"):
                self.meta[key] = value
            else:
                self.extra.append(word)

    @property
    def label(self) -> str:
        return self.name or self.address

    def logical(self) -> tuple:
        """(weight, state, initial_weight) as lb_weight sees the line. Without `down` the line
        is ready with its weight; with `down` the comment says whether that is weight 0, drain or
        maint (a `down` written by hand is maint)."""
        weight = self.weight_param if self.weight_param is not None else 1
        initial = int(self.meta["initial"]) if self.meta.get("initial", "").isdigit() else weight
        if not self.down:
            return weight, "ready", initial
        zero = self.meta.get("weight") == "0"
        state = self.meta.get("state")
        if state not in ("drain", "maint"):
            state = "ready" if zero else "maint"
        return (0 if zero else weight), state, initial

    def render(self, weight: int, state: str, initial: int) -> str:
        tokens = ["server", self.address]
        if weight > 0:
            tokens.append(f"weight={weight}")
        tokens += self.params
        if weight == 0 or state != "ready":
            tokens.append("down")
        words = ([self.name] if self.name else []) + self.extra + [f"initial={initial}"]
        if weight == 0:
            words.append("weight=0")
        if state != "ready":
            words.append(f"state={state}")
        return f"{self.indent}{' '.join(tokens)}; # {' '.join(words)}\n"


def parse_upstream(text: str, upstream_name=None, path: str = "upstream_file"):
    """The server lines of the managed upstream as ({name: UpstreamServer}, upstream name). The
    file holds `upstream NAME { ... }` blocks, or bare `server` lines when it is itself included
    inside an upstream block."""
    lines = text.splitlines()
    blocks, current, found = [], None, {}
    for index, line in enumerate(lines):
        body, _comment = _split_comment(line)
        if not body.strip():
            continue
        first = body.split()[0]
        if current is None and _UPSTREAM.match(body):
            current = _UPSTREAM.match(body).group(1)
            blocks.append(current)
            found[current] = []
        elif current is not None and body.strip() == "}":
            current = None
        elif first == "server" or (current is None and first == "upstream") or (current and "}" in body):
            found.setdefault(current, []).append(index)
    if current is not None:
        raise NginxError(f"upstream_file: {path}: upstream {current} is not closed by a line holding only '}}'", param="upstream_file")
    if blocks:
        if upstream_name is None:
            if len(blocks) > 1:
                raise NginxError(f"upstream_name: {path} holds several upstream blocks ({', '.join(blocks)}); name the one to manage", param="upstream_name")
            upstream_name = blocks[0]
        if upstream_name not in blocks:
            raise NginxError(f"upstream_name: no upstream {upstream_name} in {path} (upstreams there: {known(blocks)})", param="upstream_name")
        indices = found.get(upstream_name, [])
    else:
        indices = found.get(None, [])
    servers = {}
    for index in indices:
        body, comment = _split_comment(lines[index])
        match = _SERVER.match(body)
        if not match:
            raise NginxError(
                f"upstream_file: {path} line {index + 1}: cannot parse {lines[index].strip()!r}; write "
                "'upstream NAME {', each server directive and the closing '}' on lines of their own, "
                "e.g. 'server 10.0.0.1:8000 weight=10; # kong1'",
                param="upstream_file",
            )
        server = UpstreamServer(index, match.group(1), match.group(2), match.group(3).split(), comment)
        if server.label in servers:
            raise NginxError(f"upstream_file: {path} names server {server.label} twice; give each line its own '# NAME' comment", param="upstream_file")
        servers[server.label] = server
    if not servers:
        raise NginxError(f"upstream_file: {path} has no server lines in upstream {upstream_name or '(bare)'}", param="upstream_file")
    return servers, upstream_name


def _children(proc_root: str, parent: int) -> dict:
    """{pid: command line} of the processes whose parent is `parent` (Linux /proc)."""
    found = {}
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, entry, "stat")) as fh:
                stat = fh.read()
            with open(os.path.join(proc_root, entry, "cmdline"), "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        # The command name in field 2 may hold spaces and ")"; the parent pid follows the last ")".
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(parent):
            found[int(entry)] = cmdline
    return found


class NginxUpstream(LbBackend):
    """lb_weight on an nginx upstream kept in an include file.

    Every write is checked with `nginx -t`; on failure the previous file is put back. With
    ``reload`` the change is applied by `nginx -s reload`: new workers use the new weights while
    old workers finish their requests, which is what the drain wait waits for.
    """

    kind = "nginx"

    def __init__(
        self,
        run_command,
        upstream_file: str,
        upstream_name=None,
        nginx_bin: str = "nginx",
        nginx_conf=None,
        reload: bool = True,
        proc_root: str = "/proc",
        sleep=time.sleep,
        clock=time.monotonic,
    ):
        super().__init__()
        self.run_command = run_command
        self.path, self.upstream_name = upstream_file, upstream_name
        self.nginx_bin, self.nginx_conf, self.reload = nginx_bin, nginx_conf, reload
        self.proc_root, self.sleep, self.clock = proc_root, sleep, clock
        self.text = None
        self.servers: dict = {}
        self.old_workers: set = set()
        self._master = None

    @classmethod
    def from_params(cls, run_command, params: dict) -> NginxUpstream:
        return cls(run_command, **{k: params[k] for k in NGINX_ARG_SPEC})

    def _run(self, *args: str):
        cmd = [self.nginx_bin, *args]
        try:
            rc, out, err = self.run_command(cmd)
        except OSError as exc:
            raise NginxError(f"nginx_bin: cannot run {self.nginx_bin}: {exc}", param="nginx_bin", cmd=cmd) from exc
        return cmd, rc, out or "", err or ""

    def _conf_args(self) -> list:
        return ["-c", self.nginx_conf] if self.nginx_conf else []

    def read(self) -> dict:
        text = read_text(self.path)
        if text is None:
            raise NginxError(f"upstream_file: {self.path} does not exist; template it with the upstream's server lines first", param="upstream_file")
        self.text = text
        self.servers, self.upstream_name = parse_upstream(text, self.upstream_name, self.path)
        result = {}
        for name, server in self.servers.items():
            weight, state, initial = server.logical()
            result[name] = {"weight": weight, "initial_weight": initial, "state": state, "sessions": None, "address": server.address, "down": server.down}
        return result

    def render(self, current: dict, desired: dict) -> str:
        lines = self.text.splitlines(keepends=True)
        for name, server in self.servers.items():
            want, cur = desired[name], current[name]
            if (want["weight"], want["state"]) != (cur["weight"], cur["state"]):
                lines[server.index] = server.render(want["weight"], want["state"], cur["initial_weight"])
        return "".join(lines)

    def lock_dirs(self) -> list:
        return [os.path.dirname(os.path.abspath(self.path))]

    def prepare(self, current: dict, desired: dict) -> list:
        new = self.render(current, desired)
        if new == self.text:
            return []
        return [{"path": self.path, "before": self.text, "after": new, "existed": True}]

    def apply(self, current: dict, desired: dict, files: list) -> None:
        if not files:
            return
        if self.reload:
            self.old_workers = set(self._workers())
        try:
            write_test_reload(self.path, files[0]["after"], self.text, self._run, self._conf_args(), self.reload)
        except NginxStepError as exc:
            what = (
                f"upstream_file: nginx -t rejected the new {self.path}, the previous file is back in place"
                if exc.step == "test"
                else f"reload: nginx -s reload failed, the previous {self.path} is back in place"
            )
            raise NginxError(
                f"{what}: {(exc.stderr or exc.stdout).strip()[-1500:]}",
                param="upstream_file" if exc.step == "test" else "reload",
                cmd=exc.cmd,
                rc=exc.rc,
                stdout=exc.stdout,
                stderr=exc.stderr,
            ) from exc
        if self.reload and not self._new_workers_started():
            self.warnings.append(
                f"nginx started no new worker within {NEW_WORKER_WAIT:g}s of the reload; the old weights may still be in use, check nginx's error log"
            )

    def master_pid(self):
        if self._master is None:
            try:
                with open(self._pid_path()) as fh:
                    self._master = int(fh.read().strip())
            except (OSError, ValueError):
                self._master = 0
        return self._master or None

    def _pid_path(self) -> str:
        """The pid file: the main config's `pid` directive, else the compiled-in --pid-path."""
        _cmd, _rc, out, err = self._run("-V")
        build = out + err

        def option(name, default):
            match = re.search(rf"--{name}=(\S+)", build)
            return match.group(1) if match else default

        prefix = option("prefix", "/usr/local/nginx")
        conf = self.nginx_conf or option("conf-path", os.path.join(prefix, "conf/nginx.conf"))
        pid = option("pid-path", os.path.join(prefix, "logs/nginx.pid"))
        for line in (read_text(conf) or "").splitlines():
            match = re.match(r"^\s*pid\s+([^;\s]+)\s*;", _split_comment(line)[0])
            if match:
                pid = match.group(1)
                break
        return pid if os.path.isabs(pid) else os.path.join(prefix, pid)

    def _workers(self) -> dict:
        master = self.master_pid()
        if not master:
            return {}
        return {pid: cmd for pid, cmd in _children(self.proc_root, master).items() if "worker process" in cmd}

    def _new_workers_started(self) -> bool:
        if not self.master_pid():
            return True
        deadline = self.clock() + NEW_WORKER_WAIT
        while True:
            workers = self._workers()
            if any(pid not in self.old_workers and "shutting down" not in cmd for pid, cmd in workers.items()):
                return True
            if self.clock() > deadline:
                return False
            self.sleep(0.1)

    def drain_probe(self, servers: list) -> dict:
        """nginx keeps no per-server session count: the drain is over when the workers that ran
        before the reload have finished their requests and exited."""
        old = sorted(pid for pid, cmd in self._workers().items() if pid in self.old_workers or "shutting down" in cmd)
        if not old:
            return {}
        pids = ", ".join(str(p) for p in old)
        return {"nginx workers from before the reload": f"{len(old)} still finishing requests, pids {pids}"}
