"""Declarative configuration: parse, validate, flatten, hash (FACTS 3.2, 3.4, 4.1)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid

import yaml

from . import entities as E
from . import versions
from .model import EMPTY_HASH, Config

NAMESPACE = uuid.UUID("fd02801f-0957-4a15-a3f0-0b6f8a4c1d7e")
_NOT_REGEX = re.compile(r"^[a-zA-Z0-9.\-_~/%]*$")
# Entities of bundled plugins that a declarative file may hold; the simulator keeps them as given.
PASSTHROUGH = ("acls", "basicauth_credentials", "hmacauth_credentials", "jwt_secrets", "oauth2_credentials", "vaults", "keys", "key_sets", "parameters")
NESTED = {
    "services": {"routes": ("routes", "service"), "plugins": ("plugins", "service")},
    "routes": {"plugins": ("plugins", "route")},
    "consumers": {"plugins": ("plugins", "consumer"), "keyauth_credentials": ("keyauth_credentials", "consumer")},
    "upstreams": {"targets": ("targets", "upstream")},
    "certificates": {"snis": ("snis", "certificate")},
}
NATURAL_KEY = {
    "services": "name",
    "routes": "name",
    "consumers": "username",
    "upstreams": "name",
    "snis": "name",
    "keyauth_credentials": "key",
    "certificates": "cert",
    "ca_certificates": "cert",
}


class DeclarativeError(Exception):
    def __init__(self, message: str, fields: dict, flattened: list | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields
        self.flattened = flattened or []

    def body(self, flatten: bool) -> dict:
        out = {"code": E.DECLARATIVE_CONFIG, "name": "invalid declarative configuration", "message": self.message, "fields": self.fields}
        if flatten:
            out["flattened_errors"] = self.flattened
        return out


def parse_error(err: str) -> DeclarativeError:
    msg = f"failed parsing declarative configuration: {err}"
    return DeclarativeError(f'declarative config is invalid: {{error="{msg}"}}', {"error": msg})


def parse_text(text: str, filename: str | None = None):
    """YAML is a superset of JSON; .json files are read as JSON as Kong does."""
    try:
        if filename and filename.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise parse_error(str(exc).replace("\n", " "))


def _uuid_for(entity: str, key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{entity}:{key}"))


def text_hash(text: bytes | str) -> str:
    if isinstance(text, str):
        text = text.encode()
    return hashlib.md5(text).hexdigest()


def table_hash(doc) -> str:
    return hashlib.md5(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _rewrite_paths(route: dict) -> dict:
    paths = route.get("paths")
    if isinstance(paths, list):
        route = dict(route)
        route["paths"] = [p if not isinstance(p, str) or _NOT_REGEX.match(p) else "~" + p for p in paths]
    return route


class _Walker:
    def __init__(self, version: str, enabled_plugins):
        self.version = version
        self.enabled = enabled_plugins
        self.records = []  # (entity, raw dict, err_path, parent_ref)
        self.errors = {}
        self.flat = []

    def set_error(self, path: list, err) -> None:
        node = self.errors
        for i, part in enumerate(path[:-1]):
            nxt = path[i + 1]
            if isinstance(part, int):
                while len(node) <= part:
                    node.append(None)
                if node[part] is None:
                    node[part] = [] if isinstance(nxt, int) else {}
                node = node[part]
            else:
                if part not in node:
                    node[part] = [] if isinstance(nxt, int) else {}
                node = node[part]
        last = path[-1]
        if isinstance(last, int):
            while len(node) <= last:
                node.append(None)
            node[last] = err
        else:
            node[last] = err


def _flat_entry(entity: str, raw: dict, err) -> dict:
    errs = []
    if isinstance(err, dict):
        for k, m in err.items():
            if k == "@entity":
                for item in m if isinstance(m, list) else [m]:
                    errs.append({"message": item, "type": "entity"})
            else:
                errs.append({"field": k, "message": m if isinstance(m, str) else json.dumps(m), "type": "field"})
    else:
        errs.append({"message": str(err), "type": "entity"})
    singular = entity.removesuffix("s")
    name = raw.get("name") or raw.get("username") if isinstance(raw, dict) else None
    return {
        "entity_type": singular,
        "entity_name": name,
        "entity_id": raw.get("id") if isinstance(raw, dict) else None,
        "entity_tags": raw.get("tags") if isinstance(raw, dict) else None,
        "entity": raw,
        "errors": errs,
    }


def load(doc, version: str, *, enabled_plugins=(), raw_text: bytes | str | None = None) -> Config:
    """Validate a parsed declarative document and return the node Config (raises DeclarativeError)."""
    info = versions.get(version)
    if not isinstance(doc, dict):
        raise DeclarativeError("expected a declarative configuration", {"error": "expected a declarative configuration"})
    fmt = doc.get("_format_version")
    top_err = {}
    if fmt is None:
        top_err["_format_version"] = "required field missing"
    elif str(fmt) not in info.accepted_formats:
        top_err["_format_version"] = "expected one of: " + ", ".join(info.accepted_formats)
    known = set(E.ORDER) | set(PASSTHROUGH) | {"_format_version", "_transform", "_comment", "_workspace", "_info", "_konnect"}
    for key in doc:
        if key not in known:
            top_err[key] = "unknown field"
    if top_err:
        raise DeclarativeError(
            f"declarative config is invalid: {E.lua_repr(top_err)}",
            top_err,
            [{"entity_type": None, "errors": [{"field": k, "message": v, "type": "field"} for k, v in top_err.items()]}],
        )
    rewrite = info.major >= 3 and str(fmt) in ("1.1", "2.1")
    w = _Walker(version, enabled_plugins)
    by_name: dict = {name: {} for name in E.ORDER}

    def walk(entity, items, path, parent=None):
        if items is None:
            return
        if not isinstance(items, list):
            w.set_error(path, "expected an array")
            return
        for i, raw in enumerate(items):
            p = path + [i]
            if entity == "snis" and isinstance(raw, str):
                raw = {"name": raw}
            if not isinstance(raw, dict):
                w.set_error(p, "expected a record")
                continue
            item = {k: v for k, v in raw.items() if k not in NESTED.get(entity, {})}
            if entity == "routes" and rewrite:
                item = _rewrite_paths(item)
            if parent is not None:
                _pent, pfield, pid = parent
                item[pfield] = {"id": pid}
            key_field = NATURAL_KEY.get(entity)
            if "id" not in item:
                natural = item.get(key_field) if key_field else None
                if entity == "targets":
                    natural = f"{(item.get('upstream') or {}).get('id')}:{item.get('target')}"
                elif entity == "plugins":
                    natural = json.dumps(
                        [item.get("name"), item.get("service"), item.get("route"), item.get("consumer"), item.get("instance_name")], sort_keys=True, default=str
                    )
                item["id"] = _uuid_for(entity, str(natural) if natural else ".".join(map(str, p)))
            w.records.append((entity, item, p, raw))
            for child_key, (child_entity, fk) in NESTED.get(entity, {}).items():
                if child_key in raw:
                    walk(child_entity, raw[child_key], p + [child_key], (entity, fk, item["id"]))

    for entity in E.ORDER:
        walk(entity, doc.get(entity), [entity])
    # Index natural keys so string references (service: "name") resolve.
    for entity, item, _p, _raw in w.records:
        ek = E.SCHEMAS[entity].endpoint_key
        by_name[entity][item["id"]] = item["id"]
        if ek and isinstance(item.get(ek), str):
            by_name[entity][item[ek]] = item["id"]
    validated = []
    for entity, item, p, raw in w.records:
        err = {}
        for fname, ref in E.foreign_fields(entity).items():
            value = item.get(fname)
            if value is None:
                continue
            key = value.get("id") if isinstance(value, dict) else value
            target = by_name[ref].get(key) if isinstance(key, str) else None
            if target is None:
                err[fname] = f"invalid reference '{fname}: {key}' (no such entry in '{ref}')"
            else:
                item[fname] = {"id": target}
        try:
            ent = E.validate(entity, item, version, enabled_plugins=enabled_plugins, generate=False)
        except E.EntityError as exc:
            fields = dict(exc.body.get("fields") or {})
            fields.update(err)
            err = fields
            ent = None
        if err:
            w.set_error(p, err)
            w.flat.append(_flat_entry(entity, raw, err))
            continue
        validated.append((entity, ent, p, raw))
    cfg = Config()
    for entity, ent, p, raw in validated:
        try:
            cfg.check_unique(entity, ent, version)
        except E.EntityError as exc:
            msg = (
                f"uniqueness violation: '{entity}' entity with "
                + ", ".join(f"{k} set to '{v}'" for k, v in (exc.body.get("fields") or {}).items() if v is not None and not isinstance(v, dict))
                + " already declared"
            )
            w.set_error(p, msg)
            w.flat.append(_flat_entry(entity, raw, msg))
            continue
        if ent["id"] in cfg.data[entity]:
            msg = f"uniqueness violation: '{entity}' entity with primary key set to '{ent['id']}' already declared"
            w.set_error(p, msg)
            w.flat.append(_flat_entry(entity, raw, msg))
            continue
        cfg.put(entity, ent)
    if w.errors:
        raise DeclarativeError(f"declarative config is invalid: {E.lua_repr(w.errors)}", w.errors, w.flat)
    cfg.extra = {k: doc[k] for k in PASSTHROUGH if doc.get(k)}
    if cfg.is_empty():
        cfg.hash = EMPTY_HASH
    elif raw_text is not None:
        cfg.hash = text_hash(raw_text)
    else:
        cfg.hash = table_hash(doc)
    return cfg


def load_text(text, version: str, *, filename: str | None = None, enabled_plugins=()) -> Config:
    doc = parse_text(text.decode() if isinstance(text, bytes) else text, filename)
    return load(doc, version, enabled_plugins=enabled_plugins, raw_text=text)


def export_doc(cfg: Config, version: str) -> dict:
    """Flat lists, foreign keys as bare ids, nulls kept (FACTS 4.1)."""
    info = versions.get(version)
    doc = {"_format_version": info.export_format, "_transform": False}
    for entity in ("services", "routes", "plugins", "consumers", "keyauth_credentials", "upstreams", "targets", "certificates", "snis", "ca_certificates"):
        items = cfg.sorted_items(entity)
        if not items:
            continue
        rows = []
        for item in items:
            row = {}
            for k, v in item.items():
                if isinstance(v, dict) and set(v) == {"id"} and k in E.foreign_fields(entity):
                    v = v["id"]
                row[k] = v
            rows.append(row)
        doc[entity] = rows
    for k, v in cfg.extra.items():
        doc[k] = v
    return doc


class _Dumper(yaml.SafeDumper):
    pass


def _none(dumper, _value):
    return dumper.represent_scalar("tag:yaml.org,2002:null", "~")


_Dumper.add_representer(type(None), _none)


def to_yaml(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def entities_by_id(cfg: Config) -> dict:
    """POST /config 201 body: entities keyed by name, then by id."""
    out = {}
    for entity in E.ORDER:
        if cfg.data[entity]:
            out[entity] = dict(cfg.data[entity])
    return out


INIT_TEMPLATE = """# ------------------------------------------------------------------------------
# This is an example file to get you started with using
# declarative configuration in Kong.
# ------------------------------------------------------------------------------

# Metadata fields start with an underscore (_)
# Fields that do not start with an underscore represent Kong entities and attributes

# _format_version is mandatory,
# it specifies the minimum version of Kong that supports the format

_format_version: "{fmt}"

# _transform is optional, defaulting to true.
# It specifies whether schema transformations should be applied when importing this file
# as a rule of thumb, leave this setting to true if you are importing credentials
# with plain passwords, which need to be encrypted/hashed before storing on the database.
# On the other hand, if you are reimporting a database with passwords already encrypted/hashed,
# set it to false.

_transform: true

# Each Kong entity (core entity or plugin) can be declared in its own top-level list.
# Entities can also be nested as attributes of other entities. Some examples are
# given below; remove the leading # to enable them.

#services:
#- name: my-service
#  url: https://example.com
#  plugins:
#  - name: key-auth
#  routes:
#  - name: my-route
#    paths:
#    - /

#consumers:
#- username: my-user
#  keyauth_credentials:
#  - key: my-key
"""


def init_template(version: str) -> str:
    return INIT_TEMPLATE.format(fmt=versions.get(version).export_format)
