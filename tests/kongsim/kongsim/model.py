"""In-memory snapshot of every entity of a node, with Kong's lookups, constraints and paging."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from . import entities as E

EMPTY_HASH = "0" * 32


class Config:
    def __init__(self, data: dict | None = None, config_hash: str = EMPTY_HASH, extra: dict | None = None):
        self.data = {name: {} for name in E.ORDER}
        for name, items in (data or {}).items():
            if name in self.data:
                for item in items:
                    self.data[name][item["id"]] = item
        self.hash = config_hash
        self.extra = extra or {}

    def copy(self) -> Config:
        new = Config(config_hash=self.hash, extra=dict(self.extra))
        new.data = {k: dict(v) for k, v in self.data.items()}
        return new

    def as_lists(self) -> dict:
        return {k: list(v.values()) for k, v in self.data.items()}

    def is_empty(self) -> bool:
        return not any(self.data.values())

    def count(self) -> int:
        return sum(len(v) for v in self.data.values())

    def get(self, entity: str, key) -> dict | None:
        if key is None:
            return None
        table = self.data[entity]
        if isinstance(key, dict):
            key = key.get("id")
        found = table.get(key)
        if found is not None:
            return found
        schema = E.SCHEMAS[entity]
        ek = schema.endpoint_key
        if ek and not E.UUID_RE.match(str(key)):
            for item in table.values():
                if item.get(ek) == key:
                    return item
        if entity == "consumers":
            for item in table.values():
                if item.get("custom_id") == key and not E.UUID_RE.match(str(key)):
                    return item
        return None

    def sorted_items(self, entity: str, predicate=None) -> list:
        items = [i for i in self.data[entity].values() if predicate is None or predicate(i)]
        items.sort(key=lambda i: str(i["id"]))
        return items

    def check_unique(self, entity: str, obj: dict, version: str, exclude_id=None) -> None:
        for field_name in E.unique_fields(entity, version):
            value = obj.get(field_name)
            if value is None:
                continue
            for other in self.data[entity].values():
                if other["id"] != exclude_id and other.get(field_name) == value:
                    raise E.unique_violation(field_name, value)
        if entity == "plugins":
            key = plugin_key(obj)
            for other in self.data["plugins"].values():
                if other["id"] != exclude_id and plugin_key(other) == key:
                    raise E.EntityError(
                        409,
                        {
                            "code": E.UNIQUE_VIOLATION,
                            "name": "unique constraint violation",
                            "message": (
                                "UNIQUE violation detected on '{consumer="
                                + _ref(obj, "consumer")
                                + ',name="'
                                + obj["name"]
                                + '",route='
                                + _ref(obj, "route")
                                + ",service="
                                + _ref(obj, "service")
                                + "}'"
                            ),
                            "fields": {"consumer": obj.get("consumer"), "name": obj["name"], "route": obj.get("route"), "service": obj.get("service")},
                        },
                    )
        if entity == "targets":
            for other in self.data["targets"].values():
                if (
                    other["id"] != exclude_id
                    and other.get("target") == obj.get("target")
                    and (other.get("upstream") or {}).get("id") == (obj.get("upstream") or {}).get("id")
                ):
                    raise E.unique_violation("target", obj.get("target"))

    def check_fk(self, entity: str, obj: dict) -> None:
        for field_name, ref in E.foreign_fields(entity).items():
            value = obj.get(field_name)
            if value is None:
                continue
            if self.data[ref].get(value.get("id")) is None:
                raise E.fk_violation(field_name, ref, value.get("id"))

    def dependents(self, entity: str, ident: str) -> list:
        out = []
        for name, schema in E.SCHEMAS.items():
            for fname, f in schema.fields.items():
                if f.type == "foreign" and f.reference == entity:
                    for item in self.data[name].values():
                        if (item.get(fname) or {}).get("id") == ident:
                            out.append((name, item, f.on_delete))
        return out

    def put(self, entity: str, obj: dict) -> None:
        self.data[entity][obj["id"]] = obj

    def remove(self, entity: str, ident: str) -> list:
        """Delete with Kong's cascades; returns [(entity, id)] removed."""
        removed = []
        if ident not in self.data[entity]:
            return removed
        for dep_entity, dep, _mode in self.dependents(entity, ident):
            removed.extend(self.remove(dep_entity, dep["id"]))
        del self.data[entity][ident]
        removed.append((entity, ident))
        return removed

    def plugins_enabled(self) -> list:
        return sorted({p["name"] for p in self.data["plugins"].values()})


def _ref(obj, key):
    v = obj.get(key)
    return "null" if not v else '{id="' + v["id"] + '"}'


def plugin_key(p: dict) -> tuple:
    return (p.get("name"), (p.get("route") or {}).get("id"), (p.get("service") or {}).get("id"), (p.get("consumer") or {}).get("id"), p.get("instance_name"))


def encode_offset(last_id: str) -> str:
    return base64.b64encode(json.dumps([last_id]).encode()).decode()


def decode_offset(token: str) -> str:
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=False)
        value = json.loads(raw)
        if isinstance(value, list) and value and isinstance(value[0], str):
            return value[0]
    except (ValueError, TypeError):
        pass
    raise E.EntityError(400, {"code": E.INVALID_OFFSET, "name": "invalid offset", "message": f"'{token}' is not a valid offset: bad base64 encoding"})


def paginate(items: list, size_arg, offset_arg, base_path: str) -> dict:
    size = 100
    if size_arg is not None:
        try:
            size = int(size_arg)
        except ValueError:
            raise E.EntityError(400, {"code": E.INVALID_SIZE, "name": "invalid size", "message": "size must be a number"})
        if size < 1 or size > 1000:
            raise E.EntityError(400, {"code": E.INVALID_SIZE, "name": "invalid size", "message": "size must be an integer between 1 and 1000"})
    start = 0
    if offset_arg:
        last = decode_offset(offset_arg)
        start = len(items)
        for i, item in enumerate(items):
            if str(item["id"]) > last:
                start = i
                break
    page = items[start : start + size]
    out = {"data": page, "next": None}
    if start + size < len(items):
        token = encode_offset(str(page[-1]["id"]))
        out["offset"] = token
        sep = "&" if "?" in base_path else "?"
        out["next"] = f"{base_path}{sep}offset={quote(token, safe='')}"
        if size_arg is not None:
            out["next"] += f"&size={size}"
    return out
