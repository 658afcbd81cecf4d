"""kong.conf parsing with KONG_* environment overrides and per-version defaults."""

from __future__ import annotations

import os
import re

from . import versions

DEFAULT_CONF_PATHS = ("/etc/kong/kong.conf", "/etc/kong.conf")
DEFAULT_PREFIX = "/usr/local/kong"


class ConfError(Exception):
    """A configuration problem; the CLI prints it as `Error: <message>` and exits 1."""


# Values from kong/templates/kong_defaults.lua (FACTS 3, 8.1); the simulator uses the listed ones.
_BASE_DEFAULTS = {
    "prefix": DEFAULT_PREFIX,
    "log_level": "notice",
    "proxy_access_log": "logs/access.log",
    "proxy_error_log": "logs/error.log",
    "admin_access_log": "logs/admin_access.log",
    "admin_error_log": "logs/error.log",
    "status_access_log": "off",
    "status_error_log": "logs/status_error.log",
    "plugins": "bundled",
    "proxy_listen": "0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384",
    "admin_listen": "127.0.0.1:8001 reuseport backlog=16384, 127.0.0.1:8444 http2 ssl reuseport backlog=16384",
    "cluster_listen": "0.0.0.0:8005",
    "cluster_control_plane": "127.0.0.1:8005",
    "cluster_cert": None,
    "cluster_cert_key": None,
    "cluster_mtls": "shared",
    "cluster_data_plane_purge_delay": 1209600,
    "role": "traditional",
    "database": "postgres",
    "declarative_config": None,
    "declarative_config_string": None,
    "pg_host": "127.0.0.1",
    "pg_port": 5432,
    "pg_timeout": 5000,
    "pg_user": "kong",
    "pg_password": None,
    "pg_database": "kong",
    "pg_schema": None,
    "pg_ssl": False,
    "pg_ssl_verify": False,
    # per version in versions.py: NONE at 2.8.5, `system` from 3.x (kong/templates/kong_defaults.lua)
    "lua_ssl_trusted_certificate": None,
    "pg_ro_password": None,
    "db_update_frequency": 5,
    "db_update_propagation": 0,
    "db_cache_ttl": 0,
    "nginx_main_worker_processes": "auto",
    "nginx_worker_processes": "auto",
    "lmdb_map_size": "2048m",
    "mem_cache_size": "128m",
    "ssl_cert_key": None,
    "client_ssl_cert_key": None,
    "admin_ssl_cert_key": None,
    "status_ssl_cert_key": None,
    "debug_ssl_cert_key": None,
    "proxy_server": None,
    "upstream_keepalive_pool_size": 512,
    "upstream_keepalive_max_requests": 10000,
    "upstream_keepalive_idle_timeout": 60,
    "real_ip_header": "X-Real-IP",
    "trusted_ips": None,
    "anonymous_reports": True,
}

SENSITIVE = (
    "pg_password",
    "pg_ro_password",
    "proxy_server",
    "declarative_config_string",
    "cluster_cert_key",
    "ssl_cert_key",
    "client_ssl_cert_key",
    "admin_ssl_cert_key",
    "admin_gui_ssl_cert_key",
    "status_ssl_cert_key",
    "debug_ssl_cert_key",
)

_NUMBERS = (
    "pg_port",
    "pg_timeout",
    "db_update_frequency",
    "db_update_propagation",
    "db_cache_ttl",
    "cluster_data_plane_purge_delay",
    "upstream_keepalive_pool_size",
    "upstream_keepalive_max_requests",
    "upstream_keepalive_idle_timeout",
)
_BOOLEANS = ("pg_ssl", "pg_ssl_verify", "anonymous_reports", "dedicated_config_processing", "cluster_rpc", "new_dns_client", "cluster_incremental_sync")
_LISTENERS = ("proxy_listen", "admin_listen", "status_listen", "cluster_listen", "admin_gui_listen")
_LISTEN_FLAGS = ("ssl", "http2", "proxy_protocol", "deferred", "bind", "reuseport")
_LISTEN_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^\s:]+):(\d+)((?:\s+\S+)*)$")


def defaults(version: str) -> dict:
    info = versions.get(version)
    d = dict(_BASE_DEFAULTS)
    d["status_listen"] = info.status_listen_default
    d["headers"] = info.headers_default
    if info.request_id:
        d["headers_upstream"] = "x-kong-request-id"
    if info.admin_gui_listen:
        d["admin_gui_listen"] = "0.0.0.0:8002, 0.0.0.0:8445 ssl"
    d.update(info.defaults_extra)
    return d


def _strip_comment(line: str) -> str:
    out = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] == "#":
            out.append("#")
            i += 2
            continue
        if ch == "#":
            break
        out.append(ch)
        i += 1
    return "".join(out).strip()


def read_conf_file(path: str) -> dict:
    values = {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        raise ConfError(f"no file at: {path}")
    for raw in lines:
        line = _strip_comment(raw)
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        values[key.strip().lower()] = value.strip()
    return values


def _parse_bool(key: str, value):
    if isinstance(value, bool):
        return value
    low = str(value).strip().lower()
    if low in ("on", "true"):
        return True
    if low in ("off", "false"):
        return False
    raise ConfError(f"{key} is not a boolean")


def _parse_number(key: str, value):
    if isinstance(value, (int, float)):
        return value
    try:
        num = float(value)
    except (TypeError, ValueError):
        raise ConfError(f"{key} is not a number")
    return int(num) if num.is_integer() else num


def parse_listen(key: str, value):
    """Returns a list of dicts {ip, port, ssl, http2, ...} or [] for `off`."""
    if value is None:
        return []
    text = str(value).strip()
    entries = [e.strip() for e in text.split(",") if e.strip()]
    if len(entries) == 1 and entries[0] == "off":
        return []
    out = []
    for entry in entries:
        m = _LISTEN_RE.match(entry)
        if not m:
            raise ConfError(
                f"{key} must be of form: [off] | <ip>:<port> [ssl] [http2] [proxy_protocol] "
                "[deferred] [bind] [reuseport] [backlog=%d+] [ipv6only=on] [ipv6only=off] "
                "[so_keepalive=on] [so_keepalive=off] [so_keepalive=%w*:%w*:%d*], [... next entry ...]"
            )
        host = m.group(1).strip("[]")
        flags = m.group(3).split()
        port = int(m.group(2))
        if port > 65535:
            raise ConfError(f"{key} must be of form: [off] | <ip>:<port> ... (invalid port {port})")
        item = {"ip": host, "port": port, "listener": entry}
        for flag in _LISTEN_FLAGS:
            item[flag] = flag in flags
        out.append(item)
    return out


def parse_duration(value) -> float:
    """nginx time syntax used by nginx_main_worker_shutdown_timeout ('10s', '1m', '500ms', '10')."""
    text = str(value).strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not m:
        raise ConfError(f"invalid time value: {text}")
    num = float(m.group(1))
    unit = m.group(2) or "s"
    return num * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def _check(conf: dict, version: str, info) -> None:
    errors = []
    db = conf["database"]
    if db == "cassandra" and not info.cassandra_supported:
        errors.append("Cassandra as a datastore for Kong is not supported in versions 3.4 and above. Please use Postgres.")
    elif db not in ("postgres", "off", "cassandra"):
        enum = "postgres, cassandra, off"
        errors.append(f"database has an invalid value: '{db}' ({enum})")
    elif db == "cassandra":
        errors.append("the simulator does not implement database = cassandra")
    role = conf["role"]
    if role not in ("traditional", "control_plane", "data_plane"):
        errors.append(f"role has an invalid value: '{role}' (traditional, control_plane, data_plane)")
    # Hybrid-mode checks of kong/conf_loader (UNCONFIRMED: texts not in FACTS, from memory).
    if role == "control_plane" and db == "off":
        errors.append('in-memory storage can not be used when role = "control_plane"')
    if role == "data_plane" and db != "off":
        errors.append('only in-memory storage can be used when role = "data_plane"\nHint: set database = off in your kong.conf')
    if role in ("control_plane", "data_plane"):
        cert, key = conf.get("cluster_cert"), conf.get("cluster_cert_key")
        if not cert or not key:
            errors.append("cluster certificate and key must be provided to use Hybrid mode")
        else:
            if not os.path.exists(cert):
                errors.append(f"cluster_cert: failed loading certificate from {cert}")
            if not os.path.exists(key):
                errors.append(f"cluster_cert_key: failed loading key from {key}")
        # kong/conf_loader/parse.lua:725-742 at 3.9.3
        ca = conf.get("cluster_ca_cert")
        if ca and str(ca).upper() != "NONE" and not os.path.exists(str(ca)):
            errors.append(f"cluster_ca_cert: failed loading certificate from {ca}")
        if str(conf.get("cluster_mtls") or "shared") == "pki" and (not ca or str(ca).upper() == "NONE"):
            errors.append('cluster_ca_cert must be specified when cluster_mtls = "pki"')
    if errors:
        raise ConfError("\n".join(errors))


def load(conf_path: str | None, version: str, prefix: str | None = None, env: dict | None = None, from_kong_env: bool = False) -> dict:
    """Build the effective configuration as Kong's conf_loader does (file < env < CLI prefix)."""
    env = os.environ if env is None else env
    info = versions.get(version)
    conf = defaults(version)
    path = conf_path
    if path is None and not from_kong_env:
        for candidate in DEFAULT_CONF_PATHS:
            if os.path.exists(candidate):
                path = candidate
                break
    if path is not None:
        file_values = read_conf_file(path)
        if from_kong_env:
            conf.update(file_values)
        else:
            for key, value in file_values.items():
                conf[key] = value
    for key, value in env.items():
        if key.startswith("KONG_") and key not in ("KONG_VERSION",):
            name = key[5:].lower()
            if name in conf or name in _BASE_DEFAULTS or name.endswith(("_listen",)):
                conf[name] = value
    if prefix:
        conf["prefix"] = prefix
    for key in list(conf):
        empty = conf[key] == "" or (isinstance(conf[key], str) and conf[key].upper() == "NONE")
        if empty and key in _BASE_DEFAULTS and _BASE_DEFAULTS[key] is None:
            conf[key] = None
    for key in _NUMBERS:
        if conf.get(key) is not None:
            conf[key] = _parse_number(key, conf[key])
    for key in _BOOLEANS:
        if key in conf and conf[key] is not None:
            conf[key] = _parse_bool(key, conf[key])
    conf["database"] = str(conf["database"]).strip()
    conf["role"] = str(conf["role"]).strip()
    _check(conf, version, info)
    conf["prefix"] = os.path.abspath(str(conf["prefix"]))
    parsed = {}
    for key in _LISTENERS:
        if key in conf:
            parsed[key] = parse_listen(key, conf[key])
    conf["_listeners"] = parsed
    # Kong's templates set no worker_shutdown_timeout (Kong/kong kong/templates/kong_defaults.lua and
    # nginx.lua at 2.8.5, 3.4.2 and 3.9.3): nginx then waits for every request in flight, and only an
    # operator's `nginx_main_worker_shutdown_timeout` (an injected directive) bounds it
    conf["_shutdown_timeout"] = None
    if conf.get("nginx_main_worker_shutdown_timeout") not in (None, ""):
        try:
            conf["_shutdown_timeout"] = parse_duration(conf["nginx_main_worker_shutdown_timeout"])
        except ConfError:
            raise ConfError(f"nginx_main_worker_shutdown_timeout has an invalid value: '{conf['nginx_main_worker_shutdown_timeout']}'")
    if conf.get("declarative_config"):
        conf["declarative_config"] = os.path.abspath(str(conf["declarative_config"]))
    conf["_conf_path"] = os.path.abspath(path) if path else None
    conf["_version"] = version
    return conf


def kong_env_path(prefix: str) -> str:
    return os.path.join(prefix, ".kong_env")


def _fmt(value) -> str:
    if value is None:
        return "NONE"
    if value is True:
        return "on"
    if value is False:
        return "off"
    return str(value)


def _quotes_hash(version) -> bool:
    """Kong quotes `#` as `\\#` in .kong_env from 3.2.0 (Kong/kong 3.2.0
    kong/cmd/utils/prefix_handler.lua `quote_hash`, commit c785e1403c; 3.9.3 lines 855-857 and 892);
    2.8.5 writes the value as it is (2.8.5 kong/cmd/utils/prefix_handler.lua line 498), so a `#` in
    a value is cut when the node reads .kong_env back."""
    try:
        return tuple(int(p) for p in str(version).split(".")[:3]) >= (3, 2, 0)
    except ValueError:
        return True


def write_kong_env(conf: dict) -> str:
    path = kong_env_path(conf["prefix"])
    quote = _quotes_hash(conf.get("_version"))
    lines = [f"{k} = {_fmt(v).replace('#', chr(92) + '#') if quote else _fmt(v)}" for k, v in sorted(conf.items()) if not k.startswith("_")]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return path


def load_from_prefix(prefix: str, version: str) -> dict:
    """Configuration of the node running in `prefix` (its .kong_env), as stop/quit/health use it."""
    path = kong_env_path(prefix)
    conf = load(path, version, prefix=prefix, env={}, from_kong_env=True)
    return conf


def public_view(conf: dict) -> dict:
    """kong.conf as GET / `configuration` shows it: sensitive values masked."""
    out = {}
    for key, value in conf.items():
        if key.startswith("_"):
            continue
        if key in SENSITIVE and value is not None:
            value = "******"
        out[key] = value
    out["prefix"] = conf["prefix"]
    return out


def pg_params(conf: dict) -> dict:
    return {
        "host": conf["pg_host"],
        "port": int(conf["pg_port"]),
        "user": conf["pg_user"],
        "password": conf["pg_password"],
        "dbname": conf["pg_database"],
        "connect_timeout": max(1, int(conf["pg_timeout"]) // 1000),
    }


def parse_size(value) -> int:
    """An nginx size (`10m`, `8k`, `1g`, `1024`) in bytes; 0 means no limit where nginx allows it."""
    text = str(value).strip().lower()
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in ("k", "m", "g") else text
    try:
        return int(digits) * scale
    except ValueError:
        return 0
