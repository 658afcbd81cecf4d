"""PostgreSQL connections from kong.conf values, with failures worded the way Kong words them.

Kong prefixes every database error with `[PostgreSQL error] ` (kong/db/init.lua `prefix_err`) and
reports a failed first contact as `failed to retrieve PostgreSQL server_version_num: <reason>`
(kong/db/strategies/postgres/connector.lua `init`, FACTS 1.2). `<reason>` is pgmoon's text; the
mapping from libpq's wording to pgmoon's is in `_reason()`.
"""

from __future__ import annotations

import math
import os
import re
import tempfile

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
    params.update(ssl_params(conf))
    return params


SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def _on(value) -> bool:
    return value is True or str(value).strip().lower() in ("on", "true")


def ssl_params(conf: dict) -> dict:
    """libpq's TLS settings for Kong's pgmoon config (connector.lua:958-960 at 3.9.3, :915-917 at
    2.8.5): `ssl = pg_ssl`, `ssl_verify = pg_ssl_verify`, `cafile = lua_ssl_trusted_certificate
    (combined)`, no `ssl_required`.

    - pg_ssl off: no SSLRequest at all (sslmode=disable).
    - pg_ssl on: TLS when the server accepts it, plain text when it declines, unverified
      (pgmoon without ssl_required = libpq's `prefer`).
    - pg_ssl and pg_ssl_verify on: the certificate chain is verified against the trusted
      certificates (`verify-ca`; UNCONFIRMED whether Kong's socket also checks the host name:
      pgmoon passes no server name to sslhandshake as far as the simulator's authors know).
      A server that declines TLS is still used in plain text (see connect()).
    """
    if not _on(conf.get("pg_ssl")):
        return {"sslmode": "disable"}
    if not _on(conf.get("pg_ssl_verify")):
        return {"sslmode": "prefer"}
    return {"sslmode": "verify-ca", "sslrootcert": _trusted_ca_file(conf)}


def _trusted_ca_file(conf: dict) -> str:
    """lua_ssl_trusted_certificate (comma-separated files, `system` = the system bundle) as one
    file, like Kong's <prefix>/.ca_combined (kong/conf_loader/init.lua:582-583 at 3.9.3)."""
    raw = conf.get("lua_ssl_trusted_certificate")
    files = []
    for item in str(raw or "").split(","):
        item = item.strip()
        if not item or item.upper() == "NONE":
            continue
        if item == "system":
            files.extend(p for p in SYSTEM_CA_BUNDLES[:1] if os.path.exists(p))
        else:
            files.append(os.path.abspath(item))
    if not files:
        # no trusted certificate: nothing can verify (libpq would look in ~/.postgresql)
        return os.devnull
    if len(files) == 1:
        return files[0]
    fd, path = tempfile.mkstemp(prefix="kongsim-ca-", suffix=".pem")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for name in files:
            with open(name, encoding="utf-8") as fh:
                out.write(fh.read().rstrip("\n") + "\n")
    return path


_FATAL_RE = re.compile(r"\b(FATAL|ERROR|PANIC):\s+(.*)")


def _reason(exc: Exception) -> str:
    """pgmoon's wording of a libpq connection failure."""
    text = str(exc).strip()
    low = text.lower()
    if "connection refused" in low:
        return "connection refused"
    if "timeout expired" in low or "timed out" in low:
        return "timeout"
    if "could not translate host name" in low or "name or service not known" in low or "temporary failure in name resolution" in low:
        # luasocket's gai_strerror text, as quoted in Kong/kong#4363.
        return "host or service not provided, or not known"
    if "no route to host" in low:
        return "no route to host"
    if "network is unreachable" in low:
        return "network is unreachable"
    if "certificate verify failed" in low:
        # UNCONFIRMED: the TLS layer's own text under pgmoon (luasec / ngx sslhandshake); the
        # simulator keeps OpenSSL's reason.
        return "certificate verify failed"
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
        if params.get("sslmode") == "verify-ca" and "server does not support ssl" in str(exc).lower():
            # pgmoon without ssl_required goes on in plain text when the server declines TLS
            params = dict(params, sslmode="disable")
            params.pop("sslrootcert", None)
            try:
                conn = psycopg2.connect(**params)
            except psycopg2.Error as exc2:
                raise PgError("failed to retrieve PostgreSQL server_version_num: " + _reason(exc2)) from None
        else:
            raise PgError("failed to retrieve PostgreSQL server_version_num: " + _reason(exc)) from None
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            cur.fetchone()
            schema = schema_name(conf)
            if schema:
                cur.execute("SELECT set_config('search_path', %s, false)", (psycopg2.extensions.quote_ident(schema, cur),))
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
