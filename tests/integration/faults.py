"""What the fault tests share: the hook that injects a fault once a condition holds, and the readers of
a sandbox run's journal and log."""

from __future__ import annotations

import datetime
import json
import os
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
