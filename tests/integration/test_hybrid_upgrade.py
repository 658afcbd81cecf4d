"""Hybrid-mode upgrades end to end on the local sandbox: a control plane on real PostgreSQL, data
planes behind a real HAProxy, the collection's playbooks, a steady load whose every response is
checked, and a watcher that samples the control plane's view of its data planes all along.

FACTS 5.2: a control plane accepts data planes of its major and an older-or-equal minor, so the
control plane goes first (in place, with migrations) and the data planes follow (rolling)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import pytest
import requests

from tests.integration.lb_share import PeriodicSampler, assert_step_shares
from tests.loadgen import LoadGenerator
from tests.sandbox.core import Sandbox, haproxy_admin_view, haproxy_servers
from tests.sandbox import procs
from tests.sandbox.seed import seed_services

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Kong's migrations per version, as the simulator carries them (from Kong's source at each tag)
MIGRATIONS = json.load(open(os.path.join(REPO, "tests", "kongsim", "kongsim", "data", "migrations-by-version.json")))
X, Y = "3.6.1", "3.7.1"
RATE = 150.0  # requests per second through HAProxy: modest on two shared cores
SEEDED = 100  # services, each with a route, written on the control plane before the upgrade
EMPTY_HASH = "0" * 32


def _admin(box: Sandbox, name: str) -> str:
    return f"http://127.0.0.1:{box.state['nodes'][name]['admin_port']}"


def _get(url: str, timeout: float = 3.0) -> dict | None:
    try:
        resp = requests.get(url, timeout=timeout)
    except requests.RequestException:
        return None
    return resp.json() if resp.status_code == 200 else None


def _wait(what: str, check, timeout: float = 60.0):
    deadline = time.time() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.time() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout:.0f} s")
        time.sleep(0.3)


def _data_planes(box: Sandbox) -> dict | None:
    """The control plane's `GET /clustering/data-planes`, by data plane id (None when it does not answer)."""
    body = _get(_admin(box, "cp") + "/clustering/data-planes?size=1000")
    return None if body is None else {row["id"]: row for row in body["data"]}


def _config_hash(box: Sandbox, name: str) -> str | None:
    return (_get(_admin(box, name) + "/status") or {}).get("configuration_hash")


def _node_id(box: Sandbox, name: str) -> str | None:
    return (_get(_admin(box, name) + "/") or {}).get("node_id")


@pytest.fixture
def hybrid(tmp_path):
    """make(kong_cp, nodes): a hybrid sandbox, control plane on `kong_cp` and `nodes` data planes on X
    (``box.names("kong_x")``) and as many Y, with SEEDED services and routes written on the control plane
    and pushed to every data plane. Two data planes of each show every step, gate and drain; three where a
    third proves more (nodes left on X beside one on Y)."""
    boxes = []

    def make(kong_cp: str, nodes: int = 2) -> Sandbox:
        box = Sandbox(state_dir=str(tmp_path / f"sb{len(boxes)}"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
        box.log_dir = str(tmp_path)
        boxes.append(box)
        box.up(mode="hybrid", kong_x=X, kong_cp=kong_cp, nodes=nodes)
        seed_services(_admin(box, "cp"), SEEDED)
        # every X data plane holds the seeded configuration and told the control plane so
        box.x_ids = {x: _node_id(box, x) for x in box.names("kong_x")}

        def synced():
            rows = _data_planes(box) or {}
            hashes = {x: _config_hash(box, x) for x in box.names("kong_x")}
            listed = {x: (rows.get(box.x_ids[x]) or {}).get("config_hash") for x in box.names("kong_x")}
            return (
                len(set(hashes.values())) == 1
                and EMPTY_HASH not in hashes.values()
                and listed == hashes
                and all(len(_paged(_admin(box, x) + "/services")) >= SEEDED for x in box.names("kong_x"))
            )

        _wait("the X data planes in sync with the seeded configuration", synced)
        return box

    yield make
    for box in boxes:
        box.down()


def _paged(url: str) -> list:
    """Every entity of an Admin API collection (`url` without a query), page by page."""
    base = url.split("/", 3)
    base = f"{base[0]}//{base[2]}"
    rows, nxt = [], url + "?size=1000"
    while nxt:
        body = _get(nxt if nxt.startswith("http") else base + nxt)
        assert body is not None, f"GET {nxt} failed"
        rows += body["data"]
        nxt = body.get("next")
    return rows


def _schema_meta(box: Sandbox) -> dict:
    return box.schema_meta()


def _counts(box: Sandbox) -> dict:
    return box.row_counts()


def _journals(box: Sandbox) -> dict:
    """Every run journal of the sandbox cluster (the current one and the archived ones), by strategy."""
    folder = os.path.join(box.work_dir, "sandbox")
    found = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith("journal") and name.endswith(".json"):
            with open(os.path.join(folder, name)) as fh:
                journal = json.load(fh)
            found.setdefault(journal.get("strategy"), []).append(journal)
    return found


def _epoch(text: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=datetime.UTC).timestamp()


def _upgrade(box: Sandbox, strategy: str, *extra: str) -> int:
    box.last_log = os.path.join(box.log_dir, f"upgrade-{strategy}-{time.time():.0f}.log")
    return box.upgrade(strategy, Y, extra_args=list(extra), log_path=box.last_log, stream=lambda line: None)


def _failure(box: Sandbox) -> str:
    """What the playbook said when it failed (the sandbox's own directory is gone after down)."""
    with open(box.last_log) as fh:
        lines = fh.read().splitlines()
    return "\n".join([ln for ln in lines if "fatal:" in ln or "FAILED" in ln][-5:] + lines[-30:])


def _pid(box: Sandbox, name: str) -> int | None:
    """The running master of a node (Kong's `<prefix>/pids/nginx.pid`), None when it does not run."""
    try:
        with open(os.path.join(box.state["nodes"][name]["prefix"], "pids", "nginx.pid")) as fh:
            pid = int(fh.read().strip() or 0)
        with open(f"/proc/{pid}/stat") as fh:
            return pid if fh.read().rsplit(")", 1)[1].split()[0] != "Z" else None
    except (OSError, ValueError):
        return None


def _node_running(box: Sandbox, name: str) -> bool:
    return _pid(box, name) is not None


@dataclass
class Sample:
    wall: float
    cp_version: str | None  # GET / on the control plane; None while it does not answer
    rows: dict | None  # its /clustering/data-planes by id; None while it does not answer
    servers: dict  # HAProxy's per-server counters
    y_ids: dict = field(default_factory=dict)  # Y server name -> data plane id, once the node answers


class ClusterWatch(PeriodicSampler):
    """Samples, until stopped, the control plane's version and data-plane list, HAProxy's counters
    per server and the id of every Y data plane once it answers."""

    def __init__(self, box: Sandbox, interval: float = 0.3):
        super().__init__(interval, "cluster-watch")
        self.box = box
        self.y_ids: dict[str, str] = {}

    def sample(self) -> Sample:
        wall = time.time()
        cp_version = (_get(_admin(self.box, "cp") + "/", timeout=2) or {}).get("version")
        rows = _data_planes(self.box) if cp_version else None
        try:
            servers = haproxy_servers(self.box.state["haproxy"]["socket"])
        except OSError:
            servers = {}
        for name in self.box.names("kong_y"):
            if name not in self.y_ids:
                node_id = _node_id(self.box, name)
                if node_id:
                    self.y_ids[name] = node_id
        return Sample(wall, cp_version, rows, servers, dict(self.y_ids))


def _synced_before_traffic(box: Sandbox, samples: list[Sample], cp_hash: str) -> dict:
    """Per Y server: was there a moment when the control plane listed it on Y, in sync, with `cp_hash`,
    while HAProxy had not yet sent it a single request? And did the control plane's last answer before
    that first request still list it so?"""
    verdict = {}
    for name in box.names("kong_y"):
        first_traffic = next((i for i, s in enumerate(samples) if s.servers.get(name, {}).get("stot", 0) > 0), None)
        assert first_traffic is not None, f"{name} never received traffic"

        def listed(s: Sample, name=name) -> bool:
            row = (s.rows or {}).get(s.y_ids.get(name, "?")) or {}
            return row.get("version") == Y and row.get("sync_status") == "normal" and row.get("config_hash") == cp_hash

        answered = [s for s in samples[: first_traffic + 1] if s.rows is not None]
        verdict[name] = {"in_sync_before": any(listed(s) for s in samples[:first_traffic]), "in_sync_at_first_request": bool(answered) and listed(answered[-1])}
    return verdict


def _load(box: Sandbox) -> LoadGenerator:
    return LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=RATE, headers={"apikey": "demo-key"}, timeout=5).start()


def _assert_clean_load(summary: dict) -> None:
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    assert summary["failed"] == 0, f"{summary['failed']} of {summary['total']} requests failed: {summary['failures_by_reason']}"
    assert summary["total"] >= RATE * 10


def _assert_ends_on_y(box: Sandbox, summary: dict) -> None:
    last = [s for s in summary["per_second"] if s["versions"]][-2:]
    assert last and all(set(s["versions"]) == {Y} for s in last), f"traffic at the end: {last}"
    box.load()
    running = [x for x in box.names("kong_x") if _node_running(box, x)]
    assert not running, f"X data planes still running: {running}"
    assert all(_node_running(box, y) for y in box.names("kong_y"))
    servers = haproxy_servers(box.state["haproxy"]["socket"])
    assert {name: s["weight"] > 0 for name, s in servers.items()} == {**dict.fromkeys(box.names("kong_x"), False), **dict.fromkeys(box.names("kong_y"), True)}


def _assert_y_listed_in_sync(box: Sandbox, cp_hash: str) -> None:
    rows = _data_planes(box)
    assert rows is not None, "the control plane does not answer"
    for name in box.names("kong_y"):
        node_id = _node_id(box, name)
        row = rows.get(node_id)
        assert row, f"{name} ({node_id}) is not in the control plane's /clustering/data-planes"
        assert row["version"] == Y and row["sync_status"] == "normal", row
        assert row["config_hash"] == cp_hash == _config_hash(box, name), (name, row["config_hash"], cp_hash)


def _outside(box: Sandbox) -> dict:
    """What an upgrade could change, read from the outside: the database, the load balancer, the nodes'
    processes and versions, the files of the work directory."""
    nodes = {}
    for name in box.state["nodes"]:
        pid = _pid(box, name)
        nodes[name] = (pid, (_get(_admin(box, name) + "/") or {}).get("version") if pid else None)
    files = {}
    for d, _dirs, names in os.walk(box.work_dir):
        for f in names:
            if "/reports/" not in d:
                st = os.stat(os.path.join(d, f))
                files[os.path.join(d, f)] = (st.st_size, st.st_mtime_ns, st.st_mode)
    lb = haproxy_admin_view(box.state["haproxy"]["socket"])
    return {"schema_meta": box.schema_meta(), "counts": _counts(box), "nodes": nodes, "lb": lb, "files": files}


def test_hybrid_upgrade_control_plane_in_place_then_data_planes_rolling(hybrid):
    box = hybrid(X)
    before_counts = _counts(box)
    assert before_counts["services"] >= SEEDED and before_counts["routes"] >= SEEDED
    assert (_get(_admin(box, "cp") + "/") or {}).get("version") == X

    # --check first: both phases planned to the end (the data planes against the version the control
    # plane's plan reaches), nothing changed
    before = _outside(box)
    assert _upgrade(box, "hybrid", "--check") == 0, _failure(box)
    assert _outside(box) == before
    with open(box.last_log) as fh:
        plan = fh.read()
    for strategy in ("in_place", "rolling"):
        assert f"Kong {strategy} upgrade {X} -> {Y}: planned (check mode)" in plan, f"no {strategy} plan"
    assert not [ln for ln in plan.splitlines() if "fatal:" in ln or "FAILED" in ln]

    watch = ClusterWatch(box).start()
    load = _load(box)
    rc = _upgrade(box, "hybrid")
    time.sleep(2)
    summary = load.stop()
    samples = watch.stop()
    assert rc == 0, _failure(box)
    # a healthy run says nothing alarming: the waits for readiness and for the control plane's data-plane
    # list poll inside their modules, so no "FAILED - RETRYING" and no failed task
    with open(box.last_log) as fh:
        alarming = [ln for ln in fh.read().splitlines() if "FAILED" in ln or "fatal:" in ln]
    assert not alarming, alarming[:5]

    # the data planes served every request, also while the control plane was down for its migrations
    _assert_clean_load(summary)
    # the control plane's downtime: from the last sample on X to the first on Y
    last_x = max((i for i, s in enumerate(samples) if s.cp_version == X), default=None)
    first_y = next((i for i, s in enumerate(samples) if s.cp_version == Y), None)
    assert last_x is not None and first_y is not None and last_x < first_y, "the watcher did not see X, then Y"
    assert all(s.cp_version is None for s in samples[last_x + 1 : first_y]) and first_y - last_x > 1, (
        "the control plane never stopped: the run proves nothing about its downtime"
    )
    during = [r for r in load.records if samples[last_x].wall < r.wall < samples[first_y].wall]
    assert during and all(r.ok for r in during), "requests failed while the control plane was down"
    assert {r.version for r in during} == {X}, "only the X data planes serve while the control plane migrates"

    # PostgreSQL: Y's migrations executed, none pending; the entities unchanged
    meta = _schema_meta(box)
    for sub in MIGRATIONS["versions"][Y]["subsystems"]:
        if sub["subsystem"] not in meta:
            continue
        executed, pending = meta[sub["subsystem"]]
        assert not pending, f"{sub['subsystem']} still pending: {pending}"
        assert {m["name"] for m in sub["migrations"]} <= executed, sub["subsystem"]
    for delta in MIGRATIONS["upgrade_deltas"][f"{X}->{Y}"]:
        assert delta["subsystem"] in meta, f"{delta['subsystem']} has no schema_meta row"
        assert set(delta["new"]) <= meta[delta["subsystem"]][0], delta
    assert _counts(box) == before_counts

    # the control plane runs Y; the X data planes reconnected to it (older minor: accepted) and took
    # the configuration it pushes, the same hash the Y data planes report: one hash for every data plane
    assert (_get(_admin(box, "cp") + "/") or {}).get("version") == Y
    cp_up_at = samples[first_y].wall
    rows = _data_planes(box)
    y_hashes = {(rows.get(_node_id(box, y)) or {}).get("config_hash") for y in box.names("kong_y")}
    assert len(y_hashes) == 1, f"the Y data planes report different hashes: {y_hashes}"
    cp_hash = next(iter(y_hashes))
    assert cp_hash and cp_hash != EMPTY_HASH
    for x in box.names("kong_x"):
        row = rows.get(box.x_ids[x])
        assert row and row["version"] == X and row["sync_status"] == "normal", (x, row)
        assert row["last_seen"] >= int(cp_up_at) - 1, f"{x} never talked to the Y control plane: {row}"
        assert row["config_hash"] == cp_hash, (x, row["config_hash"], cp_hash)
    _assert_y_listed_in_sync(box, cp_hash)
    verdict = _synced_before_traffic(box, samples, cp_hash)
    assert all(v["in_sync_before"] and v["in_sync_at_first_request"] for v in verdict.values()), verdict
    assert all(len(_paged(_admin(box, y) + "/services")) == before_counts["services"] for y in box.names("kong_y"))

    # every request ends on Y; the X data planes are stopped
    _assert_ends_on_y(box, summary)
    journals = _journals(box)
    assert [j["status"] for j in journals.get("in_place", [])] == ["done"], journals.get("in_place")
    assert [j["status"] for j in journals.get("rolling", [])] == ["done"], journals.get("rolling")


def test_hybrid_data_planes_rolling_behind_an_upgraded_control_plane(hybrid):
    # three data planes of each: the share each step measures (within 3 points) moves less when one X
    # server misses a health check on a busy machine (2+2 once measured 53.6 % at the 50 % step)
    box = hybrid(Y, nodes=3)
    assert (_get(_admin(box, "cp") + "/") or {}).get("version") == Y
    before = _data_planes(box)
    x_hashes = {before[box.x_ids[x]]["config_hash"] for x in box.names("kong_x")}
    assert len(x_hashes) == 1 and EMPTY_HASH not in x_hashes, x_hashes
    cp_hash = x_hashes.pop()  # what the control plane pushes, as its data planes report it
    assert all(before[box.x_ids[x]]["version"] == X for x in box.names("kong_x"))

    cp_pid = _pid(box, "cp")
    watch = ClusterWatch(box).start()
    load = _load(box)
    rc = _upgrade(box, "rolling")
    time.sleep(2)
    summary = load.stop()
    samples = watch.stop()
    assert rc == 0, _failure(box)

    _assert_clean_load(summary)
    journal = _journals(box)["rolling"][-1]
    assert journal["status"] == "done" and journal["mode"] == "hybrid_dp"
    assert [s["share"] for s in journal["steps"]] == [10, 25, 50, 100]
    assert_step_shares(journal["steps"], load.records, samples, box.names("kong_y"), Y, _epoch)

    # the control plane listed every Y data plane, on Y and in sync, before HAProxy sent it a request
    verdict = _synced_before_traffic(box, samples, cp_hash)
    assert all(v["in_sync_before"] and v["in_sync_at_first_request"] for v in verdict.values()), verdict
    assert {s.cp_version for s in samples} - {None} == {Y} and _pid(box, "cp") == cp_pid, "the control plane was not left alone"
    _assert_y_listed_in_sync(box, cp_hash)
    _assert_ends_on_y(box, summary)


def _start_stray(box: Sandbox, version: str) -> str:
    """A data plane outside the inventory, as an earlier interrupted run can leave one: x1's kong.conf on
    its own prefix and ports, started with Kong `version`'s CLI (restarted on the same prefix it keeps its
    node id, so the control plane updates its row). Returns its Admin API URL."""
    import re
    import subprocess

    from tests.sandbox import procs as _procs

    base = os.path.join(box.state_dir, "stray")
    os.makedirs(base, exist_ok=True)
    conf = os.path.join(base, "kong.conf")
    if not os.path.exists(conf):
        ports = _procs.PortAllocator(box.lb_port + 35)
        settings = {
            "prefix": os.path.join(base, "prefix"),
            "proxy_listen": f"127.0.0.1:{ports.take()}",
            "admin_listen": f"127.0.0.1:{ports.take()}",
            "status_listen": f"127.0.0.1:{ports.take()}",
        }
        with open(box.state["nodes"]["x1"]["conf"]) as fh:
            text = re.sub(r"(?m)^\s*(prefix|proxy_listen|admin_listen|status_listen)\s*=.*\n?", "", fh.read())
        with open(conf, "w") as fh:
            fh.write(text.rstrip("\n") + "\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        os.chmod(conf, 0o600)
    _stop_stray(box)
    proc = subprocess.run([box.kong_bin(version), "start", "-c", conf], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with open(conf) as fh:
        admin = "http://" + re.search(r"(?m)^admin_listen = (\S+)", fh.read()).group(1)
    _wait(f"the stray data plane on {version}", lambda: (_get(admin + "/") or {}).get("version") == version)
    return admin


def _stop_stray(box: Sandbox) -> None:
    import subprocess

    prefix = os.path.join(box.state_dir, "stray", "prefix")
    if os.path.exists(os.path.join(prefix, "pids", "nginx.pid")):
        subprocess.run([box.kong_bin(X), "stop", "-p", prefix], capture_output=True, check=False, timeout=60)
        _wait("the stray data plane stopped", lambda: not os.path.exists(os.path.join(prefix, "pids", "nginx.pid")))


def _restart(box: Sandbox, name: str, version: str) -> None:
    """Restart an inventory node on another version's binary (the same prefix and kong.conf)."""
    import subprocess

    node = box.state["nodes"][name]
    subprocess.run([box.kong_bin(X), "stop", "-p", node["prefix"]], capture_output=True, check=False, timeout=60)
    _wait(f"{name} stopped", lambda: not _node_running(box, name))
    proc = subprocess.run([box.kong_bin(version), "start", "-c", node["conf"]], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    _wait(f"{name} on {version}", lambda: (_get(_admin(box, name) + "/") or {}).get("version") == version)


def test_hybrid_data_planes_judged_from_what_the_control_plane_lists(hybrid):
    """Preflight reads the control plane's /clustering/data-planes: a data plane an earlier interrupted run
    left on X outside the inventory stops the run, named; one newer than its control plane too; kong_x
    hosts left on X beside one already on Y are upgraded when kong_dp_left_behind=upgrade says so."""
    box = hybrid(Y, nodes=3)
    for version in (Y, "3.8.1"):
        box.install(version)
    cp = _admin(box, "cp")

    def row_of(node_id, version):
        return lambda: ((_data_planes(box) or {}).get(node_id) or {}).get("version") == version

    # left on X outside the inventory: named, and the run stops before anything changes (the default)
    stray = _start_stray(box, X)
    stray_id, host = (_get(stray + "/") or {})["node_id"], (_get(stray + "/") or {})["hostname"]
    _wait("the control plane lists the stray data plane", row_of(stray_id, X))
    before = _outside(box)
    assert _upgrade(box, "rolling") != 0
    failure = _failure(box)
    assert f"not in the inventory's current groups: {host} (id {stray_id}, ip 127.0.0.1, Kong {X})" in failure, failure
    assert _outside(box) == before

    # the same data plane now newer than its control plane: named with the fix
    _start_stray(box, "3.8.1")
    _wait("the control plane lists the stray data plane on 3.8.1", row_of(stray_id, "3.8.1"))
    assert ((_data_planes(box) or {})[stray_id]["sync_status"]) == "kong_version_incompatible"
    assert _upgrade(box, "rolling") != 0
    failure = _failure(box)
    assert (
        f"data plane {host} (id {stray_id}, ip 127.0.0.1, Kong 3.8.1) is newer than its control plane on {Y}" in failure
        and "upgrade the control plane first" in failure
    ), failure
    assert _outside(box) == before

    # back on Y (the version the run goes to, so not left behind), then gone: its row stays, last hash kept
    _start_stray(box, Y)
    _wait("the control plane lists the stray data plane on Y", row_of(stray_id, Y))
    _stop_stray(box)

    # a replace run interrupted after x3: x3 runs Y, x1 and x2 were left on X; told to, the run upgrades them
    _restart(box, "x3", Y)
    _wait("the control plane lists x3 on Y", row_of(box.x_ids["x3"], Y))
    load = _load(box)
    # two traffic steps and the X nodes drained together keep this run short; the steps are tested above
    rc = _upgrade(
        box, "rolling", "-e", "kong_dp_left_behind=upgrade", "-e", "kong_version_current=", "-e", '{"kong_traffic_steps": [50, 100], "kong_drain_serial": 3}'
    )
    time.sleep(2)
    summary = load.stop()
    assert rc == 0, _failure(box)
    with open(box.last_log) as fh:
        log = fh.read()
    named = [ln for ln in log.splitlines() if "left behind by an earlier run, upgraded by this one" in ln]
    assert named and all(f"id {box.x_ids[x]}" in named[0] for x in ("x1", "x2")), named
    assert f"id {box.x_ids['x3']}" not in named[0], named
    assert not [ln for ln in log.splitlines() if "FAILED - RETRYING" in ln]
    _assert_clean_load(summary)
    _assert_ends_on_y(box, summary)
    rows = _data_planes(box)
    y_hashes = {(rows.get(_node_id(box, y)) or {}).get("config_hash") for y in box.names("kong_y")}
    assert len(y_hashes) == 1 and EMPTY_HASH not in y_hashes
    _assert_y_listed_in_sync(box, y_hashes.pop())
    assert (_get(cp + "/") or {}).get("version") == Y
