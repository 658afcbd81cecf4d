"""The controller killed at a chosen point of a run: ansible-playbook started in its own process group
with the test-only ``kill_controller`` callback, which SIGKILLs that group the moment the named play or
task starts (a phase boundary, exactly, with no sleep or poll)."""

from __future__ import annotations

import os
import signal
import subprocess

from tests.sandbox.core import PLAYBOOKS, REPO, VENV_BIN, Sandbox

CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callbacks")


def paused_at_env(box: Sandbox, at: str, pause_file) -> dict:
    """The environment of a run that the test-only callback holds where ``at`` (``play:<name>`` or
    ``task:<name>``) starts, for as long as ``pause_file`` exists (the test removes it to let the run go on)."""
    return dict(
        box.ansible_env(),
        ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
        ANSIBLE_CALLBACKS_ENABLED="kill_controller",
        KONGOPS_PAUSE_AT=at,
        KONGOPS_PAUSE_FILE=str(pause_file),
    )


def run_killed_at(box: Sandbox, strategy: str, kong_y: str, at: str, log_path: str, extra_args: tuple = ()) -> tuple[int, bool]:
    """Run the strategy's playbook to ``kong_y`` on the sandbox and kill the controller where ``at``
    (``play:<name>`` or ``task:<name>``) starts. Returns the exit status and whether it died there."""
    box.install(kong_y)
    mark = log_path + ".killed"
    env = dict(
        box.ansible_env(),
        ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
        ANSIBLE_CALLBACKS_ENABLED="kongops.upgrade.upgrade_report,kill_controller",
        KONGOPS_KILL_AT=at,
        KONGOPS_KILL_MARK=mark,
    )
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), os.path.join(REPO, "playbooks", PLAYBOOKS[strategy]), "-i", box.inventory]
    cmd += ["-e", f"kong_version_target={kong_y}", *extra_args]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
        rc = proc.wait(timeout=900)
    return rc, os.path.exists(mark)


def killed_at(box: Sandbox, strategy: str, kong_y: str, at: str, log_path: str, resumes: str | None = None) -> str:
    """run_killed_at, asserting that the controller died at ``at`` and, given ``resumes`` (a run id),
    that the run said it resumed that run; returns what the run printed."""
    rc, killed = run_killed_at(box, strategy, kong_y, at, log_path)
    with open(log_path) as fh:
        text = fh.read()
    assert killed and rc == -signal.SIGKILL, f"the run was not killed at {at} (rc {rc}):\n{text[-3000:]}"
    assert resumes is None or f"Resuming run {resumes}" in text, f"the run killed at {at} did not resume run {resumes}:\n{text[-3000:]}"
    return text
