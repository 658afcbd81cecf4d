"""A Kong cluster on real PostgreSQL for the suites that back up, restore and migrate it: a database
owned by its own role, a DBA role that may create databases, one simulated Kong node (tests/kongsim),
and a probe that reads every Kong table back with psql as the superuser."""

from __future__ import annotations

import os
import uuid

import requests
import yaml

from tests.kongsim.kongsim_testlib import KongNode

# Distinctive secrets, so that finding them anywhere in the output is meaningful.
PG_PASSWORD = "pgpw-Zq81xTv"
DBA_PASSWORD = "dbapw-Lm55tQe"
ADMIN_TOKEN = "admintok-Hk27vRw"
SECRETS = (PG_PASSWORD, DBA_PASSWORD, ADMIN_TOKEN)
KONG_TABLES = ("services", "routes", "consumers", "keyauth_credentials", "plugins", "upstreams", "targets")


def generated_config(services: int, consumers: int, upstreams: int) -> tuple:
    """A flat declarative file with services+routes(+key-auth), consumers+keys, upstreams+targets."""
    doc = {"_format_version": "3.0", "services": [], "routes": [], "plugins": [], "consumers": [], "keyauth_credentials": [], "upstreams": [], "targets": []}
    for i in range(services):
        sid = str(uuid.uuid4())
        doc["services"].append({"id": sid, "name": f"svc-{i}", "url": f"http://127.0.0.1:{9000 + i % 50}/p{i}"})
        doc["routes"].append({"id": str(uuid.uuid4()), "name": f"route-{i}", "paths": [f"/r{i}"], "service": {"id": sid}})
        if i % 2 == 0:
            doc["plugins"].append({"id": str(uuid.uuid4()), "name": "key-auth", "service": {"id": sid}})
    for i in range(consumers):
        cid = str(uuid.uuid4())
        doc["consumers"].append({"id": cid, "username": f"user-{i}"})
        doc["keyauth_credentials"].append({"id": str(uuid.uuid4()), "key": f"key-{i}", "consumer": {"id": cid}})
    for i in range(upstreams):
        uid = str(uuid.uuid4())
        doc["upstreams"].append({"id": uid, "name": f"up-{i}"})
        for j in range(2):
            doc["targets"].append({"id": str(uuid.uuid4()), "target": f"10.0.{i}.{j + 1}:80", "upstream": {"id": uid}})
    return yaml.safe_dump(doc), sum(len(v) for v in doc.values() if isinstance(v, list))


class DbCluster:
    """A database owned by its own role, a DBA role that may create databases, one Kong node."""

    def __init__(self, postgres, kong_bin, base):
        suffix = uuid.uuid4().hex[:8]
        self.postgres, self.base = postgres, str(base)
        self.owner, self.dba = f"kong_bk_{suffix}", f"kongops_dba_{suffix}"
        self.db = postgres.create_database(f"kong_bk_{suffix}", owner=self.owner, password=PG_PASSWORD)
        postgres.psql(f"CREATE ROLE {self.dba} LOGIN CREATEDB PASSWORD '{DBA_PASSWORD}' IN ROLE {self.owner}")
        self.node = KongNode(
            kong_bin,
            self.base,
            name="db1",
            database="postgres",
            pg_host=self.db["host"],
            pg_port=self.db["port"],
            pg_user=self.owner,
            pg_password=PG_PASSWORD,
            pg_database=self.db["database"],
        )
        self.kong_bin = kong_bin

    @property
    def name(self) -> str:
        return self.db["database"]

    def cli(self, *args):
        res = self.node.cli(*args, "-c", self.node.conf_path)
        assert res.returncode == 0, res.stdout + res.stderr
        return res

    def seed(self, services, consumers, upstreams) -> int:
        self.cli("migrations", "bootstrap")
        text, total = generated_config(services, consumers, upstreams)
        path = os.path.join(self.base, "seed.yml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        self.cli("config", "db_import", path)
        return total

    def admin(self, method, path, **kwargs):
        return requests.request(method, self.node.admin_url + path, timeout=10, **kwargs)

    def vars(self, **extra) -> dict:
        base = {
            "admin_url": self.node.admin_url,
            "admin_token": ADMIN_TOKEN,
            "kong_bin": self.kong_bin,
            "kong_conf": self.node.conf_path,
            "pg_host": self.db["host"],
            "pg_port": self.db["port"],
            "pg_user": self.owner,
            "pg_password": PG_PASSWORD,
            "pg_database": self.name,
        }
        base.update(extra)
        return base

    def probe(self, database: str | None = None) -> dict:
        """Counts, schema_meta, sample rows and a digest of every Kong table, read with psql."""
        db = database or self.name
        out = {"counts": {}, "samples": {}, "digests": {}}
        for table in KONG_TABLES:
            out["counts"][table] = int(self.postgres.psql(f"SELECT count(*) FROM {table}", database=db))
            out["samples"][table] = self.postgres.psql(f"SELECT t::text FROM {table} t ORDER BY id LIMIT 15", database=db)
            out["digests"][table] = self.postgres.psql(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {table} t", database=db)
        out["schema_meta"] = self.postgres.psql("SELECT subsystem, last_executed, executed, pending FROM schema_meta ORDER BY subsystem", database=db)
        return out

    def databases(self) -> list:
        return self.postgres.psql("SELECT datname FROM pg_database ORDER BY 1").split()

    def destroy(self):
        self.node.stop()
        for name in self.databases():
            if name.startswith(self.name):
                self.postgres.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.postgres.psql(f"DROP ROLE IF EXISTS {self.dba}")
