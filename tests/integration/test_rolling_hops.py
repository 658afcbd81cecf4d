"""kong_upgrade_hops=auto in the rolling flow, end to end on the smallest DB-less fleet (real HAProxy,
simulated Kong nodes, one X and one Y): 3.6.1 -> 3.8.1 is two hops for a database (3.7.x between);
DB-less nodes run no migrations, so one rolling upgrade covers both hops, under load."""

from __future__ import annotations

import json
import os

import pytest
import requests

from tests.loadgen import LoadGenerator
from tests.sandbox import procs
from tests.sandbox.core import Sandbox

X, Y = "3.6.1", "3.8.1"
RATE = 100.0
FAST = ["-e", json.dumps({"kong_traffic_steps": [50, 100], "kong_gate_soak_seconds": 1, "kong_drain_gate_soak_seconds": 1})]


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rolling_hops")
    sandbox = Sandbox(state_dir=str(tmp / "sb"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
    sandbox.log_dir = str(tmp)
    try:
        sandbox.up(mode="dbless", kong_x=X, nodes=1)
        yield sandbox
    finally:
        sandbox.down()


def _upgrade(box: Sandbox, *extra: str) -> tuple[int, str]:
    log = os.path.join(box.log_dir, f"hops-{len(os.listdir(box.log_dir))}.log")
    rc = box.upgrade("rolling", Y, extra_args=FAST + list(extra), log_path=log, stream=lambda line: None)
    with open(log) as fh:
        return rc, fh.read()


def _tail(text: str) -> str:
    lines = text.splitlines()
    return "\n".join([ln for ln in lines if "fatal:" in ln][-5:] + lines[-40:])


def _version(box: Sandbox, name: str) -> str:
    return requests.get(f"http://127.0.0.1:{box.state['nodes'][name]['admin_port']}/", timeout=5).json()["version"]


def test_without_auto_the_two_hops_are_refused_naming_the_variable(box):
    rc, log = _upgrade(box)
    assert rc != 0
    fatal = "\n".join(ln for ln in log.splitlines() if "fatal:" in ln or "msg" in ln)
    assert "3.6.1 -> 3.8.1 is not a supported upgrade" in fatal, _tail(log)
    assert "Path to take instead: 3.6.1 -> 3.7.x -> 3.8.1" in fatal
    assert "Set kong_upgrade_hops=auto to go 3.6.1 -> 3.8.1 in one rolling upgrade" in fatal
    assert _version(box, "x1") == X


def test_check_mode_plans_the_jump_and_changes_nothing(box):
    journal = os.path.join(box.work_dir, "sandbox", "journal.json")
    before = os.path.exists(journal) and os.stat(journal).st_mtime_ns
    rc, log = _upgrade(box, "-e", "kong_upgrade_hops=auto", "--check")
    assert rc == 0, _tail(log)
    assert "in one rolling upgrade 3.6.1 -> 3.8.1, covering 3.6.1 -> 3.7.x, 3.7.x -> 3.8.1" in log
    assert (os.path.exists(journal) and os.stat(journal).st_mtime_ns) == before
    assert _version(box, "x1") == X
    with pytest.raises(requests.ConnectionError):
        _version(box, "y1")


def test_two_hops_in_one_rolling_upgrade_under_load(box):
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=RATE, headers={"apikey": "demo-key"}).start()
    rc, log = _upgrade(box, "-e", "kong_upgrade_hops=auto")
    summary = load.stop()
    assert rc == 0, _tail(log)
    assert summary["failed"] == 0, f"{summary['failed']} of {summary['total']} requests failed: {summary.get('errors')}"
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    assert "covering 3.6.1 -> 3.7.x, 3.7.x -> 3.8.1; breaking changes checked on every hop" in log
    # the cluster's declarative configuration was scanned against the rules of both hops
    assert "key-auth-www-authenticate on 3.6.1 -> 3.7.x" in log and "via-header-format on 3.7.x -> 3.8.1" in log

    with open(os.path.join(box.work_dir, "sandbox", "journal.json")) as fh:
        journal = json.load(fh)
    assert journal["status"] == "done", journal.get("failure")
    assert journal["hops"]["rolling"] == "3.6.1 -> 3.8.1"
    assert journal["hops"]["covered"] == ["3.6.1 -> 3.7.x", "3.7.x -> 3.8.1"]
    assert journal["hops"]["chain"] == ["3.7.x", "3.8.1"]
    assert _version(box, "y1") == Y
    resp = requests.get(f"http://127.0.0.1:{box.lb_port}/echo", headers={"apikey": "demo-key"}, timeout=5)
    assert resp.status_code == 200 and f"kong/{Y}" in resp.headers.get("Via", "")
