"""Per-version behaviour of the simulated Kong releases (FACTS.md section 8.1 as data)."""

from __future__ import annotations

from dataclasses import dataclass, field

VERSIONS = ("2.8.5", "3.4.2", "3.5.0", "3.6.1", "3.7.1", "3.8.1", "3.9.3")

_BUNDLED_28 = (
    "jwt",
    "acl",
    "correlation-id",
    "cors",
    "oauth2",
    "tcp-log",
    "udp-log",
    "file-log",
    "http-log",
    "key-auth",
    "hmac-auth",
    "basic-auth",
    "ip-restriction",
    "request-transformer",
    "response-transformer",
    "request-size-limiting",
    "rate-limiting",
    "response-ratelimiting",
    "syslog",
    "loggly",
    "datadog",
    "ldap-auth",
    "statsd",
    "bot-detection",
    "aws-lambda",
    "request-termination",
    "prometheus",
    "proxy-cache",
    "session",
    "acme",
    "grpc-gateway",
    "grpc-web",
    "pre-function",
    "post-function",
    "azure-functions",
    "zipkin",
)
_AI = ("ai-proxy", "ai-prompt-decorator", "ai-prompt-guard", "ai-prompt-template", "ai-request-transformer", "ai-response-transformer")

# Handler priorities are not in FACTS (UNCONFIRMED, taken from memory of the plugin handlers);
# only their presence in GET / matters to the collection.
PLUGIN_PRIORITY = {
    "pre-function": 1000000,
    "correlation-id": 100001,
    "zipkin": 100000,
    "bot-detection": 2500,
    "cors": 2000,
    "session": 1900,
    "acme": 1705,
    "jwt": 1450,
    "oauth2": 1400,
    "key-auth": 1250,
    "ldap-auth": 1200,
    "basic-auth": 1100,
    "hmac-auth": 1030,
    "grpc-gateway": 998,
    "ip-restriction": 990,
    "request-size-limiting": 951,
    "acl": 950,
    "rate-limiting": 910,
    "response-ratelimiting": 900,
    "request-transformer": 801,
    "response-transformer": 800,
    "redirect": 779,
    "ai-request-transformer": 777,
    "ai-prompt-template": 773,
    "ai-prompt-decorator": 772,
    "ai-prompt-guard": 771,
    "ai-proxy": 770,
    "ai-response-transformer": 769,
    "standard-webhooks": 760,
    "aws-lambda": 750,
    "azure-functions": 749,
    "proxy-cache": 100,
    "opentelemetry": 14,
    "prometheus": 13,
    "http-log": 12,
    "statsd": 11,
    "datadog": 10,
    "file-log": 9,
    "udp-log": 8,
    "tcp-log": 7,
    "loggly": 6,
    "syslog": 4,
    "grpc-web": 3,
    "request-termination": 2,
    "post-function": -1000,
}

# Default messages of kong.response.error() (UNCONFIRMED: not in FACTS; HTTP_MESSAGES of
# kong/tools/http.lua as remembered).
DEFAULT_STATUS_MESSAGES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    408: "Request timeout",
    409: "Conflict",
    413: "Payload too large",
    414: "URI too long",
    415: "Unsupported media type",
    426: "Upgrade required",
    429: "Too many requests",
    500: "An unexpected error occurred",
    501: "Not implemented",
    502: "An invalid response was received from the upstream server",
    503: "The upstream server is currently unavailable",
    504: "The upstream server is timing out",
}


def default_message(status: int) -> str:
    return DEFAULT_STATUS_MESSAGES.get(status, f"The upstream server responded with {status}")


@dataclass(frozen=True)
class VersionInfo:
    version: str
    major: int
    minor: int
    patch: int
    bundled_plugins: tuple
    openresty: str
    status_listen_default: str
    headers_default: str
    request_id: bool
    via_http_version: bool
    server_header_kong_when_missing: bool
    keyauth_invalid_message: str
    keyauth_www_auth_all: bool
    status_database_key_dbless: bool
    status_ready: bool
    drain: bool
    edition: bool
    available_on_server_objects: bool
    export_format: str
    accepted_formats: tuple
    flatten_errors: bool
    migrations_status_cmd: bool
    db_timeout_default: bool
    reset_prompt: str
    admin_gui_listen: bool
    dp_fields: tuple
    sync_status_values: tuple
    prometheus_v3: bool
    html_title: str
    cassandra_supported: bool
    defaults_extra: dict = field(default_factory=dict)

    @property
    def short(self) -> str:
        return f"{self.major}.{self.minor}"


def _vt(v: str) -> tuple:
    return tuple(int(x) for x in v.split("."))


def _dp_fields(v: tuple) -> tuple:
    fields = ["id", "ip", "hostname", "version", "sync_status", "config_hash", "last_seen", "ttl"]
    if v >= (3, 3, 0):
        fields.append("updated_at")
    if v >= (3, 5, 0):
        fields.append("labels")
    if v >= (3, 6, 0):
        fields.append("cert_details")
    if v >= (3, 7, 0):
        fields.append("rpc_capabilities")
    return tuple(fields)


def _bundled(v: tuple) -> tuple:
    plugins = list(_BUNDLED_28)
    if v >= (3, 0, 0):
        plugins.append("opentelemetry")
    if v >= (3, 6, 0):
        plugins.extend(_AI)
    if v >= (3, 8, 0):
        plugins.append("standard-webhooks")
    if v >= (3, 9, 0):
        plugins.append("redirect")
    return tuple(plugins)


_OPENRESTY = {"2.8.5": "1.19.9.1", "3.4.2": "1.21.4.1", "3.5.0": "1.21.4.2", "3.6.1": "1.25.3.1", "3.7.1": "1.25.3.1", "3.8.1": "1.25.3.2", "3.9.3": "1.25.3.2"}


def get(version: str) -> VersionInfo:
    if version not in VERSIONS:
        raise KeyError(version)
    v = _vt(version)
    extra = {}
    if v >= (3, 0, 0):
        extra.update(lua_ssl_trusted_certificate="system", router_flavor="traditional_compatible")
    else:
        extra.update(lua_ssl_trusted_certificate="NONE")
    if v >= (3, 5, 0):
        extra.update(dedicated_config_processing=True)
    if v >= (3, 7, 0):
        extra.update(cluster_rpc=False)
    if v >= (3, 8, 0):
        extra.update(new_dns_client=False)
    if v >= (3, 9, 0):
        extra.update(cluster_incremental_sync=False)
    sync = ["unknown", "normal", "kong_version_incompatible", "plugin_set_incompatible", "plugin_version_incompatible"]
    if v >= (3, 0, 0):
        sync.append("filter_set_incompatible")
    return VersionInfo(
        version=version,
        major=v[0],
        minor=v[1],
        patch=v[2],
        bundled_plugins=_bundled(v),
        openresty=_OPENRESTY[version],
        status_listen_default="127.0.0.1:8007 reuseport backlog=16384" if v >= (3, 6, 0) else "off",
        headers_default=("server_tokens, latency_tokens, x-kong-request-id" if v >= (3, 5, 0) else "server_tokens, latency_tokens"),
        request_id=v >= (3, 5, 0),
        via_http_version=v >= (3, 8, 0),
        server_header_kong_when_missing=v >= (3, 8, 0),
        keyauth_invalid_message="Unauthorized" if v >= (3, 6, 0) else "Invalid authentication credentials",
        keyauth_www_auth_all=v >= (3, 7, 0),
        status_database_key_dbless=v < (3, 4, 0),
        status_ready=v >= (3, 3, 0),
        drain=v >= (3, 9, 0),
        edition=v >= (3, 6, 0),
        available_on_server_objects=v >= (3, 0, 0),
        export_format="3.0" if v >= (3, 0, 0) else "2.1",
        accepted_formats=("1.1", "2.1", "3.0") if v >= (3, 0, 0) else ("1.1", "2.1"),
        flatten_errors=v >= (3, 2, 0),
        migrations_status_cmd=v >= (3, 0, 0),
        db_timeout_default=v < (3, 7, 0),
        reset_prompt="[Y/n]" if v < (3, 0, 0) else "[y/n]",
        admin_gui_listen=v >= (3, 0, 0),
        dp_fields=_dp_fields(v),
        sync_status_values=tuple(sync),
        prometheus_v3=v >= (3, 0, 0),
        html_title="Kong Error" if v < (3, 0, 0) else "Error",
        cassandra_supported=v < (3, 4, 0),
        defaults_extra=extra,
    )


def parse_version(text: str) -> tuple:
    """'3.9.3', '3.7.1.2', 'Kong 3.9.3', 'Kong Enterprise 3.7.1.2' -> (3, 9, 3)."""
    text = text.strip()
    for prefix in ("Kong Enterprise ", "Kong "):
        text = text.removeprefix(prefix)
    parts = text.split("-")[0].split(".")
    return tuple(int(p) for p in parts[:3])
