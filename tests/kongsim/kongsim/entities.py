"""Entity schemas, defaults and validation in Admin API JSON shape (foreign keys as {"id": ...})."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from . import versions

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
NAME_RE = re.compile(r"^[\w.\-~]+$")
HOST_RE = re.compile(r"^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9\-_.]*[A-Za-z0-9_])?(\.\*)?$|^\[[0-9a-fA-F:]+\]$")

# kong/db/errors.lua codes
INVALID_PRIMARY_KEY = 1
SCHEMA_VIOLATION = 2
PRIMARY_KEY_VIOLATION = 3
FOREIGN_KEY_VIOLATION = 4
UNIQUE_VIOLATION = 5
NOT_FOUND = 6
INVALID_OFFSET = 7
DATABASE_ERROR = 8
INVALID_SIZE = 9
OPERATION_UNSUPPORTED = 12
DECLARATIVE_CONFIG = 14


class EntityError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


def _lua_value(value) -> str:
    if isinstance(value, dict):
        return _lua_table(value)
    if isinstance(value, list):
        return "{" + ",".join(_lua_value(v) for v in value) + "}"
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    return str(value)


def _lua_table(tbl: dict) -> str:
    return "{" + ",".join(f"{k}={_lua_value(v)}" for k, v in sorted(tbl.items())) + "}"


def lua_repr(value) -> str:
    return _lua_value(value)


def _flatten_msgs(errors: dict, prefix: str = "") -> list:
    out = []
    for key, msg in errors.items():
        name = f"{prefix}{key}" if key != "@entity" else (prefix.rstrip(".") or "@entity")
        if isinstance(msg, dict):
            out.extend(_flatten_msgs(msg, f"{prefix}{key}."))
        elif isinstance(msg, list):
            for item in msg:
                if isinstance(item, dict):
                    out.extend(_flatten_msgs(item, f"{prefix}{key}."))
                elif item is not None:
                    out.append((name, item))
        else:
            out.append((name, msg))
    return out


def schema_violation(errors: dict) -> EntityError:
    msgs = _flatten_msgs(errors)
    if len(msgs) == 1:
        k, m = msgs[0]
        message = f"schema violation ({m})" if k == "@entity" else f"schema violation ({k}: {m})"
    else:
        parts = "; ".join(m if k == "@entity" else f"{k}: {m}" for k, m in msgs)
        message = f"{len(msgs)} schema violations ({parts})"
    return EntityError(400, {"code": SCHEMA_VIOLATION, "name": "schema violation", "message": message, "fields": errors})


def not_found() -> EntityError:
    return EntityError(404, {"message": "Not found"})


def unique_violation(field_name: str, value) -> EntityError:
    return EntityError(
        409,
        {
            "code": UNIQUE_VIOLATION,
            "name": "unique constraint violation",
            "message": f"UNIQUE violation detected on '{{{field_name}={_lua_value(value)}}}'",
            "fields": {field_name: value},
        },
    )


def pk_violation(value) -> EntityError:
    return EntityError(
        409,
        {
            "code": PRIMARY_KEY_VIOLATION,
            "name": "primary key violation",
            "message": f"primary key violation on key '{{id=\"{value}\"}}'",
            "fields": {"id": value},
        },
    )


def fk_violation(field_name: str, ref_entity: str, ref_id) -> EntityError:
    return EntityError(
        400,
        {
            "code": FOREIGN_KEY_VIOLATION,
            "name": "foreign key violation",
            "message": (f"the foreign key '{{id=\"{ref_id}\"}}' does not reference an existing '{ref_entity}' entity."),
            "fields": {field_name: {"id": ref_id}},
        },
    )


@dataclass
class F:
    type: str
    default: object = None
    required: bool = False
    unique: bool = False
    one_of: tuple = ()
    between: tuple = ()
    reference: str = ""
    auto: str = ""  # "uuid" | "ts" | "ts_ms"
    since: tuple = (0, 0, 0)
    elements: str = ""  # element type of arrays/sets
    on_delete: str = "restrict"


@dataclass
class Schema:
    name: str
    fields: dict
    endpoint_key: str = ""
    cache_key: tuple = ()
    dao_name: str = ""
    admin_path: str = ""
    checks: list = field(default_factory=list)

    def fields_for(self, version: str) -> dict:
        vt = versions.parse_version(version)
        return {k: f for k, f in self.fields.items() if vt >= f.since}


def _std(*extra):
    return {"id": F("string", auto="uuid"), "created_at": F("integer", auto="ts")}


def _tags():
    return F("set", elements="string")


SINCE_34 = (3, 4, 0)

SERVICES = Schema(
    "services",
    {
        "id": F("string", auto="uuid"),
        "created_at": F("integer", auto="ts"),
        "updated_at": F("integer", auto="ts"),
        "name": F("string", unique=True),
        "retries": F("integer", default=5, between=(0, 32767)),
        "protocol": F("string", default="http", required=True, one_of=("grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp", "ws", "wss")),
        "host": F("string", required=True),
        "port": F("integer", default=80, required=True, between=(0, 65535)),
        "path": F("string"),
        "connect_timeout": F("integer", default=60000, between=(1, 2147483646)),
        "write_timeout": F("integer", default=60000, between=(1, 2147483646)),
        "read_timeout": F("integer", default=60000, between=(1, 2147483646)),
        "tags": _tags(),
        "client_certificate": F("foreign", reference="certificates"),
        "tls_verify": F("boolean"),
        "tls_verify_depth": F("integer", between=(0, 64)),
        "ca_certificates": F("array", elements="string"),
        "enabled": F("boolean", default=True),
    },
    endpoint_key="name",
)

ROUTES = Schema(
    "routes",
    {
        "id": F("string", auto="uuid"),
        "created_at": F("integer", auto="ts"),
        "updated_at": F("integer", auto="ts"),
        "name": F("string", unique=True),
        "protocols": F("set", default=["http", "https"], elements="string"),
        "methods": F("set", elements="string"),
        "hosts": F("array", elements="string"),
        "paths": F("array", elements="string"),
        "headers": F("map"),
        "https_redirect_status_code": F("integer", default=426, one_of=(426, 301, 302, 307, 308)),
        "regex_priority": F("integer", default=0),
        "strip_path": F("boolean", default=True),
        "path_handling": F("string", default="v0", one_of=("v0", "v1")),
        "preserve_host": F("boolean", default=False),
        "request_buffering": F("boolean", default=True),
        "response_buffering": F("boolean", default=True),
        "snis": F("set", elements="string"),
        "sources": F("set"),
        "destinations": F("set"),
        "tags": _tags(),
        "service": F("foreign", reference="services", on_delete="restrict"),
    },
    endpoint_key="name",
)

CONSUMERS = Schema(
    "consumers",
    {
        "id": F("string", auto="uuid"),
        "created_at": F("integer", auto="ts"),
        "updated_at": F("integer", auto="ts", since=SINCE_34),
        "username": F("string", unique=True),
        "custom_id": F("string", unique=True),
        "tags": _tags(),
    },
    endpoint_key="username",
)

PLUGINS = Schema(
    "plugins",
    {
        "id": F("string", auto="uuid"),
        "name": F("string", required=True),
        "instance_name": F("string", unique=True, since=(3, 0, 0)),
        "created_at": F("integer", auto="ts"),
        "updated_at": F("integer", auto="ts", since=SINCE_34),
        "route": F("foreign", reference="routes", on_delete="cascade"),
        "service": F("foreign", reference="services", on_delete="cascade"),
        "consumer": F("foreign", reference="consumers", on_delete="cascade"),
        "config": F("record"),
        "protocols": F("set", default=["grpc", "grpcs", "http", "https"], elements="string"),
        "enabled": F("boolean", default=True),
        "tags": _tags(),
    },
    cache_key=("name", "route", "service", "consumer"),
)

KEYAUTH_CREDENTIALS = Schema(
    "keyauth_credentials",
    {
        "id": F("string", auto="uuid"),
        "created_at": F("integer", auto="ts"),
        "consumer": F("foreign", reference="consumers", required=True, on_delete="cascade"),
        "key": F("string", unique=True, auto="key"),
        "ttl": F("integer", since=(3, 0, 0)),
        "tags": _tags(),
    },
    endpoint_key="key",
    admin_path="key-auths",
)

UPSTREAMS = Schema(
    "upstreams",
    {
        "id": F("string", auto="uuid"),
        "created_at": F("integer", auto="ts"),
        "updated_at": F("integer", auto="ts", since=SINCE_34),
        "name": F("string", required=True, unique=True),
        "algorithm": F("string", default="round-robin", one_of=("consistent-hashing", "least-connections", "round-robin", "latency")),
        "hash_on": F("string", default="none"),
        "hash_fallback": F("string", default="none"),
        "hash_on_header": F("string"),
        "hash_fallback_header": F("string"),
        "hash_on_cookie": F("string"),
        "hash_on_cookie_path": F("string", default="/"),
        "hash_on_query_arg": F("string"),
        "hash_fallback_query_arg": F("string"),
        "hash_on_uri_capture": F("string"),
        "hash_fallback_uri_capture": F("string"),
        "slots": F("integer", default=10000, between=(10, 65536)),
        "healthchecks": F("record"),
        "tags": _tags(),
        "host_header": F("string"),
        "client_certificate": F("foreign", reference="certificates"),
        "use_srv_name": F("boolean", default=False),
    },
    endpoint_key="name",
)

TARGETS = Schema(
    "targets",
    {
        "id": F("string", auto="uuid"),
        "created_at": F("number", auto="ts_ms"),
        "updated_at": F("number", auto="ts_ms", since=SINCE_34),
        "upstream": F("foreign", reference="upstreams", required=True, on_delete="cascade"),
        "target": F("string", required=True),
        "weight": F("integer", default=100, between=(0, 65535)),
        "tags": _tags(),
    },
    endpoint_key="target",
)

CERTIFICATES = Schema(
    "certificates",
    {
        "id": F("string", auto="uuid"),
        "created_at": F("integer", auto="ts"),
        "updated_at": F("integer", auto="ts", since=SINCE_34),
        "cert": F("string", required=True),
        "key": F("string", required=True),
        "cert_alt": F("string"),
        "key_alt": F("string"),
        "tags": _tags(),
    },
)

SNIS = Schema(
    "snis",
    {
        "id": F("string", auto="uuid"),
        "name": F("string", required=True, unique=True),
        "created_at": F("integer", auto="ts"),
        "updated_at": F("integer", auto="ts", since=SINCE_34),
        "tags": _tags(),
        "certificate": F("foreign", reference="certificates", required=True, on_delete="cascade"),
    },
    endpoint_key="name",
)

CA_CERTIFICATES = Schema(
    "ca_certificates",
    {
        "id": F("string", auto="uuid"),
        "created_at": F("integer", auto="ts"),
        "updated_at": F("integer", auto="ts", since=SINCE_34),
        "cert": F("string", required=True),
        "cert_digest": F("string", unique=True),
        "tags": _tags(),
    },
)

SCHEMAS = {s.name: s for s in (SERVICES, ROUTES, CONSUMERS, PLUGINS, KEYAUTH_CREDENTIALS, UPSTREAMS, TARGETS, CERTIFICATES, SNIS, CA_CERTIFICATES)}
# Load/export order: referenced entities first.
ORDER = ("certificates", "ca_certificates", "snis", "services", "routes", "consumers", "upstreams", "targets", "keyauth_credentials", "plugins")
ADMIN_PATHS = {
    "services": "services",
    "routes": "routes",
    "consumers": "consumers",
    "plugins": "plugins",
    "upstreams": "upstreams",
    "targets": "targets",
    "certificates": "certificates",
    "snis": "snis",
    "ca_certificates": "ca_certificates",
    "key-auths": "keyauth_credentials",
}


# Plugin config defaults (only for plugins the simulator runs; others are stored as given).
def plugin_config_defaults(name: str, version: str) -> dict | None:
    vt = versions.parse_version(version)
    if name == "key-auth":
        d = {
            "key_names": ["apikey"],
            "hide_credentials": False,
            "anonymous": None,
            "key_in_header": True,
            "key_in_query": True,
            "key_in_body": False,
            "run_on_preflight": True,
        }
        if vt >= (3, 7, 0):
            d["realm"] = None
        return d
    if name == "request-termination":
        d = {"status_code": 503, "message": None, "body": None, "content_type": None, "trigger": None, "echo": False}
        return d
    if name == "prometheus":
        d = {"per_consumer": False}
        if vt >= (3, 0, 0):
            d.update(status_code_metrics=False, latency_metrics=False, bandwidth_metrics=False, upstream_health_metrics=False)
        if vt >= (3, 6, 0):
            d["ai_metrics"] = False
        return d
    return None


def _type_error(ftype: str, elements: str = "") -> str:
    return {
        "string": "expected a string",
        "integer": "expected an integer",
        "number": "expected a number",
        "boolean": "expected a boolean",
        "array": "expected an array",
        "set": "expected a set",
        "map": "expected a map",
        "record": "expected a record",
        "foreign": "expected a record",
    }[ftype]


def _check_type(f: F, value):
    if f.type == "string":
        if not isinstance(value, str):
            return _type_error("string")
        if value == "":
            return "length must be at least 1"
    elif f.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return None
            return _type_error("integer")
    elif f.type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _type_error("number")
    elif f.type == "boolean":
        if not isinstance(value, bool):
            return _type_error("boolean")
    elif f.type in ("array", "set"):
        if not isinstance(value, list):
            return _type_error(f.type)
        if f.elements == "string":
            for item in value:
                if not isinstance(item, str):
                    return ["expected a string"]
    elif f.type in ("map", "record"):
        if not isinstance(value, dict):
            return _type_error(f.type)
    elif f.type == "foreign":
        if not isinstance(value, dict):
            return _type_error("foreign")
        if "id" in value and not (isinstance(value["id"], str) and UUID_RE.match(value["id"])):
            return {"id": "expected a valid UUID"}
    if f.one_of and value not in f.one_of:
        opts = ", ".join(str(o) for o in f.one_of)
        return f"expected one of: {opts}"
    if f.between and isinstance(value, (int, float)) and not (f.between[0] <= value <= f.between[1]):
        return f"value should be between {f.between[0]} and {f.between[1]}"
    return None


def _coerce_form(f: F, value):
    """application/x-www-form-urlencoded bodies arrive as strings."""
    if not isinstance(value, str):
        return value
    if f.type == "integer":
        try:
            return int(value)
        except ValueError:
            return value
    if f.type == "number":
        try:
            return float(value)
        except ValueError:
            return value
    if f.type == "boolean" and value in ("true", "false"):
        return value == "true"
    if f.type in ("array", "set"):
        return [value]
    return value


def apply_url(data: dict) -> dict:
    url = data.pop("url", None)
    if url is None:
        return data
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        raise schema_violation({"url": "missing host in url"})
    data["protocol"] = parts.scheme
    data["host"] = parts.hostname
    data["port"] = parts.port or (443 if parts.scheme in ("https", "grpcs", "wss", "tls") else 80)
    data["path"] = parts.path or None
    return data


def new_id() -> str:
    return str(uuid.uuid4())


def _now_int() -> int:
    return int(time.time())


def normalize_target(target: str) -> str:
    if target.startswith("["):
        return target if "]:" in target else target + ":8000"
    return target if ":" in target else target + ":8000"


def validate(
    entity: str, data: dict, version: str, *, existing: dict | None = None, form: bool = False, enabled_plugins: tuple = (), generate: bool = True
) -> dict:
    """Validate `data` (a create body, or a partial update merged over `existing`) and return the
    complete entity with defaults filled, as Kong stores and returns it."""
    schema = SCHEMAS[entity]
    fields = schema.fields_for(version)
    data = dict(data)
    if entity == "services":
        data = apply_url(data)
    errors = {}
    for key in list(data):
        if key not in fields:
            if entity == "certificates" and key == "snis":
                continue
            errors[key] = "unknown field"
    out = dict(existing) if existing else {}
    for key, f in fields.items():
        if key in data:
            value = data[key]
            if form:
                value = _coerce_form(f, value)
            if value is not None:
                err = _check_type(f, value)
                if err:
                    errors[key] = err
                    continue
                if f.type == "integer" and isinstance(value, float):
                    value = int(value)
            out[key] = value
        elif existing is None:
            if f.auto == "uuid" and generate:
                out[key] = new_id()
            elif f.auto == "ts":
                out[key] = _now_int()
            elif f.auto == "ts_ms":
                out[key] = round(time.time(), 3)
            elif f.auto == "key":
                out[key] = uuid.uuid4().hex
            else:
                out[key] = list(f.default) if isinstance(f.default, list) else f.default
    for key, f in fields.items():
        if f.required and out.get(key) is None and key not in errors:
            errors[key] = "required field missing"
    if existing is not None and "updated_at" in fields:
        out["updated_at"] = round(time.time(), 3) if fields["updated_at"].type == "number" else _now_int()
    _entity_checks(entity, out, errors, version, enabled_plugins, data)
    if errors:
        raise schema_violation(errors)
    if out.get("id") is not None and not UUID_RE.match(str(out["id"])):
        raise schema_violation({"id": "expected a valid UUID"})
    return out


def _entity_checks(entity: str, out: dict, errors: dict, version: str, enabled_plugins, data):
    vt = versions.parse_version(version)
    if entity == "services":
        host = out.get("host")
        if isinstance(host, str) and "host" not in errors and not HOST_RE.match(host):
            errors["host"] = "invalid hostname: " + host
        if out.get("name") and "name" not in errors and not NAME_RE.match(out["name"]):
            errors["name"] = "invalid value '" + out["name"] + "': it must only contain alphanumeric and '., -, _, ~' characters"
        path = out.get("path")
        if isinstance(path, str) and not path.startswith("/") and "path" not in errors:
            errors["path"] = "should start with: /"
    elif entity == "routes":
        protocols = out.get("protocols") or []
        http = any(p in ("http", "https") for p in protocols)
        if http and not any(out.get(k) for k in ("methods", "hosts", "headers", "paths")) and not ("https" in protocols and out.get("snis")):
            proto = "https" if protocols == ["https"] else "http"
            fields = "'methods', 'hosts', 'headers', 'paths'" + (", 'snis'" if proto == "https" else "")
            errors.setdefault("@entity", []).append(f"must set one of {fields} when 'protocols' is '{proto}'")
        paths = out.get("paths")
        if isinstance(paths, list) and "paths" not in errors:
            perr = []
            for p in paths:
                if not isinstance(p, str):
                    perr.append("expected a string")
                elif vt >= (3, 0, 0) and not p.startswith(("/", "~/")):
                    perr.append("should start with: / (fixed path) or ~/ (regex path)")
                elif vt < (3, 0, 0) and not p.startswith("/"):
                    perr.append("should start with: /")
                else:
                    rx = p[1:] if p.startswith("~") else (p if vt < (3, 0, 0) else None)
                    if rx is not None and p.startswith("~"):
                        try:
                            re.compile(rx)
                        except re.error:
                            perr.append(f"invalid regex: '{p[1:]}'")
                            continue
                    perr.append(None)
            if any(perr):
                errors["paths"] = perr
        if out.get("name") and "name" not in errors and not NAME_RE.match(out["name"]):
            errors["name"] = "invalid value '" + out["name"] + "': it must only contain alphanumeric and '., -, _, ~' characters"
        methods = out.get("methods")
        if isinstance(methods, list):
            out["methods"] = methods
            bad = [m for m in methods if not re.fullmatch(r"[A-Z]+", str(m))]
            if bad:
                errors["methods"] = ["invalid value '" + str(bad[0]) + "': the only accepted characters are uppercase ASCII letters"]
    elif entity == "consumers":
        if not out.get("username") and not out.get("custom_id"):
            errors.setdefault("@entity", []).append("at least one of these fields must be non-empty: 'custom_id', 'username'")
    elif entity == "plugins":
        name = out.get("name")
        if isinstance(name, str) and "name" not in errors:
            if enabled_plugins and name not in enabled_plugins:
                errors["name"] = f"plugin '{name}' not enabled; add it to the 'plugins' configuration property"
            else:
                defaults = plugin_config_defaults(name, version)
                cfg = out.get("config") or {}
                if defaults is not None:
                    unknown = {k: "unknown field" for k in cfg if k not in defaults}
                    if unknown:
                        errors["config"] = unknown
                    merged = dict(defaults)
                    merged.update({k: v for k, v in cfg.items() if k in defaults})
                    cerr = _check_plugin_config(name, merged)
                    if cerr:
                        errors.setdefault("config", {}).update(cerr)
                    out["config"] = merged
                else:
                    out["config"] = cfg
    elif entity == "targets":
        if isinstance(out.get("target"), str) and "target" not in errors:
            out["target"] = normalize_target(out["target"])
    elif entity == "ca_certificates":
        if isinstance(out.get("cert"), str):
            out["cert_digest"] = hashlib.sha256(out["cert"].encode()).hexdigest()
    elif entity == "upstreams":
        if out.get("healthchecks") is None:
            out["healthchecks"] = default_healthchecks()
        name = out.get("name")
        if isinstance(name, str) and "name" not in errors and not HOST_RE.match(name):
            errors["name"] = "Invalid name ('" + name + "'); must be a valid hostname"


def _check_plugin_config(name: str, cfg: dict) -> dict:
    errs = {}
    if name == "key-auth":
        kn = cfg.get("key_names")
        if not isinstance(kn, list) or not kn or not all(isinstance(k, str) and k for k in kn):
            errs["key_names"] = "expected an array of strings"
        for k in ("hide_credentials", "key_in_header", "key_in_query", "key_in_body", "run_on_preflight"):
            if not isinstance(cfg.get(k), bool):
                errs[k] = "expected a boolean"
    elif name == "request-termination":
        sc = cfg.get("status_code")
        if isinstance(sc, bool) or not isinstance(sc, int) or not 100 <= sc <= 599:
            errs["status_code"] = "value should be between 100 and 599"
        if cfg.get("message") is not None and cfg.get("body") is not None:
            errs["@entity"] = ["message cannot be used with content_type or body"]
    elif name == "prometheus":
        for k, v in cfg.items():
            if not isinstance(v, bool):
                errs[k] = "expected a boolean"
    return errs


def default_healthchecks() -> dict:
    return {
        "threshold": 0,
        "active": {
            "type": "http",
            "timeout": 1,
            "concurrency": 10,
            "http_path": "/",
            "https_verify_certificate": True,
            "https_sni": None,
            "headers": None,
            "healthy": {"interval": 0, "successes": 0, "http_statuses": [200, 302]},
            "unhealthy": {"interval": 0, "http_failures": 0, "tcp_failures": 0, "timeouts": 0, "http_statuses": [429, 404, 500, 501, 502, 503, 504, 505]},
        },
        "passive": {
            "type": "http",
            "healthy": {"successes": 0, "http_statuses": [200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308]},
            "unhealthy": {"http_failures": 0, "tcp_failures": 0, "timeouts": 0, "http_statuses": [429, 500, 503]},
        },
    }


def foreign_fields(entity: str) -> dict:
    return {k: f.reference for k, f in SCHEMAS[entity].fields.items() if f.type == "foreign"}


def unique_fields(entity: str, version: str) -> list:
    return [k for k, f in SCHEMAS[entity].fields_for(version).items() if f.unique]


def strip_for_version(entity: str, data: dict, version: str) -> dict:
    fields = SCHEMAS[entity].fields_for(version)
    return {k: v for k, v in data.items() if k in fields}


def compat_for_version(entity: str, data: dict, version: str) -> dict:
    """What a control plane sends a data plane of an older ``version``: the fields that version does
    not know are removed, also inside the config of the plugins the simulator runs (e.g. key-auth
    ``realm``, new in 3.7, for a 3.6 DP), as Kong's compat layer (kong/clustering/compat) does, so
    that an older-minor DP the CP accepts (FACTS 5.2) can load the configuration."""
    out = strip_for_version(entity, data, version)
    if entity == "plugins" and isinstance(out.get("config"), dict):
        defaults = plugin_config_defaults(str(out.get("name")), version)
        if defaults is not None:
            out["config"] = {k: v for k, v in out["config"].items() if k in defaults}
    return out
