"""Where a node without a database keeps the configuration it last loaded, per version.

- Kong 2.x data planes: ``<prefix>/config.cache.json.gz``, read back at the start of worker 0
  ("found cached config, loading...") (Kong/kong 2.8.5 kong/clustering/data_plane.lua:32, 112-126,
  134-160). A 2.x DB-less node keeps nothing: its configuration lives in shared memory.
- Kong 3.x DB-less nodes and data planes: LMDB at ``lmdb_environment_path`` (``dbless.lmdb``, relative
  to the prefix: kong/templates/kong_defaults.lua at 3.4.2/3.9.3). Every load writes it; a start without
  ``declarative_config`` builds from it when it holds a configuration ("found persisted lmdb config,
  loading...", kong/init.lua:918-927 at 3.9.3, :789-799 at 3.4.2).
- From 3.6 Kong sets ``lmdb_validation_tag`` to its own "major.minor" (kong/conf_loader/constants.lua:636-639,
  kong/templates/nginx_inject.lua at 3.9.3; absent at 3.5.0): at start an LMDB whose tag differs, or that has
  none, is removed with a warning and the tag written (Kong/lua-resty-lmdb src/ngx_lua_resty_lmdb_module.c,
  ngx_lua_resty_lmdb_validate and ngx_lua_resty_lmdb_init). So a node upgraded in the same prefix to
  another minor starts without a configuration; before 3.6 it reads what the earlier version wrote
  (UNCONFIRMED that every 3.0-3.5 version reads another's LMDB content).

The simulator writes its own JSON into ``data.mdb``: the place and the lifecycle follow Kong, not
LMDB's file format.
"""

from __future__ import annotations

import gzip
import json
import os

from .versions import parse_version


def _version(node) -> tuple:
    return parse_version(node.version)


def lmdb_dir(node) -> str:
    path = str(node.conf.get("lmdb_environment_path") or "dbless.lmdb")
    return path if os.path.isabs(path) else os.path.join(node.prefix, path)


def _file(node) -> str:
    if _version(node) < (3, 0, 0):
        return os.path.join(node.prefix, "config.cache.json.gz")
    return os.path.join(lmdb_dir(node), "data.mdb")


def _tag(node) -> str | None:
    major, minor, _patch = _version(node)
    return f"{major}.{minor}" if (major, minor) >= (3, 6) else None


def _read(path: str) -> dict | None:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError, EOFError):
        return None


def _write(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def open_at_start(node) -> None:
    """What nginx's LMDB module does at start: the validation of the tag (3.6+)."""
    if _version(node) < (3, 0, 0):
        return
    tag = _tag(node)
    path = _file(node)
    if tag is None:
        return
    stored = _read(path) if os.path.exists(path) else {}
    found = (stored or {}).get("validation_tag")
    if found == tag:
        return
    if found is None:
        node.log("warn", "LMDB validation tag does not exist")
    else:
        node.log("warn", f'LMDB tag "{found}" did not match configured tag "{tag}"')
    node.log("warn", "LMDB database is removed for tag validation failure")
    for name in ("data.mdb", "lock.mdb"):
        try:
            os.remove(os.path.join(lmdb_dir(node), name))
        except FileNotFoundError:
            pass
    _write(path, {"validation_tag": tag})


def load(node) -> dict | None:
    """{config, config_hash} of the last load kept for this node's version, or None."""
    if node.dbless and _version(node) < (3, 0, 0) and node.role != "data_plane":
        return None
    data = _read(_file(node))
    if not data or "config" not in data:
        return None
    return data


def store(node, doc: dict, config_hash: str) -> None:
    if node.dbless and _version(node) < (3, 0, 0) and node.role != "data_plane":
        return
    data = {"config": doc, "config_hash": config_hash}
    tag = _tag(node)
    if tag:
        data["validation_tag"] = tag
    _write(_file(node), data)
