# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kong_node_info
short_description: Facts about one Kong node from its Admin API and status listener
version_added: 0.1.0
description:
  - Reads C(GET /) and C(GET /status) on the node's Admin API and, when O(status_url) is set,
    C(GET /status/ready) on its status listener; on a hybrid control plane also
    C(GET /clustering/data-planes).
  - Returns version, edition, node id, hostname, mode, database reachability, configuration hash,
    readiness with its reason, server connection counts and plugins; on a control plane every
    data plane it knows with version, sync status, config hash and last seen time.
  - "Read-only. Usable as a gate with C(until: result.ready); when the Admin API does not answer the
    module fails with RV(ready=false), so C(until) keeps retrying."
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - kongops.upgrade.kong_admin
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.info_module
  - kongops.upgrade.attributes.actiongroup_kong
options:
  status_url:
    description:
      - Base URL of the node's status listener (C(status_listen)), for example C(http://127.0.0.1:8007)
        (Kong's default from 3.6; it is off by default before).
      - Readiness comes from its C(GET /status/ready) (Kong 3.3+). Without it, or on older nodes where that
        path answers 404, readiness is derived from C(GET /status) and RV(ready_source) says so.
      - If not set, the environment variable E(KONG_STATUS_URL) is used.
    type: str
  data_planes:
    description:
      - On a control plane, list the data planes from C(GET /clustering/data-planes).
    type: bool
    default: true
  conf_path:
    description:
      - The node's kong.conf. When set, RV(conf) lists the names of the properties it sets and the custom
        plugins it names; no value leaves the node (kong.conf may hold C(pg_password)). Returned also
        when the Admin API does not answer (a stopped node's file is still read).
    type: path
  free_space_path:
    description:
      - A directory on the node (it need not exist yet; the nearest directory above it that exists is
        measured). When set, RV(free_space) gives the free space of its file system, also when the Admin API
        does not answer. The playbooks set it to C(kong_work_dir) on the node where the backups land.
    type: path
  wait_data_plane:
    description:
      - On a control plane, wait until it lists this data plane in sync, that is until the row of
        O(wait_data_plane.id) has C(sync_status=normal) and, when given, the O(wait_data_plane.version)
        and O(wait_data_plane.config_hash) (the hash the data plane itself reports).
      - Polls C(GET /clustering/data-planes) every second for at most O(wait_timeout) seconds and fails
        with what still differs when the time is up. One task, no C(until) loop.
      - A control plane that does not answer for a while (restarting, or lost while its data planes keep
        serving their configuration) is waited for within the same O(wait_timeout), from the module's first
        read of the node on; when the time is up the failure names its URL. An answer that refuses the
        request (4xx) fails at once.
    type: dict
    suboptions:
      id:
        description: The data plane's node id (RV(node_id) of this module on the data plane).
        type: str
        required: true
      version:
        description: The Kong version the row must show.
        type: str
      config_hash:
        description: The configuration hash the row must show.
        type: str
  wait_timeout:
    description: Seconds O(wait_data_plane) and O(wait_config_sync) wait at most (together).
    type: int
    default: 60
  stale_after:
    description:
      - On a control plane, a data plane whose last ping (C(last_seen)) is older than this many seconds is
        stale, named in RV(data_planes_stale) and left out of O(skew) and O(wait_config_sync). The control
        plane keeps the rows of data planes that are gone for C(cluster_data_plane_purge_delay) (14 days).
      - A data plane pings every 30 seconds (Kong/kong 3.9.3 kong/constants.lua, C(CLUSTERING_PING_INTERVAL)),
        so the default is three missed pings. Measured on the clock of the host the module runs on, so run it
        on (or delegate it to) the control plane.
    type: int
    default: 90
  skew:
    description:
      - On a control plane, judge the live data planes it lists against its own version and fail, before
        anything changes, naming each data plane (host name, id, address, version) and the fix, when one is
        newer than the control plane or a major version apart (Kong refuses those, Kong/kong 3.9.3
        kong/clustering/compat/init.lua), or when O(skew.target_version) would be.
      - With O(skew.inventory_ids), also finds the data planes an earlier interrupted run left behind, see
        O(skew.left_behind). The judgement is returned as RV(skew).
    type: dict
    suboptions:
      target_version:
        description: The version the data planes are to be upgraded to; its rows are never left behind.
        type: str
      inventory_ids:
        description:
          - Node id to inventory host name of the data planes in the inventory's current groups.
          - A live data plane on another version than O(skew.target_version) whose id is not here, or one of
            these hosts on an older version than the others, is left behind.
        type: dict
      left_behind:
        description:
          - V(stop) fails on any data plane left behind. V(upgrade) goes on when every one is an inventory
            host (the run upgrades it); a data plane no inventory host runs fails in both cases.
        type: str
        choices: [stop, upgrade]
        default: stop
  wait_config_sync:
    description:
      - On a control plane, wait until every live data plane it lists reports C(sync_status=normal) and the
        same configuration hash, the one the control plane sends to all of them (it hashes each export once,
        Kong/kong 3.9.3 kong/clustering/control_plane.lua); fails naming each data plane that never does.
      - Polls every second inside the module, within O(wait_timeout); the hash is returned as RV(cp_config_hash).
    type: bool
    default: false
  metrics:
    description:
      - Also read the node's own request counters from C(GET /metrics) of Kong's prometheus plugin (on
        O(status_url) when set, else on the Admin API) and return them as RV(metrics).
      - Kong 3.x exposes per-status counters (C(kong_http_requests_total)) only when the plugin runs with
        C(status_code_metrics=true); Kong 2.x exposes C(kong_http_status).
      - A node without them still succeeds, with RV(metrics.available=false) and the reason.
    type: bool
    default: false
  cluster_control_plane:
    description:
      - On a data plane, the C(cluster_control_plane) (host:port) it must be configured with; fails naming the
        one it reports in C(GET /) otherwise.
    type: str
  same_config_as:
    description:
      - On a data plane, the other data planes of its group, name (its inventory host) to Admin API or status
        listener URL; waits (within O(wait_timeout)) until each reports in C(GET /status) the
        C(configuration_hash) this one reports, and fails naming each that never does.
      - C(configuration_hash) is in C(GET /status) of data planes and DB-less nodes (Kong/kong 3.9.3
        kong/api/routes/health.lua:52-53), served on the Admin API and on the status listener
        (kong/status/init.lua:28).
    type: dict
  konnect:
    description:
      - On a Konnect data plane (or any data plane of a Konnect control plane), read the control plane's
        data-plane node records from the Konnect API (C(GET /v2/control-planes/{controlPlaneId}/nodes),
        U(https://developer.konghq.com/api/konnect/control-planes-config/v2/)) instead of a control plane's
        Admin API, which Konnect does not offer.
      - With it, O(skew) judges the live records against Konnect's published compatibility table
        (U(https://developer.konghq.com/konnect-platform/compatibility/)) and O(konnect.control_plane_version);
        O(wait_data_plane) waits until Konnect lists the data plane live (C(last_ping) within O(stale_after)),
        on the version and hash given; O(wait_config_sync) waits until every live record reports the control
        plane's expected configuration hash (C(GET /v2/control-planes/{controlPlaneId}/expected-config-hash)).
    type: dict
    suboptions:
      api_url:
        description: Konnect's regional API, for example C(https://eu.api.konghq.com).
        type: str
        default: https://us.api.konghq.com
      token:
        description: A Konnect personal or system account access token, sent as C(Authorization) bearer.
        type: str
      control_plane_id:
        description: The control plane's id (UUID).
        type: str
      control_plane_version:
        description:
          - The control plane's Kong version when known; a data plane of a newer minor is refused.
          - Konnect updates its control planes to the latest version itself.
        type: str
      newest_supported:
        description:
          - The newest Kong version Konnect supports, when its compatibility table lists a newer one than the
            collection knows (3.14).
        type: str
notes:
  - O(admin_token), O(validate_certs), O(ca_path) and O(timeout) also apply to O(status_url).
seealso:
  - module: kongops.upgrade.kong_migrations
requirements:
  - requests
"""

EXAMPLES = r"""
- name: Wait until the new node is ready to take traffic
  kongops.upgrade.kong_node_info:
    admin_url: http://127.0.0.1:8001
    status_url: http://127.0.0.1:8007
  register: node
  until: node.ready
  retries: 30
  delay: 2

- name: Check that every data plane of the control plane is in sync
  kongops.upgrade.kong_node_info:
    admin_url: https://cp.internal:8444
    admin_token: "{{ kong_admin_token }}"
  register: cp
  failed_when: cp.data_planes | rejectattr('sync_status', 'eq', 'normal') | list | length > 0

- name: Wait until the control plane lists a new data plane in sync on 3.9.3
  kongops.upgrade.kong_node_info:
    admin_url: https://cp.internal:8444
    wait_data_plane:
      id: "{{ dp.node_id }}"
      version: 3.9.3
      config_hash: "{{ dp.configuration_hash }}"
    wait_timeout: 60

- name: Refuse data planes newer than their control plane, and wait until all run its configuration
  kongops.upgrade.kong_node_info:
    admin_url: https://cp.internal:8444
    skew:
      target_version: 3.9.3
      inventory_ids: "{{ dict(groups['kong_x'] | map('extract', hostvars, ['kong_observed', 'node_id']) | zip(groups['kong_x'])) }}"
    wait_config_sync: true

- name: Show the mode and version
  ansible.builtin.debug:
    msg: "{{ node.hostname }} runs Kong {{ node.version }} as {{ node.mode }}"
"""

RETURN = r"""
free_space:
  description: With O(free_space_path), the free space of the file system that holds it.
  returned: when O(free_space_path) is set, also on failure
  type: dict
  contains:
    path:
      description: The directory measured (O(free_space_path) or the nearest directory above it that exists).
      type: str
    free_mb:
      description: Megabytes (MiB) free there for an unprivileged user; null with RV(free_space.reason) when it could not be read.
      type: int
    reason:
      description: Why the free space could not be read; null otherwise.
      type: str
conf:
  description: With O(conf_path), what the node's kong.conf sets, by name only.
  returned: when O(conf_path) is set, also on failure
  type: dict
  contains:
    readable:
      description: Whether the file could be read; false with RV(conf.reason) otherwise.
      type: bool
    reason:
      description: Why the file could not be read; null otherwise.
      type: str
    properties:
      description: The names of the properties the file sets (Kong's reading, lowercase, sorted).
      type: list
      elements: str
    custom_plugins:
      description: The plugins of its C(plugins) property besides C(bundled) and C(off).
      type: list
      elements: str
  sample: {"readable": true, "reason": null, "properties": ["admin_listen", "database", "pg_host", "plugins"],
           "custom_plugins": ["my-auth"]}
data_plane:
  description: With O(wait_data_plane), the control plane's row of that data plane when the wait ended ({} when not listed).
  returned: when O(wait_data_plane) is set
  type: dict
waited_seconds:
  description: With O(wait_data_plane), how long the module waited, for the control plane to answer and for the data plane to be listed.
  returned: when O(wait_data_plane) is set
  type: float
data_planes_stale:
  description: On a control plane, each data plane whose last ping is older than O(stale_after), named with its age.
  returned: success
  type: list
  elements: str
  sample: ["kongDP1 (id 10424658-f139-476c-b74f-e0a6e6ec9402, ip 172.24.0.10, Kong 3.4.2) last seen 3600 s ago"]
skew:
  description: With O(skew), the judgement of the live data planes (also returned when the module fails on it).
  returned: when O(skew) is set on a control plane
  type: dict
  contains:
    live:
      description: The live data planes, named.
      type: list
      elements: str
      returned: success
    stale:
      description: As RV(data_planes_stale).
      type: list
      elements: str
      returned: success
    dp_versions:
      description: The versions the live data planes run.
      type: list
      elements: str
      returned: success
    blocking:
      description: One message per data plane newer than the control plane or a major apart.
      type: list
      elements: str
      returned: success
    left_behind:
      description: Rows of the data planes left behind, with C(label) and C(host) (the inventory host, or null).
      type: list
      elements: dict
      returned: success
    unreachable:
      description: The left-behind data planes no inventory host runs.
      type: list
      elements: str
      returned: success
konnect_nodes:
  description:
    - With O(konnect), Konnect's data-plane node records of the control plane (C(id), C(version), C(hostname),
      C(last_ping), C(type), C(created_at), C(updated_at), C(config_hash), C(compatibility_status)), each with
      C(last_seen) equal to C(last_ping).
  returned: when O(konnect) is set
  type: list
  elements: dict
cluster_control_plane:
  description: On a data plane, the C(cluster_control_plane) it is configured with; null on other nodes.
  returned: success
  type: str
  sample: 1234abcd.us.cp0.konghq.com:443
cp_config_hash:
  description: With O(wait_config_sync), the configuration hash every live data plane reports.
  returned: when O(wait_config_sync) is set
  type: str
  sample: 595214af5fb356cc569313184c64d9b7
version:
  description: Kong version from C(GET /).
  returned: success
  type: str
  sample: 3.4.2
edition:
  description: C(community) or C(enterprise); null before Kong 3.6, which does not report it.
  returned: success
  type: str
  sample: community
node_id:
  description: The node's id (UUID).
  returned: success
  type: str
  sample: 6a0e6ab4-3c3d-4cd0-a2c3-9c6d7ee5c3f1
hostname:
  description: The node's host name as Kong reports it.
  returned: success
  type: str
  sample: kong-node-1
mode:
  description:
    - V(dbless) (C(database=off)), V(traditional) (PostgreSQL), V(hybrid_cp) (C(role=control_plane)),
      V(hybrid_dp) (C(role=data_plane)) or V(konnect_dp) (a data plane with C(konnect_mode) on, or whose
      C(cluster_control_plane) is a C(konghq.com) host), from C(configuration.database) and C(configuration.role).
  returned: success
  type: str
  sample: traditional
role:
  description: C(configuration.role) (C(traditional) when Kong does not report one).
  returned: success
  type: str
  sample: traditional
database:
  description: C(configuration.database), C(postgres) or C(off).
  returned: success
  type: str
  sample: postgres
database_reachable:
  description: From C(GET /status) C(database.reachable) on database nodes; null on DB-less nodes and data planes.
  returned: success
  type: bool
  sample: true
configuration_hash:
  description:
    - C(configuration_hash) from C(GET /status) (32 hex digits, all zeros while no configuration is loaded);
      null in database mode, where Kong does not report one.
  returned: success
  type: str
  sample: 595214af5fb356cc569313184c64d9b7
ready:
  description: Whether the node is ready for traffic (see RV(ready_source)). Also returned when the module fails.
  returned: always
  type: bool
  sample: true
ready_reason:
  description: Kong's message from C(/status/ready) (C(ready) or the reason it is not), or how readiness was derived.
  returned: success
  type: str
  sample: "no configuration available (empty configuration present)"
ready_source:
  description:
    - V(status_ready) when C(GET /status/ready) on O(status_url) answered (200 or 503), V(status) when it was
      derived from C(GET /status) (no O(status_url), or Kong before 3.3).
  returned: success
  type: str
  sample: status_ready
ready_http_status:
  description: HTTP status of C(GET /status/ready) when RV(ready_source=status_ready) and it answered.
  returned: success
  type: int
  sample: 200
connections:
  description: The C(server) block of C(GET /status).
  returned: success
  type: dict
  sample: {"connections_accepted": 10, "connections_active": 2, "connections_handled": 10,
           "connections_reading": 0, "connections_writing": 1, "connections_waiting": 1, "total_requests": 42}
plugins_enabled:
  description: C(plugins.enabled_in_cluster) from C(GET /), sorted.
  returned: success
  type: list
  elements: str
  sample: [key-auth, rate-limiting]
plugins_available:
  description: Names of C(plugins.available_on_server) from C(GET /), sorted.
  returned: success
  type: list
  elements: str
  sample: [acl, acme, key-auth]
data_planes:
  description: On a control plane, the data planes from C(GET /clustering/data-planes); empty otherwise.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: The data plane's node id.
      type: str
      returned: success
    hostname:
      description: The data plane's host name.
      type: str
      returned: success
    ip:
      description: The address the data plane connected from.
      type: str
      returned: success
    version:
      description: The data plane's Kong version.
      type: str
      returned: success
    sync_status:
      description: C(normal), C(unknown), C(kong_version_incompatible), C(plugin_set_incompatible), ...
      type: str
      returned: success
    config_hash:
      description: Hash of the configuration the data plane runs (equal to its C(/status) C(configuration_hash)).
      type: str
      returned: success
    last_seen:
      description: Epoch seconds of the data plane's last ping.
      type: int
      returned: success
    updated_at:
      description: Epoch seconds of the row's last update (Kong 3.3+; null before).
      type: int
      returned: success
    ttl:
      description: Seconds until the control plane forgets the data plane.
      type: int
      returned: success
    labels:
      description: The data plane's labels (Kong 3.5+; null before).
      type: dict
      returned: success
  sample: [{"id": "10424658-f139-476c-b74f-e0a6e6ec9402", "hostname": "kongDP1", "ip": "172.24.0.10",
            "version": "3.4.2", "sync_status": "normal", "config_hash": "595214af5fb356cc569313184c64d9b7",
            "last_seen": 1689266492, "updated_at": 1689266492, "ttl": 1209593, "labels": null}]
metrics:
  description: With O(metrics=true), the node's request counters since it started, summed over services and routes.
  returned: when O(metrics=true)
  type: dict
  contains:
    available:
      description: Whether the node exposed per-status request counters.
      type: bool
      returned: success
    requests:
      description: Requests the node answered.
      type: int
      returned: success
    errors:
      description: Of those, answers with a 5xx status.
      type: int
      returned: success
    by_class:
      description: Answers per status class (C(2xx), C(4xx), C(5xx), ...).
      type: dict
      returned: success
    url:
      description: The URL read.
      type: str
      returned: success
    reason:
      description: Why RV(metrics.available) is false; null otherwise.
      type: str
      returned: success
  sample: {"available": true, "requests": 1200, "errors": 3, "by_class": {"2xx": 1190, "4xx": 7, "5xx": 3},
           "url": "http://127.0.0.1:8007/metrics", "reason": null}
"""

import time

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible_collections.kongops.upgrade.plugins.module_utils._argspec import kong_argument_spec
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_common import free_space
from ansible_collections.kongops.upgrade.plugins.module_utils._dp_skew import (
    DEFAULT_STALE_AFTER,
    LEFT_BEHIND_CHOICES,
    hash_divergence,
    judge,
    judge_konnect,
    konnect_rows,
    label,
    left_behind_message,
    split_stale,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    KongAdminClient,
    KongAdminError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_conf import conf_names
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_node import (
    KongNodeInfo,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._konnect import (
    KONNECT_ARG_OPTIONS,
    KonnectClient,
    KonnectError,
    check_params as konnect_check_params,
    wait_konnect,
    wait_same_hash,
)

DP_MODES = ("hybrid_dp", "konnect_dp")


def argument_spec() -> dict:
    return kong_argument_spec(
        admin=True,
        status_url={"type": "str", "fallback": (env_fallback, ["KONG_STATUS_URL"])},
        conf_path={"type": "path"},
        free_space_path={"type": "path"},
        data_planes={"type": "bool", "default": True},
        metrics={"type": "bool", "default": False},
        wait_data_plane={
            "type": "dict",
            "options": {
                "id": {"type": "str", "required": True},
                "version": {"type": "str"},
                "config_hash": {"type": "str"},
            },
        },
        wait_timeout={"type": "int", "default": 60},
        stale_after={"type": "int", "default": DEFAULT_STALE_AFTER},
        skew={
            "type": "dict",
            "options": {
                "target_version": {"type": "str"},
                "inventory_ids": {"type": "dict"},
                "left_behind": {"type": "str", "choices": list(LEFT_BEHIND_CHOICES), "default": "stop"},
            },
        },
        wait_config_sync={"type": "bool", "default": False},
        cluster_control_plane={"type": "str"},
        same_config_as={"type": "dict"},
        konnect={"type": "dict", "options": KONNECT_ARG_OPTIONS},
    )


def _peer_hash(p: dict):
    def read(url: str):
        peer = KongAdminClient.from_params(dict(p, admin_url=url))
        return peer.status().get("configuration_hash")

    return read


def data_plane_checks(module, p: dict, facts: dict) -> None:
    """A data plane's own signals: connected to the configured control plane, the configuration its
    peers of the group serve."""
    for name in ("cluster_control_plane", "same_config_as", "konnect"):
        if p[name] and facts.get("mode") not in DP_MODES:
            module.fail_json(
                msg=f"{name}: {p['admin_url']} is not a data plane (mode {facts.get('mode')}); point admin_url at the data plane's Admin API", **facts
            )
    want = p["cluster_control_plane"]
    if want and str(facts.get("cluster_control_plane") or "") != want:
        module.fail_json(
            msg=f"data plane {facts.get('hostname')} (id {facts.get('node_id')}) is configured with "
            f"cluster_control_plane {facts.get('cluster_control_plane')!r}, not {want!r} "
            "(kong_node_cluster_control_plane): fix its kong.conf",
            **facts,
        )
    if p["same_config_as"]:
        own = facts.get("configuration_hash")
        peers = [{"name": k, "url": str(v)} for k, v in sorted(p["same_config_as"].items())]
        problems = wait_same_hash(_peer_hash(p), peers, own, max(0, p["wait_timeout"]))
        if problems:
            module.fail_json(
                msg=f"the data planes of the group do not serve the configuration of "
                f"{facts.get('hostname')} (id {facts.get('node_id')}, hash {own}) after "
                f"{p['wait_timeout']}s: " + "; ".join(problems),
                **facts,
            )


def konnect_checks(module, p: dict, facts: dict) -> None:
    """Konnect's view of the control plane's data planes: versions judged, this data plane listed
    live, every live data plane on the control plane's expected configuration hash."""
    kp = p["konnect"]
    bad = konnect_check_params(kp)
    if bad:
        module.fail_json(msg=bad, **facts)
    client = KonnectClient(timeout=p["timeout"], validate_certs=p["validate_certs"], **kp)
    started = time.monotonic()
    try:
        rows = konnect_rows(client.nodes())
        now = time.time()
        _live, stale = split_stale(rows, now, p["stale_after"])
        facts["konnect_nodes"] = rows
        facts["data_planes_stale"] = [f"{label(r)} last seen {int(now - (r.get('last_seen') or 0))} s ago" for r in stale]
        if p["skew"]:
            facts["skew"] = judge_konnect(
                rows,
                now,
                p["stale_after"],
                cp_version=kp["control_plane_version"],
                target_version=p["skew"]["target_version"],
                newest_supported=kp["newest_supported"] or None,
                inventory_ids=p["skew"]["inventory_ids"],
            )
            if facts["skew"]["blocking"]:
                module.fail_json(msg=f"Konnect control plane {kp['control_plane_id']}: " + " | ".join(facts["skew"]["blocking"]), **facts)
        want = p["wait_data_plane"]
        if want:

            def listed(items):
                row = next((r for r in konnect_rows(items) if r.get("id") == want["id"]), {})
                live, _stale = split_stale([row], time.time(), p["stale_after"]) if row else ([], [])
                why = []
                if not row:
                    why.append("not listed")
                elif not live:
                    why.append(f"last ping {row.get('last_ping')} older than {p['stale_after']} s")
                else:
                    if want.get("version") and row.get("version") != want["version"]:
                        why.append(f"version {row.get('version')} (expected {want['version']})")
                    if want.get("config_hash") and row.get("config_hash") != want["config_hash"]:
                        why.append(f"configuration hash {row.get('config_hash')} (the node reports {want['config_hash']})")
                return not why, (row, ", ".join(why))

            done, (row, why), _items = wait_konnect(client, listed, max(0, p["wait_timeout"]))
            facts.update(data_plane=row, waited_seconds=round(time.monotonic() - started, 1))
            if not done:
                module.fail_json(
                    msg=f"Konnect does not list data plane {facts.get('hostname')} (id {want['id']}) "
                    f"connected to control plane {kp['control_plane_id']} after "
                    f"{p['wait_timeout']}s: {why}",
                    **facts,
                )
        if p["wait_config_sync"]:
            expected = client.expected_hash()
            left = max(0.0, p["wait_timeout"] - (time.monotonic() - started))

            def synced(items):
                conf_hash, problems = hash_divergence(konnect_rows(items), time.time(), p["stale_after"], expected=expected, sync_status=False)
                return not problems, (conf_hash, problems)

            _done, (conf_hash, problems), items = wait_konnect(client, synced, left)
            facts["konnect_nodes"] = konnect_rows(items)
            facts["cp_config_hash"] = conf_hash
            if problems:
                module.fail_json(
                    msg=f"not every live data plane of Konnect control plane {kp['control_plane_id']} "
                    f"runs its configuration after {p['wait_timeout']}s: "
                    + "; ".join(problems)
                    + ". Read that data plane's error.log (its connection to Konnect, or a "
                    "configuration it could not load)",
                    **facts,
                )
    except KonnectError as exc:
        module.fail_json(msg=f"cannot read Konnect's data-plane nodes: {exc}", url=exc.url, status_code=exc.status, body=exc.body, **facts)


def _answer_with(module, extra: dict) -> None:
    """Every answer of `module` from here on, success or failure, carries `extra`."""
    exit_json, fail_json = module.exit_json, module.fail_json
    module.exit_json = lambda **kwargs: exit_json(**dict(extra, **kwargs))
    module.fail_json = lambda msg, **kwargs: fail_json(msg=msg, **dict(extra, **kwargs))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    if p["conf_path"]:
        # the kong.conf names, also when the Admin API does not answer (a stopped node's file is read)
        _answer_with(module, {"conf": conf_names(p["conf_path"])})
    if p["free_space_path"]:
        _answer_with(module, {"free_space": free_space(p["free_space_path"])})
    if not HAS_REQUESTS:
        module.fail_json(
            msg=missing_required_lib("requests"),
            exception=REQUESTS_IMPORT_ERROR,
            ready=False,
        )
    for name in ("admin_url", "status_url"):
        if p[name] and not p[name].startswith(("http://", "https://")):
            module.fail_json(
                msg=f"{name}: '{p[name]}' is not a URL (expected http:// or https://)",
                ready=False,
            )
    admin = KongAdminClient.from_params(p)
    status = KongAdminClient.from_params(p, url_key="status_url") if p["status_url"] else None
    # a wait on a control plane starts with this read: a control plane away for a while (restarting, lost)
    # is waited for within the same wait_timeout, as the wait itself does
    waiting = bool(p["wait_data_plane"] or p["wait_config_sync"]) and not p["konnect"]
    started = time.monotonic()
    outage_waited = 0.0
    try:
        if waiting:
            facts, outage_waited = KongNodeInfo(admin, status).gather_through_outage(
                max(0, p["wait_timeout"]), include_data_planes=p["data_planes"], include_metrics=p["metrics"]
            )
        else:
            facts = KongNodeInfo(admin, status).gather(include_data_planes=p["data_planes"], include_metrics=p["metrics"])
    except KongAdminError as exc:
        module.fail_json(
            msg=(f"the control plane did not answer within wait_timeout ({p['wait_timeout']}s): " if waiting else "cannot read the node's Admin API: ")
            + str(exc),
            ready=False,
            url=exc.url,
            status_code=exc.status,
            body=exc.body,
        )
    if p["stale_after"] < 1:
        module.fail_json(msg=f"stale_after: {p['stale_after']} is not a number of seconds (1 or more; 90 is three missed pings)", ready=False)
    data_plane_checks(module, p, facts)
    if p["konnect"]:
        konnect_checks(module, p, facts)
        module.exit_json(changed=False, **facts)
    now = time.time()
    if facts.get("mode") == "hybrid_cp":
        _live, stale = split_stale(facts["data_planes"], now, p["stale_after"])
        facts["data_planes_stale"] = judge(stale, facts.get("version"), now, p["stale_after"])["stale"] if stale else []
    else:
        facts["data_planes_stale"] = []
    for name in ("skew", "wait_config_sync"):
        if p[name] and facts.get("mode") != "hybrid_cp":
            module.fail_json(
                msg=f"{name}: {p['admin_url']} is not a control plane (mode {facts.get('mode')}); point admin_url at the control plane's Admin API", **facts
            )
    if p["skew"]:
        if not p["data_planes"]:
            module.fail_json(msg="skew: needs data_planes=true (the judgement reads GET /clustering/data-planes)", **facts)
        sk = p["skew"]
        facts["skew"] = judge(
            facts["data_planes"], facts.get("version"), now, p["stale_after"], target_version=sk["target_version"], inventory_ids=sk["inventory_ids"]
        )
        problems = list(facts["skew"]["blocking"])
        left = left_behind_message(facts["skew"], sk["left_behind"])
        if left:
            problems.append(left)
        if problems:
            module.fail_json(msg=f"control plane {facts.get('hostname')} on Kong {facts.get('version')}: " + " | ".join(problems), **facts)
    want = p["wait_data_plane"]
    if want:
        if facts.get("mode") != "hybrid_cp":
            module.fail_json(msg=f"wait_data_plane: {p['admin_url']} is not a control plane (mode {facts.get('mode')})", **facts)
        try:
            waited = KongNodeInfo(admin, status).wait_data_plane(want, max(0.0, p["wait_timeout"] - (time.monotonic() - started)))
        except KongAdminError as exc:
            module.fail_json(msg=f"cannot read the control plane's data planes: {exc}", ready=False, url=exc.url, status_code=exc.status, body=exc.body)
        # the wait began with the first read, which may have waited for the control plane to answer
        facts.update(data_plane=waited["data_plane"], waited_seconds=round(outage_waited + waited["waited_seconds"], 1))
        if not waited["synced"]:
            module.fail_json(msg=f"the control plane does not list data plane {want['id']} in sync after {p['wait_timeout']}s: {waited['reason']}", **facts)
    if p["wait_config_sync"]:
        left = max(0.0, p["wait_timeout"] - (time.monotonic() - started))
        try:
            conf_hash, problems = KongNodeInfo(admin, status).wait_config_sync(left, p["stale_after"])
        except KongAdminError as exc:
            module.fail_json(msg=f"cannot read the control plane's data planes: {exc}", ready=False, url=exc.url, status_code=exc.status, body=exc.body)
        facts["cp_config_hash"] = conf_hash
        if problems:
            module.fail_json(
                msg=f"not every live data plane of control plane {facts.get('hostname')} runs its "
                f"configuration after {p['wait_timeout']}s: "
                + "; ".join(problems)
                + ". Read that data plane's error.log (its connection to the control plane, or "
                "a configuration it could not load)",
                **facts,
            )
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
