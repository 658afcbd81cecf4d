"""The rolling upgrade end to end on the local sandbox: real HAProxy, simulated Kong nodes,
the collection's playbook, and a steady load whose every response is checked."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import stat
import subprocess
import threading
import time

import pytest

from tests.integration.lb_share import HaproxySampler, assert_step_shares
from tests.loadgen import NOT_SENT, LoadGenerator, share_between
from tests.sandbox.core import Sandbox, haproxy_admin_view, haproxy_servers
from tests.sandbox.timeline import read_report
from tests.sandbox import procs

X, Y = "3.8.1", "3.9.3"
RATE = 200.0


def _journal(box: Sandbox) -> dict:
    path = os.path.join(box.work_dir, "sandbox", "journal.json")
    with open(path) as fh:
        return json.load(fh)


def _epoch(text: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=datetime.UTC).timestamp()


@pytest.fixture
def sandbox(tmp_path):
    boxes = []

    def make(mode: str = "dbless", kong_x: str = X, lb: str = "haproxy", nodes: int = 3, status_gate_urls: bool | None = None) -> Sandbox:
        """``nodes`` X nodes and as many Y: 3 where a third node proves more (a run that goes on past a
        failed node, the default fleet under load), 2 elsewhere (every step, gate and drain is the same).
        ``status_gate_urls``: the gates read the Y nodes from the controller (kong_status_gate_url), the
        sandbox's default from Kong 3.3; False: each Y node is read on its host."""
        box = Sandbox(state_dir=str(tmp_path / f"sb{len(boxes)}"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
        box.log_dir = str(tmp_path)
        boxes.append(box)
        box.up(mode=mode, kong_x=kong_x, lb=lb, nodes=nodes, status_gate_urls=status_gate_urls)
        return box

    yield make
    for box in boxes:
        box.down()


def _load(box: Sandbox) -> LoadGenerator:
    return LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=RATE, headers={"apikey": "demo-key"}).start()


def _upgrade(box: Sandbox, *extra: str) -> int:
    box.last_log = os.path.join(box.log_dir, f"upgrade-{time.time():.0f}.log")
    return box.upgrade("rolling", Y, extra_args=list(extra), log_path=box.last_log, stream=lambda line: None)


def _failure(box: Sandbox) -> str:
    """What the playbook said when it failed (the sandbox's own directory is gone after down)."""
    with open(box.last_log) as fh:
        lines = fh.read().splitlines()
    return "\n".join([ln for ln in lines if "fatal:" in ln or "FAILED" in ln][-5:] + lines[-30:])


def _node_running(box: Sandbox, name: str) -> bool:
    prefix = box.state["nodes"][name]["prefix"] if "nodes" in box.state else None
    pidfile = os.path.join(prefix, "pids", "nginx.pid") if prefix else None
    if not pidfile or not os.path.exists(pidfile):
        return False
    with open(pidfile) as fh:
        pid = int(fh.read().strip() or 0)
    return pid > 0 and os.path.exists(f"/proc/{pid}")


def _outside(box: Sandbox) -> dict:
    """What an upgrade could change, read from the outside: the load balancer's servers, the nodes'
    processes and versions, the files of the nodes' directories and of the work directory."""
    import requests

    lb = haproxy_admin_view(box.state["haproxy"]["socket"])
    nodes = {}
    for name, node in box.state["nodes"].items():
        running = _node_running(box, name)
        version = requests.get(f"http://127.0.0.1:{node['admin_port']}/", timeout=5).json()["version"] if running else None
        nodes[name] = (running, version)
    files = {}
    for top in (box.work_dir, os.path.join(box.state_dir, "nodes")):
        for d, _dirs, names in os.walk(top):
            for f in names:
                path = os.path.join(d, f)
                # reports/ holds the run's report, which check mode writes too (the plan, for an approval)
                if os.path.isfile(path) and not path.endswith((".log", ".sock", ".pid")) and "/logs/" not in path and "/reports/" not in path:
                    st = os.stat(path)
                    files[path] = (st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return {"lb": lb, "nodes": nodes, "files": files}


def test_dbless_rolling_upgrade_under_load_loses_no_request(sandbox):
    # each Y node is read on its host at the gates (the way without kong_status_gate_url)
    box = sandbox(status_gate_urls=False)
    # --check first: the whole plan, nothing changed (issue 22)
    before = _outside(box)
    assert _upgrade(box, "--check") == 0, _failure(box)
    assert _outside(box) == before
    with open(box.last_log) as fh:
        plan = fh.read()
    assert "Kong rolling upgrade 3.8.1 -> 3.9.3: planned (check mode)" in plan
    assert "steps: 10 -> 25 -> 50 -> 100" in plan and "nothing was changed" in plan
    for name in ("x1", "x2", "x3"):
        assert f"Drain {name} and wait for zero sessions" in plan, f"the plan does not drain {name}"
    assert not [ln for ln in plan.splitlines() if "fatal:" in ln or "FAILED" in ln]

    load = _load(box)
    sampler = HaproxySampler(box.state["haproxy"]["socket"]).start()
    rc = _upgrade(box)
    time.sleep(2)
    summary = load.stop()
    samples = sampler.stop()
    assert rc == 0, _failure(box)

    assert summary["failed"] == 0, f"{summary['failed']} of {summary['total']} requests failed: {summary.get('errors')}"
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    assert summary["total"] >= RATE * 10

    journal = _journal(box)
    assert journal["status"] == "done"
    assert [s["share"] for s in journal["steps"]] == [10, 25, 50, 100]
    # the load's own measurement of Y's share while each step soaked, beside HAProxy's weights and health
    assert_step_shares(journal["steps"], load.records, samples, ["y1", "y2", "y3"], Y, _epoch)
    for step in journal["steps"]:
        assert step["gate"]["failed"] is False and step["gate"]["requests"] > 0

    last = [s for s in summary["per_second"] if s["versions"]][-2:]
    assert all(set(s["versions"]) == {Y} for s in last), f"traffic at the end: {last}"
    servers = haproxy_servers(box.state["haproxy"]["socket"])
    assert {name: s["weight"] > 0 for name, s in servers.items()} == {"x1": False, "x2": False, "x3": False, "y1": True, "y2": True, "y3": True}
    # each X node left the pool in maintenance, the state its drain put it in before the wait for zero sessions
    admin = haproxy_admin_view(box.state["haproxy"]["socket"])
    assert {x: admin[x][1] for x in ("x1", "x2", "x3")} == dict.fromkeys(("x1", "x2", "x3"), "MAINT"), admin
    box.load()
    assert not any(_node_running(box, name) for name in ("x1", "x2", "x3"))
    assert set(journal["nodes"].items()) >= {
        ("x1", "decommissioned"),
        ("x2", "decommissioned"),
        ("x3", "decommissioned"),
        ("y1", "verified"),
        ("y2", "verified"),
        ("y3", "verified"),
    }
    # a healthy run says nothing alarming: no "FAILED - RETRYING" from healthy polls, no failed task
    with open(box.last_log) as fh:
        out = fh.read()
    alarming = [ln for ln in out.splitlines() if "FAILED" in ln or "fatal:" in ln]
    assert not alarming, alarming[:5]
    # the shift runs on the Y hosts: at the gates each Y node reads its own counters, and each step
    # changes the pool once, not once per Y host
    for share in (10, 25, 50, 100):
        task = out.split(f"TASK [kongops.upgrade.rolling_upgrade : Shift {share} % of the traffic to Y]")[1].split("TASK [")[0]
        assert task.count("changed: [") == 1, task
    # one load balancer change per X node, its drain; nothing after its quit
    x_tasks = [ln.split("]")[0] for ln in out.splitlines() if ln.startswith("TASK [kongops.upgrade.rolling_upgrade : ") and re.search(r"\bx[0-9]\b", ln)]
    assert x_tasks == [f"TASK [kongops.upgrade.rolling_upgrade : Drain {x} and wait for zero sessions" for x in ("x1", "x2", "x3")], x_tasks
    ready = out.split("TASK [kongops.upgrade.upgrade_common : Check that every Y node is still ready - step 10 %]")[1].split("TASK [")[0]
    assert sorted(ln.split("]")[0] for ln in ready.splitlines() if ln.startswith("ok: [")) == ["ok: [y1", "ok: [y2", "ok: [y3"], ready
    assert all(f"ok: [{name}] => (item={name})" in ready for name in ("y1", "y2", "y3")), ready
    # each step's verdict carries its evidence: the load balancer's checks during the soak
    assert all(step["gate"]["polls"] and step["gate"]["lb_counters"] for step in journal["steps"])
    # the controller's copy of the declarative backup holds every credential: owner only
    backups = os.path.join(box.work_dir, "sandbox", "backups")
    copy = os.path.join(backups, f"{journal['run_id']}-declarative.yml")
    assert stat.S_IMODE(os.stat(backups).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600


def test_failed_gate_puts_every_request_back_on_x(sandbox):
    # the gates read the Y nodes from the controller: the killed y2 does not answer there either
    box = sandbox(nodes=2, status_gate_urls=True)
    y2_pid = {}

    def break_y2_after_first_step():
        deadline = time.time() + 600
        while time.time() < deadline:
            try:
                if len(_journal(box).get("steps", [])) >= 1:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        box.load()
        y2_pid["pid"] = box.node_master("y2")
        os.kill(y2_pid["pid"], signal.SIGKILL)
        y2_pid["at"] = time.time()

    killer = threading.Thread(target=break_y2_after_first_step, daemon=True)
    killer.start()
    load = _load(box)
    rc = _upgrade(box, "-e", "kong_gate_soak_seconds=6")
    time.sleep(2)
    summary = load.stop()
    killer.join(5)

    assert rc != 0
    journal = _journal(box)
    assert journal["status"] == "rolled_back" and journal.get("thawed") is True, journal.get("failure")
    assert "y2" in journal["failure"]["reason"] and journal["failure"]["phase"] == "shift"
    # the 10 % step passed; the 25 % step is journaled with the verdict that stopped the run
    assert [(s["share"], s["gate"]["failed"]) for s in journal["steps"]] == [(10, False), (25, True)]
    crossed = journal["steps"][1]["gate"]
    assert any("y2" in reason for reason in crossed["reasons"]), crossed
    assert crossed["not_ready"] == ["y2"], crossed
    servers = haproxy_servers(box.state["haproxy"]["socket"])
    assert set(servers) == {"x1", "x2", "y1", "y2"}
    assert all(servers[x]["weight"] == 100 for x in ("x1", "x2"))
    assert all(servers[y]["weight"] == 0 or "MAINT" in servers[y]["status"] for y in ("y1", "y2"))
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    detected = _epoch(journal["failure"]["at"])
    after = [r for r in load.records if r.wall > detected + 1 and r.error != NOT_SENT]
    failed_after = [(r.status, r.error) for r in after if not r.ok]
    assert after and not failed_after, f"requests failed after the rollback: {failed_after[:10]}"
    tail = [s for s in summary["per_second"] if s["wall"] and s["wall"] > detected + 2]
    assert tail and all(set(s["versions"]) <= {X} for s in tail), "traffic still reaches Y after the rollback"
    assert journal.get("thawed") is True


ROLLING_PLAYBOOK = os.path.join(os.path.dirname(__file__), "..", "..", "playbooks", "rolling_upgrade.yml")


def _kill_run_when(box, reached) -> None:
    """Start the rolling upgrade to Y and kill it (the whole process group, as a lost controller
    would end) once ``reached(journal)`` holds."""
    box.install(Y)
    env = dict(box.ansible_env(), ANSIBLE_CALLBACKS_ENABLED="kongops.upgrade.upgrade_report")
    proc = subprocess.Popen(
        [os.path.join(".venv", "bin", "ansible-playbook"), ROLLING_PLAYBOOK, "-i", box.inventory, "-e", f"kong_version_target={Y}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        try:
            if reached(_journal(box)):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # the killed run left its report (issue 22): written at each phase and journal write, it shows the
    # steps the journal holds and says the run was still going
    report = read_report(box.work_dir)
    steps = _journal(box).get("steps", [])
    assert report and report.get("complete") is False, "the killed run left no report"
    assert [s["share"] for s in report["journal"].get("steps", [])] == [s["share"] for s in steps][: len(report["journal"].get("steps", []))] and len(
        report["journal"].get("steps", [])
    ) >= len(steps) - 1
    html_path = os.path.join(os.path.dirname(glob.glob(os.path.join(box.work_dir, "sandbox", "reports", "*", "report.json"))[0]), "report.html")
    with open(html_path) as fh:
        assert "still going" in fh.read()


# The controller killed at each phase boundary of the rolling upgrade, one boundary after the other: each
# run of the same playbook resumes the one before and is killed at the next boundary (and once inside the
# drain, as a lost controller most often ends a long run); then a Y node crashes during the watch, and the
# last run completes once it is started again. Between the runs the test reads what each promises from the
# outside.
ROLLING_BOUNDARIES = (
    ("play:Freeze configuration writes and back up", "the journal is open, nothing frozen"),
    ("play:Bring up the Y nodes beside X and smoke-test them", "frozen and backed up"),
    ("play:Shift traffic X -> Y in steps with health gates", "Y verified, no traffic on Y"),
    ("play:Drain and decommission the X nodes", "every request on Y, X running"),
    ("drain", "x1 decommissioned, x2 running"),
    ("play:Watch, verify, thaw and report", "every X node decommissioned, writes still frozen"),
)


def _haproxy_weights(box: Sandbox) -> dict:
    return {name: server["weight"] for name, server in haproxy_servers(box.state["haproxy"]["socket"]).items()}


def _at_the_boundary(box: Sandbox, what: str, run_id: str) -> None:
    """What the journal, the freeze lock and the load balancer say once the controller died at ``what``."""
    journal = _journal(box)
    assert journal["run_id"] == run_id and journal["status"] == "running", (what, journal["status"])
    phases, nodes, weights = journal.get("phases", {}), journal.get("nodes", {}), _haproxy_weights(box)
    lock = os.path.join(box.work_dir, "sandbox", "freeze.lock.json")
    if what == "the journal is open, nothing frozen":
        assert not phases and not os.path.exists(lock)
        return
    assert "freeze" in phases and "backup" in phases and os.path.exists(lock), what
    with open(lock) as fh:
        assert json.load(fh).get("run_id") == run_id, "the freeze lock is not the run's"
    if what == "Y verified, no traffic on Y":
        assert nodes.get("y1") == nodes.get("y2") == "verified" and weights.get("y1", 0) == weights.get("y2", 0) == 0, (nodes, weights)
    elif what == "every request on Y, X running":
        assert phases.get("shift", {}).get("done") and weights["x1"] == weights["x2"] == 0 and weights["y1"] > 0, (phases, weights)
        assert _node_running(box, "x1") and _node_running(box, "x2")
    elif what == "x1 decommissioned, x2 running":
        assert nodes.get("x1") == "decommissioned" and nodes.get("x2") != "decommissioned" and _node_running(box, "x2"), nodes
    elif what == "every X node decommissioned, writes still frozen":
        assert nodes.get("x1") == nodes.get("x2") == "decommissioned" and not journal.get("thawed"), nodes


def _y1_crashes_during_the_watch(box: Sandbox, tmp_path, run_id: str) -> None:
    """The run resumed at the watch (every X node retired) meets y1 crashing (SIGKILL) the moment its watch
    starts (the test-only callback holds the run there while the test kills y1). Nothing is left to put
    the traffic back on: the run stops in phase watch flagged for a person with y1 named, writes stay
    frozen under the run's lock, y2 serves. Then y1 is started again, as the person would, and the next
    run of the same playbook completes (the caller's last run)."""
    import requests

    from tests.integration.ansible_run import run_playbook
    from tests.integration.controller_kill import paused_at_env
    from tests.integration.faults import Hook

    pause = tmp_path / "watch.pause"

    def crash_y1():
        os.kill(box.node_master("y1"), signal.SIGKILL)
        pause.unlink()

    hook = Hook(pause.exists, crash_y1)
    hook.start()
    env = paused_at_env(box, "task:Watch the new version", pause)
    try:
        watched = run_playbook(ROLLING_PLAYBOOK, inventory=box.inventory, extra_vars={"kong_version_target": Y}, env=env)
    finally:
        hook.done()
    assert hook.fired, "the run never reached its watch: y1 was not crashed\n" + watched.stdout[-3000:]
    assert watched.rc != 0
    journal = _journal(box)
    failure = journal.get("failure") or {}
    assert journal["run_id"] == run_id and journal["status"] == "failed", journal.get("status")
    assert failure.get("phase") == "watch" and failure.get("needs_attention") is True and "y1" in failure.get("reason", ""), failure
    lock = os.path.join(box.work_dir, "sandbox", "freeze.lock.json")
    assert not journal.get("thawed") and os.path.exists(lock), "writes were thawed with a Y node down after X was retired"
    with open(lock) as fh:
        assert json.load(fh)["run_id"] == run_id
    assert _node_running(box, "y2") and not _node_running(box, "y1")
    # the person starts y1 again
    node = box.state["nodes"]["y1"]
    started = subprocess.run([box.kong_bin(Y), "start", "-c", node["conf"], "-p", node["prefix"]], capture_output=True, text=True, check=False, timeout=60)
    assert started.returncode == 0, started.stderr
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{node['status_port']}/status/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError("y1 did not answer ready after its start")


def test_controller_killed_at_every_phase_boundary_and_the_same_playbook_resumes(sandbox, tmp_path):
    from tests.integration.ansible_run import run_playbook
    from tests.integration.controller_kill import killed_at

    box = sandbox(nodes=2)
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=50.0, headers={"apikey": "demo-key"}).start()
    run_id = None
    try:
        for n, (at, what) in enumerate(ROLLING_BOUNDARIES):
            log = str(tmp_path / f"run-{n}.log")
            if at == "drain":
                _kill_run_when(box, lambda journal: journal.get("nodes", {}).get("x1") == "decommissioned")
            else:
                # every run after the first says it resumes the same run
                killed_at(box, "rolling", Y, at, log, resumes=run_id)
            run_id = run_id or _journal(box)["run_id"]
            _at_the_boundary(box, what, run_id)
        _y1_crashes_during_the_watch(box, tmp_path, run_id)
        # the retired nodes are not touched again by the run that completes (Y serves it: the thaw goes there)
        finished = {name for name, state in _journal(box)["nodes"].items() if state == "decommissioned"}
        result = run_playbook(ROLLING_PLAYBOOK, inventory=box.inventory, extra_vars={"kong_version_target": Y}, env=box.ansible_env())
    finally:
        summary = load.stop()
    assert result.rc == 0, result.stdout[-3000:]
    journal = _journal(box)
    assert journal["run_id"] == run_id and journal["status"] == "done" and journal.get("thawed") is True
    assert all(journal["nodes"][x] == "decommissioned" for x in ("x1", "x2"))
    assert not os.path.exists(os.path.join(box.work_dir, "sandbox", "freeze.lock.json"))
    touched = {
        (h, t["task"]["name"])
        for play in result.data["plays"]
        for t in play["tasks"]
        for h, r in t["hosts"].items()
        if h in finished and not r.get("skipped") and r.get("changed")
    }
    assert not touched, f"the resumed run changed finished nodes: {touched}"
    # the fleet served through every kill and resume
    assert summary["total"] > 0 and summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    assert summary["failed"] == 0, f"{summary['failed']} of {summary['total']} requests failed: {summary['failures_by_reason']}"
    assert {X, Y} <= set(summary["versions"]), summary["versions"]


def test_unsupported_path_is_refused_before_anything_changes(sandbox):
    box = sandbox(kong_x="3.4.2")
    before = haproxy_admin_view(box.state["haproxy"]["socket"])
    rc = box.upgrade("rolling", "3.9.3", log_path=os.path.join(box.state_dir, "refused.log"), stream=lambda line: None)
    with open(os.path.join(box.state_dir, "refused.log")) as fh:
        log = fh.read()
    assert rc != 0
    assert "is not a supported upgrade" in log
    for hop in ("3.5", "3.6", "3.7", "3.8"):
        assert hop in log.split("is not a supported upgrade", 1)[1], f"the refusal does not name {hop}"
    assert haproxy_admin_view(box.state["haproxy"]["socket"]) == before
    assert not os.path.exists(os.path.join(box.work_dir, "sandbox", "freeze.lock.json"))
    assert not os.path.exists(os.path.join(box.work_dir, "sandbox", "backups"))


def _nginx_servers(box: Sandbox) -> dict:
    """name -> (weight, in rotation) from the nginx upstream include file lb_weight owns."""
    import re

    servers = {}
    with open(box.state["nginx"]["upstream_file"]) as fh:
        for line in fh:
            match = re.match(r"\s*server\s+\S+(.*?);\s*#\s*(\w+)", line)
            if match:
                weight = re.search(r"weight=(\d+)", match.group(1))
                servers[match.group(2)] = (int(weight.group(1)) if weight else 1, " down" not in match.group(1))
    return servers


def test_rolling_upgrade_behind_nginx_loses_no_request(sandbox):
    """Behind nginx, draining two X nodes at a time (kong_drain_serial=2): no request lost, and the
    journal records every node of a batch (a per-batch record once kept only the batch's first). The gates
    read the Y nodes' readiness and own counters from the controller (kong_status_gate_url)."""
    box = sandbox(lb="nginx", nodes=2, status_gate_urls=True)
    load = _load(box)
    rc = _upgrade(box, "-e", "kong_drain_serial=2")
    time.sleep(2)
    summary = load.stop()
    assert rc == 0, _failure(box)
    # each failed request with its status or error and when it was sent relative to the playbook's tasks
    failed = [(round(r.wall - load.started_at, 2), r.status, r.error, r.version, r.latency_ms) for r in load.records if not r.ok][:10]
    assert summary["failed"] == 0, (
        f"{summary['failed']} of {summary['total']} requests failed (seconds into the load, status, error, version, ms): {failed}; "
        f"{load.retried} sent again on a new connection after nginx closed theirs at a reload; playbook log {box.last_log}"
    )
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"

    journal = _journal(box)
    assert journal["status"] == "done" and [s["share"] for s in journal["steps"]] == [10, 25, 50, 100]
    assert {x: journal["nodes"].get(x) for x in ("x1", "x2")} == dict.fromkeys(("x1", "x2"), "decommissioned")
    for step in journal["steps"]:
        measured = share_between(load.records, _epoch(step.get("shifted_at") or step["started_at"]) + 0.2, _epoch(step["ended_at"]), Y)
        assert measured is not None and abs(measured - step["share"]) <= 3.0, f"step {step['share']} %: Y {measured} %"
        # behind nginx (no per-server counters) each Y node's own /metrics is the error-rate gate
        nodes = step["gate"]["nodes"]
        assert set(nodes) == {"y1", "y2"} and all(n["requests"] > 0 and n["errors"] == 0 for n in nodes.values())
    assert {name: in_rotation for name, (_w, in_rotation) in _nginx_servers(box).items()} == {"x1": False, "x2": False, "y1": True, "y2": True}
    last = [s for s in summary["per_second"] if s["versions"]][-2:]
    assert all(set(s["versions"]) == {Y} for s in last), f"traffic at the end: {last}"
    box.load()
    assert not any(_node_running(box, name) for name in ("x1", "x2"))
    # no task read a Y node on its host: the soak task read them all
    with open(box.last_log) as fh:
        out = fh.read()
    for task in ("Read the Y nodes' own request counters before the soak", "Check that every Y node is still ready"):
        shown = [part.split("TASK [")[0] for part in out.split(f"TASK [kongops.upgrade.upgrade_common : {task} - ")[1:]]
        assert shown and all("ok: [" not in part and "changed: [" not in part for part in shown), shown[:2]
    # so one Y host took the shift's steps (each of them once for the play) and the other left that play
    shift = out.split("TASK [kongops.upgrade.rolling_upgrade : Validating arguments against arg spec 'shift'")[1].split("TASK [")[0]
    assert "[y1]" in shift and "[y2]" not in shift, shift


def test_node_error_rate_gate_behind_nginx_puts_every_request_back_on_x(sandbox):
    """y2 starts answering 503 once it gets traffic; nginx has no counters, y2's own /metrics says so."""
    import urllib.request

    import yaml

    # y2's counters read on its host (the other nginx test reads them from the controller)
    box = sandbox(lb="nginx", nodes=2, status_gate_urls=False)
    broken = {}

    def break_y2_when_it_gets_traffic():
        deadline = time.time() + 600
        while time.time() < deadline and not _nginx_servers(box).get("y2", (0, False))[1]:
            time.sleep(0.05)
        with open(box.state["demo_config"]) as fh:
            config = yaml.safe_load(fh)
        config.setdefault("plugins", []).append({"name": "request-termination", "config": {"status_code": 503, "message": "broken node"}})
        req = urllib.request.Request(
            f"http://127.0.0.1:{box.state['nodes']['y2']['admin_port']}/config",
            data=json.dumps(config).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            broken["status"] = resp.status

    breaker = threading.Thread(target=break_y2_when_it_gets_traffic, daemon=True)
    breaker.start()
    load = _load(box)
    rc = _upgrade(box, "-e", "kong_gate_soak_seconds=6")
    time.sleep(2)
    summary = load.stop()
    breaker.join(5)

    assert broken.get("status") in (200, 201), "y2 was never broken: the test proves nothing"
    assert rc != 0
    journal = _journal(box)
    assert journal["status"] == "rolled_back" and journal.get("thawed") is True, journal.get("failure")
    reason = journal["failure"]["reason"]
    assert "y2" in reason and "/metrics" in reason and "y1" not in reason, reason
    assert [(s["share"], s["gate"]["failed"]) for s in journal["steps"]] == [(10, True)]
    assert journal["steps"][0]["gate"]["nodes"]["y2"]["errors"] > 0
    assert journal["steps"][0]["gate"]["nodes"]["y1"]["errors"] == 0
    servers = _nginx_servers(box)
    assert set(servers) == {"x1", "x2", "y1", "y2"} and all(servers[x] == (100, True) for x in ("x1", "x2")), servers
    assert not any(servers[y][1] for y in ("y1", "y2")), servers
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    failed = [r for r in load.records if not r.ok and r.error != NOT_SENT]
    assert failed and all(r.status == 503 for r in failed), "y2's 503s are what the gate saw"
    detected = _epoch(journal["failure"]["at"])
    after = [r for r in load.records if r.wall > detected + 1 and r.error != NOT_SENT]
    assert after and all(r.ok for r in after), "requests failed after the rollback"
    tail = [s for s in summary["per_second"] if s["wall"] and s["wall"] > detected + 2]
    assert tail and all(set(s["versions"]) <= {X} for s in tail), "traffic still reaches Y after the rollback"


def test_resume_keeps_the_first_saved_weights_and_x_is_kept_when_y_fails_before_its_retirement(sandbox):
    """Issue 27, item 3, on one sandbox: a run interrupted mid-shift is resumed, and the journal
    keeps the weights saved before the first step (not the mid-shift ones); then a Y node dies
    after the 100 % step: the gate before retiring the first X node stops the run, every X node
    still runs and none is decommissioned."""
    box = sandbox(nodes=2)
    _kill_run_when(box, lambda journal: len(journal.get("steps", [])) >= 2)
    saved = _journal(box)["lb_before"]
    assert _journal(box)["status"] == "running" and saved

    def kill_y2_after_the_shift():
        deadline = time.time() + 900
        while time.time() < deadline:
            try:
                # the 100 % step is journaled once its gate passed: from here on only the drain's gate looks at Y
                if any(step["share"] == 100 for step in _journal(box).get("steps", [])[2:]):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        box.load()
        with open(os.path.join(box.state["nodes"]["y2"]["prefix"], "pids", "nginx.pid")) as fh:
            os.kill(int(fh.read()), signal.SIGKILL)

    killer = threading.Thread(target=kill_y2_after_the_shift, daemon=True)
    killer.start()
    rc = _upgrade(box, "-e", "kong_drain_gate_soak_seconds=6")
    killer.join(5)
    assert rc != 0
    journal = _journal(box)
    assert journal["lb_before"] == saved, "the resumed run overwrote the weights saved before the first step"
    assert journal["failure"]["phase"] == "drain" and "y2" in journal["failure"]["reason"], journal["failure"]
    assert not any(journal["nodes"].get(x) == "decommissioned" for x in ("x1", "x2")), journal["nodes"]
    box.load()
    assert all(_node_running(box, x) for x in ("x1", "x2"))


def _x2_fails_once(tmp_path) -> tuple:
    """x2's Python as a shim that fails every module run on x2 once the returned fault file exists (the test
    creates it at the moment it wants: a precise hook, not a sleep), and the inventory overlay that gives x2
    the shim (a second inventory source: its host variables win over the sandbox's)."""
    import sys

    fault = tmp_path / "x2-fault"
    shim = tmp_path / "x2-python"
    shim.write_text(f"#!/bin/sh\nif [ -e {fault} ]; then echo 'injected fault: x2 runs no module' >&2; exit 1; fi\nexec {sys.executable} \"$@\"\n")
    shim.chmod(0o755)
    overlay = tmp_path / "fault.yml"
    overlay.write_text(json.dumps({"all": {"children": {"kong_x": {"hosts": {"x2": {"ansible_python_interpreter": str(shim)}}}}}}))
    return fault, overlay


@pytest.mark.parametrize("budget", [0, 1])
def test_failure_budget_decides_when_an_x_node_fails_at_its_drain(sandbox, tmp_path, budget):
    """From the moment x1 is decommissioned, every module run on x2 fails (its Python is a shim that the
    test switches to failing: a precise hook, not a sleep), so x2's graceful quit fails after its drain.
    kong_max_failed_nodes=0 stops the run there with x3 still running and the reason and the way to
    resume in the journal; kong_max_failed_nodes=1 records x2 as failed and retires x3. Either way
    the clients lose no request."""
    box = sandbox()
    fault, overlay = _x2_fails_once(tmp_path)
    done = threading.Event()

    def arm():
        while not done.is_set():
            try:
                if _journal(box).get("nodes", {}).get("x1") == "decommissioned":
                    fault.touch()
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=arm, daemon=True)
    watcher.start()
    load = _load(box)
    try:
        # the fault is in the drain: one traffic step brings the run there
        rc = _upgrade(box, "-i", str(overlay), "-e", f"kong_max_failed_nodes={budget}", "-e", '{"kong_traffic_steps": [100]}')
    finally:
        done.set()
        watcher.join()
        summary = load.stop()
    assert fault.exists(), "x1 was never decommissioned: the fault was not injected\n" + _failure(box)
    journal = _journal(box)
    assert journal["nodes"].get("x2") == "failed" and journal.get("failed_nodes") == ["x2"], journal.get("nodes")
    # each failed request with when it was sent (seconds into the load), its status or error and the version that answered
    failed = [(round(r.wall - load.started_at, 2), r.status, r.error, r.version, r.latency_ms) for r in load.records if not r.ok][:10]
    assert summary["failed"] == 0, f"{summary['failed']} of {summary['total']} requests failed: {failed}; playbook log {box.last_log}"
    if budget == 0:
        assert rc != 0
        assert journal["status"] == "failed" and "draining x2 failed" in journal["failure"]["reason"]
        assert "re-run the playbook to resume" in journal["failure"]["reason"]
        assert journal["nodes"].get("x3") != "decommissioned" and _node_running(box, "x3")
    else:
        assert rc == 0, _failure(box)
        assert journal["nodes"].get("x3") == "decommissioned" and not _node_running(box, "x3")
        assert journal["status"] == "done"


def test_replace_two_at_a_time_keeps_a_node_that_failed_its_upgrade_out_of_rotation(sandbox, tmp_path):
    """The replace topology, two X nodes at a time (kong_drain_serial=2, one failure allowed): x2's upgrade
    fails once Kong X on it has quit (from then on its Python is a shim that fails every module run). x1
    returns to rotation with its own weight and state; x2, down, stays drained: x1's return must not put
    back the weights of the whole pool as they were before the batch (x2 in rotation among them)."""
    box = sandbox()
    fault, overlay = _x2_fails_once(tmp_path)
    done = threading.Event()
    seen_running = threading.Event()

    def arm():
        # once x2's Kong X has quit (it ran before), every later module run on x2 fails: Y never starts there
        while not done.is_set():
            try:
                box.load()
                if _node_running(box, "x2"):
                    seen_running.set()
                elif seen_running.is_set():
                    fault.touch()
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)

    watcher = threading.Thread(target=arm, daemon=True)
    watcher.start()
    try:
        rc = _upgrade(box, "-i", str(overlay), "-e", "kong_rolling_topology=replace", "-e", "kong_drain_serial=2", "-e", "kong_max_failed_nodes=1")
    finally:
        done.set()
        watcher.join()
    assert fault.exists(), "x2 never quit: the fault was not injected\n" + _failure(box)
    journal = _journal(box)
    assert journal["nodes"].get("x2") == "failed" and journal.get("failed_nodes") == ["x2"], (rc, journal.get("nodes"))
    assert {x: journal["nodes"].get(x) for x in ("x1", "x3")} == dict.fromkeys(("x1", "x3"), "in_rotation"), journal["nodes"]
    admin = haproxy_admin_view(box.state["haproxy"]["socket"])
    assert admin["x1"][1] == "READY" and admin["x3"][1] == "READY" and admin["x1"][0] > 0 and admin["x3"][0] > 0, admin
    assert admin["x2"][1] in ("DRAIN", "MAINT"), f"x2 failed its upgrade, is down, and is back in rotation: {admin}"
    box.load()
    assert not _node_running(box, "x2")
