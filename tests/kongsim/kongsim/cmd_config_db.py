"""`kong config db_export [file]` and `kong config db_import <file>` (FACTS 4.1, 8.1).

`run(conf, args, version)`: `args` are the words after `kong config`, starting with the
sub-command. Texts follow kong/cmd/config.lua: the database is reached first, errors are printed
as `Error: <message>` + hint on stderr with exit 1.
"""

from __future__ import annotations

import os
import sys

import yaml

from . import declarative, versions
from . import entities as E
from . import migrations as M
from .pgdb import PgError
from .store_pg import PgStore, PgStoreError

HINT = "\n  Run with --v (verbose) or --vv (debug) for more details\n"


class _Fail(Exception):
    pass


class _Dumper(yaml.SafeDumper):
    pass


def _none(dumper, _value):
    return dumper.represent_scalar("tag:yaml.org,2002:null", "~")


_Dumper.add_representer(type(None), _none)


def to_yaml(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def export_format(version: str) -> str:
    return "2.1" if tuple(int(x) for x in version.split(".")[:2]) < (3, 0) else "3.0"


def pretty_error(err, item: str | None = None, indent: str = "") -> str:
    """kong/db/declarative pretty_print_error: nested `in 'x':` / `- in entry N of 'x':` lines."""
    out = []
    if isinstance(err, list):
        pairs = [(i + 1, v) for i, v in enumerate(err) if v is not None]
    elif isinstance(err, dict):
        pairs = sorted(err.items(), key=lambda kv: str(kv[0]))
    else:
        return indent + str(err)
    for key, value in pairs:
        label = f"- in entry {key} of '{item}'" if isinstance(key, int) else f"in '{key}'"
        if isinstance(value, (dict, list)):
            out.append(f"{indent}{label}:")
            out.append(pretty_error(value, str(key), indent + "  "))
        else:
            out.append(f"{indent}{label}: {value}")
    return "\n".join(out)


def _parse_file(filename: str, version: str, conf: dict):
    """(validated entity lists, passthrough extras) or _Fail('Failed parsing:\\n...')."""
    try:
        with open(filename, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        # UNCONFIRMED: Penlight readfile's wording, as Lua's io.open reports it.
        raise _Fail(f"Failed parsing:\n{filename}: {exc.strerror}") from None
    if not filename.endswith(("json", "yml", "yaml")):
        raise _Fail(f"Failed parsing:\nunknown file type: {filename}. (Accepted types: json, yaml)")
    plugins = M.enabled_plugins(conf, version)
    enabled = versions.get(version).bundled_plugins if plugins is None else tuple(sorted(plugins))
    try:
        cfg = declarative.load_text(raw, version, filename=filename, enabled_plugins=enabled)
    except declarative.DeclarativeError as exc:
        if set(exc.fields) == {"error"} and isinstance(exc.fields["error"], str):
            raise _Fail("Failed parsing:\n" + exc.fields["error"]) from None
        raise _Fail("Failed parsing:\n" + pretty_error(exc.fields)) from None
    data = cfg.as_lists()
    data.update(cfg.extra or {})
    return data


def _version_fields(entity: str, row: dict, version: str) -> dict:
    schema = E.SCHEMAS.get(entity)
    if schema is None:
        return row
    known = schema.fields_for(version)
    return {k: v for k, v in row.items() if k in known}


def _db_export(conf: dict, version: str, rest: list, out) -> int:
    store = PgStore(conf, application_name="kong config")
    try:
        store.ping()
        filename = os.path.abspath(rest[0] if rest else "kong.yml")
        if os.path.exists(filename):
            raise _Fail(f"{filename} already exists. Will not overwrite it.")
        if not store.has_table("services"):
            # UNCONFIRMED: Kong's export query failing on a database that was never bootstrapped.
            raise PgError('ERROR: relation "services" does not exist')
        doc = store.export(export_format(version), lambda entity, row: _version_fields(entity, row, version))
        with open(filename, "w", encoding="utf-8") as fh:
            fh.write(to_yaml(doc))
        return 0
    finally:
        store.close()


def _db_import(conf: dict, version: str, rest: list, out) -> int:
    store = PgStore(conf, application_name="kong config")
    try:
        store.ping()
        if not rest:
            raise _Fail("expected a declarative configuration file; see `kong config --help`")
        data = _parse_file(rest[0], version, conf)
        out.write("parse successful, beginning import\n")
        out.flush()
        try:
            store.import_config(data)
        except PgStoreError as exc:
            raise _Fail("Failed importing:\n" + exc.message) from None
        except PgError as exc:
            raise _Fail("Failed importing:\n" + str(exc)) from None
        out.write("import successful\n")
        out.flush()
        return 0
    finally:
        store.close()


def run(conf: dict, args: list, version: str, *, stdout=None, stderr=None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = [a for a in args if a not in ("--v", "--vv", "-v")]
    words = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-c", "--conf", "-p", "--prefix"):
            skip = True
            continue
        if a.startswith(("--conf=", "--prefix=")):
            continue
        words.append(a)
    command, rest = (words[0], words[1:]) if words else (None, [])
    offline = str(conf.get("database", "postgres")).strip() == "off"
    try:
        if command == "db_export":
            if offline:
                raise _Fail("'kong config db_export' only works with a database.")
            return _db_export(conf, version, rest, out)
        if command == "db_import":
            if offline:
                raise _Fail(
                    "'kong config db_import' only works with a database.\n"
                    "When using database=off, reload your declarative configuration\n"
                    "using the /config endpoint."
                )
            return _db_import(conf, version, rest, out)
        raise _Fail(f"No such command for config: {command}")
    except (_Fail, PgError) as exc:
        err.write(f"Error: {exc}\n{HINT}")
        err.flush()
        return 1
