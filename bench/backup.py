"""Backup and restore of a Kong database: kongops.upgrade.kong_backup / kong_restore through
ansible-playbook against plain ``pg_dump -Fc`` / ``pg_restore`` on the same database."""

from __future__ import annotations

import os
import shutil
import statistics
import uuid

import yaml

from bench.common import VENV_BIN, Timer, run_logged, tail, write_json
from tests.integration.ansible_run import ansible_env
from tests.kongsim.kongsim_testlib import install_kong
from tests.services.postgres import PG_BIN, SUPERUSER, SUPERUSER_PASSWORD, PostgresServer

KONG_VERSION = "3.9.3"
OWNER, OWNER_PASSWORD = "kong_bench", "kong-bench-pw"
TABLES = ("services", "routes", "consumers", "keyauth_credentials")

NOOP = """---
- name: Nothing but the start of ansible-playbook
  hosts: localhost
  gather_facts: false
  tasks:
    - name: No-op
      ansible.builtin.debug:
        msg: start-up cost of ansible-playbook
"""

BACKUP = """---
- name: Back up the Kong database
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Database backup
      kongops.upgrade.kong_backup:
        kinds: [database]
        dest: "{{ dest }}"
        run_id: "{{ run_id }}"
        retention: 100
        admin_url: "{{ admin_url }}"
        kong_bin: "{{ kong_bin }}"
        kong_conf: "{{ kong_conf }}"
        pg_host: 127.0.0.1
        pg_port: "{{ pg_port }}"
        pg_user: "{{ pg_user }}"
        pg_password: "{{ pg_password }}"
        pg_database: "{{ pg_database }}"
        pg_dump_bin: "{{ pg_bin }}/pg_dump"
"""

RESTORE = """---
- name: Restore the Kong database
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Database restore
      kongops.upgrade.kong_restore:
        kinds: [database]
        src: "{{ src }}"
        admin_url: "{{ admin_url }}"
        kong_nodes: []
        kong_bin: "{{ kong_bin }}"
        kong_conf: "{{ kong_conf }}"
        database_mode: recreate
        pg_host: 127.0.0.1
        pg_port: "{{ pg_port }}"
        pg_user: "{{ pg_user }}"
        pg_password: "{{ pg_password }}"
        pg_database: "{{ pg_database }}"
        pg_admin_user: "{{ pg_admin_user }}"
        pg_admin_password: "{{ pg_admin_password }}"
"""


def seed_config(entities: int) -> str:
    """``entities`` rows: a quarter each of services, routes (one per service), consumers, key-auth keys."""
    quarter = entities // 4
    doc = {"_format_version": "3.0", "services": [], "routes": [], "consumers": [], "keyauth_credentials": []}
    for i in range(quarter):
        sid = str(uuid.uuid4())
        doc["services"].append({"id": sid, "name": f"svc-{i}", "url": f"http://127.0.0.1:{9000 + i % 50}/p{i}"})
        doc["routes"].append({"id": str(uuid.uuid4()), "name": f"route-{i}", "paths": [f"/r{i}"], "service": {"id": sid}})
        cid = str(uuid.uuid4())
        doc["consumers"].append({"id": cid, "username": f"user-{i}"})
        doc["keyauth_credentials"].append({"id": str(uuid.uuid4()), "key": f"key-{i}", "consumer": {"id": cid}})
    return yaml.safe_dump(doc)


class BackupBench:
    def __init__(self, work: str, sizes=(1000, 10000), reps: int = 3, out=print):
        self.work, self.sizes, self.reps, self.out = work, tuple(sizes), reps, out
        self.pg: PostgresServer | None = None
        self.logs = os.path.join(work, "logs")
        self.env = ansible_env({"ANSIBLE_STDOUT_CALLBACK": "default"})
        self.pg_env = dict(os.environ, PGPASSWORD=OWNER_PASSWORD)
        self.admin_env = dict(os.environ, PGPASSWORD=SUPERUSER_PASSWORD)

    # ------------------------------------------------------------------ helpers
    def _playbook(self, name: str, text: str) -> str:
        path = os.path.join(self.work, f"{name}.yml")
        with open(path, "w") as fh:
            fh.write(text)
        return path

    def _ansible(self, playbook: str, extra: dict, log: str) -> tuple[int, float]:
        vars_path = os.path.join(self.work, "vars.yml")
        write_json(vars_path, extra)
        argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", playbook, "-e", "@" + vars_path]
        return run_logged(argv, log, env=self.env)

    def _psql(self, sql: str, database: str = "postgres") -> str:
        return self.pg.psql(sql, database=database)

    def _counts(self, database: str) -> dict:
        return {t: int(self._psql(f"SELECT count(*) FROM {t}", database)) for t in TABLES}

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        os.makedirs(self.logs, exist_ok=True)
        result: dict = {"kong_version": KONG_VERSION, "reps": self.reps, "sizes": {}}
        kong = install_kong(KONG_VERSION, os.path.join(self.work, "kong", KONG_VERSION))
        self.pg = PostgresServer(os.path.join(self.work, "postgres")).start()
        try:
            noop = self._playbook("noop", NOOP)
            times = []
            for _rep in range(self.reps):
                rc, secs = self._ansible(noop, {}, os.path.join(self.logs, "noop.log"))
                if rc != 0:
                    raise RuntimeError(f"the no-op playbook failed; see {os.path.join(self.logs, 'noop.log')}")
                times.append(secs)
            result["ansible_noop_s"] = round(statistics.median(times), 2)
            for size in self.sizes:
                result["sizes"][str(size)] = self._one_size(kong, size)
        finally:
            self.pg.stop()
        return result

    def _one_size(self, kong: str, size: int) -> dict:
        db = f"kong_bench_{size}"
        info = self.pg.create_database(db, owner=OWNER, password=OWNER_PASSWORD)
        base = os.path.join(self.work, f"db{size}")
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
        conf = os.path.join(base, "kong.conf")
        with open(conf, "w") as fh:
            fh.write(
                f"prefix = {os.path.join(base, 'prefix')}\ndatabase = postgres\npg_host = 127.0.0.1\n"
                f"pg_port = {info['port']}\npg_user = {OWNER}\npg_password = {OWNER_PASSWORD}\npg_database = {db}\n"
            )
        os.chmod(conf, 0o600)
        seed = os.path.join(base, "seed.yml")
        with open(seed, "w") as fh:
            fh.write(seed_config(size))
        log = os.path.join(self.logs, f"seed-{size}.log")
        for argv in ([kong, "migrations", "bootstrap", "-c", conf], [kong, "config", "db_import", seed, "-c", conf]):
            rc, _secs = run_logged(argv, log)
            if rc != 0:
                raise RuntimeError(f"seeding {size} entities failed; see {log}:\n{tail(log)}")
        counts = self._counts(db)
        self.out(f"  backup: {sum(counts.values())} entities in {db} ({counts})")
        extra = {
            "kong_bin": kong,
            "kong_conf": conf,
            "admin_url": "http://127.0.0.1:9",
            "pg_port": info["port"],
            "pg_user": OWNER,
            "pg_password": OWNER_PASSWORD,
            "pg_database": db,
            "pg_bin": PG_BIN,
            "pg_admin_user": SUPERUSER,
            "pg_admin_password": SUPERUSER_PASSWORD,
        }
        backup_pb, restore_pb = self._playbook("backup", BACKUP), self._playbook("restore", RESTORE)
        timings = {"kong_backup": [], "pg_dump": [], "kong_restore": [], "pg_restore": []}
        dump_size = None
        for rep in range(self.reps):
            dest = os.path.join(base, "backups")
            log = os.path.join(self.logs, f"kong_backup-{size}.log")
            rc, secs = self._ansible(backup_pb, dict(extra, dest=dest, run_id=f"rep{rep}"), log)
            if rc != 0:
                raise RuntimeError(f"kong_backup failed; see {log}:\n{tail(log)}")
            timings["kong_backup"].append(secs)
            dump = os.path.join(base, f"plain-{rep}.dump")
            log = os.path.join(self.logs, f"pg_dump-{size}.log")
            rc, secs = run_logged(
                [os.path.join(PG_BIN, "pg_dump"), "-Fc", "-h", "127.0.0.1", "-p", str(info["port"]), "-U", OWNER, "-d", db, "-f", dump], log, env=self.pg_env
            )
            if rc != 0:
                raise RuntimeError(f"pg_dump failed; see {log}")
            timings["pg_dump"].append(secs)
            dump_size = os.path.getsize(dump)

            log = os.path.join(self.logs, f"kong_restore-{size}.log")
            rc, secs = self._ansible(restore_pb, dict(extra, src=os.path.join(dest, f"rep{rep}")), log)
            if rc != 0:
                raise RuntimeError(f"kong_restore failed; see {log}:\n{tail(log)}")
            timings["kong_restore"].append(secs)
            if self._counts(db) != counts:
                raise RuntimeError(f"after kong_restore the counts of {db} differ: {self._counts(db)} != {counts}")

            timings["pg_restore"].append(self._plain_restore(db, dump, info["port"], size))
            if self._counts(db) != counts:
                raise RuntimeError(f"after pg_restore the counts of {db} differ: {self._counts(db)} != {counts}")
        med = {k: round(statistics.median(v), 2) for k, v in timings.items()}
        self.out(
            f"  backup {size}: kong_backup {med['kong_backup']} s vs pg_dump {med['pg_dump']} s; "
            f"kong_restore {med['kong_restore']} s vs pg_restore {med['pg_restore']} s"
        )
        self.pg.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(os.path.join(base, "backups"), ignore_errors=True)
        return {"entities": sum(counts.values()), "counts": counts, "dump_bytes": dump_size, "median_s": med, "runs_s": timings}

    def _plain_restore(self, db: str, dump: str, port: int, size: int) -> float:
        """What recreate mode does, by hand: pg_restore into a new database, then swap it in."""
        log = os.path.join(self.logs, f"pg_restore-{size}.log")
        new = f"{db}_plain"
        with Timer() as timer:
            steps = [
                [os.path.join(PG_BIN, "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, "-O", OWNER, new],
                [os.path.join(PG_BIN, "pg_restore"), "-h", "127.0.0.1", "-p", str(port), "-U", OWNER, "-d", new, dump],
                [os.path.join(PG_BIN, "dropdb"), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, db],
                ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, "-d", "postgres", "-c", f'ALTER DATABASE "{new}" RENAME TO "{db}"'],
            ]
            for argv in steps:
                env = self.pg_env if argv[0].endswith("pg_restore") else self.admin_env
                rc, _secs = run_logged(argv, log, env=env)
                if rc != 0:
                    raise RuntimeError(f"`{os.path.basename(argv[0])}` failed; see {log}")
        return timer.seconds
