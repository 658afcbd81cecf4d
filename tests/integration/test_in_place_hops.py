"""kong_upgrade_hops=auto in the in-place flow, end to end on one traditional sandbox (real PostgreSQL,
real HAProxy, simulated Kong nodes): 3.4.2 -> 3.7.1 is three hops (3.5.x, 3.6.x between). A failure
in the 3.6.1 hop's migrations restores the pre-upgrade backup and restarts 3.4.2; the same cluster
then goes 3.4.2 -> 3.7.1 in one run under load, in one downtime window."""

from __future__ import annotations

import json
import os

import pytest
import requests

from tests.integration.test_in_place_upgrade import MIGRATIONS, SEEDED
from tests.loadgen import LoadGenerator
from tests.sandbox import procs
from tests.sandbox.core import Sandbox
from tests.sandbox.seed import seed_services
from tests.services.postgres import PostgresServer

HOPS = ["-e", "kong_upgrade_hops=auto", "-e", json.dumps({"kong_rehearse_hop_versions": {"3.5.x": "3.5.0", "3.6.x": "3.6.1"}})]


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hops")
    sandbox = Sandbox(state_dir=str(tmp / "sb"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
    sandbox.log_dir = str(tmp)
    try:
        sandbox.up(mode="traditional", kong_x="3.4.2")
        admin = f"http://127.0.0.1:{sandbox.state['nodes']['x1']['admin_port']}"
        seed_services(admin, SEEDED)
        yield sandbox
    finally:
        sandbox.down()


def _pg(box: Sandbox) -> PostgresServer:
    return PostgresServer(box.state["postgres"]["dir"], box.state["postgres"]["port"])


def _digests(box: Sandbox) -> dict:
    """Row count and content digest of every table of the cluster's database."""
    server, db = _pg(box), box.state["postgres"]["database"]
    tables = server.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", database=db).split()
    return {
        t: server.psql(
            f"SELECT count(*) || ':' || md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM (SELECT md5(x::text) AS h FROM \"{t}\" x) s", database=db
        )
        for t in tables
    }


def _journal(box: Sandbox) -> dict:
    with open(os.path.join(box.work_dir, "sandbox", "journal.json")) as fh:
        return json.load(fh)


def _upgrade(box: Sandbox, *extra: str) -> tuple[int, str]:
    log = os.path.join(box.log_dir, f"hops-{len(os.listdir(box.log_dir))}.log")
    rc = box.upgrade("in_place", "3.7.1", extra_args=HOPS + list(extra), log_path=log, stream=lambda line: None)
    with open(log) as fh:
        return rc, fh.read()


def _served_by(box: Sandbox) -> str:
    resp = requests.get(f"http://127.0.0.1:{box.lb_port}/echo", headers={"apikey": "demo-key"}, timeout=5)
    assert resp.status_code == 200
    return resp.headers.get("Via", "")


def _tail(text: str) -> str:
    lines = text.splitlines()
    return "\n".join([ln for ln in lines if "fatal:" in ln][-5:] + lines[-40:])


def test_failed_hop_restores_the_backup_and_x(box):
    """Every `UPDATE plugins` statement is refused (a trigger a DBA left): 3.5.0's hop has none and
    passes, the 3.6.1 hop's `up` (rate-limiting 006_350_to_360 copies the redis settings) fails after
    the 3.5.0 hop's `finish`: X cannot run on that database, the backup is restored and 3.4.2 serves."""
    db, role = box.state["postgres"]["database"], box.state["postgres"]["user"]
    _pg(box).psql(
        f"SET ROLE {role}; CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'plugins are read-only here'; END $$; "
        "CREATE TRIGGER refuse_update BEFORE UPDATE ON plugins FOR EACH STATEMENT "
        "EXECUTE FUNCTION refuse_update()",
        database=db,
    )
    before = _digests(box)
    rc, log = _upgrade(box)
    assert rc != 0, _tail(log)
    journal = _journal(box)
    assert journal["status"] == "rolled_back", journal.get("failure")
    assert journal["hops"]["finished"] == ["3.5.0"] and journal["hops"]["migrating"] == "3.6.1", journal["hops"]
    assert journal["failure"]["restore"] is True and journal["rollback"]["restored"] is True, journal["failure"]
    assert "plugins are read-only here" in journal["failure"]["reason"], journal["failure"]
    assert "kong/3.4.2" in _served_by(box)
    assert _digests(box) == before
    _pg(box).psql("DROP TRIGGER refuse_update ON plugins; DROP FUNCTION refuse_update()", database=db)


def _outage_windows(records) -> int:
    """How many times the clients went from served to failing."""
    windows, failing = 0, False
    for r in sorted(records, key=lambda r: r.wall):
        if not r.ok and not failing:
            windows += 1
        failing = not r.ok
    return windows


def test_three_hops_in_one_run_under_load(box):
    before = _digests(box)
    counts = box.row_counts()
    for version in ("3.5.0", "3.6.1"):  # check mode installs nothing: the hops' binaries, as a run leaves them
        box.install(version)
    rc, plan = _upgrade(box, "--check")
    assert rc == 0, _tail(plan)
    assert "hop 3.4.2 -> 3.5.0: up, finish would run: core: 021_340_to_350" in plan
    assert "hop 3.5.0 -> 3.6.1: up, finish would run: core: 022_350_to_360" in plan
    assert "rate-limiting: 006_350_to_360" in plan
    assert _digests(box) == before and "kong/3.4.2" in _served_by(box)

    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=100, headers={"apikey": "demo-key"}, timeout=2).start()
    rc, log = _upgrade(box)
    load.stop()
    assert rc == 0, _tail(log)
    assert "kong/3.7.1" in _served_by(box)
    journal = _journal(box)
    assert journal["status"] == "done", journal
    assert journal["hops"]["finished"] == ["3.5.0", "3.6.1"] and journal["hops"]["chain"] == ["3.5.0", "3.6.1", "3.7.1"]
    # 3.5.0's only migration has no teardown: its `finish` finds nothing pending; 3.6.1's plugins have one
    assert [(h["from"], h["to"], h["up"], h["finish"]) for h in journal["hops"]["ran"]] == [("3.4.2", "3.5.0", True, False), ("3.5.0", "3.6.1", True, True)]
    meta = box.schema_meta()
    for version in ("3.5.0", "3.6.1", "3.7.1"):
        for sub in MIGRATIONS["versions"][version]["subsystems"]:
            if sub["subsystem"] in meta:
                executed, pending = meta[sub["subsystem"]]
                assert not pending and {m["name"] for m in sub["migrations"]} <= executed, (version, sub["subsystem"])
    assert box.row_counts() == counts
    # one downtime window: the clients saw one outage, X stopped once, Y started once
    assert _outage_windows(load.records) == 1
    assert log.count("Stop every X node (downtime starts)") == 1 and log.count("Start and smoke-test Y") == 1
