# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""HAProxy runtime API (stats socket) client, and the HAProxy implementation of the
lb_weight backend interface, with persistence to the server-state file or the config."""

from __future__ import annotations

import csv
import os
import re
import socket as socketlib
import tempfile

from ansible_collections.kongops.upgrade.plugins.module_utils._files import atomic_write
from ansible_collections.kongops.upgrade.plugins.module_utils._lb import (
    LbBackend,
    LbParamError,
    known,
    read_text,
)

HAPROXY_RUNTIME_ARG_SPEC = {
    "socket": {"type": "str", "default": "/run/haproxy/admin.sock"},
    "timeout": {"type": "float", "default": 5.0},
}

# srv_admin_state bit flags (include/haproxy/server-t.h, enum srv_admin).
ADMF_FMAINT = 0x01  # forced maintenance: CLI "state maint", or config "disabled" (with CMAINT)
ADMF_IMAINT = 0x02  # maintenance inherited from a tracked server
ADMF_CMAINT = 0x04  # "disabled" in the config; stays set after "state ready", alone it is not maint
ADMF_FDRAIN = 0x08  # forced drain: CLI "state drain"
ADMF_IDRAIN = 0x10  # drain inherited from a tracked server
ADMF_RMAINT = 0x20  # maintenance because DNS resolution failed
ADMF_MAINT = ADMF_FMAINT | ADMF_IMAINT | ADMF_RMAINT
ADMF_DRAIN = ADMF_FDRAIN | ADMF_IDRAIN
ADMF_FORCED = ADMF_FMAINT | ADMF_FDRAIN
OP_STATES = {0: "down", 1: "starting", 2: "up", 3: "stopping"}

# The CLI answers refused commands with text, on a socket that stays "successful".
_REFUSED = ("Permission denied", "Unknown command")
_SECTIONS = (
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "peers",
    "resolvers",
    "userlist",
    "cache",
    "program",
    "http-errors",
    "ring",
    "mailers",
    "fcgi-app",
    "log-forward",
)


class HaproxyRuntimeError(Exception):
    """A runtime API command failed or was refused; carries the command and HAProxy's reply."""

    def __init__(self, msg: str, backend=None, server=None, command=None, response=None, param=None):
        super().__init__(msg)
        self.backend, self.server, self.command, self.response = backend, server, command, response
        self.param = param

    def context(self) -> dict:
        ctx = {"backend": self.backend, "server": self.server, "command": self.command, "response": self.response}
        return {k: v for k, v in ctx.items() if v is not None}


def parse_address(address: str):
    """A UNIX socket path, or (host, port) for "host:port" and "[v6]:port"."""
    if address.startswith("/"):
        return address
    match = re.match(r"^\[([^\]]+)\]:(\d+)$", address) or re.match(r"^([^/:\[\]]+):(\d+)$", address)
    return (match.group(1), int(match.group(2))) if match else address


class HaproxyRuntime:
    """HAProxy's runtime API over its stats socket (UNIX path or TCP host:port), one
    non-interactive connection per command."""

    def __init__(self, socket: str, timeout: float = 5.0):
        self.socket, self.timeout = socket, timeout
        self.address = parse_address(socket)

    @classmethod
    def from_params(cls, params: dict) -> HaproxyRuntime:
        return cls(**{k: params[k] for k in HAPROXY_RUNTIME_ARG_SPEC})

    def _connect(self):
        if isinstance(self.address, tuple):
            family = socketlib.AF_INET6 if ":" in self.address[0] else socketlib.AF_INET
        else:
            family = socketlib.AF_UNIX
        sock = socketlib.socket(family, socketlib.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.address)
        except BaseException:
            sock.close()
            raise
        return sock

    def command(self, cmd: str) -> str:
        where = f"socket {self.socket}"
        try:
            with self._connect() as sock:
                sock.sendall(cmd.encode() + b"\n")
                chunks = []
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
        except FileNotFoundError as exc:
            raise HaproxyRuntimeError(
                f"{where} does not exist: is HAProxy running with a 'stats socket {self.socket} level admin' line?", command=cmd, param="socket"
            ) from exc
        except PermissionError as exc:
            raise HaproxyRuntimeError(
                f"{where}: not permitted to open it; run as a user that may (become: true) or set the socket's mode and user in HAProxy's config",
                command=cmd,
                param="socket",
            ) from exc
        except ConnectionRefusedError as exc:
            raise HaproxyRuntimeError(f"{where} refused the connection: HAProxy is not listening there", command=cmd, param="socket") from exc
        except socketlib.timeout as exc:  # noqa: UP041 - not TimeoutError before Python 3.10 (targets: 3.8+)
            raise HaproxyRuntimeError(f"{where} did not answer {cmd!r} within timeout={self.timeout}s", command=cmd, param="socket") from exc
        except OSError as exc:
            raise HaproxyRuntimeError(f"{where}: {exc}", command=cmd, param="socket") from exc
        reply = b"".join(chunks).decode("utf-8", "replace")
        if reply.startswith(_REFUSED):
            raise HaproxyRuntimeError(
                f"{where} refused {cmd!r} ({reply.strip()}): the socket needs 'level admin'", command=cmd, response=reply.strip(), param="socket"
            )
        return reply

    def backends(self) -> list:
        return [ln.strip() for ln in self.command("show backend").splitlines() if ln.strip() and not ln.startswith("#")]

    def servers_state(self, backend: str) -> dict:
        """`show servers state <backend>`: a version line ("1"), a "# be_id be_name ..." header,
        then one space-separated row per server; an unknown backend answers "Can't find backend."."""
        reply = self.command(f"show servers state {backend}")
        lines = [ln for ln in reply.splitlines() if ln.strip()]
        if not lines or not lines[0].strip().isdigit():
            if "find backend" in reply:
                raise HaproxyRuntimeError(
                    f"haproxy_backend: no backend {backend} in HAProxy (known backends: {known(self.backends())})", backend=backend, param="haproxy_backend"
                )
            raise HaproxyRuntimeError(
                f"unexpected reply to 'show servers state {backend}': {reply[:500]}", backend=backend, command="show servers state", response=reply[:2000]
            )
        header = lines[1].lstrip("# ").split() if len(lines) > 1 and lines[1].startswith("#") else []
        rows = (dict(zip(header, line.split())) for line in lines[1:] if not line.startswith("#"))
        return {row["srv_name"]: row for row in rows if row.get("be_name") == backend}

    def stats(self, backend: str) -> dict:
        """`show stat <proxy> 4 -1` (type 4: servers only): CSV after a "# " prefix on the header."""
        reply = self.command(f"show stat {backend} 4 -1")
        if not reply.startswith("# "):
            raise HaproxyRuntimeError(
                f"unexpected reply to 'show stat {backend}': {reply.strip()[:500]}", backend=backend, command="show stat", response=reply[:2000]
            )
        rows = csv.DictReader(reply[2:].splitlines())
        return {r["svname"]: r for r in rows if r.get("pxname") == backend and r.get("svname") not in ("BACKEND", "FRONTEND")}

    def set(self, backend: str, server: str, what: str, value) -> None:
        cmd = f"set server {backend}/{server} {what} {value}"
        reply = self.command(cmd).strip()
        # Success is an empty reply; anything else is HAProxy's reason, e.g. "No such server.", or
        # "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.".
        if reply:
            raise HaproxyRuntimeError(f"HAProxy refused {cmd!r}: {reply}", backend=backend, server=server, command=cmd, response=reply)

    def dump_state(self) -> str:
        """Every backend's `show servers state`: the server-state file format HAProxy loads."""
        reply = self.command("show servers state")
        if not reply.lstrip().split("\n", 1)[0].strip().isdigit():
            raise HaproxyRuntimeError(f"unexpected reply to 'show servers state': {reply[:500]}", command="show servers state", response=reply[:2000])
        return reply.rstrip("\n") + "\n"


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def server_view(row: dict, stat: dict) -> dict:
    """One server as lb_weight returns it, from its `show servers state` and `show stat` rows."""
    admin = _int(row.get("srv_admin_state"))
    if admin & ADMF_MAINT:
        state = "maint"
    elif admin & ADMF_DRAIN:
        state = "drain"
    else:
        state = "ready"
    # `show stat` status is free text: "UP", "UP 1/3" (up, 1 of 3 failed checks on the way down),
    # "DOWN 1/2" (on the way up), "NOLB", "DRAIN", "DRAIN (agent)", "MAINT", "MAINT (via be/srv)"
    # (tracking), "MAINT (resolution)", or "no check" (up, not health-checked). It is returned as is;
    # the state comes from the admin flags. Its "weight" column is the effective weight (0 while
    # draining), while `show servers state` has the user weight and the initial (configured) one.
    return {
        "weight": _int(row.get("srv_uweight")),
        "initial_weight": _int(row.get("srv_iweight")),
        "state": state,
        "health": OP_STATES.get(_int(row.get("srv_op_state"), -1), "unknown"),
        "status": stat.get("status", ""),
        "sessions": _int(stat.get("scur")),
        "queued": _int(stat.get("qcur")),
        "address": f"{row.get('srv_addr', '')}:{row.get('srv_port', '')}",
    }


def runtime_steps(current: dict, desired: dict) -> list:
    """The runtime commands that take a backend from ``current`` to ``desired`` as (server, what, value,
    previous value), in an order whose every intermediate state serves with at least the servers that serve
    before or after: what adds capacity first (weights raised, then servers made ready, so a server enters
    with its new weight), then what takes it away (weights lowered, then servers drained or put in
    maintenance). HAProxy applies each command at once, so taking X to 0 before raising Y from 0 would leave
    the backend without a server for the requests in between: HAProxy answers them 503. A weight is lowered
    while its server is still ready because HAProxy does not recompute the effective weight of a server in
    maintenance: ``show stat`` and the stats page would go on showing the old weight."""
    names = sorted(desired)
    raise_weight = [(n, "weight", desired[n]["weight"], current[n]["weight"]) for n in names if desired[n]["weight"] > current[n]["weight"]]
    to_ready = [(n, "state", "ready", current[n]["state"]) for n in names if desired[n]["state"] == "ready" != current[n]["state"]]
    to_out = [(n, "state", desired[n]["state"], current[n]["state"]) for n in names if desired[n]["state"] not in ("ready", current[n]["state"])]
    lower_weight = [(n, "weight", desired[n]["weight"], current[n]["weight"]) for n in names if desired[n]["weight"] < current[n]["weight"]]
    return raise_weight + to_ready + lower_weight + to_out


def _state_rows(text: str, backend: str) -> dict:
    rows, header = {}, []
    for line in (text or "").splitlines():
        if line.startswith("#"):
            header = line.lstrip("# ").split()
        elif header and line.strip():
            row = dict(zip(header, line.split()))
            if row.get("be_name") == backend:
                rows[row.get("srv_name")] = row
    return rows


def predict_admin(admin: int, state: str) -> int:
    """The admin flags after `set server ... state <state>`: ready clears forced maint and drain,
    drain sets drain and clears maint, maint sets maint and clears drain."""
    return (admin & ~ADMF_FORCED) | {"ready": 0, "drain": ADMF_FDRAIN, "maint": ADMF_FMAINT}[state]


def _split_comment(line: str):
    match = re.match(r"^([^#]*?)(\s*#.*)?$", line)
    return match.group(1), match.group(2) or ""


def edit_config(text: str, backend: str, desired: dict, initial: dict):
    """Set `weight` and `disabled` on the `server` lines of one backend of an HAProxy config.

    `initial` holds the weight a line without `weight` has (it may come from default-server).
    Returns (new_text, names of desired servers without a server line).
    """
    out, section, seen = [], None, set()
    for line in text.splitlines(keepends=True):
        body, comment = _split_comment(line.rstrip("\n"))
        tokens = body.split()
        if tokens and tokens[0] in _SECTIONS:
            section = tokens[1] if tokens[0] in ("backend", "listen") and len(tokens) > 1 else None
        if section == backend and len(tokens) >= 3 and tokens[0] == "server" and tokens[1] in desired:
            want = desired[tokens[1]]
            seen.add(tokens[1])
            new = list(tokens)
            if "weight" in new[3:]:
                idx = new.index("weight", 3)
                new[idx + 1 : idx + 2] = [str(want["weight"])]
            elif want["weight"] != initial.get(tokens[1]):
                new += ["weight", str(want["weight"])]
            new = new[:3] + [t for t in new[3:] if t not in ("disabled", "enabled")]
            if want["state"] == "maint":
                new.append("disabled")
            if new != tokens:
                indent = re.match(r"^\s*", body).group(0)
                line = indent + " ".join(new) + comment + ("\n" if line.endswith("\n") else "")
        out.append(line)
    return "".join(out), sorted(set(desired) - seen)


class HaproxyBackend(LbBackend):
    """lb_weight on one HAProxy backend through the runtime API.

    persist: ``none`` (runtime only: a reload or restart brings back the config's weights),
    ``state_file`` (write `show servers state` to the file HAProxy loads with
    ``load-server-state-from-file``), ``config`` (rewrite the backend's ``server`` lines).
    """

    kind = "haproxy"

    def __init__(self, runtime: HaproxyRuntime, backend: str, persist: str = "none", state_file=None, config_file=None, run_command=None, haproxy_bin=None):
        super().__init__()
        self.runtime, self.backend = runtime, backend
        self.persist, self.state_file, self.config_file = persist, state_file, config_file
        self.run_command, self.haproxy_bin = run_command, haproxy_bin
        self._rows: dict = {}
        self._stats: dict = {}

    def read(self) -> dict:
        self._rows = self.runtime.servers_state(self.backend)
        self._stats = self.runtime.stats(self.backend)
        return {name: server_view(row, self._stats.get(name, {})) for name, row in self._rows.items()}

    def stats(self) -> dict:
        wanted = {
            "total_sessions": "stot",
            "http_5xx": "hrsp_5xx",
            "connection_errors": "econ",
            "response_errors": "eresp",
            "check_failures": "chkfail",
            "response_time_ms": "rtime",
        }
        return {name: {k: _int(row.get(col)) for k, col in wanted.items()} for name, row in self._stats.items()}

    def _admin(self, name: str) -> int:
        return _int(self._rows[name].get("srv_admin_state"))

    @staticmethod
    def _check_writable(path: str, param: str) -> None:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise LbParamError(f"{param}: directory {directory} does not exist", param)
        if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            raise LbParamError(f"{param}: {path} is not writable by this user (become: true?)", param)

    def lock_dirs(self) -> list:
        # the runtime API's commands are each one server's; the persisted file is the whole pool's
        path = {"state_file": self.state_file, "config": self.config_file}.get(self.persist)
        return [os.path.dirname(os.path.abspath(path))] if path else []

    def prepare(self, current: dict, desired: dict) -> list:
        if self.persist == "state_file":
            return self._prepare_state_file(desired)
        if self.persist == "config":
            return self._prepare_config(current, desired)
        return []

    def _prepare_state_file(self, desired: dict) -> list:
        self._check_writable(self.state_file, "state_file")
        old = read_text(self.state_file)
        saved = _state_rows(old, self.backend)
        stale = [
            n
            for n, d in desired.items()
            if n not in saved
            or _int(saved[n].get("srv_uweight"), -1) != d["weight"]
            or _int(saved[n].get("srv_admin_state")) & ADMF_FORCED != predict_admin(self._admin(n), d["state"]) & ADMF_FORCED
        ]
        if old is not None and not stale:
            return []
        lines = []
        for line in self.runtime.dump_state().splitlines():
            fields = line.split()
            if not line.startswith("#") and len(fields) > 8 and fields[1] == self.backend and fields[3] in desired:
                want = desired[fields[3]]
                fields[6] = str(predict_admin(_int(fields[6]), want["state"]))
                fields[7] = str(want["weight"])
                line = " ".join(fields)
            lines.append(line)
        return [{"path": self.state_file, "before": old or "", "existed": old is not None, "after": "\n".join(lines) + "\n"}]

    def _prepare_config(self, current: dict, desired: dict) -> list:
        self._check_writable(self.config_file, "config_file")
        old = read_text(self.config_file)
        if old is None:
            raise LbParamError(f"config_file: {self.config_file} does not exist", "config_file")
        # Only states forced through the runtime API belong in the config: a server in maint
        # because it tracks another one keeps its line as it is.
        forced = {}
        for name, want in desired.items():
            mine = want["state"] != current[name]["state"] or self._admin(name) & ADMF_FORCED
            forced[name] = dict(want, state=want["state"] if mine else "ready")
        initial = {n: _int(row.get("srv_iweight"), -1) for n, row in self._rows.items()}
        new, missing = edit_config(old, self.backend, forced, initial)
        if missing:
            raise LbParamError(f"config_file: {self.config_file} has no server line for {', '.join(missing)} in backend {self.backend}", "config_file")
        drained = sorted(n for n, d in forced.items() if d["state"] == "drain")
        if drained:
            self.warnings.append(
                f"persist=config cannot write drain (HAProxy has no such server keyword); after a reload these servers are ready again: {', '.join(drained)}"
            )
        if new == old:
            return []
        self._validate_config(new)
        return [{"path": self.config_file, "before": old, "existed": True, "after": new}]

    def _validate_config(self, text: str) -> None:
        if not (self.run_command and self.haproxy_bin):
            return
        directory = os.path.dirname(os.path.abspath(self.config_file))
        fd, tmp = tempfile.mkstemp(prefix=".lb_weight-", suffix=".cfg", dir=directory)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            rc, out, err = self.run_command([self.haproxy_bin, "-c", "-q", "-f", tmp])
        finally:
            os.unlink(tmp)
        if rc != 0:
            raise LbParamError(f"config_file: the edited {self.config_file} fails 'haproxy -c': {(err or out).strip()[:1000]}", "config_file")

    def apply(self, current: dict, desired: dict, files: list) -> None:
        done = []
        steps = runtime_steps(current, desired)
        try:
            for name, what, value, undo in steps:
                self.runtime.set(self.backend, name, what, value)
                done.append((name, what, undo))
            for entry in files:
                if self.persist == "state_file":
                    entry["after"] = self.runtime.dump_state()
                atomic_write(entry["path"], entry["after"])
                entry["written"] = True
        except Exception as exc:
            errors = self._undo(done, files)
            if errors and isinstance(exc, HaproxyRuntimeError):
                exc.response = f"{exc.response}; rollback failed: {'; '.join(errors)}"
            raise

    def _undo(self, done: list, files: list) -> list:
        errors = []
        for name, what, undo in reversed(done):
            try:
                self.runtime.set(self.backend, name, what, undo)
            except HaproxyRuntimeError as exc:
                errors.append(str(exc))
        for entry in files:
            if entry.get("written"):
                try:
                    if entry["existed"]:
                        atomic_write(entry["path"], entry["before"])
                    else:
                        os.unlink(entry["path"])
                except OSError as exc:
                    errors.append(f"{entry['path']}: {exc}")
        return errors

    def drain_probe(self, servers: list) -> dict:
        stats = self.runtime.stats(self.backend)
        still = {}
        for name in servers:
            row = stats.get(name, {})
            sessions, queued = _int(row.get("scur")), _int(row.get("qcur"))
            if sessions or queued:
                still[name] = f"{sessions} sessions, {queued} queued"
        return still
