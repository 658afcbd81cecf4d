"""What the fault tests share: the hook that injects a fault once a condition holds, the readers of
a sandbox run's journal and log, and the secrets sweep (command lines sampled during the runs, the files
a run leaves)."""

from __future__ import annotations

import datetime
import gzip
import json
import os
import stat
import subprocess
import tarfile
import threading

import requests

from tests.sandbox.core import Sandbox


class Hook(threading.Thread):
    """Runs ``action`` once ``ready()`` holds (polled), and records whether it fired."""

    def __init__(self, ready, action):
        super().__init__(daemon=True)
        self.ready, self.action = ready, action
        self.fired = False
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self):
        try:
            while not self.stop.is_set():
                try:
                    hit = self.ready()
                except (OSError, ValueError, RuntimeError):
                    hit = False
                if hit:
                    self.action()
                    self.fired = True
                    return
                self.stop.wait(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def done(self) -> None:
        self.stop.set()
        self.join(120)
        assert self.error is None, f"the fault hook failed: {self.error!r}"


def _journal(box: Sandbox) -> dict:
    with open(os.path.join(box.work_dir, "sandbox", "journal.json")) as fh:
        return json.load(fh)


def _log(box: Sandbox) -> str:
    with open(box.last_log) as fh:
        return fh.read()


def _failure(box: Sandbox) -> str:
    lines = _log(box).splitlines()
    return "\n".join([ln for ln in lines if "fatal:" in ln or "FAILED" in ln][-5:] + lines[-40:])


def _versions(box: Sandbox) -> dict:
    """The version each node of the group answers with on its Admin API (None: not answering)."""
    found = {}
    for name, node in box.state["nodes"].items():
        if node["group"] != "kong_x":
            continue
        try:
            found[name] = requests.get(f"http://127.0.0.1:{node['admin_port']}/", timeout=5).json()["version"]
        except requests.RequestException:
            found[name] = None
    return found


def _epoch(text: str) -> float:
    """Epoch seconds of a journal timestamp (ISO 8601, UTC, ``Z``)."""
    return datetime.datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=datetime.UTC).timestamp()


class CmdlineSampler(threading.Thread):
    """Reads the command line of every process this test process started (directly or not) or that
    names the sandbox (``marker``), every 100 ms, and keeps those that hold one of ``secrets``."""

    def __init__(self, marker: str, secrets: tuple):
        super().__init__(daemon=True)
        self.marker, self.secrets, self.root = marker, secrets, os.getpid()
        self.found: list[str] = []
        self.samples = 0
        self.stop = threading.Event()

    def _ours(self, pid: str, cmdline: str) -> bool:
        if self.marker in cmdline:
            return True
        for _hop in range(32):
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    pid = fh.read().rsplit(")", 1)[1].split()[1]
            except (OSError, IndexError):
                return False
            if int(pid) == self.root:
                return True
            if int(pid) <= 1:
                return False
        return False

    def run(self):
        while not self.stop.wait(0.1):
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if any(secret in cmdline for secret in self.secrets) and self._ours(pid, cmdline):
                    self.found.append(cmdline[:500])
            self.samples += 1


def leaks(text: str, secrets: tuple) -> list:
    return [secret for secret in secrets if secret in text]


def contents(path: str) -> list:
    """(member, bytes) of a file as a reader of it sees them: a database dump as the SQL pg_restore
    writes from it, an archive member by member, anything else as it is."""
    if path.endswith(".dump"):
        from tests.services.postgres import PG_BIN

        sql = subprocess.run([os.path.join(PG_BIN, "pg_restore"), "--file=-", path], capture_output=True, check=True)
        return [("", sql.stdout)]
    if path.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(path) as tar:
            return [(":" + m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]
    with open(path, "rb") as fh:
        data = fh.read()
    return [("", gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)]


def loose_files(work_dir: str, secrets: tuple, credentials: tuple = (), kept=lambda path, member: False) -> tuple[list, list]:
    """(every file under ``work_dir``, what is wrong with them): a file or archive member holding one of
    ``secrets`` (unless ``kept(path, member)``: a copy the backup must keep as it is); a file holding one of
    ``credentials`` or under a backups directory that is not 0600; a directory open to others."""
    files, loose = [], []
    for root, dirs, names in os.walk(work_dir):
        for name in names:
            path = os.path.join(root, name)
            files.append(path)
            mode = stat.S_IMODE(os.stat(path).st_mode)
            for member, data in contents(path):
                if any(secret.encode() in data for secret in secrets) and not kept(path, member):
                    loose.append(f"{path}{member} holds a secret")
                holds_credentials = any(c.encode() in data for c in credentials) or os.sep + "backups" + os.sep in path
                if holds_credentials and mode & 0o177:
                    loose.append(f"{path} is {oct(mode)}, not 0600")
        for name in dirs:
            path = os.path.join(root, name)
            if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
                loose.append(f"{path} is open to others")
    return files, loose
