# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Edit an operator's kong.conf in place: set the named settings, rename or comment out others,
keep every other line and comment as it was.

Kong reads kong.conf with Penlight's `pl.config` (`smart = false`, one `key = value` per line, the
last occurrence of a key wins, a line ending in a backslash continues on the next line) and then
strips a trailing comment from each value with the regex `\\s*(?<!\\\\)#.*$` before turning `\\#`
into `#` (Kong/kong 3.4.2 kong/conf_loader/init.lua lines 1509-1531; 3.9.3 kong/conf_loader/init.lua
lines 127-149). A `#` in a value must therefore be written `\\#`; a newline cannot be written at all.
Before 3.2.0 Kong copies the values into the prefix's .kong_env without that escape (2.8.5
kong/cmd/utils/prefix_handler.lua line 498; `quote_hash` came with 3.2.0), and the node reads
.kong_env back: there a `#` in a value cannot survive at all.
"""

from __future__ import annotations

import re

SETTING_RE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_]+)(?P<sep>\s*=\s*)(?P<rest>.*)$")
COMMENTED_RE = re.compile(r"^\s*#\s*(?P<key>[A-Za-z0-9_]+)\s*=")
KEY_RE = re.compile(r"^[a-z0-9_]+$")
# Kong's own comment stripping (see the module docstring), with Python's look-behind.
_COMMENT_RE = re.compile(r"\s*(?<!\\)#.*$")
MANAGED_HEADER = "# Settings set by kongops.upgrade"


class KongConfError(Exception):
    """A setting cannot be written as Kong would read it back; names the setting."""

    def __init__(self, msg: str, setting: str | None = None):
        super().__init__(msg)
        self.setting = setting


def read_value(raw: str) -> str:
    """The value Kong reads from the text right of `=`."""
    return _COMMENT_RE.sub("", raw).replace("\\#", "#").strip()


def _before_3_2(version) -> bool:
    try:
        return tuple(int(p) for p in str(version).split(".")[:3]) < (3, 2, 0)
    except ValueError:
        return False


def format_value(key: str, value, kong_version: str | None = None) -> str:
    """The text to write right of `key = ` so that Kong reads back exactly `value`."""
    if isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(str(v) for v in value)
    elif value is None:
        raise KongConfError(f"kong.conf setting '{key}' has no value: give a value or list it under remove", key)
    else:
        text = str(value)
    if "\n" in text or "\r" in text:
        raise KongConfError(
            f"kong.conf setting '{key}' contains a newline: kong.conf holds one setting per line and Kong "
            "would read the rest as further directives; give a single-line value (a PEM goes in a file, "
            "named by its *_cert/*_key path setting)",
            key,
        )
    if text.rstrip().endswith("\\"):
        raise KongConfError(
            f"kong.conf setting '{key}' ends with a backslash: Kong's parser would join the next line to it; remove the trailing backslash", key
        )
    if text != text.strip():
        raise KongConfError(f"kong.conf setting '{key}' starts or ends with white space, which Kong strips; remove it", key)
    if "#" in text and kong_version and _before_3_2(kong_version):
        raise KongConfError(
            f"kong.conf setting '{key}' contains '#': Kong {kong_version} copies kong.conf into its prefix's "
            ".kong_env without escaping it (Kong 3.2.0 added that) and would cut the value there; choose a "
            "value without '#' (for a password: change it) or upgrade through a version that has the fix",
            key,
        )
    return text.replace("#", "\\#")


def check_key(key: str) -> None:
    if not KEY_RE.match(str(key)):
        raise KongConfError(f"'{key}' is not a kong.conf setting name (lowercase letters, digits and underscores)", str(key))


def parse(text: str) -> dict:
    """Active settings as Kong reads them (last occurrence wins), name to value."""
    values = {}
    for line in text.splitlines():
        m = SETTING_RE.match(line)
        if m:
            values[m.group("key").lower()] = read_value(m.group("rest"))
    return values


def _split_rest(rest: str) -> tuple:
    """(value text, trailing comment with its leading space) of the text right of `=`."""
    m = _COMMENT_RE.search(rest)
    if not m or m.start() == len(rest):
        return rest.rstrip(), ""
    return rest[: m.start()].rstrip(), rest[m.start() :]


def edit(
    text: str, settings: dict | None = None, remove=None, rename: dict | None = None, remove_note: str = "kongops.upgrade", kong_version: str | None = None
) -> tuple:
    """Return (new_text, changes). `settings` sets values (the last active line of a key is rewritten
    in place, keeping its trailing comment; a new key goes after its commented-out template line, or
    at the end); `rename` maps an old key to its new name, keeping the value; `remove` comments out
    every active line of a key. Lines not named are returned byte for byte."""
    settings = dict(settings or {})
    rename = dict(rename or {})
    remove = list(remove or [])
    for key in list(settings) + list(rename) + list(rename.values()) + remove:
        check_key(key)
    wanted = {key: format_value(key, value, kong_version) for key, value in settings.items()}
    changes = []
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines()
    trailing_newline = text.endswith(("\n", "\r"))

    for i, line in enumerate(lines):
        m = SETTING_RE.match(line)
        if not m:
            continue
        key = m.group("key").lower()
        if key in remove:
            lines[i] = f"# {line.strip()}  # removed by {remove_note}"
            changes.append(dict(setting=key, action="removed", line=i + 1))
        elif key in rename:
            new_key = rename[key]
            lines[i] = f"{m.group('indent')}{new_key}{m.group('sep')}{m.group('rest')}"
            changes.append(dict(setting=key, action="renamed", to=new_key, line=i + 1))

    last = {}
    template = {}
    for i, line in enumerate(lines):
        m = SETTING_RE.match(line)
        if m:
            last[m.group("key").lower()] = i
            continue
        c = COMMENTED_RE.match(line)
        if c:
            template[c.group("key").lower()] = i

    appended = []
    inserts = {}
    for key, written in wanted.items():
        if key in last:
            i = last[key]
            m = SETTING_RE.match(lines[i])
            old_text, comment = _split_rest(m.group("rest"))
            if read_value(m.group("rest")) == read_value(written):
                continue
            lines[i] = f"{m.group('indent')}{m.group('key')}{m.group('sep')}{written}{comment}"
            changes.append(dict(setting=key, action="changed", line=i + 1))
        elif key in template:
            inserts.setdefault(template[key], []).append(f"{key} = {written}")
            changes.append(dict(setting=key, action="added"))
        else:
            appended.append(f"{key} = {written}")
            changes.append(dict(setting=key, action="added"))

    out = []
    for i, line in enumerate(lines):
        out.append(line)
        out.extend(inserts.get(i, []))
    if appended:
        if out and out[-1].strip():
            out.append("")
        if MANAGED_HEADER not in out:
            out.append(MANAGED_HEADER)
        out.extend(appended)
    new_text = newline.join(out)
    if out and (trailing_newline or not text):
        new_text += newline
    return new_text, changes


def read_kong_conf(path: str) -> dict:
    """Active settings of the kong.conf at `path`, as Kong reads them (see `parse`)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise KongConfError(f"cannot read kong_conf {path}: {exc.strerror}") from exc
    return parse(text)


def custom_plugins(settings: dict) -> list:
    """The plugins kong.conf's `plugins` property names besides `bundled` and `off`
    (kong/conf_loader/init.lua:815-839 at 3.9.3)."""
    names = [name.strip() for name in (settings.get("plugins") or "").split(",")]
    return [name for name in names if name not in ("", "bundled", "off")]


def conf_names(path: str) -> dict:
    """What of the kong.conf at `path` may leave the node: the names of the properties it sets and the
    custom plugins its `plugins` list names (`custom_plugins`), never a value. A file that cannot be read gives `readable: false` and its reason."""
    try:
        settings = read_kong_conf(path)
    except KongConfError as exc:
        return dict(path=path, readable=False, reason=str(exc), properties=[], custom_plugins=[])
    return dict(
        path=path,
        readable=True,
        reason=None,
        properties=sorted(settings),
        custom_plugins=custom_plugins(settings),
    )


def kong_setting(name: str, conf_path: str | None, kong_env: dict | None):
    """A kong.conf setting as Kong resolves it: KONG_<NAME> in the environment beats the file."""
    env_key = "KONG_" + name.upper()
    if kong_env and env_key in kong_env:
        return str(kong_env[env_key])
    if conf_path:
        return read_kong_conf(conf_path).get(name) or None
    return None


def pg_params_from_kong_conf(params: dict) -> dict:
    """The module's pg_* parameters overridden by the node's kong.conf and KONG_PG_* settings."""
    out = dict(params)
    conf = params.get("kong_conf")
    if not conf:
        raise KongConfError("pg_from_kong_conf needs kong_conf (the node's kong.conf)", "kong_conf")
    for name in ("pg_host", "pg_port", "pg_user", "pg_password", "pg_database", "pg_schema"):
        value = kong_setting(name, conf, params.get("kong_env"))
        if value:
            out[name] = int(value) if name == "pg_port" else value
    return out


# The flags a listener entry of the http subsystem may carry (Kong/kong 3.9.3 kong/conf_loader/listeners.lua
# lines 15-18, `subsystem_flags.http`); parse_listeners (lines 97-145) takes them out of the entry wherever
# they stand, and what is left is the address, `<ip>:<port>` or `<name>:<port>`.
_LISTEN_FLAGS = re.compile(r"^(ssl|http2|proxy_protocol|deferred|bind|reuseport|backlog=\d+|ipv6only=(on|off)|so_keepalive=(on|off|\w*:\w*:\d*))$")
_LISTEN_ADDRESS = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s\[\]:]+):(?P<port>\d+)$")
# where a wildcard listener is reached on the node itself
_LISTEN_LOCAL = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "[::]": "[::1]", "[0:0:0:0:0:0:0:0]": "[::1]"}


def listen_url(value: str) -> str:
    """The URL the node itself reaches a listener at (`admin_listen`, `status_listen`): its first entry,
    https when that entry has the `ssl` flag, a wildcard address as the loopback address; '' for `off`
    (Kong: "off" as a first entry disables the listener). KongConfError for a value Kong refuses."""
    entries = [e.strip() for e in str(value if value is not None else "").split(",")]
    if entries[0] in ("", "off"):
        return ""
    tokens = entries[0].split()
    flags = [t for t in tokens if _LISTEN_FLAGS.match(t)]
    address = [t for t in tokens if not _LISTEN_FLAGS.match(t)]
    match = _LISTEN_ADDRESS.match(address[0]) if len(address) == 1 else None
    if not match:
        raise KongConfError(
            f"'{value}' is not a listener Kong accepts: it must be of form [off] | <ip>:<port> [ssl] [http2] [...flags], "
            "[... next entry ...] (Kong/kong 3.9.3 kong/conf_loader/listeners.lua parse_listeners)"
        )
    host = _LISTEN_LOCAL.get(match.group("host"), match.group("host"))
    return ("https://" if "ssl" in flags else "http://") + host + ":" + match.group("port")
