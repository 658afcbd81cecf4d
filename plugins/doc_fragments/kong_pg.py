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
      - Seconds to wait for a database connection.
    type: int
    default: 10
requirements:
  - psycopg2 (the C(psycopg2-binary) package) on the host that runs the module
"""
