# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""PostgreSQL access to a Kong database (schema_meta, entity counts, libpq environment)."""
from __future__ import annotations

import traceback

from ansible.module_utils.basic import env_fallback

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:
    HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR = False, traceback.format_exc()
else:
    HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR = True, None

KONG_PG_ARG_SPEC = dict(
    pg_host=dict(type="str", default="127.0.0.1", fallback=(env_fallback, ["KONG_PG_HOST"])),
    pg_port=dict(type="int", default=5432, fallback=(env_fallback, ["KONG_PG_PORT"])),
    pg_user=dict(type="str", default="kong", fallback=(env_fallback, ["KONG_PG_USER"])),
    pg_password=dict(type="str", no_log=True, fallback=(env_fallback, ["KONG_PG_PASSWORD"])),
    pg_database=dict(type="str", default="kong", fallback=(env_fallback, ["KONG_PG_DATABASE"])),
    pg_schema=dict(type="str"),
    pg_connect_timeout=dict(type="int", default=10),
)

# The tables behind the Admin API entities that a backup and a restore compare.
KONG_TABLES = (
    "services", "routes", "plugins", "consumers", "keyauth_credentials", "upstreams", "targets",
    "certificates", "snis", "ca_certificates",
)


class KongDbError(Exception):
    """A PostgreSQL operation failed; carries the query when there was one."""

    def __init__(self, msg: str, query: str | None = None):
        super().__init__(msg)
        self.query = query


class KongDb:
    def __init__(self, pg_host="127.0.0.1", pg_port=5432, pg_user="kong", pg_password=None, pg_database="kong",
                 pg_schema=None, pg_connect_timeout=10):
        self.params = dict(host=pg_host, port=pg_port, user=pg_user, password=pg_password, dbname=pg_database,
                           connect_timeout=pg_connect_timeout)
        self.schema = pg_schema
        self._conn = None

    @classmethod
    def from_params(cls, params: dict) -> "KongDb":
        return cls(**{k: params.get(k) for k in KONG_PG_ARG_SPEC if params.get(k) is not None})

    @property
    def database(self) -> str:
        return self.params["dbname"]

    def describe(self) -> str:
        """Where the database is, without credentials."""
        return f"postgresql://{self.params['user']}@{self.params['host']}:{self.params['port']}/{self.database}"

    def connect(self, database: str | None = None):
        params = {k: v for k, v in self.params.items() if v not in (None, "")}
        if database:
            params["dbname"] = database
        if self.schema:
            params["options"] = f"-c search_path={self.schema}"
        try:
            return psycopg2.connect(**params)
        except psycopg2.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise KongDbError(f"cannot connect to {self.describe()}: {first}") from exc

    @property
    def conn(self):
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
            self._conn.autocommit = True
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()

    def query(self, query, args=None) -> list:
        text = query if isinstance(query, str) else query.as_string(self.conn)
        try:
            with self.conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall() if cur.description else []
        except psycopg2.Error as exc:
            raise KongDbError(f"query failed on {self.describe()}: {str(exc).strip()}", query=text) from exc

    def table_exists(self, name: str) -> bool:
        rows = self.query("SELECT to_regclass(%s) IS NOT NULL", (name if not self.schema else f"{self.schema}.{name}",))
        return bool(rows and rows[0][0])

    def schema_meta(self) -> dict | None:
        """`schema_meta` rows by subsystem, or None when the table does not exist (needs bootstrap)."""
        if not self.table_exists("schema_meta"):
            return None
        rows = self.query("SELECT subsystem, last_executed, executed, pending FROM schema_meta "
                          "WHERE key = 'schema_meta' ORDER BY subsystem")
        return {sub: dict(last_executed=last, executed=list(ex or []), pending=list(pe or []))
                for sub, last, ex, pe in rows}

    def entity_counts(self, tables=KONG_TABLES) -> dict:
        counts = {}
        for table in tables:
            if self.table_exists(table):
                counts[table] = self.query(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))[0][0]
        return counts

    def libpq_env(self, database: str | None = None) -> dict:
        """Environment for pg_dump/pg_restore/psql: the password never goes on a command line."""
        env = dict(PGHOST=str(self.params["host"]), PGPORT=str(self.params["port"]),
                   PGUSER=str(self.params["user"]), PGDATABASE=database or self.database,
                   PGCONNECT_TIMEOUT=str(self.params["connect_timeout"]))
        if self.params.get("password"):
            env["PGPASSWORD"] = str(self.params["password"])
        if self.schema:
            env["PGOPTIONS"] = f"-c search_path={self.schema}"
        return env
