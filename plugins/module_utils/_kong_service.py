# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Start, quit, stop, reload and observe one Kong node, through systemd when the host has Kong's
unit (the `kong.service` of Kong's packages, Kong/kong 3.9.3 build/package/kong.service: nginx
runs in the foreground in the default prefix, `ExecStop=/bin/kill -s QUIT $MAINPID`), else
through the `kong` command line (`kong start`, `kong quit -t -w`, `kong stop`, `kong health -p`).
"""

from __future__ import annotations

import os
import time

from ansible_collections.kongops.upgrade.plugins.module_utils._files import atomic_write
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import KongCli, KongCliError, kong_error_message

DROPIN_NAME = "kongops.conf"
ACTIVE_STATES = ("active", "activating", "reloading", "deactivating")
SHOW_PROPERTIES = ("LoadState", "ActiveState", "SubState", "UnitFileState", "MainPID", "FragmentPath")


class KongServiceError(Exception):
    """Managing the node failed; carries the command and its output when there was one."""

    def __init__(self, msg: str, cmd=None, rc=None, stdout="", stderr=""):
        super().__init__(msg)
        self.cmd, self.rc, self.stdout, self.stderr = cmd, rc, stdout, stderr

    def context(self) -> dict:
        return dict(cmd=self.cmd, rc=self.rc, stdout=self.stdout, stderr=self.stderr)


def systemd_quote(value: str) -> str:
    """A value for a systemd EnvironmentFile line: double quotes, with `\\`, `"` and `$` escaped."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise KongServiceError("an environment value contains a newline; an EnvironmentFile holds one line per variable")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def env_file_text(env: dict) -> str:
    lines = ["# Environment of Kong's unit, written by kongops.upgrade (mode 0600)"]
    for key in sorted(env):
        if not str(key).replace("_", "").isalnum():
            raise KongServiceError(f"environment name '{key}' is not a valid variable name")
        lines.append(f"{key}={systemd_quote(env[key])}")
    return "\n".join(lines) + "\n"


def dropin_text(stop_timeout: int | None, env_file: str | None) -> str:
    lines = ["# Written by kongops.upgrade", "[Service]"]
    if stop_timeout is not None:
        # systemd waits this long after ExecStop (Kong's QUIT) before it sends SIGTERM/SIGKILL.
        lines.append(f"TimeoutStopSec={int(stop_timeout)}")
    if env_file:
        lines.append(f"EnvironmentFile={env_file}")
    return "\n".join(lines) + "\n"


def write_file(path: str, text: str, mode: int, check_mode: bool = False) -> bool:
    """Write `text` atomically with `mode` unless the file already holds it; True when changed."""
    try:
        with open(path, encoding="utf-8") as fh:
            same = fh.read() == text
        if same and (os.stat(path).st_mode & 0o7777) == mode:
            return False
    except FileNotFoundError:
        pass
    if check_mode:
        return True
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    atomic_write(path, text, mode=mode)
    return True


class KongService:
    """One node. `run_command(argv, environ_update=...)` runs commands (AnsibleModule.run_command);
    `ready_probe()` returns (ready, detail) or None when no API URL was given; `sd_booted()` tells
    whether systemd is PID 1 (sd_booted(3): /run/systemd/system exists)."""

    def __init__(
        self,
        run_command,
        kong_bin="kong",
        prefix="/usr/local/kong",
        conf=None,
        env=None,
        unit="kong.service",
        manager="auto",
        systemctl="systemctl",
        ready_probe=None,
        sd_booted=None,
        sleep=time.sleep,
        clock=time.monotonic,
        check_mode=False,
        unit_dir="/etc/systemd/system",
        env_file="/etc/kong/kongops.env",
    ):
        self._run = run_command
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        self.cli = KongCli(run_command, kong_bin, conf, prefix, self.env)
        self.prefix, self.conf, self.unit = prefix, conf, unit
        self.requested = manager
        self.systemctl = systemctl
        self.ready_probe = ready_probe
        self.sd_booted = sd_booted or (lambda: os.path.isdir("/run/systemd/system"))
        self.sleep, self.clock = sleep, clock
        self.check_mode = check_mode
        self.unit_dir, self.env_file = unit_dir, env_file
        self.commands: list = []
        self._unit = None
        self.manager = None

    # ------------------------------------------------------------------ commands
    def _exec(self, argv, ok_rcs=(0,), env=None, mutating=True):
        if mutating and self.check_mode:
            self.commands.append(list(argv))
            return 0, "", ""
        try:
            rc, out, err = self._run(list(argv), environ_update=env or {})
        except (OSError, ValueError) as exc:
            raise KongServiceError(f"could not run {argv[0]}: {exc}", cmd=list(argv)) from exc
        if mutating:
            self.commands.append(list(argv))
        if ok_rcs is not None and rc not in ok_rcs:
            detail = (err or out or "").strip().splitlines()
            raise KongServiceError(f"'{' '.join(argv)}' failed (rc={rc}): {detail[-1] if detail else ''}", cmd=list(argv), rc=rc, stdout=out, stderr=err)
        return rc, out, err

    def _systemctl(self, *args, ok_rcs=(0,), mutating=True):
        return self._exec([self.systemctl] + list(args), ok_rcs=ok_rcs, mutating=mutating)

    def _kong(self, *args, conf=False, prefix=True, ok_rcs=(0,), mutating=True):
        argv = self.cli.argv(*args, conf=conf, prefix=prefix)
        if mutating and self.check_mode:
            self.commands.append(argv)
            return 0, "", ""
        try:
            res = self.cli.run(*args, conf=conf, prefix=prefix, ok_rcs=ok_rcs)
        except KongCliError as exc:
            raise KongServiceError(str(exc), **exc.context()) from exc
        if mutating:
            self.commands.append(argv)
        return res.rc, res.stdout, res.stderr

    # ------------------------------------------------------------------ observe
    def unit_state(self) -> dict | None:
        """`systemctl show` properties of the unit, or None when systemd does not run here."""
        if not self.sd_booted():
            return None
        try:
            rc, out = self._exec([self.systemctl, "show", self.unit, "--no-pager", "--property=" + ",".join(SHOW_PROPERTIES)], ok_rcs=None, mutating=False)[:2]
        except KongServiceError:
            return None
        if rc != 0:
            return None
        props = {}
        for line in out.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                props[key] = value
        return props

    def choose(self) -> str:
        self._unit = self.unit_state()
        loaded = bool(self._unit) and self._unit.get("LoadState") == "loaded"
        if self.requested == "systemd":
            if not loaded:
                why = (
                    "systemd is not running on this host"
                    if self._unit is None
                    else f"systemd has no unit {self.unit} (LoadState={self._unit.get('LoadState', '?')})"
                )
                raise KongServiceError(f"manager=systemd but {why}: install Kong's package (it brings the unit) or set manager=auto or cli")
            self.manager = "systemd"
        elif self.requested == "cli":
            self.manager = "cli"
        else:
            self.manager = "systemd" if loaded else "cli"
        return self.manager

    def cli_running(self) -> bool:
        """`kong health -p <prefix>` (Kong/kong 3.9.3 kong/cmd/health.lua: exit 0 when nginx runs in
        the prefix); a host without the kong binary yet (check mode before the install) runs nothing."""
        try:
            rc = self._kong("health", ok_rcs=None, mutating=False)[0]
        except KongServiceError:
            return False
        return rc == 0

    def unit_active(self) -> bool:
        return bool(self._unit) and self._unit.get("ActiveState") in ACTIVE_STATES

    def status(self) -> dict:
        if self.manager is None:
            self.choose()
        cli = self.cli_running()
        if self.manager == "systemd":
            active = self.unit_active()
            enabled = self._unit.get("UnitFileState")
            return dict(
                manager="systemd",
                running=active or cli,
                active=active,
                running_outside_systemd=cli and not active,
                enabled=enabled,
                unit=self.unit,
                main_pid=int(self._unit.get("MainPID") or 0) or None,
            )
        return dict(manager="cli", running=cli, active=None, running_outside_systemd=False, enabled=None, unit=None, main_pid=None)

    def refresh(self) -> None:
        if self.manager == "systemd":
            self._unit = self.unit_state()

    def check_declarative(self, path: str) -> None:
        """`kong config parse <path> -c <conf>` (Kong/kong 3.9.3 kong/cmd/config.lua lines 95-137: exit 0
        when the file loads with the node's settings, else `error("Failed parsing:\n" .. err)`, which
        kong/cmd/init.lua line 34 prints as `Error: ` and the message's lines): read only, so it runs in
        check mode too; called before anything is quit or started."""
        try:
            self._kong("config", "parse", path, conf=True, prefix=False, mutating=False)
        except KongServiceError as exc:
            # Kong's whole message: its first line is only "Failed parsing:"
            detail = kong_error_message(exc.stderr) or str(exc)
            raise KongServiceError(
                f"Kong refuses the declarative configuration {path} with {self.conf}; nothing was quit or started: {detail}",
                cmd=exc.cmd,
                rc=exc.rc,
                stdout=exc.stdout,
                stderr=exc.stderr,
            ) from exc

    # ------------------------------------------------------------------ act
    def start(self, state: dict, quit_timeout: int = 10) -> bool:
        if self.manager == "systemd":
            if state["running_outside_systemd"]:
                self.hand_over(quit_timeout)
                return True
            if state["active"]:
                return False
            self._systemctl("start", self.unit)
            return True
        if state["running"]:
            return False
        self._kong("start", conf=True)
        return True

    def hand_over(self, quit_timeout: int = 10) -> None:
        """A node started by hand in the unit's prefix: quit it gracefully, then start the unit, so
        that one nginx serves the prefix and systemd knows it."""
        self._kong("quit", "-t", str(quit_timeout))
        self._systemctl("start", self.unit)

    def quit(self, state: dict, timeout: int = 10, wait: int = 0) -> bool:
        if not state["running"]:
            return False
        if self.manager == "systemd" and not state["running_outside_systemd"]:
            # Kong's `-w`: wait before the shutdown starts; the unit's ExecStop then sends QUIT and
            # systemd waits TimeoutStopSec (the drop-in) for the requests in flight.
            if wait > 0 and not self.check_mode:
                self.sleep(wait)
            self._systemctl("stop", self.unit)
            return True
        self._kong("quit", "-t", str(timeout), "-w", str(wait))
        return True

    def stop(self, state: dict) -> bool:
        if not state["running"]:
            return False
        if self.manager == "systemd" and not state["running_outside_systemd"]:
            # nginx's fast shutdown (TERM), what `kong stop` sends, then let systemd settle the unit.
            self._systemctl("kill", "--signal=SIGTERM", self.unit)
            self._systemctl("stop", self.unit)
            return True
        self._kong("stop")
        return True

    def reload(self, state: dict) -> bool:
        if not state["running"]:
            raise KongServiceError("state=reloaded needs a running node: start it first")
        if self.manager == "systemd" and not state["running_outside_systemd"]:
            self._systemctl("reload", self.unit)
        else:
            self._kong("reload", conf=True)
        return True

    def set_enabled(self, state: dict, enabled: bool) -> bool:
        if self.manager != "systemd":
            raise KongServiceError("enabled needs systemd: this host runs Kong without a unit (manager=cli)")
        is_enabled = state["enabled"] in ("enabled", "enabled-runtime", "linked", "alias")
        if is_enabled == enabled:
            return False
        self._systemctl("enable" if enabled else "disable", self.unit)
        return True

    def configure_unit(self, stop_timeout: int | None, use_env_file: bool) -> bool:
        """The unit's drop-in (quit timeout, EnvironmentFile) and the 0600 environment file."""
        if self.manager != "systemd":
            return False
        changed = False
        env_file = self.env_file if (use_env_file and self.env) else None
        if env_file:
            changed |= write_file(env_file, env_file_text(self.env), 0o600, self.check_mode)
        dropin = os.path.join(self.unit_dir, self.unit + ".d", DROPIN_NAME)
        if stop_timeout is None and not env_file:
            if os.path.exists(dropin):
                if not self.check_mode:
                    os.unlink(dropin)
                changed = True
        else:
            changed |= write_file(dropin, dropin_text(stop_timeout, env_file), 0o644, self.check_mode)
        if changed:
            self._systemctl("daemon-reload")
        return changed

    def wait_ready(self, timeout: int, interval: float = 0.25) -> dict:
        """Bounded: until the node answers ready (status API or Admin API), or `kong health` says it
        runs when no URL was given."""
        deadline = self.clock() + max(timeout, 0)
        detail = ""
        while True:
            if self.ready_probe is not None:
                ready, detail = self.ready_probe()
            else:
                ready = self.cli_running()
                detail = "kong health: running" if ready else "kong health: not running"
            if ready:
                return dict(ready=True, detail=detail)
            if self.clock() >= deadline:
                raise KongServiceError(f"the node did not answer ready within {timeout}s: {detail}")
            self.sleep(interval)
