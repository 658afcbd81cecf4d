"""The in-place upgrade end to end on a traditional sandbox: real PostgreSQL, real HAProxy,
simulated Kong nodes, the collection's playbooks, and a load that measures the downtime."""
from __future__ import annotations

import json
import os

import pytest
import requests

from tests.integration.ansible_run import run_playbook
from tests.loadgen import LoadGenerator
from tests.sandbox.core import Sandbox
from tests.sandbox.procs import port_is_free
from tests.sandbox.timeline import in_place_phases, read_report
from tests.services.postgres import PostgresServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIGRATIONS = json.load(open(os.path.join(os.path.dirname(REPO), "shared", "reference", "kong",
                                         "migrations-by-version.json")))
SEEDED = 500  # services, each with a route: 1,000 entities plus the demo configuration



def _base_port() -> int:
    """A base for the sandbox's ports: it hands them out upward, below the ephemeral range."""
    import random

    while True:
        base = random.randrange(20000, 31000, 50)
        if all(port_is_free(base + i) for i in range(0, 30, 3)):
            return base


@pytest.fixture
def traditional(tmp_path):
    boxes = []

    def make(kong_x: str) -> Sandbox:
        box = Sandbox(state_dir=str(tmp_path / f"sb{len(boxes)}"), lb_port=_base_port(), out=lambda msg: None)
        box.log_dir = str(tmp_path)
        boxes.append(box)
        box.up(mode="traditional", kong_x=kong_x)
        admin = f"http://127.0.0.1:{box.state['nodes']['x1']['admin_port']}"
        with requests.Session() as http:
            for i in range(SEEDED):
                svc = http.post(f"{admin}/services", json={"name": f"svc{i}", "url": f"http://127.0.0.1:9/{i}"})
                assert svc.status_code == 201, svc.text
                route = http.post(f"{admin}/services/svc{i}/routes", json={"name": f"r{i}", "paths": [f"/r{i}"]})
                assert route.status_code == 201, route.text
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


@pytest.mark.parametrize("kong_x,kong_y", [("3.6.1", "3.7.1"), ("2.8.5", "3.4.2")])
def test_traditional_in_place_upgrade(traditional, monkeypatch, kong_x, kong_y):
    # the run's task timeline: stop, migrations and start are each measured from it
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "kongops.upgrade.upgrade_report")
    box = traditional(kong_x)
    before = _counts(box)
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=100, headers={"apikey": "demo-key"},
                         timeout=2).start()
    rc = _upgrade(box, kong_y)
    summary = load.stop()
    assert rc == 0, _failure(box)

    meta = _schema_meta(box)
    for sub in MIGRATIONS["versions"][kong_y]["subsystems"]:
        if sub["subsystem"] not in meta:
            continue
        executed, pending = meta[sub["subsystem"]]
        assert not pending, f"{sub['subsystem']} still pending: {pending}"
        assert {m["name"] for m in sub["migrations"]} <= executed, sub["subsystem"]
    assert "core" in meta
    assert _counts(box) == before and before["services"] >= SEEDED and before["routes"] >= SEEDED
    assert f"kong/{kong_y}" in _served_by(box)

    journal = _journal(box)
    assert journal["status"] == "done"
    downtime = float(journal["downtime_seconds"])
    failed = [r for r in load.records if not r.ok]
    assert failed, "a stop of every node must cause failed requests"
    measured = max(r.wall for r in failed) - min(r.wall for r in failed)
    assert measured <= downtime + 1.0, f"clients saw {measured:.1f} s of downtime, the run measured {downtime} s"
    # Y was staged while X served: the clients' outage holds only the stop, the migrations and the
    # start (the load balancer's health checks, 2 x 1 s to mark a server up, are the allowance)
    phases = in_place_phases(read_report(box.work_dir))
    assert phases["stop"] and phases["migrations"] and phases["start"], phases
    assert measured <= phases["stop_migrations_start"] + 2.0, (
        f"clients saw {measured:.1f} s of downtime; stop {phases['stop']} s + migrations {phases['migrations']} s"
        f" + start {phases['start']} s = {phases['stop_migrations_start']} s")
    assert summary["total"] > 0


def test_failed_migration_rolls_back_to_x(traditional):
    box = traditional("3.6.1")
    db = box.state["postgres"]["database"]
    before_meta, before_counts = _schema_meta(box), _counts(box)
    # a DBA mistake: the table 023_360_to_370 alters now belongs to another role
    _pg(box).psql("ALTER TABLE clustering_data_planes OWNER TO postgres; "
                  "GRANT SELECT ON clustering_data_planes TO kong", database=db)
    rc = _upgrade(box, "3.7.1")
    assert rc != 0
    journal = _journal(box)
    assert journal["status"] == "rolled_back", journal.get("failure")
    assert "kong/3.6.1" in _served_by(box)
    assert _schema_meta(box) == before_meta
    assert _counts(box) == before_counts


def test_rollback_playbook_restores_x_and_then_changes_nothing(traditional):
    box = traditional("3.6.1")
    before_meta, before_counts = _schema_meta(box), _counts(box)
    rc = _upgrade(box, "3.7.1", "--skip-tags", "thaw")
    assert rc == 0, _failure(box)
    assert "kong/3.7.1" in _served_by(box)

    rollback = os.path.join(REPO, "playbooks", "rollback.yml")
    first = run_playbook(rollback, inventory=box.inventory, extra_vars={"kong_version_target": "3.7.1"},
                         env=box.ansible_env())
    assert first.rc == 0, first.stdout[-3000:]
    assert "kong/3.6.1" in _served_by(box)
    assert _schema_meta(box) == before_meta
    assert _counts(box) == before_counts
    assert _journal(box)["status"] == "rolled_back"

    second = run_playbook(rollback, inventory=box.inventory, extra_vars={"kong_version_target": "3.7.1"},
                          env=box.ansible_env())
    assert second.rc == 0
    assert sum(h.get("changed", 0) for h in second.stats.values()) == 0
