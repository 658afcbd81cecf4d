"""The controller (ansible-playbook) killed at each phase boundary of the in-place upgrade (tracker issue
25, fault 4), and the same playbook run again: each run resumes the one before and is killed at the next
boundary, until the last run completes. The kill is exact: a test-only callback SIGKILLs the controller's
process group the moment the named play or task starts (tests/integration/callbacks/kill_controller.py).
Between the kills the test reads what each boundary promises from the outside: the journal, the freeze
lock, schema_meta, the versions the nodes answer with, and a load through HAProxy that fails only in the
downtime window of the in-place strategy (from the stop of X to Y's start, which a killed controller
stretches until the next run). The rolling strategy's chain is in test_rolling_upgrade.py."""

from __future__ import annotations

import os
import time

import pytest

from tests.integration.controller_kill import killed_at, run_killed_at
from tests.integration.faults import _journal, _versions
from tests.loadgen import LoadGenerator
from tests.sandbox import procs
from tests.sandbox.core import Sandbox
from tests.sandbox.seed import seed_services

X, Y = "3.6.1", "3.7.1"

# (where the controller dies, what the cluster is then)
IN_PLACE_BOUNDARIES = (
    ("play:Freeze configuration writes and back up database, configuration and files", "journal open"),
    ("play:Stage Y beside the running X (no downtime yet)", "frozen"),
    ("task:Stop every X node (downtime starts)", "staged"),
    ("task:Run kong migrations up (X can still use the database)", "x stopped"),
    ("task:Start and smoke-test Y (downtime ends when every node is ready)", "up done"),
    ("play:Verify and watch Y before the point of no return", "y started"),
    ("play:Kong migrations finish - the point of no return", "y verified"),
    ("play:Thaw and report", "finished"),
)


@pytest.fixture
def box(tmp_path):
    sandbox = Sandbox(state_dir=str(tmp_path / "sb"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
    try:
        sandbox.up(mode="traditional", kong_x=X, nodes=2)
        seed_services(f"http://127.0.0.1:{sandbox.state['nodes']['x1']['admin_port']}", 20)
        yield sandbox
    finally:
        sandbox.down()


def _pending(box: Sandbox) -> set:
    return {m for _executed, pending in box.schema_meta().values() for m in pending}


def _at_the_boundary(box: Sandbox, what: str, run_id: str, counts: dict) -> None:
    journal = _journal(box)
    assert journal["run_id"] == run_id and journal["status"] == "running", (what, journal["status"])
    lock = os.path.join(box.work_dir, "sandbox", "freeze.lock.json")
    versions = _versions(box)
    assert os.path.exists(lock) == (what != "journal open"), f"{what}: freeze lock {'missing' if what != 'journal open' else 'taken'}"
    if what in ("journal open", "frozen", "staged"):
        assert set(versions.values()) == {X} and not _pending(box), (what, versions)
    elif what == "x stopped":
        assert set(versions.values()) == {None} and not _pending(box), (what, versions)
    elif what == "up done":
        assert set(versions.values()) == {None} and _pending(box), (what, versions)
    else:
        assert set(versions.values()) == {Y}, (what, versions)
        assert bool(_pending(box)) == (what != "finished"), (what, _pending(box))
    assert box.row_counts() == counts, f"{what}: the entities changed"


def test_controller_killed_at_every_phase_boundary_of_the_in_place_upgrade_and_the_same_playbook_resumes(box, tmp_path):
    counts = box.row_counts()
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=50.0, headers={"apikey": "demo-key"}).start()
    run_id, downtime = None, []
    try:
        for n, (at, what) in enumerate(IN_PLACE_BOUNDARIES):
            log = str(tmp_path / f"run-{n}.log")
            started = time.time()
            text = killed_at(box, "in_place", Y, at, log, resumes=run_id)
            # the runs that start with X stopped take the nodes as the lost run left them, and say so
            if what in ("up done", "y started"):
                assert "Resuming inside the downtime window" in text, text[-3000:]
            run_id = run_id or _journal(box)["run_id"]
            _at_the_boundary(box, what, run_id, counts)
            # the downtime window: from the run that stops X to the one that starts Y
            if what in ("x stopped", "y started"):
                downtime.append(started if what == "x stopped" else time.time())
        log = str(tmp_path / "run-last.log")
        rc, killed = run_killed_at(box, "in_place", Y, "play:no such play", log)
        with open(log) as fh:
            text = fh.read()
    finally:
        summary = load.stop()
    assert rc == 0 and not killed and f"Resuming run {run_id}" in text, text[-3000:]
    journal = _journal(box)
    assert journal["run_id"] == run_id and journal["status"] == "done" and journal.get("thawed") is True
    assert not os.path.exists(os.path.join(box.work_dir, "sandbox", "freeze.lock.json"))
    assert set(_versions(box).values()) == {Y} and not _pending(box) and box.row_counts() == counts
    # every request outside the downtime window was served; inside it, the nodes were stopped by design
    assert summary["total"] > 0 and summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    begin, end = downtime
    outside = [(round(r.wall - begin, 2), r.status, r.error) for r in load.records if not r.ok and not begin <= r.wall <= end + 3]
    assert not outside, f"requests failed outside the downtime window: {outside[:10]}"
    assert {X, Y} <= set(summary["versions"]), summary["versions"]
