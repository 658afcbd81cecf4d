"""Kong's database migrations on real PostgreSQL: catalog per version, DDL, schema_meta, state, lock.

Sources (FACTS.md): 1.2 (run lines), 1.4 (cluster mutex), 2.1 (schema_meta table, recording and
reading rules), 2.2/2.3 and migrations-by-version.json (names, order and teardown flags per
version), 8.3 (the teardown flag comes from the binary that runs `up`).

The SQL of each migration is the simulator's own: it creates and alters the tables Kong's
PostgreSQL schema has (services, routes, plugins, consumers, keyauth_credentials, upstreams,
targets, certificates, snis, ca_certificates, workspaces, tags, cluster_events,
clustering_data_planes, the plugin tables ...) in the release where Kong introduced them, and
every teardown does real work on the data (backfills, de-duplication, plugin config rewrites).
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from dataclasses import dataclass, field

from . import pgdb
from .pgdb import PgError

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "migrations-by-version.json")

NEEDS_BOOTSTRAP_MSG = (
    "Database needs bootstrapping or is older than Kong 1.0.\n\n"
    "To start a new installation from scratch, run 'kong migrations bootstrap'.\n\n"
    "To migrate from a version older than 1.0, migrated to Kong 1.5.0 first. \n"
    "If you still have 'apis' entities, you can convert them to Routes and Services\n"
    "using the 'kong migrations migrate-apis' command in Kong 1.5.0.\n\n"
)
MUTEX_KEY = "migrations"
NOT_LEADER_MSG = "aborted: another node is performing database changes"
MAX_LOCK_WAIT_STEP = 2.0
CORE = "core"


# --------------------------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    name: str
    has_teardown: bool


@dataclass(frozen=True)
class Subsystem:
    name: str
    migrations: tuple

    @property
    def namespace(self) -> str:
        if self.name == CORE:
            return "kong.db.migrations.core"
        return f"kong.plugins.{self.name}.migrations"

    def names(self) -> list:
        return [m.name for m in self.migrations]


@functools.lru_cache(maxsize=1)
def _raw() -> dict:
    with open(DATA_FILE, encoding="utf-8") as fh:
        return json.load(fh)


def known_versions() -> tuple:
    return tuple(_raw()["versions"])


@functools.cache
def catalog(version: str) -> tuple:
    """Every subsystem the `bundled` plugins of `version` ship, core first, in Kong's order."""
    versions = _raw()["versions"]
    if version not in versions:
        raise KeyError(f"no migration catalog for Kong {version}")
    out = []
    for subsys in versions[version]["subsystems"]:
        migs = tuple(Migration(m["name"], bool(m["has_teardown"])) for m in subsys["migrations"])
        out.append(Subsystem(subsys["subsystem"], migs))
    core = [s for s in out if s.name == CORE]
    plugins = sorted((s for s in out if s.name != CORE), key=lambda s: s.name.encode())
    return tuple(core + plugins)


def enabled_plugins(conf: dict, version: str) -> set | None:
    """Plugin names enabled by kong.conf `plugins`; None means every bundled plugin."""
    value = conf.get("plugins", "bundled")
    if value is None:
        value = "bundled"
    if isinstance(value, str):
        items = [p.strip() for p in value.split(",") if p.strip()]
    else:
        items = [str(p).strip() for p in value]
    if not items or items == ["off"]:
        return set()
    if "bundled" in items:
        return None
    return set(items)


def subsystems(conf: dict, version: str) -> tuple:
    plugins = enabled_plugins(conf, version)
    return tuple(s for s in catalog(version) if s.name == CORE or plugins is None or s.name in plugins)


# --------------------------------------------------------------------------------------------
# SQL of each migration
# --------------------------------------------------------------------------------------------

NOW_S = "date_trunc('second', CURRENT_TIMESTAMP)"
NOW_MS = "date_trunc('milliseconds', CURRENT_TIMESTAMP)"
DEFAULT_WS = "(SELECT id FROM workspaces WHERE name = 'default')"

_SQL: dict = {}


def _m(subsystem: str, name: str, up: str, teardown: str | None = None) -> None:
    _SQL[(subsystem, name)] = (up.strip(), teardown.strip() if teardown else None)


def _col(table: str, column: str, ctype: str) -> str:
    return f"ALTER TABLE IF EXISTS {table} ADD COLUMN IF NOT EXISTS {column} {ctype};\n"


def _idx(name: str, table: str, expr: str, using: str = "") -> str:
    using = f" USING {using}" if using else ""
    return f"CREATE INDEX IF NOT EXISTS {name} ON {table}{using} ({expr});\n"


def _tagged(table: str) -> str:
    """tags column, its GIN index and the trigger keeping the `tags` table in sync."""
    return (
        _col(table, "tags", "TEXT[]")
        + _idx(f"{table}_tags_idx", table, "tags", "GIN")
        + f"DROP TRIGGER IF EXISTS {table}_sync_tags_trigger ON {table};\n"
        + f"CREATE TRIGGER {table}_sync_tags_trigger AFTER INSERT OR UPDATE OF tags OR DELETE"
        + f" ON {table} FOR EACH ROW EXECUTE PROCEDURE sync_tags();\n"
    )


def _workspaced(*tables: str) -> str:
    return "".join(_col(t, "ws_id", "UUID REFERENCES workspaces (id)") + _idx(f"{t}_ws_id_idx", t, "ws_id") for t in tables)


def _fill_ws(*tables: str) -> str:
    return "".join(f"UPDATE {t} SET ws_id = {DEFAULT_WS} WHERE ws_id IS NULL;\n" for t in tables)


def _rename_config_keys(plugin: str, pairs: dict) -> str:
    out = []
    for old, new in pairs.items():
        out.append(
            f"UPDATE plugins SET config = (config - '{old}') || jsonb_build_object('{new}', config -> '{old}')\n"
            f" WHERE name = '{plugin}' AND config ? '{old}' AND NOT config ? '{new}';\n"
        )
    return "".join(out)


_REDIS_FIELDS = ("host", "port", "password", "timeout", "database", "ssl", "ssl_verify", "server_name")


def _redis_copy(plugin: str) -> str:
    """Up half of the 3.6/3.7 redis config move: the shared `redis` record, old keys kept."""
    pairs = ", ".join(f"'{f}', config -> 'redis_{f}'" for f in _REDIS_FIELDS)
    return (
        f"UPDATE plugins SET config = config || jsonb_build_object('redis', jsonb_build_object({pairs}))\n"
        f" WHERE name = '{plugin}' AND config ? 'redis_host' AND NOT config ? 'redis';\n"
    )


def _redis_drop_old(plugin: str) -> str:
    keys = ", ".join(f"'redis_{f}'" for f in _REDIS_FIELDS)
    return f"UPDATE plugins SET config = config - ARRAY[{keys}]\n WHERE name = '{plugin}' AND config ? 'redis';\n"


# ---- core ----------------------------------------------------------------------------------

_m(
    CORE,
    "000_base",
    f"""
CREATE TABLE IF NOT EXISTS cluster_events (
  id         UUID PRIMARY KEY,
  node_id    UUID NOT NULL,
  at         TIMESTAMP WITH TIME ZONE NOT NULL,
  nbf        TIMESTAMP WITH TIME ZONE,
  expire_at  TIMESTAMP WITH TIME ZONE NOT NULL,
  channel    TEXT,
  data       TEXT
);
{_idx("cluster_events_at_idx", "cluster_events", "at")}
{_idx("cluster_events_channel_idx", "cluster_events", "channel")}
CREATE OR REPLACE FUNCTION purge_expired_cluster_events() RETURNS TRIGGER LANGUAGE plpgsql AS $fn$
BEGIN
  DELETE FROM cluster_events WHERE expire_at <= CURRENT_TIMESTAMP;
  RETURN NULL;
END
$fn$;
DROP TRIGGER IF EXISTS cluster_events_purge_trigger ON cluster_events;
CREATE TRIGGER cluster_events_purge_trigger AFTER INSERT ON cluster_events
  FOR EACH STATEMENT EXECUTE PROCEDURE purge_expired_cluster_events();

CREATE TABLE IF NOT EXISTS services (
  id               UUID PRIMARY KEY,
  created_at       TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  updated_at       TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  name             TEXT UNIQUE,
  retries          BIGINT,
  protocol         TEXT,
  host             TEXT,
  port             BIGINT,
  path             TEXT,
  connect_timeout  BIGINT,
  write_timeout    BIGINT,
  read_timeout     BIGINT
);

CREATE TABLE IF NOT EXISTS routes (
  id              UUID PRIMARY KEY,
  created_at      TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  updated_at      TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  name            TEXT UNIQUE,
  service_id      UUID REFERENCES services (id),
  protocols       TEXT[],
  methods         TEXT[],
  hosts           TEXT[],
  paths           TEXT[],
  snis            TEXT[],
  sources         JSONB,
  destinations    JSONB,
  regex_priority  BIGINT,
  strip_path      BOOLEAN,
  preserve_host   BOOLEAN
);
{_idx("routes_service_id_idx", "routes", "service_id")}

CREATE TABLE IF NOT EXISTS certificates (
  id          UUID PRIMARY KEY,
  created_at  TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  cert        TEXT,
  key         TEXT
);

CREATE TABLE IF NOT EXISTS snis (
  id              UUID PRIMARY KEY,
  created_at      TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  name            TEXT NOT NULL UNIQUE,
  certificate_id  UUID REFERENCES certificates (id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS consumers (
  id          UUID PRIMARY KEY,
  created_at  TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  username    TEXT UNIQUE,
  custom_id   TEXT UNIQUE
);
{_idx("consumers_username_lower_idx", "consumers", "lower(username)")}

CREATE TABLE IF NOT EXISTS plugins (
  id           UUID PRIMARY KEY,
  created_at   TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  name         TEXT NOT NULL,
  consumer_id  UUID REFERENCES consumers (id) ON DELETE CASCADE,
  service_id   UUID REFERENCES services (id) ON DELETE CASCADE,
  route_id     UUID REFERENCES routes (id) ON DELETE CASCADE,
  config       JSONB NOT NULL,
  enabled      BOOLEAN NOT NULL,
  cache_key    TEXT UNIQUE,
  protocols    TEXT[]
);
{_idx("plugins_name_idx", "plugins", "name")}
{_idx("plugins_consumer_id_idx", "plugins", "consumer_id")}
{_idx("plugins_service_id_idx", "plugins", "service_id")}
{_idx("plugins_route_id_idx", "plugins", "route_id")}

CREATE TABLE IF NOT EXISTS upstreams (
  id                    UUID PRIMARY KEY,
  created_at            TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  name                  TEXT UNIQUE,
  hash_on               TEXT,
  hash_fallback         TEXT,
  hash_on_header        TEXT,
  hash_fallback_header  TEXT,
  hash_on_cookie        TEXT,
  hash_on_cookie_path   TEXT,
  slots                 INTEGER NOT NULL,
  healthchecks          JSONB
);

CREATE TABLE IF NOT EXISTS targets (
  id           UUID PRIMARY KEY,
  created_at   TIMESTAMP WITH TIME ZONE DEFAULT {NOW_MS},
  upstream_id  UUID REFERENCES upstreams (id) ON DELETE CASCADE,
  target       TEXT NOT NULL,
  weight       INTEGER NOT NULL
);
{_idx("targets_target_idx", "targets", "target")}
{_idx("targets_upstream_id_idx", "targets", "upstream_id")}
""",
)

_CORE_TAGGED = ("services", "routes", "certificates", "snis", "consumers", "plugins", "upstreams", "targets")

_m(
    CORE,
    "003_100_to_110",
    """
CREATE TABLE IF NOT EXISTS tags (
  entity_id    UUID PRIMARY KEY,
  entity_name  TEXT,
  tags         TEXT[]
);
CREATE INDEX IF NOT EXISTS tags_entity_name_idx ON tags (entity_name);
CREATE INDEX IF NOT EXISTS tags_tags_idx ON tags USING GIN (tags);
CREATE OR REPLACE FUNCTION sync_tags() RETURNS TRIGGER LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM tags WHERE entity_id = OLD.id;
    RETURN OLD;
  END IF;
  IF NEW.tags IS NULL OR cardinality(NEW.tags) = 0 THEN
    DELETE FROM tags WHERE entity_id = NEW.id;
  ELSE
    INSERT INTO tags (entity_id, entity_name, tags) VALUES (NEW.id, TG_TABLE_NAME, NEW.tags)
      ON CONFLICT (entity_id) DO UPDATE SET tags = EXCLUDED.tags, entity_name = EXCLUDED.entity_name;
  END IF;
  RETURN NEW;
END
$fn$;
"""
    + "".join(_tagged(t) for t in _CORE_TAGGED),
)

_m(CORE, "004_110_to_120", _col("upstreams", "algorithm", "TEXT") + _col("routes", "https_redirect_status_code", "INTEGER"))

_m(
    CORE,
    "005_120_to_130",
    f"""
CREATE TABLE IF NOT EXISTS ca_certificates (
  id           UUID PRIMARY KEY,
  created_at   TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  cert         TEXT NOT NULL,
  cert_digest  TEXT UNIQUE
);
{_tagged("ca_certificates")}
{_col("services", "client_certificate_id", "UUID REFERENCES certificates (id)")}
""",
    """
UPDATE upstreams
   SET algorithm = CASE WHEN hash_on IS NULL OR hash_on = 'none' THEN 'round-robin'
                        ELSE 'consistent-hashing' END
 WHERE algorithm IS NULL;
""",
)

_m(CORE, "006_130_to_140", _col("routes", "headers", "JSONB") + _col("upstreams", "host_header", "TEXT"))

_m(CORE, "007_140_to_150", _col("routes", "path_handling", "TEXT") + _col("upstreams", "client_certificate_id", "UUID REFERENCES certificates (id)"))

_m(
    CORE,
    "008_150_to_200",
    _col("services", "tls_verify", "BOOLEAN") + _col("services", "tls_verify_depth", "SMALLINT") + _col("services", "ca_certificates", "UUID[]"),
    "UPDATE routes SET path_handling = 'v0' WHERE path_handling IS NULL;",
)

_m(
    CORE,
    "009_200_to_210",
    f"""
CREATE TABLE IF NOT EXISTS workspaces (
  id          UUID PRIMARY KEY,
  name        TEXT UNIQUE,
  comment     TEXT,
  created_at  TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  meta        JSONB,
  config      JSONB
);
INSERT INTO workspaces (id, name)
  SELECT gen_random_uuid(), 'default'
   WHERE NOT EXISTS (SELECT 1 FROM workspaces WHERE name = 'default');
{_workspaced(*_CORE_TAGGED)}
""",
    _fill_ws(*_CORE_TAGGED),
)

_m(CORE, "010_210_to_211", _idx("cluster_events_expire_at_idx", "cluster_events", "expire_at"))

_m(CORE, "011_212_to_213", _idx("snis_certificate_id_idx", "snis", "certificate_id"))

_m(
    CORE,
    "012_213_to_220",
    f"""
CREATE TABLE IF NOT EXISTS clustering_data_planes (
  id           UUID PRIMARY KEY,
  hostname     TEXT NOT NULL,
  ip           TEXT NOT NULL,
  last_seen    TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  config_hash  TEXT NOT NULL,
  ttl          TIMESTAMP WITH TIME ZONE
);
{_idx("clustering_data_planes_ttl_idx", "clustering_data_planes", "ttl")}
CREATE TABLE IF NOT EXISTS parameters (
  key         TEXT PRIMARY KEY,
  value       TEXT NOT NULL,
  created_at  TIMESTAMP WITH TIME ZONE
);
{_col("routes", "request_buffering", "BOOLEAN")}
{_col("routes", "response_buffering", "BOOLEAN")}
""",
    f"""
INSERT INTO parameters (key, value, created_at) VALUES ('cluster_id', gen_random_uuid()::TEXT, {NOW_S})
  ON CONFLICT (key) DO NOTHING;
""",
)

_m(
    CORE,
    "013_220_to_230",
    _col("clustering_data_planes", "version", "TEXT")
    + _col("clustering_data_planes", "sync_status", "TEXT NOT NULL DEFAULT 'unknown'")
    + _col("certificates", "cert_alt", "TEXT")
    + _col("certificates", "key_alt", "TEXT"),
)

_m(
    CORE,
    "014_230_to_270",
    f"""
{_col("services", "enabled", "BOOLEAN DEFAULT TRUE")}
{_col("upstreams", "use_srv_name", "BOOLEAN DEFAULT FALSE")}
CREATE TABLE IF NOT EXISTS vaults_beta (
  id           UUID PRIMARY KEY,
  ws_id        UUID REFERENCES workspaces (id),
  prefix       TEXT UNIQUE,
  name         TEXT NOT NULL,
  description  TEXT,
  config       JSONB NOT NULL,
  created_at   TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  updated_at   TIMESTAMP WITH TIME ZONE
);
{_tagged("vaults_beta")}
""",
)

_m(
    CORE,
    "015_270_to_280",
    _idx("services_client_certificate_id_idx", "services", "client_certificate_id")
    + _idx("upstreams_client_certificate_id_idx", "upstreams", "client_certificate_id"),
)

_m(
    CORE,
    "016_280_to_300",
    f"""
DO $do$
BEGIN
  IF to_regclass('vaults_beta') IS NOT NULL AND to_regclass('vaults') IS NULL THEN
    ALTER TABLE vaults_beta RENAME TO vaults;
  END IF;
END
$do$;
{_col("targets", "cache_key", "TEXT UNIQUE")}
{_col("upstreams", "hash_on_query_arg", "TEXT")}
{_col("upstreams", "hash_fallback_query_arg", "TEXT")}
{_col("upstreams", "hash_on_uri_capture", "TEXT")}
{_col("upstreams", "hash_fallback_uri_capture", "TEXT")}
{_col("routes", "expression", "TEXT")}
{_col("routes", "priority", "BIGINT")}
{_col("plugins", "instance_name", "TEXT UNIQUE")}
CREATE TABLE IF NOT EXISTS key_sets (
  id          UUID PRIMARY KEY,
  name        TEXT UNIQUE,
  ws_id       UUID REFERENCES workspaces (id),
  created_at  TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  updated_at  TIMESTAMP WITH TIME ZONE
);
{_tagged("key_sets")}
CREATE TABLE IF NOT EXISTS keys (
  id          UUID PRIMARY KEY,
  set_id      UUID REFERENCES key_sets (id) ON DELETE CASCADE,
  name        TEXT UNIQUE,
  cache_key   TEXT UNIQUE,
  ws_id       UUID REFERENCES workspaces (id),
  kid         TEXT NOT NULL,
  jwk         TEXT,
  pem         JSONB,
  created_at  TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  updated_at  TIMESTAMP WITH TIME ZONE
);
{_tagged("keys")}
-- up_f p_migrate_regex_path (Kong/kong 3.4.2 kong/db/migrations/core/016_280_to_300.lua:12-42,148): a path that
-- holds anything but [a-zA-Z0-9.-_~/%] is a regex and gets the `~` prefix (migrate_path_280_300.lua:73-87);
-- the percent-decoding normalisation of both branches is not modelled
UPDATE routes SET paths = ARRAY(
  SELECT CASE WHEN p ~ '^[a-zA-Z0-9.\\-_~/%]*$' THEN p ELSE '~' || p END
    FROM unnest(paths) WITH ORDINALITY AS u(p, n) ORDER BY n)
 WHERE paths IS NOT NULL AND EXISTS (SELECT 1 FROM unnest(paths) AS q(p) WHERE p !~ '^[a-zA-Z0-9.\\-_~/%]*$');
""",
    """
DELETE FROM targets AS older
 USING targets AS newer
 WHERE older.upstream_id = newer.upstream_id
   AND older.target = newer.target
   AND older.created_at < newer.created_at;
UPDATE targets SET cache_key = concat('targets:', upstream_id, ':', target, '::::', ws_id);
""",
)

_m(CORE, "017_300_to_310", _idx("keys_set_id_idx", "keys", "set_id"))

_m(
    CORE,
    "018_310_to_320",
    "".join(
        _col(t, "updated_at", "TIMESTAMP WITH TIME ZONE") for t in ("plugins", "consumers", "upstreams", "targets", "certificates", "snis", "ca_certificates")
    ),
)

_m(CORE, "019_320_to_330", _col("clustering_data_planes", "updated_at", "TIMESTAMP WITH TIME ZONE"))

_m(
    CORE,
    "020_330_to_340",
    f"""
CREATE TABLE IF NOT EXISTS filter_chains (
  id          UUID PRIMARY KEY,
  name        TEXT UNIQUE,
  enabled     BOOLEAN DEFAULT TRUE,
  route_id    UUID REFERENCES routes (id) ON DELETE CASCADE,
  service_id  UUID REFERENCES services (id) ON DELETE CASCADE,
  ws_id       UUID REFERENCES workspaces (id) ON DELETE CASCADE,
  cache_key   TEXT UNIQUE,
  filters     JSONB,
  created_at  TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  updated_at  TIMESTAMP WITH TIME ZONE
);
{_tagged("filter_chains")}
""",
)

_m(CORE, "021_340_to_350", _col("clustering_data_planes", "labels", "JSONB"))
_m(CORE, "022_350_to_360", _col("clustering_data_planes", "cert_details", "JSONB"))
# Kong/kong 3.7.1 kong/db/migrations/core/023_360_to_370.lua
_m(
    CORE,
    "023_360_to_370",
    """
CREATE TABLE IF NOT EXISTS "clustering_rpc_requests" (
  "id"         BIGSERIAL                  PRIMARY KEY,
  "node_id"    UUID                       NOT NULL,
  "reply_to"   UUID                       NOT NULL,
  "ttl"        TIMESTAMP WITH TIME ZONE   NOT NULL,
  "payload"    JSON                       NOT NULL
);
CREATE INDEX IF NOT EXISTS "clustering_rpc_requests_node_id_idx" ON "clustering_rpc_requests" ("node_id");
"""
    + _col("clustering_data_planes", "rpc_capabilities", "TEXT[]"),
)

# Kong/kong 3.9.3 kong/db/migrations/core/024_380_to_390.lua
_m(
    CORE,
    "024_380_to_390",
    """
CREATE TABLE IF NOT EXISTS clustering_sync_version (
  "version" SERIAL PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS clustering_sync_delta (
  "version" INT NOT NULL,
  "type" TEXT NOT NULL,
  "pk" JSON NOT NULL,
  "ws_id" UUID NOT NULL,
  "entity" JSON,
  FOREIGN KEY (version) REFERENCES clustering_sync_version(version) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS clustering_sync_delta_version_idx ON clustering_sync_delta (version);
""",
)

_m(CORE, "025_390_to_3100", _idx("clustering_sync_version_created_at_idx", "clustering_sync_version", "created_at"))


# ---- plugins -------------------------------------------------------------------------------


def _credential_table(table: str, columns: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
  id           UUID PRIMARY KEY,
  created_at   TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  consumer_id  UUID REFERENCES consumers (id) ON DELETE CASCADE,
{columns}
);
{_idx(f"{table}_consumer_id_idx", table, "consumer_id")}
"""


_m("acl", "000_base_acl", _credential_table("acls", '  "group" TEXT,\n  cache_key TEXT UNIQUE') + _idx("acls_group_idx", "acls", '"group"'))
_m("acl", "002_130_to_140", _tagged("acls"))
_m("acl", "003_200_to_210", _workspaced("acls"), _fill_ws("acls"))
_m("acl", "004_212_to_213", "", "UPDATE acls SET cache_key = concat('acls:', consumer_id, ':', \"group\", '::::', ws_id);")

_m(
    "acme",
    "000_base_acme",
    f"""
CREATE TABLE IF NOT EXISTS acme_storage (
  id          UUID PRIMARY KEY,
  key         TEXT UNIQUE,
  value       TEXT,
  created_at  TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  ttl         TIMESTAMP WITH TIME ZONE
);
""",
)
_m("acme", "001_280_to_300", _idx("acme_storage_ttl_idx", "acme_storage", "ttl"))
_m(
    "acme",
    "002_320_to_330",
    """
UPDATE plugins SET config = jsonb_set(config, '{storage_config,redis,ssl}', 'false'::jsonb)
 WHERE name = 'acme' AND jsonb_typeof(config #> '{storage_config,redis}') = 'object'
   AND NOT (config #> '{storage_config,redis}') ? 'ssl';
""",
)
_m(
    "acme",
    "003_350_to_360",
    """
UPDATE plugins SET config = jsonb_set(config, '{storage_config,redis,password}', config #> '{storage_config,redis,auth}')
 WHERE name = 'acme' AND (config #> '{storage_config,redis}') ? 'auth'
   AND NOT (config #> '{storage_config,redis}') ? 'password';
""",
    """
UPDATE plugins SET config = jsonb_set(config, '{storage_config,redis}', (config #> '{storage_config,redis}') - 'auth')
 WHERE name = 'acme' AND (config #> '{storage_config,redis}') ? 'auth';
""",
)

_m(
    "ai-proxy",
    "001_360_to_370",
    "",
    """
UPDATE plugins SET config = jsonb_set(config, '{model,options,upstream_path}', 'null'::jsonb)
 WHERE name = 'ai-proxy' AND jsonb_typeof(config #> '{model,options}') = 'object'
   AND NOT (config #> '{model,options}') ? 'upstream_path';
""",
)

_m("basic-auth", "000_base_basic_auth", _credential_table("basicauth_credentials", "  username TEXT UNIQUE,\n  password TEXT"))
_m("basic-auth", "002_130_to_140", _tagged("basicauth_credentials"))
_m("basic-auth", "003_200_to_210", _workspaced("basicauth_credentials"), _fill_ws("basicauth_credentials"))

_m("bot-detection", "001_200_to_210", "", _rename_config_keys("bot-detection", {"whitelist": "allow", "blacklist": "deny"}))

_m("hmac-auth", "000_base_hmac_auth", _credential_table("hmacauth_credentials", "  username TEXT UNIQUE,\n  secret TEXT"))
_m("hmac-auth", "002_130_to_140", _tagged("hmacauth_credentials"))
_m("hmac-auth", "003_200_to_210", _workspaced("hmacauth_credentials"), _fill_ws("hmacauth_credentials"))

_m(
    "http-log",
    "001_280_to_300",
    "",
    """
UPDATE plugins
   SET config = jsonb_set(config, '{headers}', (
         SELECT jsonb_object_agg(h.key, CASE WHEN jsonb_typeof(h.value) = 'array' THEN h.value -> 0
                                             ELSE h.value END)
           FROM jsonb_each(config -> 'headers') AS h))
 WHERE name = 'http-log' AND jsonb_typeof(config -> 'headers') = 'object'
   AND config -> 'headers' <> '{}'::jsonb;
""",
)

_m("ip-restriction", "001_200_to_210", "", _rename_config_keys("ip-restriction", {"whitelist": "allow", "blacklist": "deny"}))

_m("jwt", "000_base_jwt", _credential_table("jwt_secrets", "  key TEXT UNIQUE,\n  secret TEXT,\n  algorithm TEXT,\n  rsa_public_key TEXT"))
_m("jwt", "002_130_to_140", _tagged("jwt_secrets"))
_m("jwt", "003_200_to_210", _workspaced("jwt_secrets"), _fill_ws("jwt_secrets"))

_m("key-auth", "000_base_key_auth", _credential_table("keyauth_credentials", "  key TEXT UNIQUE"))
_m(
    "key-auth",
    "002_130_to_140",
    _tagged("keyauth_credentials")
    + _col("keyauth_credentials", "ttl", "TIMESTAMP WITH TIME ZONE")
    + _idx("keyauth_credentials_ttl_idx", "keyauth_credentials", "ttl"),
)
_m("key-auth", "003_200_to_210", _workspaced("keyauth_credentials"), _fill_ws("keyauth_credentials"))
_m("key-auth", "004_320_to_330", _idx("keyauth_credentials_key_idx", "keyauth_credentials", "key"))

_m(
    "oauth2",
    "000_base_oauth2",
    _credential_table("oauth2_credentials", "  name TEXT,\n  client_id TEXT UNIQUE,\n  client_secret TEXT,\n  redirect_uris TEXT[]")
    + f"""
CREATE TABLE IF NOT EXISTS oauth2_authorization_codes (
  id                    UUID PRIMARY KEY,
  created_at            TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  credential_id         UUID REFERENCES oauth2_credentials (id) ON DELETE CASCADE,
  service_id            UUID REFERENCES services (id) ON DELETE CASCADE,
  code                  TEXT UNIQUE,
  authenticated_userid  TEXT,
  scope                 TEXT,
  ttl                   TIMESTAMP WITH TIME ZONE
);
CREATE TABLE IF NOT EXISTS oauth2_tokens (
  id                    UUID PRIMARY KEY,
  created_at            TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  credential_id         UUID REFERENCES oauth2_credentials (id) ON DELETE CASCADE,
  service_id            UUID REFERENCES services (id) ON DELETE CASCADE,
  access_token          TEXT UNIQUE,
  refresh_token         TEXT UNIQUE,
  token_type            TEXT,
  expires_in            INTEGER,
  authenticated_userid  TEXT,
  scope                 TEXT,
  ttl                   TIMESTAMP WITH TIME ZONE
);
""",
)
_m(
    "oauth2",
    "003_130_to_140",
    _tagged("oauth2_credentials") + _col("oauth2_credentials", "client_type", "TEXT") + _col("oauth2_credentials", "hash_secret", "BOOLEAN"),
)
_m(
    "oauth2",
    "004_200_to_210",
    _workspaced("oauth2_credentials", "oauth2_authorization_codes", "oauth2_tokens"),
    _fill_ws("oauth2_credentials", "oauth2_authorization_codes", "oauth2_tokens"),
)
_m(
    "oauth2",
    "005_210_to_211",
    _idx("oauth2_tokens_ttl_idx", "oauth2_tokens", "ttl") + _idx("oauth2_authorization_codes_ttl_idx", "oauth2_authorization_codes", "ttl"),
)
_m("oauth2", "006_320_to_330", _col("oauth2_authorization_codes", "plugin_id", "UUID REFERENCES plugins (id) ON DELETE CASCADE"))
_m("oauth2", "007_320_to_330", _col("oauth2_authorization_codes", "challenge", "TEXT") + _col("oauth2_authorization_codes", "challenge_method", "TEXT"))

_m(
    "opentelemetry",
    "001_331_to_332",
    "",
    """
UPDATE plugins SET config = jsonb_set(config, '{queue,max_batch_size}', '200'::jsonb)
 WHERE name = 'opentelemetry' AND config #>> '{queue,max_batch_size}' = '1';
""",
)

for _fn in ("pre-function", "post-function"):
    _m(_fn, "001_280_to_300", "", _rename_config_keys(_fn, {"functions": "access"}))

_METRICS = """
  identifier   TEXT,
  period       TEXT,
  period_date  TIMESTAMP WITH TIME ZONE,
  service_id   UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'::UUID,
  route_id     UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'::UUID,
  value        INTEGER,
  PRIMARY KEY (identifier, period, period_date, service_id, route_id)
"""
_m("rate-limiting", "000_base_rate_limiting", f"CREATE TABLE IF NOT EXISTS ratelimiting_metrics ({_METRICS});")
_m("rate-limiting", "003_10_to_112", _idx("ratelimiting_metrics_idx", "ratelimiting_metrics", "service_id, route_id, period_date, period"))
_m("rate-limiting", "004_200_to_210", _col("ratelimiting_metrics", "ttl", "TIMESTAMP WITH TIME ZONE"))
_m("rate-limiting", "005_320_to_330", _idx("ratelimiting_metrics_ttl_idx", "ratelimiting_metrics", "ttl"))
_m("rate-limiting", "006_350_to_360", _redis_copy("rate-limiting"), _redis_drop_old("rate-limiting"))

_m("response-ratelimiting", "000_base_response_rate_limiting", f"CREATE TABLE IF NOT EXISTS response_ratelimiting_metrics ({_METRICS});")
_m("response-ratelimiting", "001_350_to_360", _redis_copy("response-ratelimiting"), _redis_drop_old("response-ratelimiting"))

_m(
    "session",
    "000_base_session",
    f"""
CREATE TABLE IF NOT EXISTS sessions (
  id          UUID PRIMARY KEY,
  session_id  TEXT UNIQUE,
  expires     INTEGER,
  data        TEXT,
  created_at  TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S},
  ttl         TIMESTAMP WITH TIME ZONE
);
""",
)
_m("session", "001_add_ttl_index", _idx("sessions_ttl_idx", "sessions", "ttl"))
_m(
    "session",
    "002_320_to_330",
    f"""
CREATE TABLE IF NOT EXISTS session_metadatas (
  id          UUID PRIMARY KEY,
  session_id  UUID REFERENCES sessions (id) ON DELETE CASCADE,
  sid         TEXT,
  subject     TEXT,
  audience    TEXT,
  created_at  TIMESTAMP WITH TIME ZONE DEFAULT {NOW_S}
);
{_idx("session_metadatas_session_id_idx", "session_metadatas", "session_id")}
""",
)
_m("session", "003_330_to_3100", _idx("session_metadatas_subject_audience_idx", "session_metadatas", "subject, audience"))


def migration_sql(subsystem: str, migration: Migration) -> tuple:
    """(up_sql, teardown_sql or None) as the binary whose catalog holds `migration` runs it.

    When that binary's migration has no teardown but the simulator's SQL is split (acme
    003_350_to_360, rate-limiting 006_350_to_360 and response-ratelimiting 001_350_to_360 at
    3.6.x, FACTS 8.3), its `up` does both halves at once.
    """
    try:
        up, teardown = _SQL[(subsystem, migration.name)]
    except KeyError:
        raise KeyError(f"no SQL for migration {subsystem}/{migration.name}") from None
    if migration.has_teardown:
        if not teardown:
            raise KeyError(f"no teardown SQL for migration {subsystem}/{migration.name}")
        return up, teardown
    if teardown:
        return (up + "\n" + teardown).strip(), None
    return up, None


# --------------------------------------------------------------------------------------------
# schema_meta, bootstrap, reset (kong/db/strategies/postgres/connector.lua, FACTS 2.1)
# --------------------------------------------------------------------------------------------

SCHEMA_META_DDL = """
CREATE TABLE IF NOT EXISTS schema_meta (
  key            TEXT,
  subsystem      TEXT,
  last_executed  TEXT,
  executed       TEXT[],
  pending        TEXT[],
  PRIMARY KEY (key, subsystem)
);"""

LOCKS_DDL = """
CREATE TABLE IF NOT EXISTS locks (
  key    TEXT PRIMARY KEY,
  owner  TEXT,
  ttl    TIMESTAMP WITH TIME ZONE
);
CREATE INDEX IF NOT EXISTS locks_ttl_idx ON locks (ttl);"""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_exists(conn, table: str) -> bool:
    rows = pgdb.execute(conn, "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = %s", (table,))
    return bool(rows)


def resolved_schema(conn, conf: dict) -> str:
    return pgdb.schema_name(conf) or pgdb.current_schema(conn) or "public"


def schema_bootstrap(conn, conf: dict) -> None:
    schema = _ident(resolved_schema(conn, conf))
    try:
        pgdb.execute(
            conn,
            f"""
BEGIN;
DO $do$
BEGIN
  CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION CURRENT_USER;
  GRANT ALL ON SCHEMA {schema} TO CURRENT_USER;
EXCEPTION WHEN insufficient_privilege THEN
  NULL;
END
$do$;
COMMIT;""",
        )
        pgdb.execute(conn, SCHEMA_META_DDL)
        pgdb.execute(conn, "BEGIN;" + LOCKS_DDL + "\nCOMMIT;")
    except PgError as exc:
        raise PgError("failed to bootstrap database: " + exc.message) from None


def schema_reset(conn, conf: dict) -> None:
    """Drop and recreate the schema; table by table when the user may not drop it."""
    schema_plain = resolved_schema(conn, conf)
    schema = _ident(schema_plain)
    rows = pgdb.execute(conn, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
    drop_tables = ""
    if rows:
        drop_tables = "DROP TABLE IF EXISTS " + ", ".join(_ident(r[0]) for r in rows) + " CASCADE;"
    pgdb.execute(
        conn,
        f"""
BEGIN;
DO $do$
BEGIN
  DROP SCHEMA IF EXISTS {schema} CASCADE;
  CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION CURRENT_USER;
  GRANT ALL ON SCHEMA {schema} TO CURRENT_USER;
EXCEPTION WHEN insufficient_privilege THEN
  {drop_tables}
END
$do$;
COMMIT;""",
    )
    pgdb.execute(conn, "SELECT set_config('search_path', %s, false)", (schema,))


def record_migration(conn, subsystem: str, name: str, state: str) -> None:
    """Kong's upsert of one schema_meta row (FACTS 2.1 recording rules)."""
    if state == "executed":
        sql = """
INSERT INTO schema_meta (key, subsystem, last_executed, executed)
     VALUES ('schema_meta', %(s)s, %(n)s, ARRAY[%(n)s]::TEXT[])
ON CONFLICT (key, subsystem) DO UPDATE
        SET last_executed = EXCLUDED.last_executed,
            executed = array_append(coalesce(schema_meta.executed, ARRAY[]::TEXT[]), %(n)s::TEXT)"""
    elif state == "pending":
        sql = """
INSERT INTO schema_meta (key, subsystem, pending)
     VALUES ('schema_meta', %(s)s, ARRAY[%(n)s]::TEXT[])
ON CONFLICT (key, subsystem) DO UPDATE
        SET pending = array_append(schema_meta.pending, %(n)s::TEXT)"""
    elif state == "teardown":
        sql = """
INSERT INTO schema_meta (key, subsystem, last_executed, executed)
     VALUES ('schema_meta', %(s)s, %(n)s, ARRAY[%(n)s]::TEXT[])
ON CONFLICT (key, subsystem) DO UPDATE
        SET last_executed = EXCLUDED.last_executed,
            executed = array_append(coalesce(schema_meta.executed, ARRAY[]::TEXT[]), %(n)s::TEXT),
            pending = array_remove(coalesce(schema_meta.pending, ARRAY[]::TEXT[]), %(n)s::TEXT)"""
    else:
        raise ValueError(f"unknown migration state: {state}")
    pgdb.execute(conn, sql, {"s": subsystem, "n": name})


def read_schema_meta(conn):
    """None when the table does not exist (needs bootstrap), else {subsystem: row dict}."""
    if not table_exists(conn, "schema_meta"):
        return None
    rows = pgdb.execute(conn, "SELECT subsystem, last_executed, executed, pending FROM schema_meta WHERE key = 'schema_meta'")
    return {r[0]: {"last_executed": r[1], "executed": list(r[2] or []), "pending": list(r[3] or [])} for r in rows}


# --------------------------------------------------------------------------------------------
# State (kong/db/migrations/state.lua, FACTS 2.1 reading rules)
# --------------------------------------------------------------------------------------------

KINDS = ("executed", "pending", "new", "missing")


@dataclass
class State:
    """Migration state of one database as one Kong binary sees it.

    `executed`, `pending`, `new`, `missing` map subsystem -> [names]; only subsystems with at
    least one name appear, core first, then plugins sorted by name.
    """

    needs_bootstrap: bool
    executed: dict = field(default_factory=dict)
    pending: dict = field(default_factory=dict)
    new: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)
    subsystems: tuple = ()

    @property
    def is_up_to_date(self) -> bool:
        return not self.needs_bootstrap and not self.new

    def migrations(self, kind: str) -> list:
        """[(Subsystem, [Migration])] of one kind, in Kong's order (for run_migrations)."""
        names = getattr(self, kind)
        out = []
        for subsys in self.subsystems:
            wanted = names.get(subsys.name)
            if wanted:
                out.append((subsys, [m for m in subsys.migrations if m.name in wanted]))
        return out

    def block(self, kind: str) -> str:
        return format_block(getattr(self, kind))

    def as_status(self) -> dict:
        out = {"needs_bootstrap": self.needs_bootstrap}
        for kind in KINDS:
            entries = self.migrations(kind)
            if not entries:
                continue
            items = []
            for subsys, migs in entries:
                if kind == "missing":
                    # UNCONFIRMED (FACTS 1.2/8.4): Kong encodes whole migration objects here.
                    listed = [{"name": m.name, "postgres": {"up": migration_sql(subsys.name, m)[0]}} for m in migs]
                else:
                    listed = [m.name for m in migs]
                items.append({"subsystem": subsys.name, "namespace": subsys.namespace, "migrations": listed})
            out[f"{kind}_migrations"] = items
        return out


def format_block(by_subsystem: dict) -> str:
    """Kong's `%<W>s: %s` lines, W = longest subsystem name of this block."""
    if not by_subsystem:
        return ""
    width = max(len(name) for name in by_subsystem)
    return "\n".join(f"{name:>{width}}: {', '.join(names)}" for name, names in by_subsystem.items())


def compute_state(rows, subsystems_: tuple) -> State:
    state = State(needs_bootstrap=rows is None, subsystems=subsystems_)
    rows = rows or {}
    for subsys in subsystems_:
        buckets = {k: [] for k in KINDS}
        row = rows.get(subsys.name)
        if row is None:
            buckets["new"] = subsys.names()
        else:
            marker = None
            for i, mig in enumerate(subsys.migrations):
                if mig.name == row["last_executed"]:
                    marker = i + 1
                if mig.name in row["executed"]:
                    buckets["executed"].append(mig.name)
                elif mig.name in row["pending"]:
                    buckets["pending"].append(mig.name)
                elif marker is None or i >= marker:
                    buckets["new"].append(mig.name)
                else:
                    buckets["missing"].append(mig.name)
        for kind in KINDS:
            if buckets[kind]:
                getattr(state, kind)[subsys.name] = buckets[kind]
    return state


def offline_state(conf: dict, version: str) -> State:
    """DB-less (`database = off`): every migration reported executed (FACTS 1.2)."""
    subs = subsystems(conf, version)
    state = State(needs_bootstrap=False, subsystems=subs)
    for subsys in subs:
        state.executed[subsys.name] = subsys.names()
    return state


def load_state(conn, conf: dict, version: str) -> State:
    try:
        rows = read_schema_meta(conn)
    except PgError as exc:
        raise PgError("failed to check schema state: " + exc.message) from None
    return compute_state(rows, subsystems(conf, version))


def schema_state(conf: dict, version: str) -> State:
    """State of the database named by `conf` as Kong `version` sees it; raises PgError."""
    if str(conf.get("database", "postgres")).strip() == "off":
        return offline_state(conf, version)
    conn = pgdb.connect(conf)
    try:
        return load_state(conn, conf, version)
    finally:
        pgdb.close(conn)


# --------------------------------------------------------------------------------------------
# Cluster mutex (kong/db/init.lua DB:cluster_mutex, FACTS 1.4)
# --------------------------------------------------------------------------------------------

_LOCK_INSERT = "INSERT INTO locks (key, owner, ttl) VALUES (%s, %s, CURRENT_TIMESTAMP + make_interval(secs => %s)) ON CONFLICT DO NOTHING"


def insert_lock(conn, key: str, ttl: float, owner: str) -> bool:
    counts = pgdb.transaction(
        conn,
        [
            ("DELETE FROM locks WHERE ttl < CURRENT_TIMESTAMP", None),
            (_LOCK_INSERT, (key, owner, float(ttl))),
        ],
    )
    return counts[1] == 1


def read_lock(conn, key: str) -> bool:
    rows = pgdb.execute(conn, "SELECT 1 FROM locks WHERE key = %s AND ttl >= CURRENT_TIMESTAMP LIMIT 1", (key,))
    return bool(rows)


def remove_lock(conn, key: str, owner: str) -> None:
    try:
        pgdb.execute(conn, "DELETE FROM locks WHERE key = %s AND owner = %s", (key, owner))
    except PgError:
        pass


def cluster_mutex(conn, key: str, ttl: float, callback, *, no_wait: bool = False, no_cleanup: bool = False, owner: str | None = None, sleep=time.sleep):
    """(True, None) ran; (False, None) another node holds/held the lock; (None, err) failed.

    Without `no_wait` it polls every 0.1 s, x3 each time up to 2 s steps, for at most `ttl`
    seconds: released meanwhile -> (False, None); still held -> (None, "timeout").
    """
    owner = owner or str(uuid.uuid4())
    try:
        acquired = insert_lock(conn, key, ttl, owner)
    except PgError as exc:
        return None, "failed to insert cluster lock: " + exc.message
    if not acquired:
        if no_wait:
            return False, None
        step = 0.1
        elapsed = 0.0
        while elapsed < ttl:
            sleep(step)
            elapsed += step
            if elapsed >= ttl:
                break
            try:
                locked = read_lock(conn, key)
            except PgError as exc:
                return None, "failed to read cluster lock: " + exc.message
            if not locked:
                return False, None
            step = min(step * 3, MAX_LOCK_WAIT_STEP)
        return None, "timeout"
    try:
        callback()
    except Exception as exc:  # noqa: BLE001 - any failure is reported the way Kong reports it
        remove_lock(conn, key, owner)
        return None, "cluster_mutex callback threw an error: " + str(exc)
    if not no_cleanup:
        remove_lock(conn, key, owner)
    return True, None


# --------------------------------------------------------------------------------------------
# Running migrations (kong/db/init.lua DB:run_migrations, FACTS 1.2 run lines)
# --------------------------------------------------------------------------------------------


def _run_sql(conn, sql: str) -> None:
    body = sql.strip()
    if body and not body.endswith(";"):
        body += ";"
    pgdb.execute(conn, "BEGIN;\n" + body + "\nCOMMIT;")


def run_migrations(conn, db_name: str, entries, *, run_up: bool = False, run_teardown: bool = False, skip_teardown: dict | None = None, log=print) -> None:
    """Run `entries` ([(Subsystem, [Migration])]) and print Kong's run lines through `log`."""
    if not run_up and not run_teardown:
        raise ValueError("run_up or run_teardown must be given")
    skip_teardown = skip_teardown or {}
    n_migrations = 0
    n_pending = 0
    for subsys, migs in entries:
        log(f"migrating {subsys.name} on database '{db_name}'...")
        for mig in migs:
            up_sql, teardown_sql = migration_sql(subsys.name, mig)
            if run_up:
                try:
                    _run_sql(conn, up_sql)
                except PgError as exc:
                    raise PgError(f"failed to run migration '{mig.name}' up: {exc.message}") from None
                state = "executed"
                if teardown_sql:
                    state = "pending"
                    n_pending += 1
                try:
                    record_migration(conn, subsys.name, mig.name, state)
                except PgError as exc:
                    raise PgError(f"failed to record migration '{mig.name}': {exc.message}") from None
            skip = mig.name in skip_teardown.get(subsys.name, ())
            if not skip and run_teardown and teardown_sql:
                try:
                    _run_sql(conn, teardown_sql)
                except PgError as exc:
                    raise PgError(f"failed to run migration '{mig.name}' teardown: {exc.message}") from None
                try:
                    record_migration(conn, subsys.name, mig.name, "teardown")
                except PgError as exc:
                    raise PgError(f"failed to record migration '{mig.name}': {exc.message}") from None
                n_pending = max(n_pending - 1, 0)
            label = "(pending)" if teardown_sql and not run_teardown else "(executed)"
            log(f"{subsys.name} migrated up to: {mig.name} {label}")
            n_migrations += 1
    log(f"{n_migrations} migration{'s' if n_migrations > 1 else ''} processed")
    n_executed = n_migrations - n_pending
    if n_executed > 0:
        log(f"{n_executed} executed")
    if n_pending > 0:
        log(f"{n_pending} pending")
