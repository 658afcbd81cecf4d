"""Faults injected at a precise point of an in-place upgrade (tracker issue 25), on one traditional
sandbox shared by the cases: real PostgreSQL, real HAProxy, simulated Kong nodes, the collection's
playbook. Each hook is a condition the test watches for (a file a wrapper writes, a lock wait in
``pg_locks``, a phase in the journal), never a sleep; each case then asserts from the outside: the
requests the clients sent, schema_meta and the table digests of the database, the freeze lock,
the journal and the message.

The cases run in this order on the same sandbox (3.6.1 -> 3.7.1), each starting from X serving:
1. PostgreSQL restarts while ``pg_dump`` takes the backup; then the backup destination fills up while
   ``pg_dump`` writes;
2. PostgreSQL restarts in the middle of ``kong migrations up`` (core migrated, ai-proxy not);
3. the post-start verification finds an entity missing (a route lost after the backup);
4. PostgreSQL restarts in the middle of ``kong migrations finish``; then ``--tags finish`` resumes;
5. secrets kept: every run above runs at ``-vvv --diff`` with the sandbox's distinctive secrets (the
   database password, the DBA restore password, an Admin API token); none of them appears in any
   output, any file the runs left in the work directory, or any process's command line sampled during
   the runs, and every file holding credentials is 0600.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import stat
import subprocess
import time

import psycopg2
import pytest
import requests

from tests.integration.faults import CmdlineSampler, Hook, _failure, _journal, _log, _versions, leaks, loose_files
from tests.loadgen import NOT_SENT, LoadGenerator
from tests.sandbox import procs
from tests.sandbox.core import ADMIN_TOKEN, PG_PASSWORD, Sandbox, haproxy_servers_settled
from tests.sandbox.render import DEMO_KEY
from tests.sandbox.seed import seed_services
from tests.services.postgres import PG_BIN, SUPERUSER_PASSWORD, PostgresServer

X, Y = "3.6.1", "3.7.1"
SEEDED = 50  # services, each with a route


SECRETS = (PG_PASSWORD, SUPERUSER_PASSWORD, ADMIN_TOKEN)
# One setting Y's kong.conf gets that X's has not: the first run that installs Y changes kong.conf (which
# holds pg_password), so --diff shows it and kong_conf leaves a backup of the file beside it.
CONF_CHANGE = json.dumps({"kong_node_conf": {"log_level": "notice"}})


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    sandbox = Sandbox(state_dir=str(base / "sb"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
    sandbox.log_dir = str(base)
    try:
        sandbox.up(mode="traditional", kong_x=X)
        admin = f"http://127.0.0.1:{sandbox.state['nodes']['x1']['admin_port']}"
        seed_services(admin, SEEDED)
        sandbox.install(Y)
        sandbox.cmdlines = CmdlineSampler(sandbox.state_dir, SECRETS)
        sandbox.cmdlines.start()
        yield sandbox
    finally:
        if getattr(sandbox, "cmdlines", None):
            sandbox.cmdlines.stop.set()
        sandbox.down()


# ---------------------------------------------------------------------------------------------- helpers


def _pg(box: Sandbox) -> PostgresServer:
    pg = box.state["postgres"]
    return PostgresServer(pg["dir"], pg["port"])


def _crash_and_restart_postgres(box: Sandbox) -> None:
    """PostgreSQL stops at once (`pg_ctl stop -m immediate`: every session is cut, as a crash or an
    OOM kill does) and its supervisor starts it again (crash recovery)."""
    server = _pg(box)
    subprocess.run(
        server._as + [os.path.join(PG_BIN, "pg_ctl"), "-D", server.data_dir, "-m", "immediate", "-w", "stop"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server.start()


def _hold(box: Sandbox, sql: str):
    """A superuser session holding the locks of ``sql`` in an open transaction."""
    pg = box.state["postgres"]
    conn = psycopg2.connect(host=pg["dir"], port=pg["port"], user="postgres", dbname=pg["database"])
    conn.cursor().execute(sql)
    return conn


def _lock_waiters(box: Sandbox) -> int:
    return int(_pg(box).psql("SELECT count(*) FROM pg_locks WHERE NOT granted", database=box.state["postgres"]["database"]))


def _run_id(box: Sandbox) -> str | None:
    try:
        return _journal(box).get("run_id")
    except (OSError, ValueError):
        return None


def _phases_of_a_new_run(box: Sandbox, earlier: str | None) -> dict:
    """The phases the journal records, once it is a new run's (the earlier run's journal stays until then)."""
    journal = _journal(box)
    return (journal.get("phases") or {}) if journal.get("run_id") != earlier else {}


def _lock_path(box: Sandbox) -> str:
    return os.path.join(box.work_dir, "sandbox", "freeze.lock.json")


def _upgrade(box: Sandbox, *extra: str, env: dict | None = None) -> int:
    """One run of playbooks/in_place_upgrade.yml at -vvv with --diff (the secrets test sweeps every log)."""
    box.last_log = os.path.join(box.log_dir, f"upgrade-{len(os.listdir(box.log_dir))}.log")
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        return box.upgrade("in_place", Y, extra_args=["-vvv", "--diff", "-e", CONF_CHANGE, *extra], log_path=box.last_log, stream=lambda line: None)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.25)


def _served_by(box: Sandbox) -> str:
    resp = requests.get(f"http://127.0.0.1:{box.lb_port}/echo", headers={"apikey": "demo-key"}, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.headers.get("Via", "")


def _database(box: Sandbox) -> dict:
    """schema_meta and a digest of every table of Kong's schema, read as the superuser."""
    server, db = _pg(box), box.state["postgres"]["database"]
    tables = server.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", database=db).split()
    digests = {
        t: server.psql(f"SELECT count(*) || ':' || md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) FROM public.{t} t", database=db)
        for t in tables
        if t not in ("locks", "cluster_events", "clustering_data_planes", "schema_meta")
    }
    return {"schema_meta": box.schema_meta(), "tables": digests}


def _same_tables(before: dict, after: dict) -> None:
    """Every table of X holds the same rows; a table Y's migrations created (clustering_rpc_requests in
    3.7) is empty."""
    assert {t: after["tables"].get(t) for t in before["tables"]} == before["tables"]
    added = {t: d for t, d in after["tables"].items() if t not in before["tables"]}
    assert all(d.startswith("0:") for d in added.values()), added


def _back_in_haproxy(box: Sandbox) -> None:
    """Kong's /status/ready connects to the database (Kong/kong 3.9.3 kong/status/ready.lua:73-80), so
    HAProxy's health checks may take the nodes out while PostgreSQL restarts; they are back after
    `rise` checks (2 x 1 s) once it answers again."""
    _wait(
        lambda: all(v["status"] == "UP" for v in haproxy_servers_settled(box.state["haproxy"]["socket"]).values() if v["weight"] > 0),
        15,
        "the nodes back in HAProxy after the restart",
    )


def _failed_after_the_restart(load: LoadGenerator, restart: dict) -> list:
    """The requests that failed once PostgreSQL answered again and the health checks had their `rise`
    (2 x 1 s, and 1 s for the check in flight). While it was down the load balancer may have taken the
    nodes out, as it would in front of Kong."""
    return [(r.status, r.error) for r in load.records if not r.ok and r.error != NOT_SENT and r.wall >= restart["back"] + 3.0]


def _x_serves(box: Sandbox) -> None:
    assert _versions(box) == {"x1": X, "x2": X, "x3": X}, f"not every node runs X: {_versions(box)}"
    assert f"kong/{X}" in _served_by(box)
    assert not os.path.exists(_lock_path(box)), "the freeze lock was left behind"


def _pg_dump_wrapper(tmp_path, real: str) -> tuple[str, str, str]:
    """A `pg_dump` first on PATH: at the dump itself (not `--version`) it says so and waits for the test."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    started, go = tmp_path / "dump-started", tmp_path / "dump-go"
    wrapper = bindir / "pg_dump"
    wrapper.write_text(f'#!/bin/sh\ncase " $* " in *" --file "*) touch {started}; while [ ! -e {go} ]; do sleep 0.05; done;; esac\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    return str(bindir), str(started), str(go)


def _upgrade_with_pg_dump_fault(box: Sandbox, tmp_path, fault, linger=lambda: None) -> tuple:
    """The upgrade under load, with ``fault()`` injected the moment pg_dump starts to write the dump (pg_dump
    goes on after it); ``linger()`` keeps the load going after the run. Returns (rc, load, summary)."""
    bindir, started, go = _pg_dump_wrapper(tmp_path, shutil.which("pg_dump"))

    def inject():
        fault()
        open(go, "w").close()

    hook = Hook(lambda: os.path.exists(started), inject)
    hook.start()
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=50, headers={"apikey": "demo-key"}).start()
    try:
        rc = _upgrade(box, env={"PATH": bindir + os.pathsep + os.environ["PATH"]})
        linger()
    finally:
        summary = load.stop()
        hook.done()
    assert hook.fired, "the backup never ran pg_dump: the fault was not injected\n" + _failure(box)
    return rc, load, summary


# ---------------------------------------------------------------------------------------------- cases


def test_postgres_restart_during_the_backup_changes_nothing_and_the_rerun_is_clean(box, tmp_path):
    """PostgreSQL restarts while pg_dump is about to read the snapshot the backup's manifest was
    counted from: the backup fails as a whole (no partial dump, no manifest), the run stops in
    phase backup before any node changed, writes are thawed, no request failed but while PostgreSQL was down
    (Kong reports itself not ready without its database, and the load balancer may take it out)."""
    before = _database(box)
    restart = {}

    def fault():
        restart["crash"] = time.time()
        _crash_and_restart_postgres(box)
        restart["back"] = time.time()

    def linger():
        # the load goes on until the health checks have had their rise after the restart, and beyond
        if "back" in restart:
            time.sleep(max(0.0, restart["back"] + 5.0 - time.time()))

    rc, load, summary = _upgrade_with_pg_dump_fault(box, tmp_path, fault, linger)
    assert rc != 0
    journal = _journal(box)
    assert journal["status"] == "failed" and journal["failure"]["phase"] == "backup", journal.get("failure")
    assert "pg_dump" in journal["failure"]["reason"], journal["failure"]
    run_id = journal["run_id"]
    assert journal.get("thawed") is True
    assert set((journal.get("nodes") or {}).values()) <= {"pending"}, journal.get("nodes")
    assert not (journal.get("backup") or {}).get("manifest")
    # no partial backup: nothing of this run under the backups directory
    leftovers = glob.glob(os.path.join(box.work_dir, "sandbox", "backups", journal["run_id"] + "*"))
    assert not [p for p in leftovers if not p.endswith("-declarative.yml")], leftovers
    assert not glob.glob(os.path.join(box.work_dir, "sandbox", "backups", "**", "*.partial*"), recursive=True)
    log = _log(box)
    assert "Re-run the same playbook to resume" in log and "Configuration writes were thawed" in log
    _back_in_haproxy(box)
    _x_serves(box)
    assert _database(box) == before
    assert summary.get("not_sent", 0) == 0 and summary["total"] > 0
    assert [r for r in load.records if r.wall >= restart["back"] + 3.0], "no request after the restart"
    failed = [(r.status, r.error) for r in load.records if not r.ok and r.error != NOT_SENT and r.wall < restart["crash"]] + _failed_after_the_restart(
        load, restart
    )
    assert not failed, f"{len(failed)} of {summary['total']} requests failed outside the restart: {failed[:5]}"

    # writes were thawed, so one lands on X now; the re-run must freeze and back up again, or a rollback
    # would restore a backup without it (freeze and backup only: the run stays open for the next test)
    admin = f"http://127.0.0.1:{box.state['nodes']['x1']['admin_port']}"
    made = requests.post(f"{admin}/services", json={"name": "after-thaw", "url": "http://127.0.0.1:9/t"}, timeout=5)
    assert made.status_code == 201, made.text
    assert _upgrade(box, "--tags", "freeze,backup") == 0, _failure(box)
    assert "Writes are frozen again and the cluster is backed up again" in _log(box)
    journal = _journal(box)
    assert journal["run_id"] == run_id and journal.get("thawed") is False and journal["phases"].get("freeze")
    with open(journal["backup"]["manifest"]) as fh:
        tables = json.load(fh)["database"]["tables"]
    assert tables["services"]["rows"] == int(before["tables"]["services"].split(":")[0]) + 1, tables["services"]
    with open(_lock_path(box)) as fh:
        assert json.load(fh)["run_id"] == run_id, "writes are not frozen again"
    # the next test starts with no run open: this one is set aside as a finished run would be
    os.remove(_lock_path(box))
    os.replace(os.path.join(box.work_dir, "sandbox", "journal.json"), os.path.join(box.work_dir, "sandbox", f"journal-{run_id}.json"))


def _backups_dir(box: Sandbox) -> str:
    return os.path.join(box.work_dir, "sandbox", "backups")


def _fill(path: str, leave: int) -> None:
    """Fills the file system of ``path`` with one file until ``leave`` bytes are left."""
    st = os.statvfs(path)
    size = st.f_bavail * st.f_frsize - leave
    with open(os.path.join(path, "filler"), "wb") as fh:
        block = b"\0" * (1 << 20)
        while size > 0:
            size -= fh.write(block[: min(size, len(block))])


def test_the_backup_destination_filling_up_during_the_dump_leaves_no_partial_backup_and_changes_nothing(box, tmp_path):
    """The backups' file system (a 64 MiB tmpfs mounted on the backups directory, with room enough when
    the backup starts) fills up the moment pg_dump starts to write: the backup fails as a whole (no
    partial dump or run directory, no manifest), the message names the full destination and what to do,
    the run stops in phase backup before any node changed, writes are thawed, and no request failed."""
    before = _database(box)
    backups = _backups_dir(box)
    os.makedirs(backups, mode=0o700, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "kongops-backups-full", backups], check=True)
    try:
        rc, load, summary = _upgrade_with_pg_dump_fault(box, tmp_path, lambda: _fill(backups, leave=4096))
        assert rc != 0
        journal = _journal(box)
        assert journal["status"] == "failed" and journal["failure"]["phase"] == "backup", journal.get("failure")
        reason = journal["failure"]["reason"]
        assert f"the backup destination {backups} filled up while the backup was written" in reason, reason
        assert "No space left on device" in reason and "the partial backup was removed" in reason, reason
        assert journal.get("thawed") is True
        assert set((journal.get("nodes") or {}).values()) <= {"pending"}, journal.get("nodes")
        assert not (journal.get("backup") or {}).get("manifest")
        # nothing of the run is left on the full file system but the test's own filler
        assert os.listdir(backups) == ["filler"], os.listdir(backups)
        log = _log(box)
        assert "Re-run the same playbook to resume" in log and "Configuration writes were thawed" in log
        _x_serves(box)
        assert _database(box) == before
        assert summary.get("not_sent", 0) == 0 and summary["total"] > 0
        failed = [(r.status, r.error) for r in load.records if not r.ok]
        assert not failed, f"{len(failed)} of {summary['total']} requests failed: {failed[:5]}"
    finally:
        subprocess.run(["umount", backups], check=False)
    # the next test starts with no run open: this one is set aside as a finished run would be
    run_id = _journal(box)["run_id"]
    os.replace(os.path.join(box.work_dir, "sandbox", "journal.json"), os.path.join(box.work_dir, "sandbox", f"journal-{run_id}.json"))


def _blocked_by(box: Sandbox, holder) -> int:
    """How many sessions wait for a lock the holder's session holds."""
    return int(
        _pg(box).psql(
            f"SELECT count(*) FROM pg_stat_activity WHERE {holder.get_backend_pid()} = ANY(pg_blocking_pids(pid))", database=box.state["postgres"]["database"]
        )
    )


def _release(holder) -> None:
    try:
        holder.close()
    except psycopg2.Error:
        pass


def _outage(load: LoadGenerator, ended: float) -> list:
    """The failed requests; every one of them must fall inside the run (X or Y serves when it ends)."""
    failed = [r for r in load.records if not r.ok and r.error != NOT_SENT]
    late = [(r.status, r.error) for r in failed if r.wall > ended]
    assert not late, f"requests still failed after the run ended: {late[:5]}"
    return failed


def test_postgres_restart_in_the_middle_of_migrations_up_restores_the_backup(box):
    """core's 023_360_to_370 is committed, ai-proxy's 001_360_to_370 waits to record itself (a row
    of the same key, uncommitted, holds it), and PostgreSQL restarts right then: `up` fails midway,
    the rollback restores the verified backup and starts X; schema_meta and every table equal the
    state before the run, writes are thawed, the journal says rolled_back."""
    _x_serves(box)
    before = _database(box)
    holder = _hold(box, "INSERT INTO schema_meta (key, subsystem) VALUES ('schema_meta', 'ai-proxy')")
    seen = {}

    def fault():
        seen["core"] = box.schema_meta()["core"][0]
        _crash_and_restart_postgres(box)

    hook = Hook(lambda: _blocked_by(box, holder) > 0, fault)
    hook.start()
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=50, headers={"apikey": "demo-key"}, timeout=2).start()
    try:
        rc = _upgrade(box)
        ended = time.time()
    finally:
        summary = load.stop()
        hook.done()
        _release(holder)
    assert hook.fired, "migrations up never waited on ai-proxy's row: the fault was not injected\n" + _failure(box)
    assert "023_360_to_370" in seen["core"], "the fault hit before core's migration: not midway"
    assert rc != 0
    journal = _journal(box)
    assert journal["status"] == "rolled_back", (journal.get("failure"), _failure(box))
    assert journal["failure"]["phase"] == "upgrade" and journal["failure"]["restore"] is True, journal["failure"]
    assert journal["rollback"]["restored"] is True, journal["rollback"]
    assert journal.get("thawed") is True
    assert "rolled back to 3.6.1 from the database backup" in _log(box)
    _x_serves(box)
    assert _database(box) == before
    assert summary["total"] > 0 and _outage(load, ended), "X stopped for `up`: the clients must have seen it"


def test_an_entity_missing_at_the_verification_restores_the_backup(box):
    """A route disappears from the database after the backup (as a faulty migration would drop it):
    Y starts, and the verification finds one route fewer than the backup. The run must not restart X
    on that database (the route would stay lost): it restores the verified backup, X serves, every
    table equals the state before the run, writes are thawed."""
    _x_serves(box)
    before = _database(box)
    db = box.state["postgres"]["database"]
    earlier = _run_id(box)
    hook = Hook(lambda: "backup" in _phases_of_a_new_run(box, earlier), lambda: _pg(box).psql("DELETE FROM routes WHERE name = 'r7'", database=db))
    hook.start()
    try:
        rc = _upgrade(box)
    finally:
        hook.done()
    assert hook.fired, "the run never recorded its backup: the fault was not injected\n" + _failure(box)
    assert rc != 0
    journal = _journal(box)
    assert journal["status"] == "rolled_back", (journal.get("failure"), _failure(box))
    failure = journal["failure"]
    assert failure["phase"] == "watch" and "routes:" in failure["reason"] and "in the backup" in failure["reason"], failure
    assert failure["restore"] is True and journal["rollback"]["restored"] is True, (failure, journal.get("rollback"))
    assert journal.get("thawed") is True
    _x_serves(box)
    assert _database(box) == before, "the route lost after the backup is not back"


def test_postgres_restart_in_the_middle_of_migrations_finish_keeps_y_and_the_freeze_then_resumes(box):
    """After `up`, a session holds ai-proxy's schema_meta row (FOR UPDATE); `finish` runs ai-proxy's
    teardown and waits to record it, and PostgreSQL restarts right then. The point of no return was
    being passed: no restore; Y keeps serving through the restart (no request fails from the crash
    on), the run stops with writes left frozen and the lock named, and says to re-run with
    --tags finish, which then completes the run and thaws."""
    _x_serves(box)
    before = _database(box)
    state = {}
    earlier = _run_id(box)

    def ready():
        if "holder" not in state:
            if "up" not in _phases_of_a_new_run(box, earlier):
                return False
            state["holder"] = _hold(box, "SELECT 1 FROM schema_meta WHERE key = 'schema_meta' AND subsystem = 'ai-proxy' FOR UPDATE")
        return _blocked_by(box, state["holder"]) > 0

    def fault():
        state["crash"] = time.time()
        _crash_and_restart_postgres(box)
        state["back"] = time.time()

    hook = Hook(ready, fault)
    hook.start()
    load = LoadGenerator(f"http://127.0.0.1:{box.lb_port}/echo", rate=50, headers={"apikey": "demo-key"}, timeout=2).start()
    try:
        rc = _upgrade(box)
        # the load goes on until the health checks have had their rise after the restart, and beyond
        if "back" in state:
            time.sleep(max(0.0, state["back"] + 5.0 - time.time()))
    finally:
        summary = load.stop()
        hook.done()
        if "holder" in state:
            _release(state["holder"])
    assert hook.fired, "migrations finish never waited on ai-proxy's row: the fault was not injected\n" + _failure(box)
    assert rc != 0
    journal = _journal(box)
    failure = journal["failure"]
    assert journal["status"] == "failed" and failure["phase"] == "finish", (failure, _failure(box))
    assert failure["needs_attention"] is True and failure["restore"] is False, failure
    assert not journal.get("thawed")
    log = _log(box)
    assert "--tags finish" in log and _lock_path(box) in log, "the message names neither the resume nor the lock"
    assert os.path.exists(_lock_path(box)), "writes were thawed while the fleet needs a person"
    _back_in_haproxy(box)
    assert f"kong/{Y}" in _served_by(box) and _versions(box) == {"x1": Y, "x2": Y, "x3": Y}
    after = _database(box)
    _same_tables(before, after)
    assert "001_360_to_370" in after["schema_meta"]["ai-proxy"][1], after["schema_meta"]
    # Y keeps serving through the restart: no request fails once PostgreSQL answers again
    from_crash = _failed_after_the_restart(load, state)
    assert summary["total"] > 0 and [r for r in load.records if r.wall >= state["back"] + 3.0], "no request after the restart"
    assert not from_crash, f"Y failed requests after PostgreSQL restarted: {from_crash[:5]}"

    # the resume the message names
    rc = _upgrade(box, "--tags", "finish")
    assert rc == 0, _failure(box)
    journal = _journal(box)
    assert journal["status"] == "done" and journal.get("thawed") is True, journal
    assert not os.path.exists(_lock_path(box))
    final = _database(box)
    assert not any(pending for _executed, pending in final["schema_meta"].values()), final["schema_meta"]
    _same_tables(before, final)
    assert f"kong/{Y}" in _served_by(box)


def _keeps_kong_conf(path: str, member: str) -> bool:
    """The `files` backup keeps each kong.conf as it is, pg_password included, so that a restore gives
    the node its file back (0600 in a 0700 directory, checked with every backup)."""
    return os.sep + "backups" + os.sep in path and path.endswith("files.tar.gz") and member.endswith("/kong.conf")


def test_no_secret_in_any_output_file_or_command_line_and_credentials_kept_0600(box):
    """Every run of this file ran at -vvv with --diff, holding the sandbox's distinctive secrets: the
    Kong database user's password (kong.conf, `kong migrations`, pg_dump), the DBA's password (the
    database-level restore of playbooks/rollback.yml, which the failed runs import) and an Admin API
    token (every Admin API call). None of the secrets appears in ansible-playbook's output, in any file
    under the work directory (journals, reports, freeze lock, backups and their
    manifests, the database dump itself) or on a command line sampled during the runs; every backup
    (the declarative one holds consumer credentials) is 0600 or stricter, and the kong.conf backups
    the collection writes beside each kong.conf (it holds pg_password) are no looser than kong.conf."""
    runs = sorted(glob.glob(os.path.join(box.log_dir, "upgrade-*.log")))
    if not runs:  # this case run alone: one whole upgrade
        assert _upgrade(box) == 0, _failure(box)
        runs = [box.last_log]
    outputs = {}
    box.cmdlines.stop.set()
    box.cmdlines.join(5)
    for path in runs:
        with open(path, errors="replace") as fh:
            outputs[path] = fh.read()
    leaked = {name: leaks(text, SECRETS) for name, text in outputs.items() if leaks(text, SECRETS)}
    assert not leaked, f"secrets in ansible-playbook's output: {leaked}"
    # the consumer's key the smoke test sends (kong_smoke_key) is a credential too
    assert not [name for name, text in outputs.items() if DEMO_KEY in text], "the smoke test's key is in the output"
    assert any("<127.0.0.1> EXEC" in text or "ESTABLISH LOCAL CONNECTION" in text for text in outputs.values()), (
        "the runs were not at -vvv: the sweep proves nothing"
    )

    assert any("+log_level = notice" in text for text in outputs.values()), "no run showed kong.conf's diff"
    assert any("pg_password = ********" in text for text in outputs.values()), "kong.conf's diff shows no masked pg_password"

    files, loose = loose_files(box.work_dir, SECRETS, credentials=(DEMO_KEY,), kept=_keeps_kong_conf)
    assert (
        any(p.endswith(".dump") for p in files)
        and any("manifest" in p for p in files)
        and any(p.endswith("report.json") for p in files)
        and any(p.endswith("journal.json") for p in files)
    ), files
    conf_backups = 0
    for node in box.state["nodes"].values():
        if not os.path.exists(node["conf"]):
            continue
        conf_mode = stat.S_IMODE(os.stat(node["conf"]).st_mode)
        for backup in glob.glob(node["conf"] + ".*~"):
            conf_backups += 1
            mode = stat.S_IMODE(os.stat(backup).st_mode)
            if mode & ~conf_mode or mode & 0o007:
                loose.append(f"{backup} is {oct(mode)}, kong.conf is {oct(conf_mode)}")
    assert conf_backups, "kong_conf wrote no backup of kong.conf"
    assert not loose, "\n".join(loose)
    assert box.cmdlines.samples > 100, box.cmdlines.samples
    assert not box.cmdlines.found, f"secrets on a command line: {box.cmdlines.found[:3]}"
