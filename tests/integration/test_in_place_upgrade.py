"""The in-place upgrade end to end on a traditional sandbox: real PostgreSQL, real HAProxy,
simulated Kong nodes, the collection's playbooks, and a load that measures the downtime."""

from __future__ import annotations

import json
import time
import os

import pytest
import requests

from tests.integration.ansible_run import run_playbook
from tests.loadgen import LoadGenerator, kong_version
from tests.sandbox.core import Sandbox
from tests.sandbox import procs
from tests.sandbox.timeline import in_place_phases, read_report, task_name
from tests.sandbox.seed import seed_services
from tests.services.postgres import PostgresServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Kong's migrations per version, as the simulator carries them (from Kong's source at each tag)
MIGRATIONS = json.load(open(os.path.join(REPO, "tests", "kongsim", "kongsim", "data", "migrations-by-version.json")))
SEEDED = 500  # services, each with a route: 1,000 entities plus the demo configuration


@pytest.fixture
def traditional(tmp_path):
    boxes = []

    def make(kong_x: str, nodes: int = 3, seeded: int = SEEDED) -> Sandbox:
        """``nodes`` nodes and ``seeded`` services with a route each: three nodes and 1,000 entities where the
        upgrade itself is measured, two and 100 where the test is about which phases run (each is the same
        for every node and entity)."""
        box = Sandbox(state_dir=str(tmp_path / f"sb{len(boxes)}"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
        box.log_dir = str(tmp_path)
        boxes.append(box)
        box.up(mode="traditional", kong_x=kong_x, nodes=nodes)
        admin = f"http://127.0.0.1:{box.state['nodes']['x1']['admin_port']}"
        seed_services(admin, seeded)
        return box

    yield make
    for box in boxes:
        box.down()


def _pg(box: Sandbox) -> PostgresServer:
    pg = box.state["postgres"]
    return PostgresServer(pg["dir"], pg["port"])


def _schema_meta(box: Sandbox) -> dict:
    return box.schema_meta()


def _counts(box: Sandbox) -> dict:
    return box.row_counts()


def _journal(box: Sandbox) -> dict:
    with open(os.path.join(box.work_dir, "sandbox", "journal.json")) as fh:
        return json.load(fh)


def _upgrade(box: Sandbox, version: str, *extra: str) -> int:
    box.last_log = os.path.join(box.log_dir, f"upgrade-{version}-{len(os.listdir(box.log_dir))}.log")
    return box.upgrade("in_place", version, extra_args=list(extra), log_path=box.last_log, stream=lambda line: None)


def _failure(box: Sandbox) -> str:
    with open(box.last_log) as fh:
        lines = fh.read().splitlines()
    return "\n".join([ln for ln in lines if "fatal:" in ln or "FAILED" in ln][-5:] + lines[-30:])


def _served_by(box: Sandbox) -> str:
    resp = requests.get(f"http://127.0.0.1:{box.lb_port}/echo", headers={"apikey": "demo-key"}, timeout=5)
    assert resp.status_code == 200
    return resp.headers.get("Via", "")


def _outside(box: Sandbox) -> dict:
    """What an upgrade could change, read from the outside: the database (schema_meta, row counts), the
    nodes' processes and versions, the files of the nodes and of the work directory (the report of a
    plan aside)."""
    nodes = {}
    for name, node in box.state["nodes"].items():
        pidfile = os.path.join(node["prefix"], "pids", "nginx.pid")
        if not os.path.exists(pidfile):  # a server of the load balancer only (no node runs there)
            nodes[name] = None
            continue
        root = requests.get(f"http://127.0.0.1:{node['admin_port']}/", timeout=5).json()
        with open(pidfile) as fh:
            nodes[name] = (fh.read().strip(), root["version"])
    files = {}
    for top in (box.work_dir, os.path.join(box.state_dir, "nodes")):
        for d, _dirs, names in os.walk(top):
            for f in names:
                path = os.path.join(d, f)
                if "/reports/" in path or "/logs/" in path or path.endswith((".sock", ".pid")):
                    continue
                st = os.stat(path)
                files[path] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return {"schema_meta": _schema_meta(box), "counts": _counts(box), "nodes": nodes, "files": files}


def _check_mode_changes_nothing(box: Sandbox, kong_y: str) -> set:
    """`--check` runs to the end, changes nothing, and names the migrations; returns their names."""
    import re

    import subprocess

    from tests.sandbox.core import VENV_BIN

    before = _outside(box)
    assert _upgrade(box, kong_y, "--check") == 0, _failure(box)
    # the other playbooks of the collection, in check mode too
    said = {}
    for playbook in ("backup.yml", "rollback.yml"):
        run = subprocess.run(
            [os.path.join(VENV_BIN, "ansible-playbook"), os.path.join(REPO, "playbooks", playbook), "-i", box.inventory, "--check"],
            capture_output=True,
            text=True,
            env=box.ansible_env(),
            cwd=REPO,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, f"{playbook} --check: {run.stdout[-3000:]}"
        said[playbook] = run.stdout
    assert "check mode: nothing was written; would write " in said["backup.yml"]
    assert "database.dump" in said["backup.yml"]
    assert "Nothing to roll back" in said["rollback.yml"]
    assert _outside(box) == before
    with open(box.last_log) as fh:
        plan = fh.read()
    assert f"Kong in_place upgrade {box.state['kong_x']} -> {kong_y}: planned (check mode)" in plan
    assert "the point of no return, would run" in plan and "nothing was changed" in plan
    assert not [ln for ln in plan.splitlines() if "fatal:" in ln or "FAILED" in ln]
    named = re.search(r"check mode: up(?:, finish)? would run: (.*?)\"", plan)
    assert named, "the plan does not name the migrations"
    return {m.strip() for part in named.group(1).split("; ") for m in part.split(": ", 1)[1].split(",")}


@pytest.mark.parametrize("kong_x,kong_y", [("3.6.1", "3.7.1"), ("2.8.5", "3.4.2")])
def test_traditional_in_place_upgrade(traditional, monkeypatch, kong_x, kong_y):
    # the run's task timeline: stop, migrations and start are each measured from it
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "kongops.upgrade.upgrade_report")
    box = traditional(kong_x)
    extra = []
    if kong_x == "2.8.5":
        # a 2.x cluster grown over the years: a regex route path without `~` and a kong.conf alias 3.x reads no
        # more; kong_breaking_fix lets the run go on (preflight refuses both without it:
        # test_safety_playbooks.py::test_kong_conf_properties_the_path_stops_reading_are_refused_before_the_journal)
        matches_before = _regex_route_and_conf_alias(box)
        extra = ["-e", "kong_breaking_fix=true"]
    before = _counts(box)
    planned = _check_mode_changes_nothing(box, kong_y) if kong_x == "3.6.1" else set()
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=100, headers={"apikey": "demo-key"}, timeout=2).start()
    rc = _upgrade(box, kong_y, *extra)
    summary = load.stop()
    assert rc == 0, _failure(box)
    if kong_x == "2.8.5":
        # Kong's migration rewrote the path to `~/users/\d+`: Y matches the same requests through the proxy
        assert _regex_matches(box) == {path: (status, kong_y) for path, (status, _v) in matches_before.items()}
        routes = requests.get(f"http://127.0.0.1:{box.state['nodes']['x1']['admin_port']}/routes/users-by-id", timeout=5).json()
        assert routes["paths"] == ["~/users/\\d+"], routes
        for name, node in box.state["nodes"].items():
            if node["group"] == "kong_x":
                conf = open(node["conf"]).read()
                assert "\nnginx_http_client_max_body_size = 10m" in conf and "\nclient_max_body_size" not in conf, (name, conf)
                # removed in 3.0: commented out
                assert "\nnginx_optimizations" not in conf and "nginx_optimizations = on" in conf, (name, conf)

    meta = _schema_meta(box)
    for sub in MIGRATIONS["versions"][kong_y]["subsystems"]:
        if sub["subsystem"] not in meta:
            continue
        executed, pending = meta[sub["subsystem"]]
        assert not pending, f"{sub['subsystem']} still pending: {pending}"
        assert {m["name"] for m in sub["migrations"]} <= executed, sub["subsystem"]
    assert "core" in meta
    # the migrations the plan named are the ones the run executed
    assert planned <= {m for executed, _pending in meta.values() for m in executed}, planned
    assert _counts(box) == before and before["services"] >= SEEDED and before["routes"] >= SEEDED
    assert f"kong/{kong_y}" in _served_by(box)

    journal = _journal(box)
    assert journal["status"] == "done"
    downtime = float(journal["downtime_seconds"])
    failed = [r for r in load.records if not r.ok]
    assert failed, "a stop of every node must cause failed requests"
    measured = max(r.wall for r in failed) - min(r.wall for r in failed)
    assert measured <= downtime + 1.0, f"clients saw {measured:.1f} s of downtime, the run measured {downtime} s"
    # Y was staged while X served: its installation ran in the staging play and had ended before the
    # first node stopped; inside the downtime window only the stop, the migrations and the start ran
    # (how the clients' outage compares with those phases is measured by `make bench`, section 3)
    report = read_report(box.work_dir)
    phases = in_place_phases(report)
    assert phases["stop"] and phases["migrations"] and phases["start"], phases
    installs = [e for e in report["timeline"] if task_name(e).startswith("Install Kong from a versioned directory")]
    assert installs and all(e["phase"].startswith("Stage Y") for e in installs), [(e["phase"], e["task"]) for e in installs]
    assert max(e["end"] for e in installs) <= phases["first_stop"], "Y was still being installed when X stopped"
    assert summary["total"] > 0


def _regex_matches(box: Sandbox) -> dict:
    """path -> (status, version that answered) through the load balancer, for paths the regex route decides."""
    found = {}
    for path in ("/users/42", "/users/abc"):
        resp = requests.get(f"http://127.0.0.1:{box.lb_port}{path}", headers={"apikey": "demo-key"}, timeout=5)
        found[path] = (resp.status_code, kong_version(resp.headers.get("Via"), resp.headers.get("Server")))
    return found


def _regex_route_and_conf_alias(box: Sandbox) -> dict:
    """A route `users-by-id` on the echo service with the 2.x regex path `/users/\\d+`, and in every X node's
    kong.conf the 2.x alias `client_max_body_size` and `nginx_optimizations` (removed in 3.0); returns what the
    regex route matches on X."""
    admin = f"http://127.0.0.1:{box.state['nodes']['x1']['admin_port']}"
    made = requests.post(f"{admin}/services/echo/routes", json={"name": "users-by-id", "paths": ["/users/\\d+"]}, timeout=5)
    assert made.status_code == 201, made.text
    for node in box.state["nodes"].values():
        if node["group"] == "kong_x":
            with open(node["conf"], "a") as fh:
                fh.write("client_max_body_size = 10m\nnginx_optimizations = on\n")
    found = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # every X node has the route once its cache was invalidated
        found = _regex_matches(box)
        if found["/users/42"][0] == 200:
            break
        time.sleep(0.5)
    assert found["/users/42"][0] == 200 and found["/users/abc"][0] == 404, found
    return found


def test_failed_migration_rolls_back_to_x(traditional):
    box = traditional("3.6.1", nodes=2, seeded=50)
    db = box.state["postgres"]["database"]
    before_meta, before_counts = _schema_meta(box), _counts(box)
    # a DBA mistake: the table 023_360_to_370 alters now belongs to another role
    _pg(box).psql("ALTER TABLE clustering_data_planes OWNER TO postgres; GRANT SELECT ON clustering_data_planes TO kong", database=db)
    rc = _upgrade(box, "3.7.1")
    assert rc != 0
    journal = _journal(box)
    assert journal["status"] == "rolled_back", journal.get("failure")
    assert "kong/3.6.1" in _served_by(box)
    assert _schema_meta(box) == before_meta
    assert _counts(box) == before_counts


def test_rollback_playbook_restores_x_and_then_changes_nothing(traditional):
    box = traditional("3.6.1", nodes=2, seeded=50)
    before_meta, before_counts = _schema_meta(box), _counts(box)
    rc = _upgrade(box, "3.7.1", "--skip-tags", "thaw")
    assert rc == 0, _failure(box)
    assert "kong/3.7.1" in _served_by(box)

    rollback = os.path.join(REPO, "playbooks", "rollback.yml")
    first = run_playbook(rollback, inventory=box.inventory, extra_vars={"kong_version_target": "3.7.1", "kong_rollback_confirm": True}, env=box.ansible_env())
    assert first.rc == 0, first.stdout[-3000:]
    assert "kong/3.6.1" in _served_by(box)
    assert _schema_meta(box) == before_meta
    assert _counts(box) == before_counts
    assert _journal(box)["status"] == "rolled_back"

    second = run_playbook(rollback, inventory=box.inventory, extra_vars={"kong_version_target": "3.7.1", "kong_rollback_confirm": True}, env=box.ansible_env())
    assert second.rc == 0
    assert sum(h.get("changed", 0) for h in second.stats.values()) == 0


def _pg_log(box: Sandbox) -> str:
    """The tail of the sandbox's PostgreSQL log, to tell a server that went away from a refusal."""
    path = os.path.join(box.state["postgres"]["dir"], "server.log")
    if not os.path.exists(path):
        return f"(no {path})"
    with open(path, errors="replace") as fh:
        return fh.read()[-3000:]


def _pending(meta: dict) -> dict:
    return {sub: pending for sub, (_executed, pending) in meta.items() if pending}


def test_point_of_no_return_and_a_guarded_rollback(traditional):
    """One sandbox, 3.6.1 -> 3.7.1, in four runs (issue 27, items 2 and 5):
    1. Y fails its smoke test after `migrations up`: X is restarted on the same database, no restore
       and no `finish` (schema_meta keeps Y's pending migrations, X serves, counts unchanged).
    2. --skip-tags finish: the stop/install/migrate/start phases still run; Y serves with its
       migrations pending and the run waits for the approval (awaiting_finish, writes still frozen).
    3. --tags finish: the point of no return is passed and the run is done.
    4. playbooks/rollback.yml of the finished run asks for kong_rollback_confirm, then refuses to
       drop a write made after the upgrade unless kong_rollback_force."""
    box = traditional("3.6.1", nodes=2, seeded=50)
    before_meta, before_counts = _schema_meta(box), _counts(box)
    assert not _pending(before_meta)

    # 1. a Y that fails its smoke test after `up`
    rc = _upgrade(box, "3.7.1", "-e", "kong_smoke_path=/no-such-route")
    assert rc != 0
    journal = _journal(box)
    assert journal["status"] == "rolled_back", journal.get("failure")
    assert journal["failure"]["phase"] == "upgrade" and journal["failure"]["restore"] is False, journal["failure"]
    assert journal["rollback"]["restored"] is False, journal["rollback"]
    assert "finish" not in journal.get("migrations", {}) and "finish" not in journal.get("phases", {})
    meta = _schema_meta(box)
    assert _pending(meta), f"Y's `up` should have left migrations pending: {meta}"
    assert meta != before_meta
    assert "kong/3.6.1" in _served_by(box)
    assert _counts(box) == before_counts

    # 2. everything but the point of no return
    rc = _upgrade(box, "3.7.1", "--skip-tags", "finish")
    assert rc == 0, _failure(box)
    journal = _journal(box)
    assert journal["status"] == "awaiting_finish", journal
    assert "finish" not in journal.get("phases", {}) and not journal.get("thawed")
    assert _pending(_schema_meta(box))
    assert "kong/3.7.1" in _served_by(box)
    assert _counts(box) == before_counts
    with open(box.last_log) as fh:
        assert "kong migrations finish has not run" in fh.read()

    # 3. the approval step
    rc = _upgrade(box, "3.7.1", "--tags", "finish")
    assert rc == 0, _failure(box)
    journal = _journal(box)
    assert journal["status"] == "done" and journal["thawed"] is True, journal
    assert not _pending(_schema_meta(box))
    assert "kong/3.7.1" in _served_by(box)
    assert _counts(box) == before_counts

    # 4. the rollback of a finished run asks, then guards the writes made since
    rollback = os.path.join(REPO, "playbooks", "rollback.yml")
    extra = {"kong_version_target": "3.7.1"}
    unconfirmed = run_playbook(rollback, inventory=box.inventory, extra_vars=extra, env=box.ansible_env())
    assert unconfirmed.rc != 0 and "kong_rollback_confirm" in unconfirmed.stdout
    assert "kong/3.7.1" in _served_by(box) and _journal(box)["status"] == "done"

    admin = f"http://127.0.0.1:{box.state['nodes']['x1']['admin_port']}"
    assert requests.post(f"{admin}/services", json={"name": "after-upgrade", "url": "http://127.0.0.1:9/"}, timeout=10).status_code == 201
    after_write = _counts(box)
    confirmed = run_playbook(rollback, inventory=box.inventory, extra_vars=dict(extra, kong_rollback_confirm=True), env=box.ansible_env())
    assert confirmed.rc != 0 and "kong_rollback_force" in confirmed.stdout, confirmed.stdout[-3000:]
    assert "kong/3.7.1" in _served_by(box) and _counts(box) == after_write

    forced = run_playbook(
        rollback, inventory=box.inventory, extra_vars=dict(extra, kong_rollback_confirm=True, kong_rollback_force=True), env=box.ansible_env()
    )
    assert forced.rc == 0, (
        _pg_log(box)
        + "\n"
        + "\n".join(str(r.get("msg")) for p in forced.data.get("plays", []) for t in p["tasks"] for r in t["hosts"].values() if r.get("failed"))
    )
    assert "kong/3.6.1" in _served_by(box)
    assert _counts(box) == before_counts
    assert _journal(box)["status"] == "rolled_back"
