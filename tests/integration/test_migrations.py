"""kong_migrations end to end: simulated Kong 2.8.5 and 3.4.2 nodes (tests/kongsim) on real PostgreSQL,
the module run through ansible-playbook, the database read back independently with psql (from the
test, and from `psql` tasks between module tasks inside a play).

Expected names are FACTS.md section 2.3 (2.8.5 -> 3.4.2), not the simulator's catalog.
"""

from __future__ import annotations

import os
import re
import sys
import threading

import pytest
import yaml

from tests.integration.ansible_run import run_playbook

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "kongsim"))
from kongsim_testlib import KongNode, install_kong

MODULE = "kongops.upgrade.kong_migrations"
# Not "kong": Ansible masks no_log values (kong_env, pg_password) wherever they appear in output.
DB_OWNER, DB_PASSWORD = "mig_owner", "Mig-7f3e-pw"
SCHEMA_META_SQL = "SELECT subsystem, array_to_string(executed, ','), array_to_string(pending, ',') FROM schema_meta ORDER BY subsystem"
# FACTS 2.2 / 2.3
CORE_285 = [
    "000_base", "003_100_to_110", "004_110_to_120", "005_120_to_130", "006_130_to_140", "007_140_to_150",
    "008_150_to_200", "009_200_to_210", "010_210_to_211", "011_212_to_213", "012_213_to_220", "013_220_to_230",
    "014_230_to_270", "015_270_to_280",
]  # fmt: skip
NEW_285_342 = {
    "core": [
        "016_280_to_300",
        "017_300_to_310",
        "018_310_to_320",
        "019_320_to_330",
        "020_330_to_340",
    ],
    "acme": ["001_280_to_300", "002_320_to_330"],
    "http-log": ["001_280_to_300"],
    "key-auth": ["004_320_to_330"],
    "oauth2": ["006_320_to_330", "007_320_to_330"],
    "post-function": ["001_280_to_300"],
    "pre-function": ["001_280_to_300"],
    "rate-limiting": ["005_320_to_330"],
    "session": ["002_320_to_330"],
}
PENDING_285_342 = {
    "core": ["016_280_to_300"],
    "http-log": ["001_280_to_300"],
    "post-function": ["001_280_to_300"],
    "pre-function": ["001_280_to_300"],
}
# `up` records executed migrations in order; `finish` appends the pending ones afterwards (FACTS 2.1).
CORE_AFTER_UP = CORE_285 + NEW_285_342["core"][1:]
CORE_AFTER_FINISH = CORE_AFTER_UP + ["016_280_to_300"]


def parse_schema_meta(text: str) -> dict:
    rows = {}
    for line in text.strip().splitlines():
        sub, executed, pending = line.split("|")
        rows[sub] = (
            executed.split(",") if executed else [],
            pending.split(",") if pending else [],
        )
    return rows


def pending_of(rows: dict) -> dict:
    return {sub: pend for sub, (_executed, pend) in rows.items() if pend}


@pytest.fixture(scope="module")
def kong_bins(tmp_path_factory):
    base = tmp_path_factory.mktemp("kong-installs")
    return {v: install_kong(v, str(base / v)) for v in ("2.8.5", "3.4.2")}


class Cluster:
    """One database and Kong nodes on it; kong.conf holds no password (it goes through KONG_PG_PASSWORD)."""

    def __init__(self, postgres, bins, base, name):
        self.postgres = postgres
        self.db = postgres.create_database(name, owner=DB_OWNER, password=DB_PASSWORD)
        self.bins, self.base = bins, base
        self.nodes: list = []

    @property
    def env(self):
        return {"KONG_PG_PASSWORD": self.db["password"]}

    def node(self, version, name, **settings):
        conf = {"database": "postgres", "pg_host": self.db["host"], "pg_port": self.db["port"],
                "pg_user": self.db["user"], "pg_database": self.db["database"]}  # fmt: skip
        conf.update(settings)
        node = KongNode(self.bins[version], self.base, name=name, **conf)
        self.nodes.append(node)
        return node

    def bootstrap(self, node):
        res = node.cli("migrations", "bootstrap", "-c", node.conf_path, env=self.env)
        assert res.returncode == 0, res.stdout + res.stderr

    def args(self, node, state, pg=True, **extra):
        args = {
            "state": state,
            "kong_bin": node.kong_bin,
            "kong_conf": node.conf_path,
            "kong_env": self.env,
        }
        if pg:
            args.update(
                pg_host=self.db["host"], pg_port=self.db["port"], pg_user=self.db["user"],
                pg_password=self.db["password"], pg_database=self.db["database"],
            )  # fmt: skip
        args.update(extra)
        return args

    def task(self, name, args, **keys):
        return {"name": name, MODULE: args, "ignore_errors": True, **keys}

    def probe(self, name):
        """A psql task reading schema_meta as the superuser, independent of the collection."""
        argv = [
            "psql", "-X", "-q", "-t", "-A", "-h", self.postgres.socket_dir, "-p", str(self.postgres.port),
            "-U", self.postgres.superuser, "-d", self.db["database"], "-c", SCHEMA_META_SQL,
        ]  # fmt: skip
        return {
            "name": name,
            "ansible.builtin.command": {"argv": argv},
            "check_mode": False,
            "changed_when": False,
        }

    def schema_meta(self) -> dict:
        return parse_schema_meta(self.postgres.psql(SCHEMA_META_SQL, database=self.db["database"]))

    def stop(self):
        for node in self.nodes:
            node.stop()


@pytest.fixture
def cluster(postgres, kong_bins, tmp_path, request):
    name = "kong_mig_" + re.sub(r"\W", "_", request.node.name[5:40]).lower()
    c = Cluster(postgres, kong_bins, str(tmp_path), name)
    yield c
    c.stop()


def play(tasks, inventory=None, hosts="localhost"):
    """Run tasks in one play; returns {task name: result} (first host)."""
    pb = [
        {
            "name": "kong_migrations",
            "hosts": hosts,
            "gather_facts": False,
            "tasks": tasks,
        }
    ]
    run = run_playbook(yaml.safe_dump(pb, sort_keys=False), inventory=inventory)
    assert run.data, run.stdout[-3000:] + run.stderr[-3000:]
    return {t["name"]: run.result(t["name"]) for t in tasks}


def schema_meta_of(probe_result) -> dict:
    assert probe_result["rc"] == 0, probe_result
    return parse_schema_meta(probe_result["stdout"])


def test_285_bootstrapped_then_342_up_finished_current(cluster):
    x = cluster.node("2.8.5", "x")
    y = cluster.node("3.4.2", "y")

    r = play([
        cluster.task("bootstrap", cluster.args(x, "bootstrapped")),
        cluster.task("bootstrap again", cluster.args(x, "bootstrapped")),
    ])  # fmt: skip
    boot = r["bootstrap"]
    assert boot["changed"] is True and boot["before"]["status"] == "needs_bootstrap", boot.get("msg")
    assert boot["status"] == "current" and boot["schema_meta_checked"] is True and boot["status_checked"] is False
    assert r["bootstrap again"]["changed"] is False and "already" in r["bootstrap again"]["msg"]
    assert cluster.schema_meta()["core"] == (CORE_285, [])
    x.start(env=cluster.env)

    r = play([
        cluster.task("list", cluster.args(y, "list")),
        cluster.probe("before check"),
        cluster.task("check up", cluster.args(y, "up"), check_mode=True, diff=True),
        cluster.probe("after check"),
        cluster.task("up", cluster.args(y, "up")),
        cluster.probe("after up"),
        cluster.task("up again", cluster.args(y, "up")),
    ])  # fmt: skip
    assert r["list"]["changed"] is False and r["list"]["status"] == "new"
    assert r["list"]["before"]["new"] == NEW_285_342 and r["list"]["status_checked"] is True
    check = r["check up"]
    assert check["changed"] is True and check["plan"] == [{"command": "up", "migrations": NEW_285_342}]
    assert check["after"] is None and not [c for c in check["commands"] if c["cmd"][2] == "up"]
    assert schema_meta_of(r["after check"]) == schema_meta_of(r["before check"])
    up = r["up"]
    assert up["changed"] is True and up["ran"] == ["up"], up["msg"]
    assert up["after"]["pending"] == PENDING_285_342 and up["after"]["new"] == {}
    after_up = schema_meta_of(r["after up"])
    assert pending_of(after_up) == PENDING_285_342 and after_up["core"][0] == CORE_AFTER_UP
    ran_pending = {s: [e["name"] for e in v if e["state"] == "pending"] for s, v in up["migrated"].items()}
    assert {s: n for s, n in ran_pending.items() if n} == PENDING_285_342
    assert all(cluster.db["password"] not in " ".join(c["cmd"]) for c in up["commands"])
    again = r["up again"]
    assert again["changed"] is False and "already up" in again["msg"] and "state=finished" in again["msg"]
    assert pending_of(cluster.schema_meta()) == PENDING_285_342

    y.start(env=cluster.env)
    gate = {"finish_gate_nodes": [x.admin_url, y.admin_url]}
    r = play([cluster.task("finish while x runs 2.8.5", cluster.args(y, "finished", **gate))])
    refused = r["finish while x runs 2.8.5"]
    assert refused.get("failed") is True
    assert f"{x.admin_url} (runs 2.8.5, older than 3.4.2)" in refused["msg"]
    assert y.admin_url + " (" not in refused["msg"]
    assert [n["verdict"] for n in refused["finish_gate"]["nodes"]] == ["older", "ok"]
    assert pending_of(cluster.schema_meta()) == PENDING_285_342

    x.stop()
    absent = dict(gate, finish_gate_unreachable="absent")
    reruns = ("current", "finished", "up", "bootstrapped", "list")
    r = play([
        cluster.task("finish, x unreachable", cluster.args(y, "finished", **gate)),
        cluster.probe("before check finish"),
        cluster.task("check finish", cluster.args(y, "finished", **absent), check_mode=True, diff=True),
        cluster.probe("after check finish"),
        cluster.task("finish", cluster.args(y, "finished", **absent)),
        cluster.probe("after finish"),
    ] + [cluster.task(f"rerun {s}", cluster.args(y, s, **absent)) for s in reruns])  # fmt: skip
    still = r["finish, x unreachable"]
    assert still.get("failed") is True and still["finish_gate"]["nodes"][0]["verdict"] == "unreachable"
    check = r["check finish"]
    assert check["changed"] is True and check["after"]["status"] == "current"
    assert check["diff"]["after"] == {"status": "current", "pending": {}, "new": {}}
    assert schema_meta_of(r["after check finish"]) == schema_meta_of(r["before check finish"])
    assert pending_of(schema_meta_of(r["after check finish"])) == PENDING_285_342
    finished = r["finish"]
    assert finished["changed"] is True and finished["ran"] == ["finish"], finished["msg"]
    assert [n["verdict"] for n in finished["finish_gate"]["nodes"]] == ["absent", "ok"]
    assert finished["status"] == "current" and finished["entity_counts"]["services"] == 0
    after_finish = schema_meta_of(r["after finish"])
    assert pending_of(after_finish) == {} and after_finish["core"][0] == CORE_AFTER_FINISH
    assert after_finish["http-log"] == (["001_280_to_300"], [])
    for state in reruns:
        rerun = r[f"rerun {state}"]
        assert rerun["changed"] is False and rerun["status"] == "current", (
            state,
            rerun.get("msg"),
        )
        assert not [c for c in rerun["commands"] if c["cmd"][2] in ("up", "finish", "bootstrap")], state
    assert cluster.schema_meta() == after_finish


def test_current_from_new_runs_up_and_finish_without_pg_options(cluster):
    x = cluster.node("2.8.5", "x")
    y = cluster.node("3.4.2", "y")
    cluster.bootstrap(x)
    r = play([
        cluster.task("check current", cluster.args(y, "current", pg=False), check_mode=True),
        cluster.probe("after check"),
        cluster.task("current", cluster.args(y, "current", pg=False, db_timeout=30, lock_timeout=30)),
    ])  # fmt: skip
    check = r["check current"]
    assert [s["command"] for s in check["plan"]] == ["up", "finish"] and check["after"]["status"] == "current"
    assert pending_of(schema_meta_of(r["after check"])) == {}
    assert schema_meta_of(r["after check"])["core"][0] == CORE_285
    res = r["current"]
    assert res["changed"] is True and res["ran"] == ["up", "finish"], res["msg"]
    assert res["schema_meta_checked"] is False and res["entity_counts"] is None
    up = next(c["cmd"] for c in res["commands"] if c["cmd"][2] == "up")
    assert up[3:7] == ["--db-timeout", "30", "--lock-timeout", "30"]
    assert pending_of(cluster.schema_meta()) == {} and cluster.schema_meta()["core"][0] == CORE_AFTER_FINISH


def two_hosts(cluster, nodes, state, pg):
    """Both hosts of one play run the module at the same time (forks)."""
    inventory = "\n".join(f"{n.name} ansible_connection=local" for n in nodes) + "\n"
    per_host = {n.name: cluster.args(n, state, pg=pg, lock_timeout=30) for n in nodes}
    task_args = {key: f"{{{{ per_host[inventory_hostname]['{key}'] }}}}" for key in per_host[nodes[0].name]}
    pb = [
        {
            "name": "two nodes",
            "hosts": "all",
            "gather_facts": False,
            "vars": {"per_host": per_host},
            "tasks": [{"name": state, MODULE: task_args, "ignore_errors": True}],
        }
    ]
    run = run_playbook(yaml.safe_dump(pb, sort_keys=False), inventory=inventory)
    assert run.data, run.stdout[-3000:] + run.stderr[-3000:]
    return {n.name: run.result(state, n.name) for n in nodes}


@pytest.mark.parametrize("pg", [True, False], ids=["with-schema-meta", "kong-cli-only"])
def test_two_concurrent_up_exactly_one_migrates(cluster, pg):
    cluster.bootstrap(cluster.node("2.8.5", "x"))
    results = two_hosts(cluster, [cluster.node("3.4.2", "y1"), cluster.node("3.4.2", "y2")], "up", pg)
    assert all(not r.get("failed") for r in results.values()), {k: r.get("msg") for k, r in results.items()}
    changed = [name for name, r in results.items() if r["changed"]]
    assert len(changed) == 1, {k: (r["changed"], r["msg"]) for k, r in results.items()}
    for r in results.values():
        assert r["status"] == "pending" and r["after"]["pending"] == PENDING_285_342 and r["after"]["new"] == {}
    loser = results[({"y1", "y2"} - set(changed)).pop()]
    assert loser["ran"] == [] and loser["migrated"] == {}
    # Either Kong's lock (aborted), Kong refusing `up` over the winner's pending ones, or it came late.
    assert loser["lock_aborted"] or loser["concurrent"] or loser["before"]["status"] == "pending", loser["msg"]
    if loser["concurrent"]:
        assert loser["msg"].startswith("another node ") and "the database is now 'pending'" in loser["msg"]
    # Two runners appending to schema_meta arrays would duplicate names.
    rows = cluster.schema_meta()
    assert pending_of(rows) == PENDING_285_342 and rows["core"][0] == CORE_AFTER_UP


def test_two_playbook_processes_at_once(cluster):
    cluster.bootstrap(cluster.node("2.8.5", "x"))
    nodes = [cluster.node("3.4.2", "y1"), cluster.node("3.4.2", "y2")]
    results: dict = {}
    barrier = threading.Barrier(2)

    def one(node):
        barrier.wait()
        r = play([cluster.task("current", cluster.args(node, "current", lock_timeout=30))])
        results[node.name] = r["current"]

    threads = [threading.Thread(target=one, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert all(not r.get("failed") for r in results.values()), {k: r.get("msg") for k, r in results.items()}
    for r in results.values():
        assert r["status"] == "current" and r["after"]["pending"] == {} and r["after"]["new"] == {}
    ups = [name for name, r in results.items() if "up" in r["ran"]]
    assert len(ups) == 1, {k: (r["ran"], r["msg"]) for k, r in results.items()}
    rows = cluster.schema_meta()
    assert pending_of(rows) == {} and rows["core"][0] == CORE_AFTER_FINISH


def test_errors_name_kongs_error_line(cluster, tmp_path):
    y = cluster.node("3.4.2", "y")
    cluster.bootstrap(y)
    down = cluster.node("3.4.2", "down", pg_port=1)
    other = cluster.postgres.create_database("kong_mig_other", owner=DB_OWNER, password=DB_PASSWORD)
    o = KongNode(
        cluster.bins["2.8.5"], cluster.base, name="o", database="postgres", pg_host=other["host"],
        pg_port=other["port"], pg_user=other["user"], pg_password=other["password"], pg_database=other["database"],
    )  # fmt: skip
    assert o.cli("migrations", "bootstrap", "-c", o.conf_path).returncode == 0
    before = cluster.schema_meta()

    r = play([
        cluster.task("wrong password", cluster.args(y, "list", pg=False, kong_env={"KONG_PG_PASSWORD": "not-it"})),
        cluster.task("database down", cluster.args(down, "up", pg=False)),
        cluster.task("no kong", cluster.args(y, "list", pg=False, kong_bin=str(tmp_path / "no" / "kong"))),
        cluster.task("pg options name another database", cluster.args(y, "up", pg_database=other["database"])),
    ])  # fmt: skip
    wrong = r["wrong password"]
    assert wrong.get("failed") is True and wrong["rc"] == 1
    assert "password authentication failed" in wrong["msg"] and "KONG_PG_PASSWORD" in wrong["msg"]
    assert "not-it" not in str(wrong)
    unreachable = r["database down"]
    assert unreachable.get("failed") is True and "[PostgreSQL error]" in unreachable["msg"]
    assert "unreachable" in unreachable["msg"]
    missing = r["no kong"]
    assert missing.get("failed") is True and "kong_bin" in missing["msg"] and "not found" in missing["msg"]
    mismatch = r["pg options name another database"]
    assert mismatch.get("failed") is True and "disagree" in mismatch["msg"], mismatch["msg"]
    assert other["database"] in mismatch["msg"] and "kong migrations list" in mismatch["msg"]
    assert cluster.schema_meta() == before
