"""The control plane lost during a hybrid data-plane upgrade (tracker issue 25, fault 10), on the hybrid
sandbox: a control plane on real PostgreSQL, data planes behind a real HAProxy, the collection's rolling
playbook, a steady load whose every response is checked.

The run is held (the test-only callback's pause hook) where it waits for the control plane to list the
new data planes in sync, the control plane is killed there, and the run goes on: the data planes keep
serving the configuration they hold, the wait is bounded (``kong_node_ready_timeout``) and ends naming
the control plane, nothing moved to Y, writes are thawed (the freeze is the controller's lock and the
fingerprint of what the X data planes serve). Then the control plane is started again, as its operator would,
and the same playbook completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from tests.integration import test_hybrid_upgrade as hybrid_cases
from tests.integration.ansible_run import run_playbook
from tests.integration.controller_kill import paused_at_env
from tests.integration.faults import Hook, leaks, loose_files
from tests.sandbox.core import ADMIN_TOKEN, REPO, haproxy_servers
from tests.sandbox.render import DEMO_KEY

hybrid = hybrid_cases.hybrid
X, Y = hybrid_cases.X, hybrid_cases.Y
ROLLING_PLAYBOOK = os.path.join(REPO, "playbooks", "rolling_upgrade.yml")
WAIT_TASK = "task:*Wait until the control plane lists the data plane, and every live data plane, in sync*"
SECRETS = (ADMIN_TOKEN, DEMO_KEY)
TIMEOUT = 8  # kong_node_ready_timeout of the run that meets the lost control plane


def _journal(box) -> dict:
    with open(os.path.join(box.work_dir, "sandbox", "journal.json")) as fh:
        return json.load(fh)


def _start(box, name: str, version: str) -> None:
    node = box.state["nodes"][name]
    started = subprocess.run(
        [box.kong_bin(version), "start", "-c", node["conf"], "-p", node["prefix"]], capture_output=True, text=True, check=False, timeout=60
    )
    assert started.returncode == 0, started.stderr
    hybrid_cases._wait(f"{name} answering on {version}", lambda: (hybrid_cases._get(hybrid_cases._admin(box, name) + "/") or {}).get("version") == version)


def test_the_control_plane_lost_while_a_new_data_plane_waits_stops_bounded_and_named_then_the_same_playbook_completes(hybrid, tmp_path):
    box = hybrid(Y)
    cp_url = hybrid_cases._admin(box, "cp")
    pause = tmp_path / "dp-sync.pause"
    lost = {}

    def lose_the_control_plane():
        os.kill(box.node_master("cp"), signal.SIGKILL)
        hybrid_cases._wait("the control plane gone", lambda: hybrid_cases._get(cp_url + "/", timeout=1) is None, timeout=15)
        lost["at"] = time.time()
        pause.unlink()

    hook = Hook(pause.exists, lose_the_control_plane)
    hook.start()
    env = paused_at_env(box, WAIT_TASK, pause)
    load = hybrid_cases._load(box)
    try:
        first = run_playbook(
            ROLLING_PLAYBOOK, inventory=box.inventory, extra_vars={"kong_version_target": Y, "kong_node_ready_timeout": TIMEOUT}, env=env, verbosity=3
        )
        stopped = time.time()
        hook.done()
        assert hook.fired, "the run never waited for the control plane to list the new data plane\n" + first.stdout[-3000:]
        assert first.rc != 0, first.stdout[-3000:]

        # bounded: the run stopped within its wait (and the rescue's conclusion), not at the first refused connection nor never
        assert stopped - lost["at"] >= TIMEOUT, f"the wait ended {stopped - lost['at']:.1f} s after the control plane went, before its {TIMEOUT} s"
        journal = _journal(box)
        failure = journal.get("failure") or {}
        assert journal["status"] == "failed" and failure.get("phase") == "deploy", failure
        reason = failure.get("reason", "")
        assert f"the control plane did not answer within wait_timeout ({TIMEOUT}s): GET {cp_url}/" in reason, f"the control plane is not named: {failure}"
        # nothing moved: HAProxy sends nothing to Y, every X data plane serves (from the configuration it holds)
        servers = haproxy_servers(box.state["haproxy"]["socket"])
        assert all(servers[y]["weight"] == 0 for y in box.names("kong_y")), servers
        assert all(hybrid_cases._node_running(box, x) for x in box.names("kong_x"))
        # the freeze is the controller's lock and the fingerprint of the configuration the X data planes
        # serve: verified through them and thawed, with the control plane gone
        lock = os.path.join(box.work_dir, "sandbox", "freeze.lock.json")
        assert journal.get("thawed") is True and not os.path.exists(lock), "writes were left frozen"
        assert "Configuration writes were thawed" in first.stdout, first.stdout[-3000:]

        # the operator brings the control plane back; the same playbook resumes the run and completes it
        _start(box, "cp", Y)
        second = run_playbook(ROLLING_PLAYBOOK, inventory=box.inventory, extra_vars={"kong_version_target": Y}, env=box.ansible_env(), verbosity=3)
        time.sleep(2)
    finally:
        summary = load.stop()
        hook.done()
    assert second.rc == 0, second.stdout[-3000:]
    assert f"Resuming run {journal['run_id']}" in second.stdout
    done = _journal(box)
    assert done["run_id"] == journal["run_id"] and done["status"] == "done" and done.get("thawed") is True
    assert not os.path.exists(lock)
    # both runs were at -vvv: the Admin API token and the smoke test's consumer key appear in neither
    # output nor in any file the runs left (the backups, which hold the key, 0600)
    assert all("ESTABLISH LOCAL CONNECTION" in run.stdout and not leaks(run.stdout, SECRETS) for run in (first, second))
    _files, loose = loose_files(box.work_dir, (ADMIN_TOKEN,), credentials=(DEMO_KEY,))
    assert not loose, loose
    # the data planes served throughout: the control plane's loss cost no request
    hybrid_cases._assert_clean_load(summary)
    hybrid_cases._assert_ends_on_y(box, summary)
