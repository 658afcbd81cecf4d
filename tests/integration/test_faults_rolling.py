"""Faults injected at a precise point of a rolling upgrade (tracker issue 25), on one DB-less sandbox of
two X and two Y nodes shared by the cases, in this order: a slow Y trips the latency gate (the run rolls
back); a Y node crashes while the 25, 50 and 100 % steps soak (each run resumes the one rolled back
before it and rolls back again); HAProxy's runtime socket goes away mid-shift (the run stops flagged);
HAProxy is reloaded mid-shift (the run resumes the same run to its end); then the secrets sweep of every
run above (all at -vvv with --diff). Each hook is a condition the
test watches for (HAProxy's weights, a step in the journal), never a sleep; each case asserts from the
outside: the requests a load sent through HAProxy, HAProxy's weights read back, the journal."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.integration.faults import CmdlineSampler, Hook, _epoch, _failure, _journal, _log, leaks, loose_files
from tests.loadgen import LoadGenerator
from tests.sandbox import procs
from tests.sandbox.core import ADMIN_TOKEN, Sandbox, haproxy_admin_view
from tests.sandbox.render import DEMO_KEY

RX, RY = "3.8.1", "3.9.3"
# the Admin API token every call of the collection sends, and the consumer key the smoke test sends
SECRETS = (ADMIN_TOKEN, DEMO_KEY)


@pytest.fixture(scope="module")
def rolling_box(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults-rolling")
    sandbox = Sandbox(state_dir=str(base / "sb"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
    sandbox.log_dir = str(base)
    try:
        # two X nodes and two Y: the reload meets Y servers in rotation and X servers going out, as with more
        sandbox.up(mode="dbless", kong_x=RX, nodes=2)
        sandbox.install(RY)
        sandbox.cmdlines = CmdlineSampler(sandbox.state_dir, SECRETS)
        sandbox.cmdlines.start()
        yield sandbox
    finally:
        if getattr(sandbox, "cmdlines", None):
            sandbox.cmdlines.stop.set()
        sandbox.down()


def _upgrade(box: Sandbox, *extra: str) -> int:
    """One run of playbooks/rolling_upgrade.yml at -vvv with --diff (the secrets sweep reads every log)."""
    return box.upgrade("rolling", RY, extra_args=["-vvv", "--diff", *extra], log_path=box.last_log, stream=lambda line: None)


def _y1_in_rotation(hp: dict) -> bool:
    """The first traffic step gave y1 a weight (the moment the rolling faults are injected at): ready with
    a weight above 0 (HAProxy's `show stat` keeps the last weight of a server in maintenance)."""
    weight, admin = haproxy_admin_view(hp["socket"]).get("y1", (0, ""))
    return weight > 0 and admin == "READY"


def test_a_slow_y_node_trips_the_latency_gate_and_every_request_goes_back_to_x(rolling_box):
    """y1 stalls (SIGSTOP, as a long pause of the process or a starved CPU does) for 1.5 s once the first
    step gave Y its weight: the requests HAProxy sent it are answered late, its average response time
    (HAProxy's rtime) crosses kong_gate_max_response_ms, the gate stops the run and every request goes
    back to X. The journal ends rolled_back naming y1's response time, writes are thawed, and no client
    request failed (the late ones were answered)."""
    box = rolling_box
    hp = box.state["haproxy"]

    def stall():
        master = box.node_master("y1")
        pids = [master, *procs.children(master)]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(1.5)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)

    hook = Hook(lambda: _y1_in_rotation(hp), stall)
    hook.start()
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=100, headers={"apikey": "demo-key"}, timeout=10).start()
    box.last_log = os.path.join(box.log_dir, "rolling-latency.log")
    try:
        rc = _upgrade(box, "-e", "kong_gate_max_response_ms=150", "-e", "kong_gate_soak_seconds=4")
    finally:
        summary = load.stop()
        hook.done()
    assert hook.fired, "Y never got a weight: y1 was not stalled\n" + _failure(box)
    assert rc != 0, _failure(box)
    journal = _journal(box)
    assert journal["status"] == "rolled_back", (journal.get("failure"), _failure(box))
    reason = journal["failure"]["reason"]
    assert "y1 average response time" in reason and "> 150 ms" in reason, reason
    assert journal.get("thawed") is True
    view = haproxy_admin_view(hp["socket"])
    assert all(view[y][0] == 0 or view[y][1] == "MAINT" for y in ("y1", "y2")), view
    assert all(view[x][0] > 0 and view[x][1] == "READY" for x in ("x1", "x2")), view
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    assert summary["failed"] == 0, f"{summary['failed']} of {summary['total']} requests failed"


def _y_share(hp: dict) -> float:
    """The share of the weights in rotation that HAProxy gives the Y servers, in percent."""
    view = haproxy_admin_view(hp["socket"])
    weight = {side: sum(w for name, (w, status) in view.items() if name.startswith(side) and status != "MAINT") for side in ("x", "y")}
    total = weight["x"] + weight["y"]
    return 100.0 * weight["y"] / total if total else 0.0


@pytest.mark.parametrize("step", [25, 50, 100])
def test_a_y_node_crashing_while_a_step_soaks_puts_every_request_back_on_x(rolling_box, step):
    """y1 is killed (SIGKILL) the moment HAProxy gives Y the step's share, while the step soaks. Its
    gate finds y1 gone and stops the run: every request back on X with the weights saved before the
    first step, Y out of rotation, the journal rolled_back naming y1 at this step, writes thawed. No
    request fails once the run has put the traffic back; the run after it resumes the same run (and
    deploys y1 again)."""
    box = rolling_box
    hp = box.state["haproxy"]
    crash = {}

    def kill_y1():
        crash["pid"] = box.node_master("y1")
        os.kill(crash["pid"], signal.SIGKILL)
        crash["at"] = time.time()

    hook = Hook(lambda: _y_share(hp) >= step - 1, kill_y1)
    hook.start()
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=100, headers={"apikey": "demo-key"}, timeout=10).start()
    box.last_log = os.path.join(box.log_dir, f"rolling-crash-{step}.log")
    try:
        # the steps before this one are the earlier cases' (and the 10 % step the latency case's): the run
        # goes to this step first
        steps = json.dumps({"kong_traffic_steps": sorted({step, 100})})
        rc = _upgrade(box, "-e", "kong_gate_soak_seconds=4", "-e", steps)
        # the load goes on for 3 s after the rollback, to show where the traffic goes then
        failure = (_journal(box).get("failure") or {}).get("at")
        while failure and time.time() < _epoch(failure) + 3.5:
            time.sleep(0.1)
    finally:
        summary = load.stop()
        hook.done()
    assert hook.fired, f"Y never had {step} % of the traffic: y1 was not killed\n" + _failure(box)
    assert rc != 0, _failure(box)
    journal = _journal(box)
    assert journal["status"] == "rolled_back" and journal.get("thawed") is True, (journal.get("failure"), _failure(box))
    assert journal["failure"]["phase"] == "shift" and "y1" in journal["failure"]["reason"], journal["failure"]
    last = journal["steps"][-1]
    assert last["share"] == step and last["gate"]["failed"] is True, last
    assert any("y1" in reason for reason in last["gate"]["reasons"]), last["gate"]
    view = haproxy_admin_view(hp["socket"])
    assert all(view[y][0] == 0 or view[y][1] == "MAINT" for y in ("y1", "y2")), view
    assert all(view[x][0] > 0 and view[x][1] == "READY" for x in ("x1", "x2")), view
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    detected = _epoch(journal["failure"]["at"])
    late = [(round(r.wall - crash["at"], 2), r.status, r.error) for r in load.records if not r.ok and (r.wall < crash["at"] or r.wall > detected + 1)]
    assert not late, f"requests failed before the crash or after the rollback: {late[:10]}"
    tail = [s for s in summary["per_second"] if s["wall"] and s["wall"] > detected + 2]
    assert tail and all(set(s["versions"]) <= {RX} for s in tail), "traffic still reaches Y after the rollback"


def test_haproxy_runtime_socket_gone_in_the_middle_of_the_shift_stops_loudly_and_resumes(rolling_box):
    """HAProxy's runtime socket disappears (its path renamed: HAProxy keeps serving, nothing can reach its
    runtime API) once the resumed run gave Y its first weight. The gate cannot read the load balancer and
    putting the traffic back on X cannot reach it either: the run stops in phase shift with the traffic
    as HAProxy has it (X and Y serving, no request fails), flags the fleet for a person with the socket
    named, keeps writes frozen with the lock named, and says how to resume; with the socket back, the next
    run (the reload case below) resumes the same run."""
    box = rolling_box
    hp = box.state["haproxy"]
    moved = hp["socket"] + ".gone"
    earlier = _journal(box)
    seen = {}

    def take_socket():
        seen["weights"] = haproxy_admin_view(hp["socket"])
        os.rename(hp["socket"], moved)

    hook = Hook(lambda: _y1_in_rotation(hp), take_socket)
    hook.start()
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=100, headers={"apikey": "demo-key"}, timeout=10).start()
    box.last_log = os.path.join(box.log_dir, "rolling-socket.log")
    try:
        rc = _upgrade(box)
        after = haproxy_admin_view(moved) if hook.fired else {}
    finally:
        summary = load.stop()
        hook.done()
        if os.path.exists(moved):
            os.rename(moved, hp["socket"])
    assert hook.fired, "Y never got a weight: the socket was not taken away\n" + _failure(box)
    assert rc != 0, _failure(box)
    journal = _journal(box)
    assert journal["run_id"] == earlier["run_id"], "the run after the latency gate's rollback did not resume it"
    failure = journal["failure"]
    assert failure["phase"] == "shift" and failure.get("needs_attention") is True, (failure, _failure(box))
    assert hp["socket"] in failure["reason"] and "lb_before" in failure["reason"], failure["reason"]
    # HAProxy kept the weights of the step it had: X and Y both in rotation, nothing failed
    assert after == seen["weights"], (seen["weights"], after)
    assert not journal.get("thawed"), "writes were thawed while the traffic is in an unknown state"
    log = _log(box)
    assert "Re-run the same playbook to resume" in log or "re-run" in log.lower(), log[-3000:]
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    assert summary["failed"] == 0, f"{summary['failed']} of {summary['total']} requests failed"


def test_haproxy_reloaded_in_the_middle_of_the_shift_keeps_the_weights(rolling_box):
    """HAProxy is reloaded (SIGUSR2 to its master: a new worker reads the configuration, where Y is
    `weight 0 disabled`) once the 10 % step is journaled. With kong_lb_persist=state_file every
    weight the run sets is in HAProxy's server-state file, so the new worker keeps Y in rotation:
    read back from HAProxy after the reload, no Y server is in maintenance or at weight 0 (without
    persistence the gate of the next step would soak a Y that takes no traffic). The run ends done,
    every X server out of rotation and every Y in, and no client request fails."""
    from tests.sandbox.core import haproxy_command

    box = rolling_box
    hp = box.state["haproxy"]
    seen = {}

    def worker_pid() -> str:
        info = haproxy_command(hp["socket"], "show info")
        return next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Pid:"))

    def reload():
        old = worker_pid()
        seen["before"] = haproxy_admin_view(hp["socket"])
        os.kill(hp["proc"]["pid"], signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while True:
            try:
                if worker_pid() != old:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "HAProxy did not reload"
            time.sleep(0.05)
        seen["after"] = haproxy_admin_view(hp["socket"])

    # the run resumes the one the latency gate rolled back: the hook waits for a step of this run
    try:
        steps_before = len(_journal(box).get("steps") or [])
    except OSError:  # run on its own: no earlier run
        steps_before = 0
    hook = Hook(lambda: len(_journal(box).get("steps", [])) > steps_before, reload)
    hook.start()
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=100, headers={"apikey": "demo-key"}).start()
    box.last_log = os.path.join(box.log_dir, "rolling-reload.log")
    try:
        rc = _upgrade(box, "-e", "kong_lb_persist=state_file", "-e", f"kong_lb_state_file={hp['state_file']}")
    finally:
        summary = load.stop()
        hook.done()
    assert hook.fired, "the 10 % step was never journaled: HAProxy was not reloaded\n" + _failure(box)
    ys = ("y1", "y2")
    assert set(seen["before"]) == {"x1", "x2", "y1", "y2"}, seen["before"]
    assert all(seen["before"][y][0] > 0 for y in ys), seen["before"]
    reverted = {y: seen["after"][y] for y in ys if seen["after"][y][0] == 0 or seen["after"][y][1] == "MAINT"}
    assert not reverted, f"the reload took Y out of rotation: {reverted} (before {seen['before']})"
    assert rc == 0, _failure(box)
    assert _journal(box)["status"] == "done"
    final = haproxy_admin_view(hp["socket"])
    assert all(final[y][0] > 0 and final[y][1] != "MAINT" for y in ys), final
    assert all(final[x][0] == 0 or final[x][1] == "MAINT" for x in ("x1", "x2")), final
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    assert summary["failed"] == 0, f"{summary['failed']} of {summary['total']} requests failed"


def test_no_secret_in_any_rolling_output_file_or_command_line_and_credentials_kept_0600(rolling_box):
    """Every run of this file ran at -vvv with --diff: the Admin API token (every Admin API call) and the
    consumer key the smoke test sends appear in no output of ansible-playbook, in no file under the work
    directory but the backups, which must keep the consumer's key and are 0600 (the token in none: journals,
    reports, freeze lock, the declarative backup and its controller copy, manifests), and on no command line
    sampled during the runs."""
    box = rolling_box
    box.cmdlines.stop.set()
    box.cmdlines.join(5)
    outputs = {}
    for name in sorted(os.listdir(box.log_dir)):
        if name.startswith("rolling-") and name.endswith(".log"):
            with open(os.path.join(box.log_dir, name), errors="replace") as fh:
                outputs[name] = fh.read()
    assert len(outputs) >= 6, sorted(outputs)
    leaked = {name: leaks(text, SECRETS) for name, text in outputs.items() if leaks(text, SECRETS)}
    assert not leaked, f"secrets in ansible-playbook's output: {leaked}"
    assert all("ESTABLISH LOCAL CONNECTION" in text for text in outputs.values()), "a run was not at -vvv: the sweep proves nothing"
    files, loose = loose_files(box.work_dir, (ADMIN_TOKEN,), credentials=(DEMO_KEY,))
    assert any(p.endswith("declarative.yml") for p in files) and any(p.endswith("report.json") for p in files), files
    assert not loose, "\n".join(loose)
    assert box.cmdlines.samples > 100, box.cmdlines.samples
    assert not box.cmdlines.found, f"secrets on a command line: {box.cmdlines.found[:3]}"
