# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Runner for the `kong` command line on a node."""

from __future__ import annotations

from ansible_collections.kongops.upgrade.plugins.module_utils._versions import KongVersionError, parse_version

KONG_CLI_ARG_SPEC = dict(
    kong_bin=dict(type="str", default="kong"),
    kong_conf=dict(type="path"),
    kong_prefix=dict(type="path"),
    kong_env=dict(type="dict", default={}, no_log=True),
)


class KongCliError(Exception):
    """A `kong` command failed; carries the command, exit code and output."""

    def __init__(self, msg: str, cmd=None, rc=None, stdout="", stderr=""):
        super().__init__(msg)
        self.cmd, self.rc, self.stdout, self.stderr = cmd, rc, stdout, stderr

    def context(self) -> dict:
        return dict(cmd=self.cmd, rc=self.rc, stdout=self.stdout, stderr=self.stderr)


class CliResult:
    def __init__(self, cmd, rc, stdout, stderr):
        self.cmd, self.rc, self.stdout, self.stderr = cmd, rc, stdout, stderr

    def as_dict(self) -> dict:
        return dict(cmd=self.cmd, rc=self.rc, stdout=self.stdout, stderr=self.stderr)


def kong_error_line(stderr: str) -> str:
    """Kong's own error line: every failing sub-command prints `Error: <message>` on stderr."""
    for line in (stderr or "").splitlines():
        if line.startswith("Error: "):
            return line[len("Error: ") :].strip()
    lines = [ln for ln in (stderr or "").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def kong_error_message(stderr: str) -> str:
    """Kong's whole error message on one line: `Error: ` and the lines after it (kong/cmd/init.lua line
    34 at Kong/kong 3.9.3 writes the message, which may span lines, e.g. "Failed parsing:" then the
    reasons), without the "Run with --v" hint; else what kong_error_line finds."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Error: ") or ln == "Error:"), None)
    if start is None:
        return kong_error_line(stderr)
    first = lines[start][len("Error:") :].strip()
    return " ".join([first] * bool(first) + [ln for ln in lines[start + 1 :] if not ln.startswith("Run with --v")])


class KongCli:
    """Builds `kong` argv lists and runs them through a `run_command(argv, environ_update=...)`
    callable (AnsibleModule.run_command in production, a fake in unit tests)."""

    def __init__(self, run_command, kong_bin: str = "kong", kong_conf: str | None = None, kong_prefix: str | None = None, kong_env: dict | None = None):
        self._run = run_command
        self.kong_bin = kong_bin
        self.kong_conf = kong_conf
        self.kong_prefix = kong_prefix
        self.env = {str(k): str(v) for k, v in (kong_env or {}).items()}

    @classmethod
    def from_params(cls, run_command, params: dict) -> "KongCli":
        return cls(run_command, params["kong_bin"], params.get("kong_conf"), params.get("kong_prefix"), params.get("kong_env"))

    def argv(self, *args: str, conf: bool = True, prefix: bool = False) -> list:
        cmd = [self.kong_bin] + list(args)
        if conf and self.kong_conf:
            cmd += ["-c", self.kong_conf]
        if prefix and self.kong_prefix:
            cmd += ["-p", self.kong_prefix]
        return cmd

    def run(self, *args: str, conf: bool = True, prefix: bool = False, ok_rcs=(0,)) -> CliResult:
        cmd = self.argv(*args, conf=conf, prefix=prefix)
        try:
            rc, out, err = self._run(cmd, environ_update=self.env)
        except (OSError, ValueError) as exc:
            raise KongCliError(f"could not run {cmd[0]}: {exc}", cmd=cmd) from exc
        if rc == 127 or (rc != 0 and "No such file or directory" in (err or "") and cmd[0] in (err or "")):
            raise KongCliError(f"the kong binary '{self.kong_bin}' was not found on this host (set kong_bin)", cmd=cmd, rc=rc, stdout=out, stderr=err)
        result = CliResult(cmd, rc, out, err)
        if ok_rcs is not None and rc not in ok_rcs:
            line = kong_error_line(err) or (out or "").strip().splitlines()[-1:] or ""
            raise KongCliError(
                f"'{' '.join(cmd)}' failed (rc={rc}): {line if isinstance(line, str) else ''.join(line)}", cmd=cmd, rc=rc, stdout=out, stderr=err
            )
        return result

    def version(self) -> str:
        result = self.run("version", conf=False)
        text = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
        try:
            return str(parse_version(text))
        except KongVersionError as exc:
            raise KongCliError(f"unexpected `kong version` output: {text!r}", cmd=result.cmd, rc=result.rc, stdout=result.stdout, stderr=result.stderr) from exc
