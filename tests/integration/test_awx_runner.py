"""AWX/Tower readiness on the local sandbox (real HAProxy, simulated Kong nodes).

Jobs run through ansible-runner the way an AWX job does: a private data directory with the project
(tests/integration/awx/project), the inventory, extra vars from a survey and the job environment, and
nobody to answer a prompt. The rolling upgrade's ``set_stats`` artifact is read from the
``playbook_on_stats`` event AWX hands to the next workflow node, and the report of the
``kongops.upgrade.upgrade_report`` callback is opened in headless Chromium (Debian's ``chromium``).
"""

from __future__ import annotations

import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass

import ansible_runner
import pytest
import requests
import yaml

from tests.loadgen import LoadGenerator
from tests.sandbox.core import VENV_BIN, Sandbox, haproxy_servers
from tests.sandbox import procs
from tests.services._apt import ensure_binary

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "awx", "project")
PLAYBOOK = "rolling_upgrade.yml"
X, Y = "3.8.1", "3.9.3"
RATE = 40.0
# Bounds against a hung job, far above what the jobs take on a quiet 2-core machine.
UPGRADE_TIMEOUT = 1500
SHORT_TIMEOUT = 600
CHROMIUM = "/usr/bin/chromium"
# the plot's colours in upgrade_report.py: share of Y (#2a7) and of X (#27c)
Y_RGB, X_RGB = (0x22, 0xAA, 0x77), (0x22, 0x77, 0xCC)


class Fleet:
    """Sandboxes of this module: ``fresh()`` is one no upgrade has touched (a new one once it was)."""

    def __init__(self, root):
        self.root = root
        self.boxes: list[Sandbox] = []
        self.used: set[int] = set()

    def fresh(self) -> Sandbox:
        if self.boxes and id(self.boxes[-1]) not in self.used:
            return self.boxes[-1]
        box = Sandbox(state_dir=str(self.root / f"sb{len(self.boxes)}"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
        self.boxes.append(box)
        # two X nodes and two Y: every step, gate and drain of the job, as with more
        box.up(mode="dbless", kong_x=X, nodes=2)
        # every sandbox node shares one install root: install Y once, as `make upgrade-rolling` does
        box.install(Y)
        return box

    def take(self) -> Sandbox:
        box = self.fresh()
        self.used.add(id(box))
        return box

    def down(self) -> None:
        for box in self.boxes:
            box.down()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    fleet = Fleet(tmp_path_factory.mktemp("awx-sandboxes"))
    yield fleet
    fleet.down()


@dataclass
class Job:
    runner: ansible_runner.Runner
    private_data_dir: str
    ident: str

    @property
    def artifact_dir(self) -> str:
        return os.path.join(self.private_data_dir, "artifacts", self.ident)

    @property
    def stdout(self) -> str:
        with open(os.path.join(self.artifact_dir, "stdout")) as fh:
            return fh.read()

    def events(self) -> list[dict]:
        events_dir = os.path.join(self.artifact_dir, "job_events")
        found = []
        for name in os.listdir(events_dir):
            with open(os.path.join(events_dir, name)) as fh:
                found.append(json.load(fh))
        return sorted(found, key=lambda e: e["counter"])

    def task_events(self) -> list[dict]:
        """Per host, each task's outcome."""
        return [e for e in self.events() if e["event"] in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")]

    def plays(self) -> list[str]:
        return [e["event_data"]["play"] for e in self.events() if e["event"] == "playbook_on_play_start"]

    def artifact_data(self) -> dict:
        stats = [e for e in self.events() if e["event"] == "playbook_on_stats"]
        assert len(stats) == 1, f"{len(stats)} playbook_on_stats events in {self.artifact_dir}"
        return stats[0]["event_data"].get("artifact_data") or {}

    def log_tail(self, chars: int = 4000) -> str:
        return f"status {self.runner.status}, rc {self.runner.rc}; {self.artifact_dir}/stdout ends:\n{self.stdout[-chars:]}"


def run_job(box: Sandbox, root, ident: str, extravars: dict, tags: str | None = None, check: bool = False, timeout: int = SHORT_TIMEOUT) -> Job:
    """One AWX-style job: a private data dir of its own and ``ansible_runner.run``, which answers no
    prompt (no passwords given): a prompt would hang the job until ``timeout`` cancels it."""
    pdd = os.path.join(str(root), ident)
    shutil.copytree(PROJECT, os.path.join(pdd, "project"))
    os.makedirs(os.path.join(pdd, "inventory"))
    shutil.copy(box.inventory, os.path.join(pdd, "inventory", "hosts.yml"))
    os.makedirs(os.path.join(pdd, "env"))
    with open(os.path.join(pdd, "env", "extravars"), "w") as fh:
        yaml.safe_dump(extravars, fh)
    sandbox_env = box.ansible_env()
    envvars = {
        "ANSIBLE_COLLECTIONS_PATH": sandbox_env["ANSIBLE_COLLECTIONS_PATH"],
        "ANSIBLE_CALLBACKS_ENABLED": "kongops.upgrade.upgrade_report",
        "ANSIBLE_PIPELINING": sandbox_env["ANSIBLE_PIPELINING"],
        # the execution environment's PATH: ansible-playbook and Python of the project's venv
        "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
    }
    with open(os.path.join(pdd, "env", "envvars"), "w") as fh:
        yaml.safe_dump(envvars, fh)
    runner = ansible_runner.run(
        private_data_dir=pdd, playbook=PLAYBOOK, ident=ident, tags=tags, cmdline="--check" if check else None, quiet=True, timeout=timeout
    )
    return Job(runner, pdd, ident)


def _running_nodes(box: Sandbox) -> list[str]:
    running = []
    for name, node in box.load()["nodes"].items():
        try:
            with open(os.path.join(node["prefix"], "pids", "nginx.pid")) as fh:
                pid = int(fh.read().strip() or 0)
        except (OSError, ValueError):
            continue
        if pid > 0 and os.path.exists(f"/proc/{pid}"):
            running.append(name)
    return sorted(running)


def _files(top: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), top) for d, _dirs, files in os.walk(top) for f in files)


def snapshot(box: Sandbox) -> dict:
    """What an upgrade would change: LB weights and maintenance, running nodes, each X node's
    configuration, and the work dir (journal, freeze lock, backups)."""
    state = box.load()
    servers = haproxy_servers(state["haproxy"]["socket"])
    hashes = {}
    for name, node in state["nodes"].items():
        if node["group"] == "kong_x":
            resp = requests.get(f"http://127.0.0.1:{node['admin_port']}/status", timeout=10)
            hashes[name] = resp.json().get("configuration_hash")
    return {
        "lb": {name: (s["weight"], "MAINT" in s["status"]) for name, s in servers.items()},
        "running": _running_nodes(box),
        "configuration_hash": hashes,
        "work_dir": _files(box.work_dir),
    }


# --------------------------------------------------------------------------- jobs on the sandbox


@pytest.mark.parametrize(
    "bad, variable",
    [
        ({"kong_traffic_steps": [10, "x"]}, "kong_traffic_steps"),
        ({"kong_rolling_topology": "sideways"}, "kong_rolling_topology"),
    ],
)
def test_invalid_survey_answer_fails_first_naming_the_variable(fleet, tmp_path, bad, variable):
    box = fleet.fresh()
    before = snapshot(box)
    job = run_job(box, tmp_path, f"invalid-{variable}", dict({"kong_version_target": Y, "kong_upgrade_confirm": True}, **bad))

    assert job.runner.status == "failed" and job.runner.rc != 0, job.log_tail()
    tasks = job.task_events()
    failed = [e for e in tasks if e["event"] == "runner_on_failed"]
    assert len(failed) == 1, job.log_tail()
    data = failed[0]["event_data"]
    assert data["play"] == "Validate the settings before anything is contacted"
    assert data["task_action"] in ("ansible.builtin.validate_argument_spec", "validate_argument_spec")
    assert tasks.index(failed[0]) == 0, "tasks ran before the validation: " + ", ".join(e["event_data"]["task"] for e in tasks)
    message = json.dumps(data["res"].get("msg")) + json.dumps(data["res"].get("argument_errors", []))
    assert variable in message, message
    assert "Traceback" not in job.stdout
    assert job.plays() == ["Validate the settings before anything is contacted"]
    assert {e["event_data"].get("host") for e in tasks} == {"localhost"}, "a node was contacted"
    assert not any(e["event_data"].get("res", {}).get("changed") for e in tasks)
    assert snapshot(box) == before


def test_preflight_phase_in_check_mode_shows_the_plan_and_changes_nothing(fleet, tmp_path):
    box = fleet.fresh()
    before = snapshot(box)
    job = run_job(box, tmp_path, "preflight-check", {"kong_version_target": Y, "kong_upgrade_confirm": True}, tags="preflight", check=True)

    assert job.runner.status == "successful" and job.runner.rc == 0, job.log_tail()
    assert {e["event_data"]["play"] for e in job.task_events()} == {
        "Validate the settings before anything is contacted",
        "Preflight - observe every node and plan the upgrade",
        "Check the load balancers know the pool and every server, before Y exists",
        "Open or resume the run journal",
    }, "a phase other than the preflight ran"
    plan = [e for e in job.task_events() if e["event_data"]["task"] == "Plan the upgrade path and scan for breaking changes"]
    assert len(plan) == 1 and plan[0]["event"] == "runner_on_ok", job.log_tail()
    assert plan[0]["event_data"]["res"]["supported"] is True
    assert plan[0]["event_data"]["res"]["path"] == [X, Y]
    observed = {e["event_data"]["host"]: e["event_data"]["res"].get("version") for e in job.task_events() if e["event_data"]["task"] == "Observe the node"}
    assert observed == {"x1": X, "x2": X}
    assert f"rolling upgrade {X} -> {Y}" in job.stdout
    assert "steps 10 -> 25 -> 50 -> 100 %" in job.stdout
    assert snapshot(box) == before
    assert job.artifact_data() == {}, "a preflight run published an upgrade's artifacts"


@pytest.fixture(scope="module")
def awx_job(fleet, tmp_path_factory):
    box = fleet.take()
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=RATE, headers={"apikey": "demo-key"}).start()
    try:
        job = run_job(
            box, tmp_path_factory.mktemp("awx-jobs"), "rolling-upgrade", {"kong_version_target": Y, "kong_upgrade_confirm": True}, timeout=UPGRADE_TIMEOUT
        )
    finally:
        summary = load.stop()
    return box, job, summary


def test_awx_job_upgrades_and_publishes_the_artifacts(awx_job):
    box, job, load = awx_job
    assert job.runner.status == "successful" and job.runner.rc == 0, job.log_tail()
    assert job.runner.stats["failures"] == {} and job.runner.stats["dark"] == {}

    run = job.artifact_data().get("kong_upgrade")
    assert run, f"no kong_upgrade artifact in the playbook_on_stats event of {job.artifact_dir}"
    assert re.fullmatch(r"\d{8}T\d{6}Z", run["run_id"])
    assert run["strategy"] == "rolling" and run["status"] == "done"
    assert run["versions"] == {"before": X, "after": Y}
    assert run["path"] == [X, Y]
    assert [s["share"] for s in run["steps"]] == [10, 25, 50, 100]
    for step in run["steps"]:
        gate = step["gate"]
        assert gate["failed"] is False and gate["reasons"] == []
        assert gate["requests"] > 0, f"the {step['share']} % step measured no request on Y"
        assert set(gate["servers"]) == {"y1", "y2"}
        assert step["started_at"] < step["ended_at"]
    assert run["nodes"] == {"x1": "decommissioned", "x2": "decommissioned", "y1": "verified", "y2": "verified"}

    assert run["journal"] == os.path.join(box.work_dir, "sandbox", "journal.json")
    with open(run["journal"]) as fh:
        journal = json.load(fh)
    assert (journal["run_id"], journal["status"], journal["thawed"]) == (run["run_id"], "done", True)
    with open(run["backup"]["manifest"]) as fh:
        manifest = json.load(fh)
    assert run["run_id"] in run["backup"]["manifest"] and manifest
    assert run["backup"]["counts"] == {"consumers": 1, "keyauth_credentials": 1, "plugins": 2, "routes": 1, "services": 1}
    assert os.path.exists(run["backup"]["declarative"])

    assert _running_nodes(box) == ["y1", "y2"]
    servers = haproxy_servers(box.state["haproxy"]["socket"])
    assert {name: s["weight"] > 0 for name, s in servers.items()} == {"x1": False, "x2": False, "y1": True, "y2": True}
    assert load["failed"] == 0, f"{load['failed']} of {load['total']} requests failed: {load.get('errors')}"


def _report_path(job: Job) -> str:
    found = re.findall(r"^\s*report: (\S+report\.html)\s*$", job.stdout, re.M)
    assert len(found) == 1, "the job output does not name the report once:\n" + job.stdout[-3000:]
    return found[0]


def test_report_is_written_where_the_callback_says(awx_job):
    _box, job, _load = awx_job
    assert job.runner.rc == 0, job.log_tail()
    run = job.artifact_data()["kong_upgrade"]
    html_path = _report_path(job)
    assert html_path == os.path.join(os.path.dirname(run["journal"]), "reports", run["run_id"], "report.html")
    summary = job.stdout.split("KONG UPGRADE REPORT", 1)
    assert len(summary) == 2, "no summary at the end of the job output"
    assert f"rolling {X} -> {Y}: done" in summary[1]
    for share in (10, 25, 50, 100):
        assert re.search(rf"step {share} %: [1-9]\d* requests, 0 errors, gate passed", summary[1]), summary[1]

    with open(os.path.join(os.path.dirname(html_path), "report.json")) as fh:
        report = json.load(fh)
    assert report["run"]["run_id"] == run["run_id"] and report["journal"]["status"] == "done"
    assert [s["gate"]["requests"] for s in report["journal"]["steps"]] == [s["gate"]["requests"] for s in run["steps"]]
    timeline = report["timeline"]
    assert {e["node"] for e in timeline} >= {"localhost", "x1", "x2", "y1", "y2"}
    assert all(e["start"] <= e["end"] and e["result"] in ("ok", "changed") for e in timeline)
    assert [e["end"] for e in timeline] == sorted(e["end"] for e in timeline)
    assert {e["phase"] for e in timeline} <= set(job.plays())
    assert "Shift traffic X -> Y in steps with health gates" in {e["phase"] for e in timeline}
    weights = [e["weights"] for e in timeline if "weights" in e]
    assert len(weights) == 4, f"the timeline records the weights of {len(weights)} traffic steps, not 4"
    assert [w for n, w in sorted(weights[-1].items()) if n.startswith("x")] == [0, 0]
    assert all(w > 0 for n, w in weights[-1].items() if n.startswith("y"))
    # one verdict per step, one before retiring each of the 2 X nodes and one for the watch after the drain,
    # with the measurements of the journal
    gates = [e["gate"] for e in timeline if "gate" in e]
    assert len(gates) == 4 + 2 + 1 and not any(g["failed"] for g in gates), gates
    assert [g["requests"] for g in gates[:4]] == [s["gate"]["requests"] for s in run["steps"]]


# --------------------------------------------------------------------------- the report in Chromium


@pytest.fixture(scope="module")
def chromium():
    return ensure_binary(CHROMIUM, "chromium")


def _chromium(binary: str, profile: str, *args: str) -> subprocess.CompletedProcess:
    # root needs --no-sandbox; the host resolver maps every name to nothing: the report needs no network
    argv = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        *args,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)


class _Dom(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict, list[str]]] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs), list(self._stack)))
        if tag not in ("br", "meta", "img", "input", "link"):
            self._stack.append(dict(attrs).get("id") or tag)

    def handle_endtag(self, tag):
        if self._stack:
            self._stack.pop()

    def inside(self, element_id: str, tag: str) -> list[dict]:
        return [attrs for t, attrs, stack in self.elements if t == tag and element_id in stack]


def _points(attrs: dict) -> list[tuple[float, float]]:
    return [tuple(float(v) for v in p.split(",")) for p in attrs["points"].split()]


def read_png(path: str) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes)."""
    with open(path, "rb") as fh:
        data = fh.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
    width, height, depth, ctype, _comp, _filt, interlace = header
    assert depth == 8 and ctype in (2, 6) and not interlace, f"unexpected PNG format {header}"
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(b"".join(bytes(line[x : x + 3]) for x in range(0, stride, bpp)) if bpp == 4 else bytes(line))
        prev = line
    return width, height, rows


def _close(row: bytes, x: int, rgb: tuple[int, int, int], tolerance: int = 10) -> bool:
    return all(abs(row[x + i] - rgb[i]) <= tolerance for i in range(3))


def _count(rows: list[bytes], rgb: tuple[int, int, int]) -> list[int]:
    """Pixels of the colour in each row."""
    return [sum(1 for x in range(0, len(row), 3) if _close(row, x, rgb)) for row in rows]


def _levels(per_row: list[int], min_pixels: int = 20) -> list[float]:
    """Centres of the bands of consecutive rows that hold a horizontal stretch of the colour."""
    levels, band = [], []
    for y, n in enumerate(per_row + [0]):
        if n >= min_pixels:
            band.append(y)
        elif band:
            levels.append(sum(band) / len(band))
            band = []
    return levels


def test_report_renders_in_headless_chromium_with_the_plot(awx_job, chromium, tmp_path):
    _box, job, _load = awx_job
    assert job.runner.rc == 0, job.log_tail()
    html_path = _report_path(job)
    with open(html_path) as fh:
        source = fh.read()
    fetched = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?https?:|@import""", source, re.I)
    assert not fetched, f"the report loads something from outside: {fetched}"

    dom_run = _chromium(chromium, str(tmp_path / "profile-dom"), "--dump-dom", f"file://{html_path}")
    assert dom_run.returncode == 0 and "share-plot" in dom_run.stdout, dom_run.stderr[-2000:]
    dom = _Dom()
    dom.feed(dom_run.stdout)
    svgs = [attrs for tag, attrs, _stack in dom.elements if tag == "svg" and attrs.get("id") == "share-plot"]
    assert len(svgs) == 1
    axis_x, axis_y = dom.inside("share-plot", "line")[:2]
    zero, top = float(axis_x["y1"]), float(axis_y["y1"])
    scale = (zero - top) / 100.0
    lines = {attrs.get("class"): attrs for attrs in dom.inside("share-plot", "polyline")}
    assert set(lines) == {"share-y", "share-x", "latency"}
    # the slowest average response per step, a segment per step, the slowest step at the top
    latency = _points(lines["latency"])
    assert len(latency) == 2 * 4 and min(round((zero - y) / scale) for _x, y in latency) >= 0
    assert max(round((zero - y) / scale) for _x, y in latency) == 100
    # the errors per step: one bar each (zero height in a clean run)
    assert len(dom.inside("share-plot", "rect")) == 4
    # the phases as a chart: one bar per phase of the timeline, in the order they began
    with open(os.path.join(os.path.dirname(html_path), "report.json")) as fh:
        phases = list(dict.fromkeys(entry["phase"] for entry in json.load(fh)["timeline"]))
    bars = [attrs for attrs in dom.inside("phase-chart", "rect") if attrs.get("class") == "phase"]
    assert len(bars) == len(phases) >= 5, (len(bars), phases)
    assert [float(b["x"]) for b in bars] == sorted(float(b["x"]) for b in bars)
    y_points, x_points = _points(lines["share-y"]), _points(lines["share-x"])
    assert len(y_points) == len(x_points) == 2 * 4, "one segment per traffic step"
    assert [p[0] for p in y_points] == sorted(p[0] for p in y_points), "time does not run left to right"
    assert [round((zero - y) / scale) for _x, y in y_points[::2]] == [10, 25, 50, 100]
    assert [round((zero - y) / scale) for _x, y in x_points[::2]] == [90, 75, 50, 0]
    timeline_rows = dom.inside("timeline", "tr")
    assert len(timeline_rows) > 20, "the timeline table is (almost) empty"
    # 4 steps, 2 X nodes retired after a gate each, the watch
    assert len(re.findall(r"gate passed \(\d+ requests, 0 errors\)", dom_run.stdout)) == 4 + 2 + 1

    shot = tmp_path / "report.png"
    shot_run = _chromium(chromium, str(tmp_path / "profile-shot"), "--window-size=900,700", f"--screenshot={shot}", f"file://{html_path}")
    assert shot_run.returncode == 0 and shot.exists(), shot_run.stderr[-2000:]
    width, img_height, rows = read_png(str(shot))
    assert (width, img_height) == (900, 700)
    assert sum(_count(rows, (255, 255, 255))) < 0.99 * width * img_height, "the screenshot is (almost) blank"
    green, blue = _count(rows, Y_RGB), _count(rows, X_RGB)
    assert sum(green) > 500 and sum(blue) > 300, f"plot lines: {sum(green)} green, {sum(blue)} blue pixels"
    # horizontal stretches of each line, read back as shares against the X line's 0 % level
    green_levels, blue_levels = _levels(green), _levels(blue)
    zero_px = max(blue_levels)
    assert sorted(round((zero_px - c) / scale) for c in green_levels) == [10, 25, 50, 100], green_levels
    assert sorted(round((zero_px - c) / scale) for c in blue_levels) == [0, 50, 75, 90], blue_levels
    shutil.copy(shot, os.path.join(os.path.dirname(html_path), "report.png"))
