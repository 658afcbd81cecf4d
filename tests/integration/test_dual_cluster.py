"""The dual-cluster upgrade end to end on a traditional sandbox: real PostgreSQL, real HAProxy, simulated
Kong nodes. Cluster X (x1..x3, Kong 3.6.1) serves under load; cluster Y (y1..y3, the servers HAProxy
declares beside X) comes up on a migrated clone of X's database and takes the traffic in gated steps.
One sandbox for both cases: first a gate that fails (every request back on X, X's database never
written), then the upgrade that goes through (zero failed requests, both versions seen by the clients)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import psycopg2
import pytest
import requests

from ansible_collections.kongops.upgrade.plugins.module_utils._backup_database import database_state
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import KongDb
from tests.loadgen import NOT_SENT, LoadGenerator
from tests.sandbox import procs
from tests.sandbox.core import VENV_BIN, Sandbox, haproxy_servers
from tests.sandbox.seed import seed_services
from tests.services.postgres import PostgresServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(REPO, "playbooks", "dual_cluster_upgrade.yml")
MIGRATIONS = json.load(open(os.path.join(REPO, "tests", "kongsim", "kongsim", "data", "migrations-by-version.json")))
X, Y = "3.6.1", "3.7.1"
Y_DB = "kong_y"
SEEDED = 100  # services, each with a route, besides the demo configuration
RATE = 100.0


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dual")
    sandbox = Sandbox(state_dir=str(tmp / "sb"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
    sandbox.log_dir = str(tmp)
    sandbox.up(mode="traditional", kong_x=X)
    admin = f"http://127.0.0.1:{sandbox.state['nodes']['x1']['admin_port']}"
    seed_services(admin, SEEDED)
    sandbox.dual_inventory = sandbox.write_dual_inventory(str(tmp / "dual-inventory.yml"))
    sandbox.install(Y)
    yield sandbox
    sandbox.down()


def _upgrade(box: Sandbox, *extra: str) -> int:
    box.last_log = os.path.join(box.log_dir, f"dual-{time.time():.0f}.log")
    cmd = [
        os.path.join(VENV_BIN, "ansible-playbook"),
        PLAYBOOK,
        "-i",
        box.dual_inventory,
        "-e",
        f"kong_version_target={Y}",
        "-e",
        f"kong_y_pg_database={Y_DB}",
        "-e",
        "kong_spare_capacity=true",
        "-e",
        '{"kong_traffic_steps": [50, 100]}',
        "-e",
        "kong_gate_soak_seconds=4",
    ] + list(extra)
    with open(box.last_log, "w") as fh:
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=box.ansible_env(), cwd=REPO, timeout=900, check=False).returncode


def _failure(box: Sandbox) -> str:
    with open(box.last_log) as fh:
        lines = fh.read().splitlines()
    return "\n".join([ln for ln in lines if "fatal:" in ln or "FAILED" in ln][-5:] + lines[-40:])


def _journal(box: Sandbox) -> dict:
    with open(os.path.join(box.work_dir, "sandbox", "journal.json")) as fh:
        return json.load(fh)


def _state(box: Sandbox, database: str) -> dict:
    """Row count and content digest of every table (the collection's own digest, as its backups record it)."""
    pg = box.state["postgres"]
    db = KongDb(pg_host="127.0.0.1", pg_port=pg["port"], pg_user=pg["user"], pg_password=pg["password"], pg_database=database)
    try:
        return database_state(db)
    finally:
        db.close()


def _backup_tables(journal: dict) -> dict:
    with open(journal["backup"]["manifest"]) as fh:
        return json.load(fh)["database"]["tables"]


def _kill_y2_after_first_step(box: Sandbox, done: dict) -> None:
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            journal = _journal(box)
            if journal.get("strategy") == "dual_cluster" and len(journal.get("steps", [])) >= 1:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    with open(os.path.join(box.state["nodes"]["y2"]["prefix"], "pids", "nginx.pid")) as fh:
        pid = int(fh.read())
    os.kill(pid, signal.SIGKILL)
    done["at"] = time.time()


def _databases(box: Sandbox) -> list:
    pg = box.state["postgres"]
    return PostgresServer(pg["dir"], pg["port"]).psql("SELECT datname FROM pg_database ORDER BY 1").split()


def test_plan_and_bad_input_change_nothing(box):
    x_db = box.state["postgres"]["database"]
    before, databases = _state(box, x_db), _databases(box)
    # Y's database may not be X's: refused before any node is contacted
    assert _upgrade(box, "-e", f"kong_y_pg_database={x_db}") != 0
    with open(box.last_log) as fh:
        said = fh.read()
    assert f"kong_y_pg_database: {x_db} on 127.0.0.1:{box.state['postgres']['port']} is the database X runs on" in said
    assert "Traceback" not in said
    # the operator's strategy must be this playbook's
    assert _upgrade(box, "-e", "kong_upgrade_strategy=in_place") != 0
    with open(box.last_log) as fh:
        said = fh.read()
    assert "kong_upgrade_strategy=in_place: this playbook runs the dual_cluster strategy; run playbooks/in_place_upgrade.yml" in said
    # the whole plan in check mode: nothing written, no database created
    assert _upgrade(box, "--check") == 0, _failure(box)
    with open(box.last_log) as fh:
        plan = fh.read()
    assert "would run once, here, on Y's database kong_y" in plan and "planned (check mode)" in plan
    assert not [ln for ln in plan.splitlines() if "fatal:" in ln or "FAILED" in ln]
    assert _databases(box) == databases and _state(box, x_db)["tables"] == before["tables"]
    assert not os.path.exists(os.path.join(box.work_dir, "sandbox", "journal.json"))


def test_failed_gate_puts_every_request_back_on_x_and_x_database_is_never_written(box):
    x_db = box.state["postgres"]["database"]
    before = _state(box, x_db)
    killed: dict = {}
    killer = threading.Thread(target=_kill_y2_after_first_step, args=(box, killed), daemon=True)
    killer.start()
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=RATE, headers={"apikey": "demo-key"}, timeout=2).start()
    rc = _upgrade(box)
    time.sleep(2)
    summary = load.stop()
    killer.join(5)

    assert rc != 0, "the run must fail on the gate"
    assert killed, "y2 was never killed: the first step did not pass\n" + _failure(box)
    journal = _journal(box)
    assert journal["strategy"] == "dual_cluster" and journal["status"] == "rolled_back", _failure(box)
    # every request back on X: writes are thawed on X, where the freeze was taken
    assert journal.get("thawed") is True, journal
    assert journal["failure"]["phase"] == "shift" and "y2" in journal["failure"]["reason"], journal["failure"]
    assert [(s["share"], s["gate"]["failed"]) for s in journal["steps"]] == [(50, False), (100, True)]
    # every request back on X with its weights, Y out of rotation
    servers = haproxy_servers(box.state["haproxy"]["socket"])
    assert all(servers[x]["weight"] == 100 for x in ("x1", "x2", "x3")), servers
    assert all(servers[y]["weight"] == 0 or "MAINT" in servers[y]["status"] for y in ("y1", "y2", "y3")), servers
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    detected = time.mktime(time.strptime(journal["failure"]["at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    after = [r for r in load.records if r.wall > detected + 1 and r.error != NOT_SENT]
    assert after and not [r for r in after if not r.ok], "requests failed after the rollback"
    assert {r.version for r in after if r.ok} == {X}, "traffic still reaches Y after the rollback"
    # X's database was never written: equal to the backup Y was cloned from until the thaw, which only
    # removes the freeze's own marker, leaving it as it was before the run
    assert journal.get("thawed") is True
    assert _state(box, x_db)["tables"] == before["tables"]
    assert _state(box, x_db)["schema_meta"] == before["schema_meta"]
    # Y's clone was migrated, X's never
    assert all(not pending for _executed, pending in box.schema_meta().values())
    assert _state(box, Y_DB)["schema_meta"] != before["schema_meta"]


def test_dual_cluster_upgrade_under_load_loses_no_request(box):
    x_db = box.state["postgres"]["database"]
    before = _state(box, x_db)
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=RATE, headers={"apikey": "demo-key"}, timeout=2).start()
    rc = _upgrade(box, "-e", "kong_drain_serial=3")
    time.sleep(1)
    summary = load.stop()
    assert rc == 0, _failure(box)

    journal = _journal(box)
    assert journal["strategy"] == "dual_cluster" and journal["status"] == "done", journal.get("failure")
    # the run resumed the one that rolled back: its steps come after the failed ones, and as writes were
    # thawed then, X was frozen, backed up and cloned anew
    assert [s["share"] for s in journal["steps"]] == [50, 100, 50, 100]
    assert [s["gate"]["failed"] for s in journal["steps"][-2:]] == [False, False]
    assert all(journal["nodes"][x] == "decommissioned" for x in ("x1", "x2", "x3")), journal["nodes"]
    # zero failed requests, both versions seen by the clients
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    failed = [(r.status, r.error) for r in load.records if not r.ok and r.error != NOT_SENT]
    assert summary["total"] > 0 and not failed, f"{len(failed)} requests failed: {failed[:10]}"
    assert {r.version for r in load.records if r.ok} == {X, Y}
    servers = haproxy_servers(box.state["haproxy"]["socket"])
    assert all(servers[y]["weight"] > 0 for y in ("y1", "y2", "y3")), servers
    assert all(servers[x]["weight"] == 0 or "MAINT" in servers[x]["status"] for x in ("x1", "x2", "x3")), servers
    assert f"kong/{Y}" in requests.get(f"http://127.0.0.1:{box.lb_port}/echo", headers={"apikey": "demo-key"}, timeout=5).headers.get("Via", "")

    # X's database: table for table (rows and content digests) as before the run, and as the backup
    # taken with writes frozen that Y was cloned from
    after = _state(box, x_db)
    assert after["tables"] == before["tables"]
    assert after["tables"] == _backup_tables(journal)
    assert after["schema_meta"] == before["schema_meta"]
    # Y's database: every migration of 3.7.1 executed, nothing pending, every entity there
    y_state = _state(box, Y_DB)
    for sub in MIGRATIONS["versions"][Y]["subsystems"]:
        meta = y_state["schema_meta"].get(sub["subsystem"])
        if meta is None:
            continue
        assert not meta.get("pending"), f"{sub['subsystem']} still pending on Y: {meta}"
        assert {m["name"] for m in sub["migrations"]} <= set(meta.get("executed") or []), sub["subsystem"]
    for table in ("services", "routes", "plugins", "keyauth_credentials"):
        assert y_state["tables"][table]["rows"] == before["tables"][table]["rows"], table
    assert y_state["tables"]["services"]["rows"] >= SEEDED
    assert y_state["tables"]["consumers"]["rows"] == before["tables"]["consumers"]["rows"]
    assert journal.get("thawed") is True
    # which strategy ran and why
    report = json.load(open(os.path.join(box.work_dir, "sandbox", "journal.json")))
    assert report["strategy"] == "dual_cluster"
    with open(box.last_log) as fh:
        log = fh.read()
    assert "Strategy dual_cluster: Spare capacity" in log
    assert "FAILED - RETRYING" not in log


RETIRE = os.path.join(REPO, "playbooks", "dual_cluster_retire.yml")


def _retire(box: Sandbox, *extra: str) -> tuple:
    box.last_log = os.path.join(box.log_dir, f"retire-{time.time():.3f}.log")
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), RETIRE, "-i", box.dual_inventory, "-e", f"kong_y_pg_database={Y_DB}"] + list(extra)
    with open(box.last_log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=box.ansible_env(), cwd=REPO, timeout=300, check=False).returncode
    with open(box.last_log) as fh:
        return rc, fh.read()


def test_x_database_is_dropped_only_after_its_retention_and_once(box):
    """After the done run above: X's database is dropped when asked and the retention has passed, from its
    final verified backup's word; Y keeps serving; a second run has nothing to drop."""
    x_db = box.state["postgres"]["database"]
    journal = _journal(box)
    assert journal["status"] == "done", "needs the successful run of the test above"
    record = os.path.join(box.work_dir, "sandbox", f"x-database-retired-{journal['run_id']}.json")
    # no retention given: refused naming the variable
    rc, said = _retire(box, "-e", "kong_dual_drop_x_database=true")
    assert rc != 0 and "kong_dual_x_db_retention_days: set the days" in said
    # retention not passed: refused with the date it becomes possible, the database still there
    rc, said = _retire(box, "-e", "kong_dual_x_db_retention_days=30", "-e", "kong_dual_drop_x_database=true")
    ended = time.strptime(journal["ended_at"][:19], "%Y-%m-%dT%H:%M:%S")
    until = time.strftime("%Y-%m-%d", time.gmtime(time.mktime(ended) - time.timezone + 30 * 86400))
    assert rc != 0 and f"kong_dual_x_db_retention_days=30: X's database {x_db} is kept until {until}" in said, said[-3000:]
    assert x_db in _databases(box)
    # a session as Kong opens them (application_name 'kong') still on X's database: refused
    pg = box.state["postgres"]
    kong_session = psycopg2.connect(host="127.0.0.1", port=pg["port"], user=pg["user"], password=pg["password"], dbname=x_db, application_name="kong")
    try:
        rc, said = _retire(box, "-e", "kong_dual_x_db_retention_days=0", "-e", "kong_dual_drop_x_database=true")
    finally:
        kong_session.close()
    assert rc != 0 and f"PostgreSQL shows Kong sessions (application_name 'kong') on X's database {x_db}" in said
    assert x_db in _databases(box)
    # check mode: the plan, nothing dropped, no record
    rc, said = _retire(box, "-e", "kong_dual_x_db_retention_days=0", "-e", "kong_dual_drop_x_database=true", "--check")
    assert rc == 0, said[-3000:]
    assert f"check mode: would drop X's database {x_db} (final backup {os.path.dirname(journal['backup']['manifest'])}" in said
    assert x_db in _databases(box) and not os.path.exists(record)
    # without kong_dual_drop_x_database nothing is dropped
    rc, said = _retire(box, "-e", "kong_dual_x_db_retention_days=0")
    assert rc == 0 and "set kong_dual_drop_x_database=true to drop it" in said and x_db in _databases(box)
    # dropped, with Y serving every request meanwhile
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=50.0, headers={"apikey": "demo-key"}, timeout=2).start()
    rc, said = _retire(box, "-e", "kong_dual_x_db_retention_days=0", "-e", "kong_dual_drop_x_database=true")
    time.sleep(1)
    summary = load.stop()
    assert rc == 0, said[-3000:]
    assert x_db not in _databases(box) and Y_DB in _databases(box)
    with open(record) as fh:
        entry = json.load(fh)
    assert entry["database"] == x_db and entry["final_backup"] == os.path.dirname(journal["backup"]["manifest"])
    assert summary.get("not_sent", 0) == 0, "the machine did not sustain the load: the run proves nothing"
    failed = [(r.status, r.error) for r in load.records if not r.ok and r.error != NOT_SENT]
    assert summary["total"] > 0 and not failed, f"{len(failed)} requests failed: {failed[:10]}"
    assert {r.version for r in load.records if r.ok} == {Y}
    # a second run: nothing to drop, nothing changed
    rc, said = _retire(box, "-e", "kong_dual_x_db_retention_days=0", "-e", "kong_dual_drop_x_database=true")
    assert rc == 0 and "nothing to drop" in said and "changed=0" in said, said[-3000:]
