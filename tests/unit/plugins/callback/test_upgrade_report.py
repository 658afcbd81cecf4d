"""The timeline of the upgrade_report callback: one entry per gate, however many tasks judge it.

The callback is loaded in a child interpreter: importing Ansible's controller-side callback base in the
test process changes how the module tests of this suite see warnings and deprecations."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ansible_collections.kongops.upgrade.tests.unit.conftest import collection_env

HARNESS = r"""
import json, sys
from types import SimpleNamespace
from ansible_collections.kongops.upgrade.plugins.callback.upgrade_report import CallbackModule

def result(host, action, name, res):
    task = SimpleNamespace(action=action, _uuid=name, get_name=lambda: name)
    return SimpleNamespace(_host=SimpleNamespace(get_name=lambda: host), _task=task, _result=res)

cb = CallbackModule()
for host, action, name, res in json.load(sys.stdin):
    cb._record(result(host, action, name, res), "ok")
json.dump(cb.timeline, sys.stdout)
"""


def _timeline(events: list) -> list:
    env = collection_env()
    proc = subprocess.run([sys.executable, "-c", HARNESS], input=json.dumps(events), capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _gate(label, requests, **extra):
    verdict = dict(label=label, requests=requests, errors=0, error_rate=0.0, failed=False, reasons=[], **extra)
    return {"changed": False, "verdict": verdict, "ansible_facts": {"kong_gate": verdict}}


GATE, INFO = "kongops.upgrade.kong_gate", "kongops.upgrade.kong_node_info"


def test_the_soak_and_the_judgment_of_one_gate_make_one_entry():
    timeline = _timeline(
        [
            ["localhost", GATE, "soak 10", _gate("step 10 %", 12, polls=[])],
            ["localhost", INFO, "ready 10", {"ready": True}],
            ["localhost", GATE, "judge 10", _gate("step 10 %", 12)],
            ["localhost", GATE, "soak 25", _gate("step 25 %", 30)],
            ["localhost", GATE, "judge 25", _gate("step 25 %", 31)],
        ]
    )
    gates = [e for e in timeline if "gate" in e]
    assert [(e["task"], e["gate"]["requests"]) for e in gates] == [("judge 10", 12), ("judge 25", 31)]
    assert [e["end"] for e in timeline] == sorted(e["end"] for e in timeline)
    assert all(e["start"] <= e["end"] for e in timeline)


def test_two_gates_with_equal_measurements_stay_two_entries():
    timeline = _timeline(
        [
            ["localhost", GATE, "retire x1", _gate("retire x1", 0)],
            ["localhost", INFO, "x1 gone", {}],
            ["localhost", GATE, "retire x2", _gate("retire x2", 0)],
        ]
    )
    assert [e["task"] for e in timeline if "gate" in e] == ["retire x1", "retire x2"]


PARTIAL = r"""
import json, os, sys
from types import SimpleNamespace
from ansible_collections.kongops.upgrade.plugins.callback.upgrade_report import CallbackModule

work, journal_path = sys.argv[1], sys.argv[2]
cb = CallbackModule()
cb.get_option = lambda name: None
cb._display = SimpleNamespace(warning=print, banner=print, display=print)
cb.v2_playbook_on_play_start(SimpleNamespace(get_name=lambda: "Shift the traffic"))
task = SimpleNamespace(action="kongops.upgrade.kong_upgrade_run", _uuid="j1", get_name=lambda: "Journal the step")
res = {"changed": True, "path": journal_path, "journal": {}}
cb.v2_runner_on_ok(SimpleNamespace(_host=SimpleNamespace(get_name=lambda: "localhost"), _task=task, _result=res))
# the run is killed here: no playbook_on_stats
"""


def test_a_run_killed_midway_leaves_a_report_of_its_steps(tmp_path):
    """Issue 22: the report is written at each phase and journal write, not only at the end."""
    journal = {
        "run_id": "r1",
        "strategy": "rolling",
        "status": "running",
        "from": "3.8.1",
        "to": "3.9.3",
        "steps": [
            {
                "share": 10,
                "started_at": "2026-12-03T10:00:00Z",
                "ended_at": "2026-12-03T10:00:12Z",
                "gate": {"requests": 120, "errors": 0, "failed": False, "response_ms": 4.0},
            }
        ],
    }
    cluster = tmp_path / "c1"
    cluster.mkdir()
    (cluster / "journal.json").write_text(json.dumps(journal))
    env = collection_env()
    proc = subprocess.run(
        [sys.executable, "-c", PARTIAL, str(tmp_path), str(cluster / "journal.json")], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    report_dir = cluster / "reports" / "r1"
    report = json.loads((report_dir / "report.json").read_text())
    assert report["complete"] is False and report["journal"]["steps"][0]["share"] == 10
    assert report["run"]["status"] == "running (in progress)"
    page = (report_dir / "report.html").read_text()
    assert "still going" in page and 'id="phase-chart"' in page and 'class="latency"' in page
    assert "12.0 s" in page, "the step's duration in human units"
    assert not [p for p in os.listdir(report_dir) if p.startswith(".")], "a temporary file was left behind"


REFUSED = r"""
import sys
from types import SimpleNamespace
from ansible_collections.kongops.upgrade.plugins.callback.upgrade_report import CallbackModule

journal_path = sys.argv[1]
cb = CallbackModule()
cb.get_option = lambda name: None
cb._display = SimpleNamespace(warning=print, banner=print, display=print)
run = {"run_id": "r2", "strategy": "rolling", "status": "refused", "journal": journal_path}
cb.v2_playbook_on_stats(SimpleNamespace(custom={"_run": {"kong_upgrade": run}}))
"""


def test_a_run_refused_before_its_journal_creates_the_cluster_directory_private(tmp_path):
    """The report of a run refused before it opened its journal is the first thing written under the
    cluster's directory, where the journal, the freeze lock and the backups go later: every directory it
    creates is 0700."""
    cluster = tmp_path / "work" / "c1"
    env = collection_env()
    proc = subprocess.run([sys.executable, "-c", REFUSED, str(cluster / "journal.json")], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (cluster / "reports" / "r2" / "report.json").exists(), proc.stdout
    for directory in (tmp_path / "work", cluster, cluster / "reports", cluster / "reports" / "r2"):
        assert oct(directory.stat().st_mode & 0o777) == "0o700", directory
