"""PostgreSQL connections from kong.conf values, with failures worded the way Kong words them.

Kong prefixes every database error with `[PostgreSQL error] ` (kong/db/init.lua `prefix_err`) and
reports a failed first contact as `failed to retrieve PostgreSQL server_version_num: <reason>`
(kong/db/strategies/postgres/connector.lua `init`, FACTS 1.2). `<reason>` is pgmoon's text; the
mapping from libpq's wording to pgmoon's is in `_reason()`.
"""
from __future__ import annotations

import math
import re

import psycopg2
import psycopg2.errors
import psycopg2.extensions

STRATEGY = "PostgreSQL"
ERROR_PREFIX = f"[{STRATEGY} error] "
DEFAULT_TIMEOUT_MS = 5000


class PgError(Exception):
    """A database failure; `message` is Kong's text without the `[PostgreSQL error] ` prefix."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    @property
    def kong_message(self) -> str:
        return ERROR_PREFIX + self.message

    def __str__(self) -> str:
        return self.kong_message


def _get(conf: dict, key: str, default=None):
    value = conf.get(key, default)
    return default if value is None else value


def timeout_ms(conf: dict) -> int:
    value = _get(conf, "pg_timeout", DEFAULT_TIMEOUT_MS)
    try:
        return max(1, int(float(value)))
    except (TypeError, ValueError):
        return DEFAULT_TIMEOUT_MS


def schema_name(conf: dict) -> str:
    """Configured pg_schema, or '' (= the user's current schema, as Kong resolves it)."""
    value = conf.get("pg_schema")
    if value is None or str(value).strip().upper() in ("", "NONE"):
        return ""
    return str(value).strip()


def connect_params(conf: dict, timeout: int | None = None, application_name: str = "kong") -> dict:
    ms = timeout if timeout is not None else timeout_ms(conf)
    params = {
        "host": str(_get(conf, "pg_host", "127.0.0.1")),
        "port": int(_get(conf, "pg_port", 5432)),
        "user": str(_get(conf, "pg_user", "kong")),
        "dbname": str(_get(conf, "pg_database", "kong")),
        # libpq takes whole seconds; pgmoon's socket timeout is in ms.
        "connect_timeout": max(1, math.ceil(ms / 1000)),
        "application_name": application_name,
        "options": f"-c statement_timeout={ms} -c TimeZone=UTC",
    }
    password = conf.get("pg_password")
    if password is not None:
        params["password"] = str(password)
    return params


_FATAL_RE = re.compile(r"\b(FATAL|ERROR|PANIC):\s+(.*)")


def _reason(exc: Exception) -> str:
    """pgmoon's wording of a libpq connection failure."""
    text = str(exc).strip()
    low = text.lower()
    if "connection refused" in low:
        return "connection refused"
    if "timeout expired" in low or "timed out" in low:
        return "timeout"
    if ("could not translate host name" in low or "name or service not known" in low
            or "temporary failure in name resolution" in low):
        # luasocket's gai_strerror text, as quoted in Kong/kong#4363.
        return "host or service not provided, or not known"
    if "no route to host" in low:
        return "no route to host"
    if "network is unreachable" in low:
        return "network is unreachable"
    if "no password supplied" in low:
        # pgmoon's own check (UNCONFIRMED wording: not in FACTS; pgmoon `connect`).
        return "missing password, required for connect"
    match = _FATAL_RE.search(text)
    if match:
        # pgmoon prints the server's ErrorResponse as "<severity>: <message>", e.g.
        # `FATAL: password authentication failed for user "kong"` (Kong/charts#239).
        return f"{match.group(1)}: {match.group(2).splitlines()[0].strip()}"
    return text.splitlines()[0] if text else "unknown error"


def query_error(exc: Exception) -> str:
    """Kong's text for an error raised by a query on an open connection."""
    if isinstance(exc, psycopg2.errors.QueryCanceled):
        return "timeout"
    if isinstance(exc, psycopg2.OperationalError) and getattr(exc, "pgcode", None) is None:
        low = str(exc).lower()
        if "closed" in low or "terminat" in low or "lost" in low:
            return "closed"
        return _reason(exc)
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag else None
    severity = getattr(diag, "severity", None) if diag else None
    if primary:
        return f"{severity or 'ERROR'}: {primary}"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__


def connect(conf: dict, timeout: int | None = None, application_name: str = "kong"):
    """Open an autocommit connection in the configured schema, checked like Kong's `init`.

    Raises PgError("failed to retrieve PostgreSQL server_version_num: <reason>") when the
    server cannot be reached or refuses the login.
    """
    params = connect_params(conf, timeout, application_name)
    try:
        conn = psycopg2.connect(**params)
    except psycopg2.Error as exc:
        raise PgError("failed to retrieve PostgreSQL server_version_num: " + _reason(exc)) from None
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            cur.fetchone()
            schema = schema_name(conf)
            if schema:
                cur.execute("SELECT set_config('search_path', %s, false)",
                            (psycopg2.extensions.quote_ident(schema, cur),))
    except psycopg2.Error as exc:
        conn.close()
        raise PgError("failed to retrieve PostgreSQL server_version_num: " + query_error(exc)) from None
    return conn


def current_schema(conn) -> str | None:
    with conn.cursor() as cur:
        cur.execute("SELECT current_schema()")
        return cur.fetchone()[0]


def execute(conn, sql: str, params=None):
    """Run one statement (or a script without params); PgError with Kong's wording on failure."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            if cur.description is not None:
                return cur.fetchall()
            return cur.rowcount
    except psycopg2.Error as exc:
        _rollback_quietly(conn)
        raise PgError(query_error(exc)) from None


def transaction(conn, statements) -> list:
    """Run [(sql, params)] in one transaction; returns each statement's rowcount."""
    counts = []
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            for sql, params in statements:
                cur.execute(sql, params)
                counts.append(cur.rowcount)
            cur.execute("COMMIT")
    except psycopg2.Error as exc:
        _rollback_quietly(conn)
        raise PgError(query_error(exc)) from None
    return counts


def _rollback_quietly(conn) -> None:
    try:
        if not conn.closed and conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            conn.cursor().execute("ROLLBACK")
    except psycopg2.Error:
        pass


def close(conn) -> None:
    try:
        conn.close()
    except psycopg2.Error:
        pass
