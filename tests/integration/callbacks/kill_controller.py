"""A test-only callback, two hooks at a named play or task (``play:<play name>`` or ``task:<task name>``):

- KONGOPS_KILL_AT: the controller dies (SIGKILL to ansible-playbook's whole process group, as a lost
  controller or an OOM kill ends it) the moment it starts. KONGOPS_KILL_MARK, when set, is a file written
  with that name first, so the test knows the kill happened where it asked. The process must lead its own
  process group (start_new_session), or it refuses: it would kill its caller too.
- KONGOPS_PAUSE_AT with KONGOPS_PAUSE_FILE: the run waits there (up to 5 minutes) while the file exists;
  the callback writes it when the run gets there, the test injects its fault and removes it. The name is a
  shell-style pattern (``*``: a role's prefix, a task named per host)."""

from __future__ import annotations

import fnmatch
import os
import signal
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: kill_controller
type: aggregate
short_description: kill or pause ansible-playbook at a named play or task (tests only)
description: The tests' controller-killed faults; not part of the collection.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kill_controller"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._at = os.environ.get("KONGOPS_KILL_AT", "")
        self._mark = os.environ.get("KONGOPS_KILL_MARK", "")
        self._pause_at = os.environ.get("KONGOPS_PAUSE_AT", "")
        self._pause_file = os.environ.get("KONGOPS_PAUSE_FILE", "")

    def _reached(self, what: str) -> None:
        if self._pause_at and self._pause_file and fnmatch.fnmatchcase(what, self._pause_at):
            self._pause_at = ""  # once
            with open(self._pause_file, "w") as fh:
                fh.write(what)
            deadline = time.monotonic() + 300
            while os.path.exists(self._pause_file) and time.monotonic() < deadline:
                time.sleep(0.05)
        if not self._at or what != self._at:
            return
        if os.getpgid(0) != os.getpid():
            raise RuntimeError("kill_controller: ansible-playbook does not lead its process group; start it with start_new_session")
        if self._mark:
            with open(self._mark, "w") as fh:
                fh.write(what)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    def v2_playbook_on_play_start(self, play):
        self._reached("play:" + play.get_name().strip())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._reached("task:" + task.get_name().strip())
