"""kong_upgrade_run: the run journal and run lock on the controller, driven through the action plugin
as Ansible runs it, and through the run-state class for the cases a task cannot produce (a torn write)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from unittest import mock

import pytest
from ansible_collections.kongops.upgrade.plugins.plugin_utils import _run_state
from ansible_collections.kongops.upgrade.plugins.plugin_utils._run_state import RunState, RunStateError, utc_stamp


# the plugin runs in the controller (tests/unit/conftest.py controller_context)
pytestmark = pytest.mark.usefixtures("controller_context")


def action_class():
    from ansible_collections.kongops.upgrade.plugins.action.kong_upgrade_run import ActionModule

    return ActionModule


OPEN = dict(state="opened", strategy="rolling", mode="dbless", from_version="3.8.1", to_version="3.9.3", path=["3.9.3"])


def run(work_dir, check=False, **args):
    task = mock.MagicMock()
    task.args = dict(work_dir=str(work_dir), cluster="c1", **args)
    task.async_val = 0
    task.check_mode = check
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    play_context = mock.MagicMock()
    play_context.check_mode = check
    action = action_class()(task, connection, play_context, loader=None, templar=None, shared_loader_obj=None)
    return action.run(task_vars={})


def journal(work_dir):
    with open(os.path.join(work_dir, "c1", "journal.json")) as fh:
        return json.load(fh)


def lock_file(work_dir):
    return os.path.join(work_dir, "c1", "run.lock")


def foreign_lock(work_dir, **over):
    """A lock of another run: a live process on another controller that wrote a moment ago."""
    holder = dict(host="ctl-other", pid=4242, user="alice", run_id="R-OTHER", started=utc_stamp(time.time() - 60), updated=utc_stamp(time.time() - 5), ttl=7200)
    holder.update(over)
    os.makedirs(os.path.join(work_dir, "c1"), exist_ok=True)
    with open(lock_file(work_dir), "w") as fh:
        json.dump(holder, fh)
    return holder


def test_open_writes_a_private_journal_and_lock_and_returns_the_fact(tmp_path):
    res = run(tmp_path, run_id="R1", **OPEN)
    assert not res.get("failed"), res
    assert res["changed"] is True and res["resumed"] is False
    data = journal(tmp_path)
    assert data == res["journal"] == res["ansible_facts"]["kong_journal"]
    assert {k: data[k] for k in ("run_id", "cluster", "strategy", "mode", "from", "to", "path", "status")} == {
        "run_id": "R1",
        "cluster": "c1",
        "strategy": "rolling",
        "mode": "dbless",
        "from": "3.8.1",
        "to": "3.9.3",
        "path": ["3.9.3"],
        "status": "running",
    }
    assert data["phases"] == {} and data["nodes"] == {} and data["steps"] == []
    for path in (os.path.join(tmp_path, "c1", "journal.json"), lock_file(tmp_path)):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(lock_file(tmp_path)) as fh:
        held = json.load(fh)
    assert held["run_id"] == "R1" and held["host"] == socket.gethostname() and held["pid"] == os.getppid()
    assert res["lock"] == held
    assert not [f for f in os.listdir(os.path.join(tmp_path, "c1")) if f.endswith(".tmp")]


def test_a_work_dir_that_does_not_exist_yet_is_created_private_all_the_way(tmp_path):
    """The journal's directory and every parent the run creates are 0700, not only the last one."""
    RunState(str(tmp_path / "kongops" / "work"), "c1").open(strategy="rolling", to_version="3.9.3")
    for directory in (tmp_path / "kongops", tmp_path / "kongops" / "work", tmp_path / "kongops" / "work" / "c1"):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700, directory


def test_record_merges_like_combine_recursive_and_writes_in_milliseconds(tmp_path):
    run(tmp_path, run_id="R1", **OPEN)
    run(tmp_path, update={"phases": {"freeze": {"at": "t1", "fingerprint": "abc"}}})
    run(tmp_path, update={"phases": {"backup": {"at": "t2"}}, "backup": {"declarative": "/b.yml"}})
    run(tmp_path, update={"nodes": {"y1": "verified", "y2": "verified"}})
    run(tmp_path, update={"nodes": {"y1": "failed"}})
    run(tmp_path, update={"steps": [{"share": 10}]})
    started = time.monotonic()
    res = run(tmp_path, update={"steps": [{"share": 10}, {"share": 25}]})
    took = time.monotonic() - started
    data = journal(tmp_path)
    assert data["phases"] == {"freeze": {"at": "t1", "fingerprint": "abc"}, "backup": {"at": "t2"}}
    assert data["nodes"] == {"y1": "failed", "y2": "verified"}
    assert data["steps"] == [{"share": 10}, {"share": 25}]  # lists are replaced, as combine does
    assert data["backup"] == {"declarative": "/b.yml"} and res["journal"] == data
    assert took < 0.2, f"one journal write took {took:.3f} s"


def test_a_record_that_changes_nothing_writes_nothing_and_keeps_the_lock_fresh(tmp_path):
    """A resumed run writes back what its first attempt recorded (the weights saved before the first
    step): the journal file is left as it is and the task reports ok, not changed; the lock is refreshed."""
    run(tmp_path, run_id="R1", **OPEN)
    saved = {"lb_before": {"haproxy": {"kong/x1": {"weight": 100, "state": "ready"}}}}
    assert run(tmp_path, update=saved)["changed"] is True
    path = os.path.join(tmp_path, "c1", "journal.json")
    with open(lock_file(tmp_path)) as fh:
        updated = json.load(fh)["updated"]
    os.utime(path, ns=(1, 1))
    time.sleep(0.01)
    res = run(tmp_path, update=saved)
    assert res["changed"] is False and res["journal"]["lb_before"] == saved["lb_before"]
    assert os.stat(path).st_mtime_ns == 1, "a record that changes nothing rewrote the journal"
    with open(lock_file(tmp_path)) as fh:
        assert json.load(fh)["updated"] != updated, "the lock was not refreshed"
    assert run(tmp_path, update={"lb_before": {"haproxy": {"kong/x1": {"weight": 50}}}})["changed"] is True
    assert journal(tmp_path)["lb_before"]["haproxy"]["kong/x1"] == {"weight": 50, "state": "ready"}


def test_node_failures_count_against_the_budget(tmp_path):
    run(tmp_path, run_id="R1", **OPEN)
    res = run(tmp_path, node="x1", node_state="failed", max_failed_nodes=1)
    assert res["budget"] == {"failed_nodes": ["x1"], "failed": 1, "max_failed_nodes": 1, "spent": False}
    res = run(tmp_path, node="x1", node_state="failed", max_failed_nodes=1)
    assert res["budget"]["failed_nodes"] == ["x1"], "a node counts once"
    res = run(tmp_path, node="x2", node_state="failed", max_failed_nodes=1)
    assert res["budget"] == {"failed_nodes": ["x1", "x2"], "failed": 2, "max_failed_nodes": 1, "spent": True}
    assert journal(tmp_path)["nodes"] == {"x1": "failed", "x2": "failed"}
    res = run(tmp_path, node="x3", node_state="decommissioned", max_failed_nodes=1)
    assert res["budget"]["failed"] == 2 and journal(tmp_path)["nodes"]["x3"] == "decommissioned"


def test_step_is_appended(tmp_path):
    run(tmp_path, run_id="R1", **OPEN)
    run(tmp_path, step={"share": 10, "gate": {"failed": False}})
    res = run(tmp_path, step={"share": 25, "gate": {"failed": True, "reasons": ["y1 is DOWN"]}})
    assert [s["share"] for s in res["journal"]["steps"]] == [10, 25] == [s["share"] for s in journal(tmp_path)["steps"]]


def test_abort_sets_the_failure_and_the_fact_then_conclude_releases_the_lock(tmp_path):
    run(tmp_path, run_id="R1", **OPEN)
    res = run(tmp_path, state="aborted", phase="shift", reason="gate failed at step 25 %", needs_attention=True)
    abort = {"phase": "shift", "reason": "gate failed at step 25 %", "needs_attention": True}
    assert res["ansible_facts"]["kong_abort"] == abort == res["abort"]
    data = journal(tmp_path)
    assert data["status"] == "failed" and {k: data["failure"][k] for k in abort} == abort and data["failure"]["at"]
    res = run(tmp_path, state="concluded", update={"status": "failed", "thawed": False})
    data = journal(tmp_path)
    assert data["ended_at"] and data["thawed"] is False and res["journal"] == data
    assert not os.path.exists(lock_file(tmp_path))
    assert run(tmp_path, state="read")["journal"] == data


def test_read_changes_nothing(tmp_path):
    run(tmp_path, run_id="R1", **OPEN)
    before = os.stat(os.path.join(tmp_path, "c1", "journal.json")).st_mtime_ns
    res = run(tmp_path, state="read")
    assert res["changed"] is False and res["journal"]["run_id"] == "R1"
    assert os.stat(os.path.join(tmp_path, "c1", "journal.json")).st_mtime_ns == before


# A run cut off after each phase: the next run of the same upgrade resumes it with its nodes and steps.
PHASES = [
    ("opened", {}),
    ("freeze", {"phases": {"freeze": {"at": "t1", "fingerprint": "f"}}}),
    ("backup", {"backup": {"declarative": "/b.yml", "manifest": "/m.json"}, "phases": {"backup": {"at": "t2"}}}),
    ("deploy", {"nodes": {"y1": "verified", "y2": "verified", "y3": "verified"}}),
    ("shift", {"lb_before": {"lb": {"x1": 100}}, "steps": [{"share": 10}, {"share": 25}]}),
    ("shifted", {"phases": {"shift": {"done": True}}, "steps": [{"share": 10}, {"share": 25}, {"share": 100}]}),
    ("drain", {"nodes": {"x1": "decommissioned", "x2": "drained"}}),
]


@pytest.mark.parametrize("cut", range(len(PHASES)), ids=[p[0] for p in PHASES])
@pytest.mark.parametrize("ended", ["killed", "failed"])
def test_resume_from_a_journal_cut_off_after_each_phase(tmp_path, cut, ended):
    run(tmp_path, run_id="R1", **OPEN)
    expected = journal(tmp_path)
    for _name, update in PHASES[1 : cut + 1]:
        run(tmp_path, update=update)
        expected = _run_state.merge(expected, update)
    if ended == "failed":
        run(tmp_path, state="aborted", phase=PHASES[cut][0], reason="cut off")
    else:
        # the process died without releasing its lock: the lock names a pid that is gone
        with open(lock_file(tmp_path)) as fh:
            held = json.load(fh)
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
        held["pid"] = int(dead.stdout)
        with open(lock_file(tmp_path), "w") as fh:
            json.dump(held, fh)
    res = run(tmp_path, run_id="R2", **OPEN)
    assert not res.get("failed"), res
    assert res["resumed"] is True and res["archived"] == ""
    data = journal(tmp_path)
    assert data["run_id"] == "R1" and data["status"] == "running" and data["resumed_at"]
    for key in ("phases", "nodes", "steps", "backup", "from", "to", "path"):
        assert data.get(key) == expected.get(key), key
    if ended == "failed":
        assert data["failure"]["phase"] == PHASES[cut][0]


def test_a_finished_or_different_run_is_archived_not_resumed(tmp_path):
    run(tmp_path, run_id="R1", **OPEN)
    run(tmp_path, state="concluded", update={"status": "done"})
    res = run(tmp_path, run_id="R2", **OPEN)
    assert res["resumed"] is False and res["archived"].endswith("journal-R1.json")
    with open(res["archived"]) as fh:
        assert json.load(fh)["status"] == "done"
    assert journal(tmp_path)["run_id"] == "R2"
    run(tmp_path, state="aborted", phase="deploy", reason="x")
    newer = {**OPEN, "to_version": "3.10.0", "run_id": "R3"}
    res = run(tmp_path, **newer)
    assert res["resumed"] is False and journal(tmp_path)["run_id"] == "R3"


def test_a_second_run_is_refused_with_the_holder_named(tmp_path):
    run(tmp_path, run_id="R1", **OPEN)
    run(tmp_path, state="concluded", update={"status": "done"})
    holder = foreign_lock(tmp_path)
    before = journal(tmp_path)
    res = run(tmp_path, run_id="R2", **OPEN)
    assert res["failed"] is True
    for part in ("R-OTHER", "alice", "ctl-other", "4242", holder["started"], "kong_run_lock_force=true"):
        assert part in res["msg"], part
    assert res["holder"]["run_id"] == "R-OTHER"
    assert journal(tmp_path) == before, "a refused run changes nothing"
    with open(lock_file(tmp_path)) as fh:
        assert json.load(fh)["run_id"] == "R-OTHER"


def test_a_stale_lock_is_taken_over(tmp_path):
    foreign_lock(tmp_path, updated=utc_stamp(time.time() - 120), ttl=60)
    res = run(tmp_path, run_id="R2", **OPEN)
    assert not res.get("failed"), res
    assert res["taken_over"]["run_id"] == "R-OTHER" and "TTL 60 s" in res["taken_over"]["why"]
    with open(lock_file(tmp_path)) as fh:
        assert json.load(fh)["run_id"] == "R2"


def test_a_lock_of_a_dead_process_on_this_host_is_stale_at_once(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    foreign_lock(tmp_path, host=socket.gethostname(), pid=int(dead.stdout))
    res = run(tmp_path, run_id="R2", **OPEN)
    assert not res.get("failed"), res
    assert "is gone" in res["taken_over"]["why"]


def test_force_takes_a_live_lock_and_the_loser_can_no_longer_write(tmp_path):
    run(tmp_path, run_id="R1", **OPEN)
    other = RunState(str(tmp_path), "c1", owner=dict(host="ctl-other", pid=4242, user="alice"))
    with pytest.raises(RunStateError) as refused:
        other.open("rolling", "3.9.3", run_id="R-OTHER")
    assert "kong_run_lock_force=true" in str(refused.value)
    taken = other.open("rolling", "3.9.3", run_id="R-OTHER", force=True)
    assert taken["taken_over"]["why"] == "force" and taken["resumed"] is True
    before = journal(tmp_path)
    res = run(tmp_path, update={"nodes": {"x1": "drained"}})
    assert res["failed"] is True and "does not hold the run lock" in res["msg"] and "alice" in res["msg"]
    assert journal(tmp_path) == before


def test_check_mode_writes_nothing_and_builds_on_the_play_journal(tmp_path):
    res = run(tmp_path, check=True, run_id="R1", **OPEN)
    assert res["changed"] is False and res["journal"]["run_id"] == "R1"
    assert not os.path.exists(os.path.join(tmp_path, "c1")), "check mode creates nothing"
    res = run(tmp_path, check=True, journal=res["journal"], update={"nodes": {"y1": "verified"}})
    assert res["journal"]["nodes"] == {"y1": "verified"} and res["journal"]["run_id"] == "R1"
    assert not os.path.exists(os.path.join(tmp_path, "c1", "journal.json"))
    foreign_lock(tmp_path)
    res = run(tmp_path, check=True, run_id="R1", **OPEN)
    assert not res.get("failed"), "a check run reports the lock, it is not refused"


def test_a_torn_write_leaves_the_old_journal(tmp_path, monkeypatch):
    run(tmp_path, run_id="R1", **OPEN)
    run(tmp_path, update={"nodes": {"y1": "verified"}})
    before = journal(tmp_path)

    def crash(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_run_state.os, "fsync", crash)
    res = run(tmp_path, update={"nodes": {"y1": "failed"}, "big": "x" * 100000})
    monkeypatch.undo()
    assert res["failed"] is True and "Input/output error" in res["msg"]
    assert journal(tmp_path) == before
    assert not [f for f in os.listdir(os.path.join(tmp_path, "c1")) if f.endswith(".tmp")]


def test_a_reader_never_sees_half_a_journal(tmp_path):
    run(tmp_path, run_id="R1", **OPEN)
    path = os.path.join(tmp_path, "c1", "journal.json")
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
import json, time
bad = 0
end = time.time() + 1.5
while time.time() < end:
    try:
        with open({path!r}) as fh:
            json.load(fh)
    except ValueError:
        bad += 1
print(bad)
""",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    n = 0
    while reader.poll() is None:
        n += 1
        run(tmp_path, update={"steps": [{"share": i, "pad": "y" * 5000} for i in range(n % 20)]})
    assert reader.stdout.read().strip() == "0"
    assert n > 10


@pytest.mark.parametrize(
    "args, needle",
    [
        (dict(state="opened", to_version="3.9.3"), "strategy"),
        (dict(state="aborted", phase="shift"), "reason"),
        (dict(node="x1"), "node_state"),
        (dict(state="closed"), "state"),
        (dict(lock_ttl=0, state="read"), "kong_run_lock_ttl"),
    ],
)
def test_bad_input_is_named_and_changes_nothing(tmp_path, args, needle):
    res = run(tmp_path, **args)
    assert res["failed"] is True and needle in res["msg"]
    assert not os.path.exists(os.path.join(tmp_path, "c1"))


def test_a_journal_that_is_not_json_is_named(tmp_path):
    os.makedirs(os.path.join(tmp_path, "c1"))
    with open(os.path.join(tmp_path, "c1", "journal.json"), "w") as fh:
        fh.write("{not json")
    res = run(tmp_path, run_id="R1", **OPEN)
    assert res["failed"] is True and "journal.json is not valid JSON" in res["msg"]


def test_a_write_after_a_dead_run_leaves_its_stale_lock_and_takes_none(tmp_path):
    """A rollback run on its own writes the journal of a run that died holding the lock; a write after
    the conclusion takes no lock that would block the next run."""
    run(tmp_path, run_id="R1", **OPEN)
    foreign_lock(tmp_path, updated=utc_stamp(time.time() - 120), ttl=60)
    res = run(tmp_path, update={"status": "rolled_back"})
    assert not res.get("failed"), res
    assert journal(tmp_path)["status"] == "rolled_back"
    with open(lock_file(tmp_path)) as fh:
        assert json.load(fh)["run_id"] == "R-OTHER"
    os.unlink(lock_file(tmp_path))
    res = run(tmp_path, update={"rollback": {"restored": True}})
    assert not res.get("failed") and not os.path.exists(lock_file(tmp_path))


@pytest.mark.parametrize("strategy, resumed", [("rolling", True), ("dual_cluster", True), ("in_place", False)])
def test_a_rolled_back_run_resumes_only_where_y_stands_beside_x(tmp_path, strategy, resumed):
    """Rolling and dual-cluster runs roll back by putting every request back on X: Y stays deployed and
    the next run goes on from there. An in-place run rolls back by restoring the database: anew."""
    opened = {**OPEN, "strategy": strategy}
    run(tmp_path, run_id="R1", **opened)
    run(tmp_path, state="aborted", phase="shift", reason="gate failed")
    run(tmp_path, state="concluded", update={"status": "rolled_back", "ended_at": "t9", "thawed": True})
    res = run(tmp_path, run_id="R2", **opened)
    assert not res.get("failed"), res
    assert res["resumed"] is resumed
    data = journal(tmp_path)
    assert data["run_id"] == ("R1" if resumed else "R2") and data["status"] == "running"
    if resumed:
        assert data["thawed"] is True and data["failure"]["phase"] == "shift"
    else:
        assert res["archived"].endswith("journal-R1.json")
