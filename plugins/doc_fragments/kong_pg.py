# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  pg_host:
    description:
      - Host of Kong's PostgreSQL database. Falls back to E(KONG_PG_HOST).
    type: str
    default: 127.0.0.1
  pg_port:
    description:
      - Port of Kong's PostgreSQL database. Falls back to E(KONG_PG_PORT).
    type: int
    default: 5432
  pg_user:
    description:
      - User Kong connects as. Falls back to E(KONG_PG_USER).
    type: str
    default: kong
  pg_password:
    description:
      - Password of O(pg_user). Falls back to E(KONG_PG_PASSWORD). It is passed to PostgreSQL
        tools through the environment, never on a command line, and never returned.
    type: str
  pg_database:
    description:
      - Kong's database. Falls back to E(KONG_PG_DATABASE).
    type: str
    default: kong
  pg_schema:
    description:
      - Schema of Kong's tables when it is not the user's default (Kong's C(pg_schema)).
    type: str
  pg_connect_timeout:
    description:
      - Seconds to wait for a database connection (libpq C(connect_timeout), also for C(pg_dump) and
        C(pg_restore) through E(PGCONNECT_TIMEOUT)). Must be positive.
    type: int
    default: 10
  pg_ssl:
    description:
      - Connect over TLS, as Kong's C(pg_ssl). Without O(pg_ssl_required) a server without TLS is
        still accepted (libpq C(sslmode=prefer)). Falls back to E(KONG_PG_SSL).
      - Reaches psycopg2 as C(sslmode)/C(sslrootcert) and C(pg_dump)/C(pg_restore) as E(PGSSLMODE)/E(PGSSLROOTCERT).
    type: bool
    default: false
  pg_ssl_required:
    description:
      - Refuse a connection without TLS (C(sslmode=require)). This is the collection's own option, Kong
        has no such setting (Kong/kong C(kong/db/strategies/postgres/connector.lua) at 3.9.3 passes no
        C(ssl_required) to pgmoon, so a Kong node with C(pg_ssl) goes on in plain text when the server
        declines TLS). Needs O(pg_ssl).
    type: bool
    default: false
  pg_ssl_verify:
    description:
      - Verify the server's certificate and host name against O(pg_ssl_ca) (C(sslmode=verify-full)),
        as Kong's C(pg_ssl_verify). Needs O(pg_ssl) and O(pg_ssl_ca). Falls back to E(KONG_PG_SSL_VERIFY).
    type: bool
    default: false
  pg_ssl_ca:
    description:
      - CA file that signed the server's certificate (Kong reads it from C(lua_ssl_trusted_certificate)).
    type: path
  pg_statement_timeout:
    description:
      - Seconds any one SQL statement of the module may run (PostgreSQL C(statement_timeout), set for each
        session); a statement cancelled by it fails the task with a message naming this option.
      - V(0) turns the bound off.
    type: int
    default: 600
  pg_lock_timeout:
    description:
      - Seconds any one statement of the module may wait for a lock (PostgreSQL C(lock_timeout)), for example
        behind Kong's own sessions; also C(pg_dump --lock-wait-timeout).
      - V(0) turns the bound off.
    type: int
    default: 30
requirements:
  - psycopg2 (the C(psycopg2-binary) package) on the host that runs the module
"""

    # The bound of the PostgreSQL client tools, for the modules that run pg_dump or pg_restore
    # (kong_backup, kong_restore); its spec is module_utils._backup.PG_TOOLS_ARG_SPEC.
    PG_TOOLS = r"""
options:
  pg_tool_timeout:
    description:
      - Seconds C(pg_dump) and C(pg_restore) may run each. They set C(statement_timeout) and C(lock_timeout)
        to 0 in their own sessions, so they run under C(timeout) (coreutils) with this bound instead; a tool
        stopped by it fails the task with a message naming this option. V(0), or a host without C(timeout),
        leaves them unbounded (a warning says so).
    type: int
    default: 3600
"""
