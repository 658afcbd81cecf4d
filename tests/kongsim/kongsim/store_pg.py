"""Kong entities stored in the real PostgreSQL tables the migrations create.

Entities go in and come out in Admin API JSON shape: foreign keys as {"id": uuid}, arrays as
lists, timestamps as epoch seconds (targets keep milliseconds, as Kong returns them), every column
present (NULL -> None). Internal columns (ws_id, cache_key) are kept up to date but never shown.
Only columns that exist in the database are used, so a node sees the schema of whatever
migrations ran (e.g. an older node on a database already `up`-ed by a newer one).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field

import psycopg2
import psycopg2.errors
import psycopg2.extras

from . import pgdb
from .pgdb import PgError

NAMESPACE = uuid.UUID("6b0c8a52-4f55-4b0e-9a8e-2b1f6a0e7c31")
CLUSTER_EVENTS_TTL = 86400  # UNCONFIRMED: Kong's default cluster_events expiry (kong/cluster_events)


@dataclass(frozen=True)
class EntityDef:
    name: str
    table: str
    foreign: dict = field(default_factory=dict)  # column -> (api field, referenced entity)
    endpoint_key: str | None = None
    cache_key: tuple = ()  # api fields composing Kong's cache_key
    ms_timestamps: bool = False
    ttl: bool = False


_CONSUMER = {"consumer_id": ("consumer", "consumers")}

ENTITY_DEFS = (
    EntityDef("certificates", "certificates"),
    EntityDef("ca_certificates", "ca_certificates"),
    EntityDef("snis", "snis", {"certificate_id": ("certificate", "certificates")}, "name"),
    EntityDef("services", "services", {"client_certificate_id": ("client_certificate", "certificates")}, "name"),
    EntityDef("routes", "routes", {"service_id": ("service", "services")}, "name"),
    EntityDef("consumers", "consumers", {}, "username"),
    EntityDef("upstreams", "upstreams", {"client_certificate_id": ("client_certificate", "certificates")}, "name"),
    EntityDef("targets", "targets", {"upstream_id": ("upstream", "upstreams")}, None, ("upstream", "target"), ms_timestamps=True),
    EntityDef("keyauth_credentials", "keyauth_credentials", _CONSUMER, "key", ttl=True),
    EntityDef(
        "plugins",
        "plugins",
        {"route_id": ("route", "routes"), "service_id": ("service", "services"), "consumer_id": ("consumer", "consumers")},
        "instance_name",
        ("name", "route", "service", "consumer"),
    ),
    EntityDef("acls", "acls", _CONSUMER, None, ("consumer", "group")),
    EntityDef("basicauth_credentials", "basicauth_credentials", _CONSUMER, "username"),
    EntityDef("hmacauth_credentials", "hmacauth_credentials", _CONSUMER, "username"),
    EntityDef("jwt_secrets", "jwt_secrets", _CONSUMER, "key"),
    EntityDef("key_sets", "key_sets", {}, "name"),
    EntityDef("keys", "keys", {"set_id": ("set", "key_sets")}, "name", ("kid", "set")),
    EntityDef("vaults", "vaults", {}, "prefix"),
)
ENTITIES = {d.name: d for d in ENTITY_DEFS}
ORDER = tuple(d.name for d in ENTITY_DEFS)
# Nested children a declarative document may hold (kong/db/schema/others/declarative_config.lua).
NESTED = {
    "services": {"routes": "service", "plugins": "service"},
    "routes": {"plugins": "route"},
    "consumers": {
        "plugins": "consumer",
        "keyauth_credentials": "consumer",
        "acls": "consumer",
        "basicauth_credentials": "consumer",
        "hmacauth_credentials": "consumer",
        "jwt_secrets": "consumer",
    },
    "upstreams": {"targets": "upstream"},
    "certificates": {"snis": "certificate"},
    "key_sets": {"keys": "set"},
}
HIDDEN = ("ws_id", "cache_key")


class PgStoreError(Exception):
    """A write refused by the database; `kind` is unique | foreign_key | referenced | not_null |
    invalid | not_found, `fields` names the offending field(s) in API terms."""

    def __init__(self, kind: str, message: str, fields: dict | None = None, entity: str | None = None, referenced_by: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.fields = fields or {}
        self.entity = entity
        self.referenced_by = referenced_by


def _epoch(value):
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        ts = round(value.timestamp(), 3)
        return int(ts) if float(ts).is_integer() else ts
    return value


def _id_of(value):
    if isinstance(value, dict):
        return value.get("id")
    return value


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except (ValueError, TypeError, AttributeError):
        return False


def deterministic_id(entity: str, key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{entity}:{key}"))


class PgStore:
    """Entity storage on the database named by a kong.conf dict (pg_host, pg_port, ...)."""

    def __init__(self, conf: dict, *, application_name: str = "kong"):
        self.conf = conf
        self.application_name = application_name
        self._conn = None
        self._lock = threading.RLock()
        self._columns = None

    # -- connection --------------------------------------------------------------------------

    def _connection(self):
        if self._conn is None or self._conn.closed:
            self._conn = pgdb.connect(self.conf, application_name=self.application_name)
            self._columns = None
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                pgdb.close(self._conn)
                self._conn = None

    def _run(self, fn):
        """Run fn(cursor) in one transaction; reconnect once when the connection was lost."""
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    with conn.cursor() as cur:
                        cur.execute("BEGIN")
                        result = fn(cur)
                        cur.execute("COMMIT")
                    return result
                except (psycopg2.InterfaceError, psycopg2.OperationalError) as exc:
                    if getattr(exc, "pgcode", None) is None and attempt == 1:
                        pgdb.close(conn)
                        self._conn = None
                        continue
                    pgdb._rollback_quietly(conn)
                    raise PgError(pgdb.query_error(exc)) from None
                except (psycopg2.errors.UndefinedColumn, psycopg2.errors.UndefinedTable) as exc:
                    pgdb._rollback_quietly(conn)
                    self._columns = None
                    if attempt == 1:
                        continue
                    raise PgError(pgdb.query_error(exc)) from None
                except psycopg2.Error as exc:
                    pgdb._rollback_quietly(conn)
                    raise self._translate(exc) from None
                except Exception:
                    pgdb._rollback_quietly(conn)
                    raise

    def ping(self) -> None:
        """Connect (or fail with Kong's connection error)."""
        self._run(lambda cur: None)

    def has_table(self, table: str) -> bool:
        return self._run(lambda cur: table in self._schema(cur))

    def refresh_schema(self) -> None:
        with self._lock:
            self._columns = None

    def _schema(self, cur) -> dict:
        if self._columns is None:
            cur.execute(
                "SELECT table_name, column_name, data_type, udt_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
            )
            cols: dict = {}
            for table, column, data_type, udt in cur.fetchall():
                cols.setdefault(table, {})[column] = (data_type, udt)
            self._columns = cols
        return self._columns

    def _default_ws(self, cur):
        if "workspaces" not in self._schema(cur):
            return None
        cur.execute("SELECT id FROM workspaces WHERE name = 'default'")
        row = cur.fetchone()
        return str(row[0]) if row else None

    def _columns_of(self, cur, entity: str) -> dict:
        d = ENTITIES[entity]
        cols = self._schema(cur).get(d.table)
        if cols is None:
            raise PgStoreError("invalid", f"no table for entity '{entity}' in this database", entity=entity)
        return cols

    def tables_present(self) -> list:
        return self._run(lambda cur: [n for n in ORDER if ENTITIES[n].table in self._schema(cur)])

    # -- conversions -------------------------------------------------------------------------

    def _to_api(self, entity: str, row: dict) -> dict:
        d = ENTITIES[entity]
        out = {}
        for column, value in row.items():
            if column in HIDDEN:
                continue
            if column in d.foreign:
                api, _ref = d.foreign[column]
                out[api] = {"id": str(value)} if value is not None else None
            elif column == "ttl" and d.ttl:
                if value is not None:
                    remaining = value - datetime.datetime.now(datetime.UTC)
                    out["ttl"] = max(0, int(remaining.total_seconds()))
                else:
                    out["ttl"] = None
            elif isinstance(value, datetime.datetime):
                out[column] = _epoch(value)
            elif isinstance(value, uuid.UUID):
                out[column] = str(value)
            elif isinstance(value, list):
                out[column] = [str(v) if isinstance(v, uuid.UUID) else v for v in value]
            else:
                out[column] = value
        return out

    def _to_columns(self, cur, entity: str, data: dict) -> dict:
        """{column: (sql placeholder expression, parameter)} for the given API fields."""
        d = ENTITIES[entity]
        cols = self._columns_of(cur, entity)
        api_to_col = {api: col for col, (api, _ref) in d.foreign.items()}
        out = {}
        unknown = []
        for key, value in data.items():
            column = api_to_col.get(key, key)
            if column in HIDDEN:
                continue
            if column not in cols:
                unknown.append(key)
                continue
            data_type, udt = cols[column]
            if column in d.foreign:
                out[column] = ("%s::uuid", _id_of(value))
            elif column == "ttl" and d.ttl:
                out[column] = ("CURRENT_TIMESTAMP + make_interval(secs => %s)", value) if value else ("%s", None)
            elif data_type == "timestamp with time zone":
                out[column] = ("to_timestamp(%s)", value)
            elif data_type == "ARRAY":
                elem = udt.lstrip("_")
                out[column] = (f"%s::{elem}[]", list(value) if value is not None else None)
            elif data_type == "jsonb":
                out[column] = ("%s::jsonb", psycopg2.extras.Json(value) if value is not None else None)
            elif data_type == "uuid":
                out[column] = ("%s::uuid", value)
            else:
                out[column] = ("%s", value)
        if unknown:
            raise PgStoreError("invalid", f"unknown field(s) for {entity}: {', '.join(sorted(unknown))}", {k: "unknown field" for k in unknown}, entity=entity)
        return out

    def _internal_columns(self, cur, entity: str, full: dict) -> dict:
        d = ENTITIES[entity]
        cols = self._columns_of(cur, entity)
        extra = {}
        ws = self._default_ws(cur)
        if "ws_id" in cols and ws:
            extra["ws_id"] = ("%s::uuid", ws)
        if "cache_key" in cols and d.cache_key:
            parts = [str(_id_of(full.get(f)) or "") for f in d.cache_key]
            parts += [""] * (5 - len(parts))
            extra["cache_key"] = ("%s", f"{entity}:{':'.join(parts)}:{ws or ''}")
        return extra

    def _translate(self, exc: Exception) -> Exception:
        diag = getattr(exc, "diag", None)
        detail = (getattr(diag, "message_detail", None) or "") if diag else ""
        table = getattr(diag, "table_name", None) if diag else None
        entity = next((d.name for d in ENTITY_DEFS if d.table == table), table)
        fields = {}
        column = value = None
        if detail.startswith("Key ("):
            inner = detail[5:]
            column, _, rest = inner.partition(")=(")
            value, _, _ = rest.partition(")")
        if entity in ENTITIES and column:
            for col, (api, _ref) in ENTITIES[entity].foreign.items():
                if col == column:
                    column = api
        if column:
            fields[column] = value
        if isinstance(exc, psycopg2.errors.UniqueViolation):
            return PgStoreError("unique", pgdb.query_error(exc), fields, entity)
        if isinstance(exc, psycopg2.errors.ForeignKeyViolation):
            if "is still referenced from table" in detail:
                ref_table = detail.rsplit("table", 1)[-1].strip(' ".')
                ref = next((d.name for d in ENTITY_DEFS if d.table == ref_table), ref_table)
                return PgStoreError("referenced", pgdb.query_error(exc), fields, entity, referenced_by=ref)
            return PgStoreError("foreign_key", pgdb.query_error(exc), fields, entity)
        if isinstance(exc, psycopg2.errors.NotNullViolation):
            col = getattr(diag, "column_name", None)
            return PgStoreError("not_null", pgdb.query_error(exc), {col: None} if col else {}, entity)
        if isinstance(exc, (psycopg2.errors.InvalidTextRepresentation, psycopg2.errors.DataError)):
            return PgStoreError("invalid", pgdb.query_error(exc), fields, entity)
        return PgError(pgdb.query_error(exc))

    # -- reads -------------------------------------------------------------------------------

    def _select(self, cur, entity: str, where: str = "", params=()) -> list:
        self._columns_of(cur, entity)
        table = ENTITIES[entity].table
        cur.execute(f"SELECT * FROM {table} {where} ORDER BY id", params)
        names = [c.name for c in cur.description]
        return [self._to_api(entity, dict(zip(names, row))) for row in cur.fetchall()]

    def list(self, entity: str) -> list:
        return self._run(lambda cur: self._select(cur, entity))

    def load_all(self) -> dict:
        def body(cur):
            schema = self._schema(cur)
            return {name: self._select(cur, name) for name in ORDER if ENTITIES[name].table in schema}

        return self._run(body)

    def _get(self, cur, entity: str, key):
        key = _id_of(key)
        if key is None:
            return None
        d = ENTITIES[entity]
        if _is_uuid(key):
            rows = self._select(cur, entity, "WHERE id = %s::uuid", (str(key),))
            if rows:
                return rows[0]
        cols = self._columns_of(cur, entity)
        if d.endpoint_key and d.endpoint_key in cols:
            rows = self._select(cur, entity, f'WHERE "{d.endpoint_key}" = %s', (str(key),))
            if rows:
                return rows[0]
        if entity == "consumers" and "custom_id" in cols:
            rows = self._select(cur, entity, "WHERE custom_id = %s", (str(key),))
            if rows:
                return rows[0]
        return None

    def get(self, entity: str, id_or_name) -> dict | None:
        return self._run(lambda cur: self._get(cur, entity, id_or_name))

    def counts(self) -> dict:
        def body(cur):
            schema = self._schema(cur)
            out = {}
            for name in ORDER:
                if ENTITIES[name].table in schema:
                    cur.execute(f"SELECT count(*) FROM {ENTITIES[name].table}")
                    out[name] = cur.fetchone()[0]
            return out

        return self._run(body)

    # -- writes ------------------------------------------------------------------------------

    def _prepare_new(self, cur, entity: str, data: dict) -> dict:
        d = ENTITIES[entity]
        cols = self._columns_of(cur, entity)
        full = dict(data)
        if not full.get("id"):
            full["id"] = str(uuid.uuid4())
        now = datetime.datetime.now(datetime.UTC).timestamp()
        stamp = round(now, 3) if d.ms_timestamps else int(now)
        if "created_at" in cols and full.get("created_at") is None:
            full["created_at"] = stamp
        if "updated_at" in cols and full.get("updated_at") is None:
            full["updated_at"] = full.get("created_at", stamp)
        if entity == "ca_certificates" and "cert_digest" in cols and not full.get("cert_digest") and full.get("cert"):
            full["cert_digest"] = hashlib.sha256(str(full["cert"]).encode()).hexdigest()
        return full

    def _write(self, cur, entity: str, full: dict, *, upsert: bool) -> str:
        values = self._to_columns(cur, entity, full)
        values.update(self._internal_columns(cur, entity, full))
        columns = list(values)
        table = ENTITIES[entity].table
        sql = f"INSERT INTO {table} (" + ", ".join(f'"{c}"' for c in columns) + ") VALUES (" + ", ".join(values[c][0] for c in columns) + ")"
        if upsert:
            updates = [c for c in columns if c != "id"]
            sql += " ON CONFLICT (id) DO UPDATE SET " + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in updates)
        cur.execute(sql + " RETURNING id", [values[c][1] for c in columns])
        return str(cur.fetchone()[0])

    def insert(self, entity: str, data: dict) -> dict:
        def body(cur):
            full = self._prepare_new(cur, entity, data)
            new_id = self._write(cur, entity, full, upsert=False)
            return self._get(cur, entity, new_id)

        return self._run(body)

    def upsert(self, entity: str, data: dict) -> dict:
        def body(cur):
            full = self._prepare_new(cur, entity, data)
            new_id = self._write(cur, entity, full, upsert=True)
            return self._get(cur, entity, new_id)

        return self._run(body)

    def update(self, entity: str, id_, data: dict) -> dict | None:
        def body(cur):
            current = self._get(cur, entity, id_)
            if current is None:
                return None
            cols = self._columns_of(cur, entity)
            changes = {k: v for k, v in data.items() if k != "id"}
            if "updated_at" in cols and "updated_at" not in changes:
                now = datetime.datetime.now(datetime.UTC).timestamp()
                changes["updated_at"] = round(now, 3) if ENTITIES[entity].ms_timestamps else int(now)
            merged = dict(current)
            merged.update(changes)
            values = self._to_columns(cur, entity, changes)
            internal = self._internal_columns(cur, entity, merged)
            if "cache_key" in internal:
                values["cache_key"] = internal["cache_key"]
            if not values:
                return current
            sets = ", ".join(f'"{c}" = {values[c][0]}' for c in values)
            cur.execute(f"UPDATE {ENTITIES[entity].table} SET {sets} WHERE id = %s::uuid", [values[c][1] for c in values] + [current["id"]])
            return self._get(cur, entity, current["id"])

        return self._run(body)

    def delete(self, entity: str, id_) -> bool:
        def body(cur):
            current = self._get(cur, entity, id_)
            if current is None:
                return False
            cur.execute(f"DELETE FROM {ENTITIES[entity].table} WHERE id = %s::uuid", (current["id"],))
            return cur.rowcount == 1

        return self._run(body)

    # -- declarative export / import -----------------------------------------------------------

    def export(self, format_version: str = "3.0", row_filter=None) -> dict:
        """`kong config db_export` content: flat lists, foreign keys as bare ids (FACTS 4.1).

        `row_filter(entity, row) -> row` may drop columns the exporting version does not know.
        """
        data = self.load_all()
        if row_filter is not None:
            data = {name: [row_filter(name, row) for row in rows] for name, rows in data.items()}
        doc = {"_format_version": format_version, "_transform": False}
        for name in ORDER:
            rows = data.get(name) or []
            if not rows:
                continue
            out_rows = []
            for row in rows:
                out_rows.append(
                    {
                        k: (v["id"] if isinstance(v, dict) and set(v) == {"id"} and k in {api for api, _r in ENTITIES[name].foreign.values()} else v)
                        for k, v in row.items()
                    }
                )
            doc[name] = out_rows
        params = self._run(self._parameters)
        if params:
            doc["parameters"] = params
        return doc

    def _parameters(self, cur) -> list:
        if "parameters" not in self._schema(cur):
            return []
        cur.execute("SELECT key, value, created_at FROM parameters ORDER BY key")
        return [{"key": k, "value": v, "created_at": _epoch(c)} for k, v, c in cur.fetchall()]

    def import_config(self, parsed: dict) -> dict:
        """Upsert every entity of a declarative document (flat or nested); deletes nothing.

        Returns {entity: number of rows written}. All or nothing: one transaction.
        """
        records = flatten(parsed)

        def body(cur):
            schema = self._schema(cur)
            names = {}
            for entity, items in records.items():
                if entity not in ENTITIES:
                    continue
                for item in items:
                    key = ENTITIES[entity].endpoint_key
                    if key and item.get(key) is not None:
                        names[(entity, str(item[key]))] = item["id"]
            written = {}
            for entity in ORDER:
                items = records.get(entity) or []
                if not items:
                    continue
                if ENTITIES[entity].table not in schema:
                    raise PgStoreError("invalid", f"no table for entity '{entity}' in this database", entity=entity)
                for item in items:
                    item = dict(item)
                    for api, ref in ENTITIES[entity].foreign.values():
                        value = _id_of(item.get(api))
                        if value is not None and not _is_uuid(value):
                            found = names.get((ref, str(value))) or (self._get(cur, ref, value) or {}).get("id")
                            if found is None:
                                raise PgStoreError("foreign_key", f"invalid reference '{api}: {value}' (no such entry in '{ref}')", {api: value}, entity)
                            value = found
                        if api in item:
                            item[api] = {"id": value} if value is not None else None
                    full = self._prepare_new(cur, entity, item)
                    self._write(cur, entity, full, upsert=True)
                    written[entity] = written.get(entity, 0) + 1
            for param in records.get("parameters", []):
                cur.execute(
                    "INSERT INTO parameters (key, value, created_at) VALUES (%s, %s, to_timestamp(%s)) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    (param["key"], param["value"], param.get("created_at")),
                )
                written["parameters"] = written.get("parameters", 0) + 1
            return written

        return self._run(body)

    # -- cluster events (kong/cluster_events/strategies/postgres.lua) ---------------------------

    def post_cluster_event(self, channel: str, data: str, node_id: str | None = None, delay: float | None = None, ttl: int = CLUSTER_EVENTS_TTL) -> str:
        """Insert one cluster_events row; nodes sharing the database poll it to invalidate caches."""
        event_id = str(uuid.uuid4())

        def body(cur):
            cur.execute(
                "INSERT INTO cluster_events (id, node_id, at, nbf, expire_at, channel, data) "
                "VALUES (%s::uuid, %s::uuid, CURRENT_TIMESTAMP, "
                "CASE WHEN %s::float8 IS NULL THEN NULL ELSE CURRENT_TIMESTAMP + make_interval(secs => %s::float8) END, "
                "CURRENT_TIMESTAMP + make_interval(secs => %s), %s, %s)",
                (event_id, node_id or str(uuid.uuid4()), delay, delay, ttl, channel, data),
            )

        self._run(body)
        return event_id

    def cluster_events(self, since: float | None = None, channels=None) -> list:
        """Events with `at` after `since` (epoch seconds), oldest first."""

        def body(cur):
            where = ["TRUE"]
            params = []
            if since is not None:
                where.append("at > to_timestamp(%s)")
                params.append(since)
            if channels:
                where.append("channel = ANY(%s)")
                params.append(list(channels))
            cur.execute("SELECT id, node_id, channel, data, at, nbf FROM cluster_events WHERE " + " AND ".join(where) + " ORDER BY at, id", params)
            return [
                {"id": str(r[0]), "node_id": str(r[1]), "channel": r[2], "data": r[3], "at": r[4].timestamp(), "nbf": r[5].timestamp() if r[5] else None}
                for r in cur.fetchall()
            ]

        return self._run(body)

    # -- clustering_data_planes (a control plane's record of its data planes) -------------------

    def upsert_data_plane(self, row: dict, ttl: int) -> None:
        """Insert or update one data plane's row with ttl = now + ``ttl`` seconds; only the columns
        this schema has (they came with the migrations of 2.2 to 3.7)."""

        def body(cur):
            columns = self._schema(cur).get("clustering_data_planes") or {}
            names, values = [], []
            for name in ("id", "hostname", "ip", "config_hash", "version", "sync_status", "labels", "cert_details", "rpc_capabilities"):
                if name in columns and (name in row or name in ("hostname", "ip", "config_hash")):
                    value = row.get(name)
                    if name in ("labels", "cert_details") and value is not None:
                        value = json.dumps(value)
                    names.append(name)
                    values.append(value if value is not None or name not in ("hostname", "ip") else "")
            exprs = ["%s"] * len(names)
            for name in ("last_seen", "updated_at"):
                if name in columns:
                    names.append(name)
                    exprs.append("to_timestamp(%s)")
                    values.append(row.get(name) or row.get("last_seen"))
            names.append("ttl")
            exprs.append("CURRENT_TIMESTAMP + make_interval(secs => %s)")
            values.append(ttl)
            updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n != "id")
            cur.execute(f"INSERT INTO clustering_data_planes ({', '.join(names)}) VALUES ({', '.join(exprs)}) ON CONFLICT (id) DO UPDATE SET {updates}", values)

        self._run(body)

    def data_planes(self) -> list:
        """Rows whose ttl has not passed, ttl as the seconds left (Kong's Postgres strategy)."""

        def body(cur):
            columns = self._schema(cur).get("clustering_data_planes") or {}
            names = [n for n in columns if n != "ttl"]
            cur.execute(
                f"SELECT {', '.join(names)}, FLOOR(EXTRACT(EPOCH FROM (ttl - CURRENT_TIMESTAMP))) "
                "FROM clustering_data_planes WHERE ttl IS NULL OR ttl >= CURRENT_TIMESTAMP ORDER BY id"
            )
            out = []
            for rec in cur.fetchall():
                row = dict(zip(names, rec[:-1]))
                row["id"] = str(row["id"])
                for name in ("last_seen", "updated_at"):
                    if row.get(name) is not None:
                        row[name] = int(row[name].timestamp())
                row["ttl"] = int(rec[-1]) if rec[-1] is not None else None
                out.append(row)
            return out

        return self._run(body)

    def now(self) -> float:
        """The database clock (epoch seconds), for cluster event polling windows."""

        def body(cur):
            cur.execute("SELECT extract(epoch FROM CURRENT_TIMESTAMP)")
            return float(cur.fetchone()[0])

        return self._run(body)


def flatten(doc: dict) -> dict:
    """{entity: [flat Admin-shape dicts with ids]} from a flat or nested declarative document."""
    records: dict = {}

    def add(entity: str, raw, parent=None):
        if entity not in ENTITIES:
            return
        if entity == "snis" and isinstance(raw, str):
            raw = {"name": raw}
        if not isinstance(raw, dict):
            raise PgStoreError("invalid", f"expected a record in '{entity}'", entity=entity)
        children = NESTED.get(entity, {})
        item = {k: v for k, v in raw.items() if k not in children}
        if parent is not None:
            field_name, pid = parent
            item[field_name] = {"id": pid}
        for api, _ref in ENTITIES[entity].foreign.values():
            if isinstance(item.get(api), str):
                item[api] = {"id": item[api]}
        if not item.get("id"):
            item["id"] = deterministic_id(entity, _natural_key(entity, item))
        records.setdefault(entity, []).append(item)
        for child_key, fk in children.items():
            for child in raw.get(child_key) or []:
                add(child_key, child, (fk, item["id"]))

    for entity in ORDER:
        for raw in doc.get(entity) or []:
            add(entity, raw)
    if doc.get("parameters"):
        records["parameters"] = list(doc["parameters"])
    return records


def _natural_key(entity: str, item: dict) -> str:
    d = ENTITIES[entity]
    if d.endpoint_key and item.get(d.endpoint_key) is not None:
        return str(item[d.endpoint_key])
    parts = [str(_id_of(item.get(f)) or "") for f in d.cache_key] if d.cache_key else []
    if parts:
        return ":".join(parts)
    return json.dumps(item, sort_keys=True, default=str)
