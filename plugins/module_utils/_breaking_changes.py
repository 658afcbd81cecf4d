# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Kong release facts and breaking-change rules, as data.

Every entry names its source: a file of Kong's own source (repository Kong/kong at a release
tag, read with ``git show <tag>:<file>``) or a page of Kong's documentation. The engine that applies them is
``_upgrade_rules.py``; nothing here executes.

Rule keys:
  id            stable identifier, reported with every finding
  introduced    the Kong version that brings the change; a hop X -> Y reports the rule when
                X < introduced <= Y. ``None`` = checked on every hop.
  severity      high (the config or the node fails on Y), medium (behaviour that clients,
                monitoring or tooling can notice), low, info
  match         what the engine looks for (``kind`` plus its arguments, see _upgrade_rules.py)
  message       what changes and what to do; ``{target}`` is the hop's target version
  source        where the fact comes from
"""

from __future__ import annotations

# Release series the planner knows, oldest first. 2.8 to 3.9 are the OSS releases of Kong/kong (tags
# 2.8.5, 3.0.0 ... 3.9.3); 3.10 to 3.16 are Kong Gateway Enterprise releases (four-part versions,
# 3.10.0.0 ...), as Kong Gateway's changelog (https://developer.konghq.com/gateway/changelog/) and
# Konnect's compatibility table (https://developer.konghq.com/konnect-platform/compatibility/) list them.
KNOWN_SERIES = ("2.8", "3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15", "3.16")

# The last series whose facts were read from Kong's source: Kong/kong's last release tag is 3.9.3 (its
# master's kong/meta.lua says 3.10.0, unreleased); 3.10 and later ship as Kong Gateway Enterprise only.
# Facts that come from source (bundled plugins, accepted `_format_version` values) are not guessed for
# later series: the planner says they are unknown.
LAST_SOURCED_SERIES = "3.9"

# Long-term-support jumps Kong guarantees besides "next minor" ("Guaranteed upgrade paths",
# https://developer.konghq.com/gateway/upgrade/; LTS guides: 2.8 -> 3.4
# https://developer.konghq.com/gateway/upgrade/lts-upgrade-28-34/, 3.4 -> 3.10
# https://developer.konghq.com/gateway/upgrade/lts-upgrade/, 3.10 -> 3.14
# https://developer.konghq.com/gateway/upgrade/lts-upgrade-310-314/). Each guide warns that its direct
# jump is valid only between those two LTS versions. The next LTS is planned as 3.18
# (https://developer.konghq.com/gateway/version-support-policy/) and is not a known series yet.
LTS_JUMPS = (("2.8", "3.4"), ("3.4", "3.10"), ("3.10", "3.14"))
LTS_SOURCES = {
    ("2.8", "3.4"): "https://developer.konghq.com/gateway/upgrade/lts-upgrade-28-34/",
    ("3.4", "3.10"): "https://developer.konghq.com/gateway/upgrade/lts-upgrade/",
    ("3.10", "3.14"): "https://developer.konghq.com/gateway/upgrade/lts-upgrade-310-314/",
}

# Versions Kong's documentation tells upgraders to avoid, with the version to take instead.
VERSIONS_TO_AVOID = {
    "3.11.0.0": {
        "instead": "3.11.0.1",
        "why": "upgrades from 3.10 to 3.11.0.0 fail in a license migration when any AI Gateway plugin has "
        "been enabled for more than a week; 3.11.0.1 fixes the migration",
        "source": "Kong Gateway breaking changes and known issues, 3.11.0.0 "
        "(https://developer.konghq.com/gateway/breaking-changes/); AI plugin changelogs, 3.11.0.0 "
        "known issues and 3.11.0.1 bugfix "
        "(https://developer.konghq.com/plugins/ai-request-transformer/changelog/)",
    },
}

# Cassandra is rejected from this version on (Kong/kong 3.4.0 `kong/conf_loader/init.lua`:
# "Cassandra as a datastore for Kong is not supported in versions 3.4 and above").
CASSANDRA_REMOVED_IN = "3.4.0"

# Hybrid special case (https://docs.konghq.com/gateway/3.9.x/upgrade/): these Enterprise versions
# go to 3.1.1.2 first.
HYBRID_WIRE_PROTOCOL_STEP = {"from": ("3.1.0.0", "3.1.1.1"), "via": "3.1.1.2"}

# `_format_version` values each series accepts (Kong/kong `kong/db/schema/others/declarative_config.lua`:
# `one_of = {"1.1", "2.1"}` at 2.8.5, `{"1.1", "2.1", "3.0"}` at 3.0.0 ... 3.9.3).
# A series not listed inherits the nearest older entry.
ACCEPTED_FORMAT_VERSIONS = {
    "2.8": ("1.1", "2.1"),
    "3.0": ("1.1", "2.1", "3.0"),
}

# Plugins bundled with each series (Kong/kong `kong/constants.lua` `local plugins = {...}`: 36 at 2.8.5,
# 37 at 3.4.2, 43 at 3.6.1, 44 at 3.8.1, 45 at 3.9.3).
# opentelemetry is bundled from 3.0 (Kong breaking-changes page, 3.0.0 "new plugins"); 3.0 to 3.3
# are assumed equal to 3.4.2 (the tags 3.0.0 to 3.3.1 were not compared). A series not listed
# inherits the nearest older entry. OSS removed no bundled plugin between 2.8.5 and 3.9.3.
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
_AI_36 = ("ai-proxy", "ai-prompt-decorator", "ai-prompt-guard", "ai-prompt-template", "ai-request-transformer", "ai-response-transformer")
BUNDLED_PLUGINS = {
    "2.8": _BUNDLED_28,
    "3.0": _BUNDLED_28 + ("opentelemetry",),
    "3.6": _BUNDLED_28 + ("opentelemetry",) + _AI_36,
    "3.8": _BUNDLED_28 + ("opentelemetry",) + _AI_36 + ("standard-webhooks",),
    "3.9": _BUNDLED_28 + ("opentelemetry",) + _AI_36 + ("standard-webhooks", "redirect"),
}


# Kong/kong source at a release tag: `git show <tag>:<file>` in https://github.com/Kong/kong.
def _kong(tag, path, what=""):
    return f"Kong/kong {tag} {path}" + (f" ({what})" if what else "")


_BREAKING = "Kong Gateway breaking changes, https://developer.konghq.com/gateway/breaking-changes/"

RULES = [
    {
        "id": "format-version-rejected",
        "introduced": None,
        "severity": "high",
        "match": {"kind": "format_version_rejected"},
        "message": "Kong {target} rejects this declarative file: `_format_version` {value} is not one of "
        "{accepted}. `kong config parse`, `db_import` and `POST /config` fail with it.",
        "source": (
            _kong("2.8.5", "kong/db/schema/others/declarative_config.lua", 'one_of = {"1.1", "2.1"}')
            + "; "
            + _kong("3.9.3", "kong/db/schema/others/declarative_config.lua", 'one_of = {"1.1", "2.1", "3.0"}')
        ),
    },
    {
        "id": "format-version-legacy",
        "introduced": "3.0.0",
        "severity": "medium",
        "match": {"kind": "format_version_legacy", "values": ["1.1", "2.1"]},
        "message": "`_format_version` {value} is accepted by Kong {target} but converted to '3.0' on load "
        "(regex route paths get the `~` prefix). Exports from {target} (`kong config db_export`, "
        "GET /config) are '3.0' files: re-export after the upgrade and do not sync this 2.x file "
        "into a 3.x node again.",
        "source": (
            _kong("3.9.3", "kong/db/declarative/export.lua", '_format_version = "3.0"')
            + "; "
            + _kong("3.9.3", "kong/db/declarative/migrations/route_path.lua")
            + "; "
            + _BREAKING
            + " 3.0.0 'Declarative and DB-less'"
        ),
    },
    {
        "id": "route-regex-path-tilde",
        "introduced": "3.0.0",
        "severity": "high",
        "match": {"kind": "route_regex_path", "format_versions": ["1.1", "2.1"]},
        "message": "From 3.0 a route path is a regular expression only when it starts with `~`; every other "
        "path is a plain prefix. Kong rewrites these regex-looking paths to `~<path>` (database: "
        "`kong migrations up` to 3.0; declarative 1.1/2.1 files: on load), but any file or tool "
        "that re-applies them without `~` after the upgrade silently turns them into prefix "
        "paths. Write them as `~<path>` in every source of truth (kong_breaking_fix lets the run go on "
        "with Kong's own rewrite: Y serves the `~` paths).",
        # the conversion is Kong's own: the collection applies nothing, it lets the run go on
        "fix": "kong",
        "source": (
            _kong("3.9.3", "kong/db/declarative/migrations/route_path.lua", "1.1/2.1 files rewritten on load")
            + "; "
            + _kong("3.0.0", "kong/db/migrations/migrate_path_280_300.lua", "a path is a regex unless it only holds [a-zA-Z0-9.-_~/%]")
            + "; "
            + _BREAKING
            + " 3.0.0 'New router'"
        ),
    },
    {
        "id": "route-regex-lookaround",
        "introduced": "3.0.0",
        "severity": "high",
        "match": {"kind": "route_regex_lookaround"},
        "message": "3.x routes with `router_flavor = traditional_compatible` (the default) compile path "
        "regexes with the ATC router, which has no look-around and no back-references: Kong "
        "refuses these routes. Rewrite the regex or set `router_flavor = traditional`.",
        "source": (
            _kong("3.0.0", "kong/templates/kong_defaults.lua", "router_flavor = traditional_compatible; no such key at 2.8.5")
            + "; "
            + _BREAKING
            + " 3.0.0 'New router'"
        ),
    },
    {
        "id": "plugin-not-bundled",
        "introduced": None,
        "severity": "high",
        "match": {"kind": "plugin_not_bundled"},
        "message": "Kong {target} does not bundle this plugin. A node whose database or declarative config "
        "uses a plugin it does not load refuses to start ('<name> plugin is in use but not "
        "enabled') or to load the config; a hybrid data plane without it is marked "
        "`plugin_set_incompatible`. Install the plugin on every {target} node and list it in "
        "`plugins`, or remove it from the configuration before the upgrade.",
        "source": (
            "Kong/kong kong/constants.lua `local plugins` at each tag 2.8.5 ... 3.9.3"
            + "; "
            + _kong("3.9.3", "kong/runloop/plugins_iterator.lua", "'plugin is in use but not enabled'")
            + "; "
            + _kong("3.9.3", "kong/clustering/compat/init.lua", "plugin_set_incompatible")
        ),
    },
    {
        "id": "plugin-allowlist-fields-removed",
        "introduced": "3.0.0",
        "severity": "high",
        "match": {"kind": "plugin_field", "plugins": ["acl", "bot-detection", "ip-restriction"], "fields": ["whitelist", "blacklist"]},
        "message": "3.0 removed the deprecated `whitelist`/`blacklist` fields of this plugin: {target} rejects the entity. Use `allow`/`deny`.",
        "source": _BREAKING + " 3.0.0 'Deprecations and changed parameters' (ACL, Bot Detection, IP Restriction)",
    },
    {
        "id": "serverless-functions-field-removed",
        "introduced": "3.0.0",
        "severity": "high",
        "match": {"kind": "plugin_field", "plugins": ["pre-function", "post-function"], "fields": ["functions"]},
        "message": "3.0 removed `config.functions` from pre-function/post-function: {target} rejects the "
        "entity. Move the code to `config.access` (or the phase it belongs to).",
        "source": _BREAKING + " 3.0.0 'Pre-function and Post-function plugins'",
    },
    {
        "id": "aws-lambda-proxy-scheme-removed",
        "introduced": "3.0.0",
        "severity": "high",
        "match": {"kind": "plugin_field", "plugins": ["aws-lambda"], "fields": ["proxy_scheme"]},
        "message": "`config.proxy_scheme` of aws-lambda was deprecated in 2.8 for removal in 3.0: {target} "
        "rejects it. Remove it; 3.0 also requires `aws_region` (or the region environment "
        "variables) and always signs with SigV4.",
        "source": ("Kong CHANGELOG 2.8.0 (AWS-Lambda: proxy_scheme deprecated for removal in 3.0); " + _BREAKING + " 3.0.0 'AWS Lambda'"),
    },
    {
        "id": "http-log-headers-single-value",
        "introduced": "3.0.0",
        "severity": "high",
        "match": {"kind": "plugin_field", "plugins": ["http-log"], "fields": ["headers"], "value_type": "list"},
        "message": "From 3.0 http-log `config.headers` takes one string per header name; arrays of values are rejected by {target}.",
        "source": _BREAKING + " 3.0.0 'HTTP Log'",
    },
    {
        "id": "prometheus-metric-names",
        "introduced": "3.0.0",
        "severity": "medium",
        "match": {"kind": "plugin_in_use", "plugins": ["prometheus"]},
        "message": "3.0 renamed Prometheus metrics (`kong_http_status` -> `kong_http_requests_total`, "
        "`kong_latency` -> `kong_request_latency_ms`/`kong_upstream_latency_ms`/`kong_kong_latency_ms`, "
        "`kong_bandwidth` -> `kong_bandwidth_bytes`, ...) and no longer exports status, latency, "
        "bandwidth and upstream-health metrics unless enabled in the plugin config. Update "
        "dashboards and alerts before traffic reaches {target} nodes.",
        "source": _BREAKING + " 3.0.0 'Prometheus'",
    },
    {
        "id": "statsd-metric-names",
        "introduced": "3.0.0",
        "severity": "medium",
        "match": {"kind": "plugin_in_use", "plugins": ["statsd"]},
        "message": "3.0 prefixes service metrics with `service.` and renames the status metrics of statsd "
        "(`kong.<service>.request.status.<status>` -> `kong.service.<service>.status.<status>`). "
        "Update dashboards and alerts.",
        "source": _BREAKING + " 3.0.0 'StatsD'",
    },
    {
        "id": "session-library-v4",
        "introduced": "3.2.0",
        "severity": "medium",
        "match": {"kind": "plugin_in_use", "plugins": ["session"]},
        "message": "3.2 rewrote the session library: every existing session is invalidated, sessions only work "
        "when all nodes run >= 3.2 (keep mixed versions short), `cookie_lifetime` became "
        "`rolling_timeout`, `cookie_idletime` `idling_timeout`, `cookie_renew` is gone, and "
        "sessions now expire after 900 s idle / 86400 s absolute by default.",
        "source": _BREAKING + " 3.2.0 'Session library upgrade'; Kong CHANGELOG 3.2.0 'Session'",
    },
    {
        "id": "jwt-conflicting-tokens",
        "introduced": "3.2.0",
        "severity": "low",
        "match": {"kind": "plugin_in_use", "plugins": ["jwt"]},
        "message": "From 3.2 the jwt plugin denies a request that carries different tokens in its search locations (header, query, cookie).",
        "source": _BREAKING + " 3.2.0 'JWT plugin'; Kong CHANGELOG 3.2.0",
    },
    {
        "id": "status-database-key-removed",
        "introduced": "3.4.0",
        "severity": "medium",
        "match": {"kind": "mode", "modes": ["dbless", "hybrid_dp", "hybrid"]},
        "message": "On DB-less nodes and data planes GET /status no longer has the `database` key from 3.4.0 "
        "(only `configuration_hash`, `memory`, `server`). Health checks or monitoring that read "
        "`database.reachable` there break on {target}.",
        "source": _kong("3.4.0", "kong/api/routes/health.lua", "status_response.database = nil on DB-less nodes and data planes"),
    },
    {
        "id": "request-id-header",
        "introduced": "3.5.0",
        "severity": "low",
        "match": {"kind": "has_routes"},
        "message": "From 3.5 Kong adds `X-Kong-Request-Id` to responses and upstream requests, and Kong-generated "
        'JSON error bodies gain a `request_id` key (`{"message": ..., "request_id": ...}`). '
        "Clients comparing whole error bodies must compare `message` only.",
        "source": (
            _kong("3.5.0", "kong/templates/kong_defaults.lua", "headers = ..., x-kong-request-id")
            + "; "
            + _kong("3.5.0", "kong/tools/utils.lua", "error body templates with request_id")
        ),
    },
    {
        "id": "status-listen-default",
        "introduced": "3.6.0",
        "severity": "low",
        "match": {"kind": "always"},
        "message": "From 3.6 `status_listen` defaults to `127.0.0.1:8007` (it was `off`): {target} nodes bind "
        "that port unless kong.conf says otherwise (check for port clashes), and serve "
        "`/status/ready` there for load-balancer readiness checks.",
        "source": _kong("3.6.0", "kong/templates/kong_defaults.lua", "status_listen = 127.0.0.1:8007; `off` at 3.5.0"),
    },
    {
        "id": "key-auth-invalid-key-message",
        "introduced": "3.6.0",
        "severity": "medium",
        "match": {"kind": "plugin_in_use", "plugins": ["key-auth"]},
        "message": "From 3.6 a wrong API key is answered 401 `Unauthorized` instead of `Invalid authentication "
        "credentials` (the no-key message is unchanged). Clients or tests that parse the 401 "
        "message must accept both while X and {target} nodes serve side by side.",
        "source": _kong("3.6.1", "kong/plugins/key-auth/handler.lua", 'ERR_INVALID_AUTH_CRED message "Unauthorized"'),
    },
    {
        "id": "key-auth-www-authenticate",
        "introduced": "3.7.0",
        "severity": "medium",
        "match": {"kind": "plugin_in_use", "plugins": ["key-auth"]},
        "message": 'From 3.7 every key-auth 401 carries `WWW-Authenticate: Key` (`Key realm="<realm>"` when the '
        'new `config.realm` is set); before, only the no-key 401 had `Key realm="kong"`. Clients '
        "that parse WWW-Authenticate (browsers prompting, SDKs retrying) see a different value.",
        "source": (_kong("3.7.1", "kong/plugins/key-auth/handler.lua", "www_auth_content on every 401") + "; Kong CHANGELOG 3.7.0"),
    },
    {
        "id": "migrations-db-timeout-default",
        "introduced": "3.7.0",
        "severity": "low",
        "match": {"kind": "mode", "modes": ["traditional", "hybrid_cp", "hybrid"]},
        "message": "From 3.7 `kong migrations --db-timeout` has no default: without it the kong.conf "
        "`pg_timeout` (default 5000 ms) applies instead of 60 s. Pass `--db-timeout` for long "
        "migrations on {target}.",
        "source": _kong("3.7.1", "kong/cmd/migrations.lua", "--db-timeout (optional number); (default 60) at 3.6.1"),
    },
    {
        "id": "via-header-format",
        "introduced": "3.8.0",
        "severity": "low",
        "match": {"kind": "has_routes"},
        "message": "From 3.8 proxied responses carry `Via: 1.1 kong/<version>` appended to the upstream's Via "
        "(before: `Via: kong/<version>` replacing it), upstreams receive a Via header too, and "
        "`Server: kong/<version>` is set when the upstream sends none. Clients or upstreams that "
        "parse Via or Server see new values.",
        "source": _kong("3.8.1", "kong/runloop/handler.lua", "upstream_via and kong_outbound_via"),
    },
    {
        "id": "conf-deprecated-alias-dropped",
        "introduced": "3.0.0",
        "severity": "high",
        "match": {
            "kind": "conf_setting",
            "settings": {
                "upstream_keepalive": "upstream_keepalive_pool_size",
                "nginx_upstream_keepalive": "upstream_keepalive_pool_size",
                "nginx_http_upstream_keepalive": "upstream_keepalive_pool_size",
                "nginx_upstream_keepalive_requests": "upstream_keepalive_max_requests",
                "nginx_http_upstream_keepalive_requests": "upstream_keepalive_max_requests",
                "nginx_upstream_keepalive_timeout": "upstream_keepalive_idle_timeout",
                "nginx_http_upstream_keepalive_timeout": "upstream_keepalive_idle_timeout",
                "client_max_body_size": "nginx_http_client_max_body_size",
                "client_body_buffer_size": "nginx_http_client_body_buffer_size",
                "router_update_frequency": "worker_state_update_frequency",
            },
        },
        "message": "kong.conf sets properties that 2.8 still read as deprecated aliases of their replacements and "
        "that Kong {target} no longer reads at all: the node starts without a word and the value is "
        "lost (request bodies over the default limit get 413, keepalive pools shrink to the defaults). "
        "Set the replacement named for each instead (kong_breaking_fix renames them in Y's kong.conf).",
        "source": (
            _kong("2.8.5", "kong/conf_loader/init.lua:351-437,554-557", "deprecated = { replacement = ... }")
            + "; "
            + _kong("3.0.0", "kong/conf_loader/init.lua", "the properties are gone; load() keeps only the keys of kong/templates/kong_defaults.lua")
        ),
        "fix": "rename",
    },
    {
        "id": "conf-setting-removed",
        "introduced": None,
        "severity": "medium",
        "match": {
            "kind": "conf_setting_removed",
            "removed": {
                # version that stops reading it -> properties (present in kong_defaults.lua at the tag before)
                "3.0.0": {
                    "nginx_optimizations": None,
                    "go_plugins_dir": "pluginserver_names",
                    "go_pluginserver_exe": "pluginserver_names",
                    "cassandra_consistency": "cassandra_write_consistency / cassandra_read_consistency",
                },
                "3.1.0": {"legacy_hybrid_protocol": None},
                "3.3.0": {"legacy_worker_events": None},
                "3.4.0": {
                    name: None
                    for name in (
                        "cassandra_contact_points",
                        "cassandra_data_centers",
                        "cassandra_keyspace",
                        "cassandra_lb_policy",
                        "cassandra_local_datacenter",
                        "cassandra_password",
                        "cassandra_port",
                        "cassandra_read_consistency",
                        "cassandra_refresh_frequency",
                        "cassandra_repl_factor",
                        "cassandra_repl_strategy",
                        "cassandra_schema_consensus_timeout",
                        "cassandra_ssl",
                        "cassandra_ssl_verify",
                        "cassandra_timeout",
                        "cassandra_username",
                        "cassandra_write_consistency",
                    )
                },
                "3.5.0": {"privileged_agent": None},
            },
        },
        "message": "kong.conf sets properties that Kong {target} no longer reads: they are ignored without a "
        "word, so what they configured is lost (Go plugins need `pluginserver_names` from 3.0). Remove "
        "them (kong_breaking_fix comments them out in Y's kong.conf).",
        "source": (
            "Kong/kong kong/templates/kong_defaults.lua and kong/conf_loader/init.lua compared tag by tag "
            "(2.8.5 -> 3.0.0: Go plugin server, nginx_optimizations, cassandra_consistency; 3.0.0 -> "
            "3.1.0: legacy_hybrid_protocol; 3.2.0 -> 3.3.0: legacy_worker_events; 3.3.0 -> 3.4.2: "
            "cassandra_*; 3.4.2 -> 3.5.0: privileged_agent)"
        ),
        "fix": "remove",
    },
    {
        "id": "custom-plugin-name-bundled",
        "introduced": None,
        "severity": "high",
        "match": {"kind": "custom_plugin_bundled"},
        "message": "Kong {target} bundles a plugin of the same name as a custom plugin the nodes load. Kong keeps "
        "one plugin per name (`loaded_plugins` is keyed by name) and `require` takes whichever "
        "`kong.plugins.<name>` comes first in `lua_package_path`, so one of the two silently shadows "
        "the other, with its schema and migrations. Rename the custom plugin (and its configuration) "
        "before the upgrade.",
        "source": (
            _kong("3.9.3", "kong/conf_loader/init.lua:815-839", "conf.loaded_plugins keyed by plugin name")
            + "; Kong/kong kong/constants.lua `local plugins` at each tag 2.8.5 ... 3.9.3"
        ),
    },
]
