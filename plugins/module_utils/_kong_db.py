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
    pg_ssl=dict(type="bool", default=False, fallback=(env_fallback, ["KONG_PG_SSL"])),
    pg_ssl_required=dict(type="bool", default=False),
    pg_ssl_verify=dict(type="bool", default=False, fallback=(env_fallback, ["KONG_PG_SSL_VERIFY"])),
    pg_ssl_ca=dict(type="path"),
    pg_statement_timeout=dict(type="int", default=600),
    pg_lock_timeout=dict(type="int", default=30),
)


def sslmode(pg_ssl: bool = False, pg_ssl_required: bool = False, pg_ssl_verify: bool = False, pg_ssl_ca: str | None = None) -> tuple:
    """(libpq sslmode, sslrootcert) for Kong's pg_ssl, pg_ssl_required and pg_ssl_verify.

    Kong connects in plain text unless pg_ssl is on; with pg_ssl it asks for TLS and goes on without
    it unless pg_ssl_required; pg_ssl_verify checks the server's certificate against
    lua_ssl_trusted_certificate (Kong/kong 3.9.3 kong/conf_loader/constants.lua pg_ssl*, and
    kong/db/strategies/postgres/connector.lua, which hands them to pgmoon as `ssl`,
    `ssl_required` and `ssl_verify`). The libpq modes that match: disable, prefer, require,
    verify-full (the certificate and the host name, as a verifying TLS handshake with the server
    name does). pg_ssl off is `disable`, plain text as Kong connects, so that a server that
    requires TLS refuses the modules exactly as it refuses Kong with the same settings.
    """
    if not pg_ssl:
        if pg_ssl_required or pg_ssl_verify:
            raise KongDbConfigError("pg_ssl_required and pg_ssl_verify need pg_ssl: set pg_ssl to true")
        return "disable", None
    if pg_ssl_verify:
        if not pg_ssl_ca:
            raise KongDbConfigError("pg_ssl_verify needs pg_ssl_ca (the CA file that signed the server's certificate)")
        return "verify-full", pg_ssl_ca
    return ("require" if pg_ssl_required else "prefer"), pg_ssl_ca


# Seconds; 0 turns a bound off (PostgreSQL's own meaning of 0 for both settings).
_BOUNDS = ("pg_connect_timeout", "pg_statement_timeout", "pg_lock_timeout")


def pg_params_problem(params: dict) -> str | None:
    """The first bad database bound, as a message naming the option; None when all are fine."""
    for name in _BOUNDS:
        value = params.get(name)
        if value is not None and value < 0:
            return f"{name} must be 0 (no limit) or a positive number of seconds, got {value}"
    if params.get("pg_connect_timeout") == 0:
        return "pg_connect_timeout must be a positive number of seconds: a connection attempt is always bounded"
    return None


# The tables behind the Admin API entities that a backup and a restore compare.
KONG_TABLES = (
    "services",
    "routes",
    "plugins",
    "consumers",
    "keyauth_credentials",
    "upstreams",
    "targets",
    "certificates",
    "snis",
    "ca_certificates",
)


def bound_hint(message: str) -> str:
    """Which option bounded a statement that PostgreSQL cancelled."""
    if "statement timeout" in message:
        return " (pg_statement_timeout bounds every statement; raise it for a slow server or a large database)"
    if "lock timeout" in message:
        return " (pg_lock_timeout bounds every lock wait: another session holds the lock; end that session or raise pg_lock_timeout)"
    return ""


class KongDbError(Exception):
    """A PostgreSQL operation failed; carries the query when there was one."""

    def __init__(self, msg: str, query: str | None = None):
        super().__init__(msg)
        self.query = query


class KongDbConfigError(KongDbError):
    """The pg_ssl* options do not fit together; names the option and the fix."""


class KongDb:
    def __init__(
        self,
        pg_host="127.0.0.1",
        pg_port=5432,
        pg_user="kong",
        pg_password=None,
        pg_database="kong",
        pg_schema=None,
        pg_connect_timeout=10,
        pg_ssl=False,
        pg_ssl_required=False,
        pg_ssl_verify=False,
        pg_ssl_ca=None,
        pg_statement_timeout=600,
        pg_lock_timeout=30,
    ):
        mode, rootcert = sslmode(pg_ssl, pg_ssl_required, pg_ssl_verify, pg_ssl_ca)
        self.params = dict(
            host=pg_host,
            port=pg_port,
            user=pg_user,
            password=pg_password,
            dbname=pg_database,
            connect_timeout=pg_connect_timeout,
            sslmode=mode,
            sslrootcert=rootcert,
        )
        self.schema = pg_schema
        self.statement_timeout, self.lock_timeout = pg_statement_timeout, pg_lock_timeout
        self._conn = None

    def session_options(self) -> str:
        """libpq `options` for every session: the schema and the statement and lock bounds (milliseconds),
        so that no query and no lock wait of the module or of pg_dump/pg_restore hangs unbounded."""
        opts = [f"-c statement_timeout={int(self.statement_timeout or 0) * 1000}", f"-c lock_timeout={int(self.lock_timeout or 0) * 1000}"]
        if self.schema:
            opts.append(f"-c search_path={self.schema}")
        return " ".join(opts)

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
        params["options"] = self.session_options()
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
            raise KongDbError(f"query failed on {self.describe()}: {str(exc).strip()}{bound_hint(str(exc))}", query=text) from exc

    def table_exists(self, name: str) -> bool:
        rows = self.query("SELECT to_regclass(%s) IS NOT NULL", (name if not self.schema else f"{self.schema}.{name}",))
        return bool(rows and rows[0][0])

    def schema_meta(self) -> dict | None:
        """`schema_meta` rows by subsystem, or None when the table does not exist (needs bootstrap)."""
        if not self.table_exists("schema_meta"):
            return None
        rows = self.query("SELECT subsystem, last_executed, executed, pending FROM schema_meta WHERE key = 'schema_meta' ORDER BY subsystem")
        return {sub: dict(last_executed=last, executed=list(ex or []), pending=list(pe or [])) for sub, last, ex, pe in rows}

    def entity_counts(self, tables=KONG_TABLES) -> dict:
        counts = {}
        for table in tables:
            if self.table_exists(table):
                counts[table] = self.query(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))[0][0]
        return counts

    def libpq_env(self, database: str | None = None) -> dict:
        """Environment for pg_dump/pg_restore/psql: the password never goes on a command line."""
        env = dict(
            PGHOST=str(self.params["host"]),
            PGPORT=str(self.params["port"]),
            PGUSER=str(self.params["user"]),
            PGDATABASE=database or self.database,
            PGCONNECT_TIMEOUT=str(self.params["connect_timeout"]),
        )
        if self.params.get("password"):
            env["PGPASSWORD"] = str(self.params["password"])
        env["PGOPTIONS"] = self.session_options()
        if self.params.get("sslmode"):
            env["PGSSLMODE"] = self.params["sslmode"]
        if self.params.get("sslrootcert"):
            env["PGSSLROOTCERT"] = str(self.params["sslrootcert"])
        return env
