"""The migration rehearsal (playbooks/rehearse.yml, and kong_rehearse in the in-place flow) on one
traditional sandbox: real PostgreSQL, simulated Kong nodes. Every rehearsal restores a verified backup
into a scratch database, runs the hops' migrations there and drops it; the production database's table
digests are compared before and after."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import requests
import yaml

from tests.integration.ansible_run import run_playbook
from tests.sandbox import procs
from tests.sandbox.core import Sandbox
from tests.sandbox.seed import seed_services
from tests.services.postgres import PostgresServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REHEARSE = os.path.join(REPO, "playbooks", "rehearse.yml")
SEEDED = 500  # services, each with a route: 1,000 entities plus the demo configuration


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rehearse")
    sandbox = Sandbox(state_dir=str(tmp / "sb"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
    sandbox.log_dir = str(tmp)
    sandbox.up(mode="traditional", kong_x="2.8.5")
    admin = f"http://127.0.0.1:{sandbox.state['nodes']['x1']['admin_port']}"
    seed_services(admin, SEEDED)
    yield sandbox
    sandbox.down()


def _pg(box: Sandbox) -> PostgresServer:
    pg = box.state["postgres"]
    return PostgresServer(pg["dir"], pg["port"])


def _digests(box: Sandbox, database: str) -> dict:
    """Row count and content digest of every table of the database's public schema."""
    server = _pg(box)
    tables = server.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", database=database).split()
    return {
        t: server.psql(
            f"SELECT count(*) || ':' || md5(coalesce(string_agg(h, '' ORDER BY h), '')) FROM (SELECT md5(x::text) AS h FROM \"{t}\" x) s", database=database
        )
        for t in tables
    }


def _scratch_databases(box: Sandbox) -> list:
    return _pg(box).psql("SELECT datname FROM pg_database WHERE datname LIKE 'kong_rehearse%'").split()


def _env(box: Sandbox) -> dict:
    return dict(box.ansible_env(), ANSIBLE_SHOW_CUSTOM_STATS="true")


def _rehearse(box: Sandbox, target: str, check: bool = False, **extra):
    return run_playbook(REHEARSE, inventory=box.inventory, extra_vars=dict(kong_version_target=target, **extra), check=check, env=_env(box))


def _why(run) -> str:
    return (
        "\n".join(str(r.get("msg")) for p in run.data.get("plays", []) for t in p["tasks"] for r in t["hosts"].values() if r.get("failed"))
        or run.stdout[-3000:] + run.stderr[-2000:]
    )


def _stats(run) -> dict:
    return (run.data.get("global_custom_stats") or {}).get("kong_rehearsal") or {}


def _backup(box: Sandbox) -> None:
    run = run_playbook(os.path.join(REPO, "playbooks", "backup.yml"), inventory=box.inventory, env=box.ansible_env())
    assert run.rc == 0, _why(run)


def _assert_timed(hop: dict) -> None:
    assert hop["status"] == "passed", hop
    assert float(hop["up"]["seconds"]) > 0 and float(hop["finish"]["seconds"]) > 0, hop
    assert hop["up"]["migrations"], hop


def test_rehearse_lts_jump_leaves_production_untouched(box):
    """2.8.5 -> 3.4.2 (one hop): --check says what it would do and writes nothing; the run restores
    the latest backup, times `up` and `finish`, reports them (set_stats and a JSON file beside the
    backups), drops the scratch database, and the production database's digests do not move."""
    db = box.state["postgres"]["database"]
    _backup(box)
    before = _digests(box, db)
    backups = os.path.join(box.work_dir, "sandbox", "backups")
    listing = sorted(os.listdir(backups))

    checked = _rehearse(box, "3.4.2", check=True)
    assert checked.rc == 0, _why(checked)
    said = checked.stdout
    assert "would restore it into the scratch database kong_rehearse_" in said and "nothing was changed" in said
    assert sorted(os.listdir(backups)) == listing and not _scratch_databases(box)

    run = _rehearse(box, "3.4.2")
    assert run.rc == 0, _why(run)
    report = _stats(run)
    assert report["status"] == "passed" and report["from"] == "2.8.5" and report["to"] == "3.4.2", report
    assert [h["to"] for h in report["hops"]] == ["3.4.2"]
    _assert_timed(report["hops"][0])
    assert "016_280_to_300" in report["hops"][0]["up"]["migrations"]["core"]
    assert report["restored_entities"]["services"] >= SEEDED and report["restored_entities"]["routes"] >= SEEDED
    assert float(report["migrations_downtime_seconds"]) == pytest.approx(float(report["hops"][0]["up"]["seconds"]))
    assert report["scratch_dropped"] is True and not _scratch_databases(box)
    with open(report["report"]) as fh:
        assert json.load(fh)["hops"] == report["hops"]
    assert os.path.dirname(os.path.dirname(report["report"])) == backups
    assert _digests(box, db) == before


def test_rehearse_three_hops(box):
    """3.4.2 -> 3.7.1 is three hops (3.5.x, 3.6.x between): each runs with its own binary on the
    scratch copy of a 3.4.2 database's backup (a second database on the same server), each timed."""
    pg = box.state["postgres"]
    server = _pg(box)
    source = "db342"
    server.psql(f'DROP DATABASE IF EXISTS "{source}"')
    server.psql(f'CREATE DATABASE "{source}" OWNER "{pg["user"]}"')
    box.install("3.4.2")
    work = os.path.join(box.state_dir, "three-hops")  # no "kong" in it: the password, masked in results
    os.makedirs(work, exist_ok=True)
    conf = os.path.join(work, "kong.conf")
    with open(conf, "w") as fh:
        fh.write(
            f"database = postgres\nprefix = {work}/prefix\npg_host = 127.0.0.1\npg_port = {pg['port']}\n"
            f"pg_user = {pg['user']}\npg_password = {pg['password']}\npg_database = {source}\n"
        )
    doc = {
        "_format_version": "3.0",
        "services": [{"name": f"svc{i}", "url": f"http://127.0.0.1:9/{i}", "routes": [{"name": f"r{i}", "paths": [f"/r{i}"]}]} for i in range(SEEDED)],
    }
    with open(os.path.join(work, "kong.yml"), "w") as fh:
        yaml.safe_dump(doc, fh)
    for argv in (["migrations", "bootstrap"], ["config", "db_import", os.path.join(work, "kong.yml")]):
        proc = subprocess.run([box.kong_bin("3.4.2"), *argv, "-c", conf], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    backups = os.path.join(work, "backups")
    backup = run_playbook(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - kongops.upgrade.kong_backup:\n"
        "        kinds: [database]\n        dest: '{{ dest }}'\n        pg_host: 127.0.0.1\n"
        "        pg_port: '{{ port }}'\n        pg_user: '{{ user }}'\n        pg_password: '{{ password }}'\n"
        "        pg_database: '{{ database }}'\n      register: b\n    - ansible.builtin.set_stats:\n"
        "        data: {dir: '{{ b.backup_dir }}'}\n",
        extra_vars={"dest": backups, "port": pg["port"], "user": pg["user"], "password": pg["password"], "database": source},
        env=_env(box),
    )
    assert backup.rc == 0, _why(backup)
    before = _digests(box, source)

    run = _rehearse(
        box,
        "3.7.1",
        kong_rehearse_backup=backup.data["global_custom_stats"]["dir"],
        kong_rehearse_from="3.4.2",
        kong_rehearse_hop_versions={"3.5.x": "3.5.0", "3.6.x": "3.6.1"},
    )
    assert run.rc == 0, _why(run)
    report = _stats(run)
    assert report["status"] == "passed", report
    assert [(h["from"], h["to"]) for h in report["hops"]] == [("3.4.2", "3.5.0"), ("3.5.0", "3.6.1"), ("3.6.1", "3.7.1")]
    for hop in report["hops"]:
        _assert_timed(hop)
        assert hop["binary"].endswith(f"/{hop['to']}/bin/kong")
    assert "023_360_to_370" in report["hops"][2]["up"]["migrations"]["core"]
    assert report["restored_entities"]["services"] == SEEDED and report["restored_entities"]["routes"] == SEEDED
    assert not _scratch_databases(box)
    assert _digests(box, source) == before
    server.psql(f'DROP DATABASE "{source}"')


def test_failed_rehearsal_stops_the_in_place_upgrade(box):
    """A target recorded twice in the same second (the 2.x data Kong 3.0's 016_280_to_300 cannot give one
    cache_key each): the rehearsal of 2.8.5 -> 3.4.2 inside the in-place flow reports Kong's error, drops
    its scratch database, and the run stops before any node is stopped: X still serves, the same
    processes, the production database unchanged."""
    db = box.state["postgres"]["database"]
    admin = f"http://127.0.0.1:{box.state['nodes']['x1']['admin_port']}"
    assert requests.post(f"{admin}/upstreams", json={"name": "twice"}, timeout=10).status_code == 201
    assert requests.post(f"{admin}/upstreams/twice/targets", json={"target": "10.0.0.1:80"}, timeout=10).status_code == 201
    _pg(box).psql(
        "INSERT INTO targets (id, created_at, upstream_id, target, weight, ws_id) "
        "SELECT gen_random_uuid(), created_at, upstream_id, target, weight, ws_id FROM targets "
        "WHERE target = '10.0.0.1:80'",
        database=db,
    )
    before = _digests(box, db)
    pids = {name: open(os.path.join(node["prefix"], "pids", "nginx.pid")).read() for name, node in box.state["nodes"].items() if node["group"] == "kong_x"}

    log = os.path.join(box.log_dir, "in-place-rehearsed.log")
    rc = box.upgrade("in_place", "3.4.2", extra_args=["-e", "kong_rehearse=true"], log_path=log, stream=lambda line: None)
    with open(log) as fh:
        text = fh.read()
    assert rc != 0, text[-3000:]
    with open(os.path.join(box.work_dir, "sandbox", "journal.json")) as fh:
        journal = json.load(fh)
    assert journal["status"] == "failed" and journal["failure"]["phase"] == "backup", journal.get("failure")
    reason = journal["failure"]["reason"]
    assert "rehearsal" in reason and "kong_rehearse_failure_accepted" in reason, reason
    assert "duplicate key value violates unique constraint" in reason, reason

    reports = os.path.join(box.work_dir, "sandbox", "backups", "rehearsals")
    with open(os.path.join(reports, journal["run_id"] + ".json")) as fh:
        report = json.load(fh)
    assert report["status"] == "failed" and len(report["failed"]) == 1, report
    failed = report["failed"][0]
    assert failed["failed_command"] == "finish" and "016_280_to_300" in failed["kong_output"], failed
    assert "duplicate key value violates unique constraint" in failed["kong_output"], failed
    assert report["scratch_dropped"] is True and not _scratch_databases(box)

    # nothing was stopped: the same X processes serve through the load balancer
    assert {name: open(os.path.join(box.state["nodes"][name]["prefix"], "pids", "nginx.pid")).read() for name in pids} == pids
    resp = requests.get(f"http://127.0.0.1:{box.lb_port}/echo", headers={"apikey": "demo-key"}, timeout=5)
    assert resp.status_code == 200 and "kong/2.8.5" in resp.headers.get("Via", "")
    assert _digests(box, db) == before
