#!/usr/bin/python
# ruff: noqa: EXE001
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kong_upgrade_check
short_description: Judge a Kong upgrade path, hybrid compatibility and breaking changes
version_added: 0.1.0
description:
  - Decides whether upgrading Kong from the versions the nodes run now to O(target_version) is a path
    Kong guarantees, and names the stepping stones when it is not. Kong only guarantees patch to
    patch within a minor, one minor to the next minor, and the LTS jumps 2.8 to 3.4, 3.4 to 3.10 and
    3.10 to 3.14 (the last two Kong Gateway Enterprise only); so 3.4.2 to 3.7.1 goes 3.4.2, 3.5.x,
    3.6.x, 3.7.1, and 2.8.x to 3.5.x goes through 3.4.x. Downgrades are refused (migrations are not
    reversible), and so is Cassandra from 3.4.0.
  - Knows the series 2.8 to 3.16 (Enterprise versions have four parts, 3.10.0.0). A target Kong's
    documentation says to avoid is refused with the version to take instead (3.11.0.0, take 3.11.0.1).
    From 3.10 on Kong's source is not public, so facts the planner reads from source (bundled plugins,
    accepted C(_format_version) values) are not guessed for those series, and a warning says so.
  - In hybrid mode, checks that control planes go first and that data planes keep the control
    plane's major and a minor that is not newer.
  - Recommends a strategy per mode, and scans an exported declarative configuration for what each
    hop of the path removes or changes (regex route paths needing C(~), plugins the target does not
    bundle, removed plugin fields, C(_format_version), the key-auth 401 changes, and more). Each
    finding has an id, a severity, the hop, the places in the configuration and the source of the
    rule.
  - Pure logic, nothing is changed. The configuration file is read on the host the module runs on.
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - kongops.upgrade.kong_admin
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.info_module
  - kongops.upgrade.attributes.actiongroup_kong
options:
  current_versions:
    description:
      - Versions the nodes run now, as strings (C(3.4.2), C(3.7.1.2), C(Kong 3.9.3)) or as dicts with a
        C(version) key (the per-node results of M(kongops.upgrade.kong_node_info)).
      - When they differ, the path starts at the oldest. Required unless the hybrid options give them.
    type: list
    elements: raw
  target_version:
    description:
      - The version to upgrade to.
    type: str
    required: true
  mode:
    description:
      - Deployment mode. V(hybrid) checks a whole hybrid cluster (control planes then data planes),
        V(hybrid_cp) the control planes alone, V(hybrid_dp) the data planes alone, V(konnect_dp) data planes of
        a Konnect control plane (upgraded rolling like DB-less nodes; Konnect keeps its control planes on the
        latest version, and its data-plane version policy is judged by M(kongops.upgrade.kong_node_info)).
    type: str
    required: true
    choices: [dbless, traditional, hybrid, hybrid_cp, hybrid_dp, konnect_dp]
  cp_version:
    description:
      - Version of the control planes now. Required with O(mode=hybrid) and O(mode=hybrid_dp).
    type: str
  dp_versions:
    description:
      - Versions of the data planes now (strings or dicts with C(version)). Required with O(mode=hybrid).
    type: list
    elements: raw
  database:
    description:
      - The database the nodes use. Defaults to V(off) for V(dbless), V(hybrid_dp) and V(konnect_dp), else V(postgres).
    type: str
    choices: [postgres, cassandra, 'off']
  spare_capacity:
    description:
      - Hardware for a second cluster is available; a traditional cluster then gets the dual-cluster
        strategy instead of in-place.
    type: bool
    default: false
  strategy:
    description:
      - The strategy the operator asks for. V(auto) takes the planner's recommendation (dual-cluster for a
        traditional cluster with O(spare_capacity), in-place without; rolling for DB-less nodes and data planes).
      - Any other value must fit O(mode) (V(in_place) traditional or hybrid control planes, V(dual_cluster)
        traditional, V(rolling) DB-less or data planes), else the module fails naming the strategy that fits.
        RV(strategy.name) is then the operator's choice and RV(strategy.reason) says so beside the recommendation.
    type: str
    choices: [auto, in_place, dual_cluster, rolling]
    default: auto
  config_file:
    description:
      - Declarative configuration (YAML or JSON) to scan, for example the output of C(kong config db_export)
        or C(GET /config), or a decK file.
    type: path
  config:
    description:
      - The declarative configuration to scan, as YAML/JSON text or as a dict.
    type: raw
  config_from_admin:
    description:
      - Read the configuration to scan from the node's Admin API (O(admin_url) and the other Admin API
        options), every entity it lists, as C(kong config db_export) would write it. Works on traditional
        nodes, DB-less nodes and control planes.
      - The configuration is scanned in the module and never returned; findings name entities (route
        names, plugin ids), not their secrets.
      - Mutually exclusive with O(config) and O(config_file).
    type: bool
    default: false
  custom_plugins:
    description:
      - Plugins that will be installed on the target nodes besides the bundled ones; they are not reported
        as missing.
    type: list
    elements: str
    default: []
  conf_settings:
    description:
      - The properties each node's C(kong.conf) sets, as a mapping of host to a list of property names
        (what M(kongops.upgrade.kong_node_info) returns in RV(kongops.upgrade.kong_node_info#module:conf_settings)).
        Only the names are read, never the values.
      - Scanned for properties a hop of the path stops reading (renamed deprecated aliases, removed
        properties); RV(conf_fixes) gives the renames and removals that convert them.
    type: dict
  fail_on_unsupported:
    description:
      - Fail when the direct jump is not a guaranteed path (the result still names the path to take) or
        the hybrid versions are incompatible.
    type: bool
    default: true
  fail_on_severity:
    description:
      - Fail when a finding has this severity or a higher one. V(none) never fails on findings.
    type: str
    default: none
    choices: [none, high, medium, low, info]
requirements:
  - PyYAML (only to read YAML configurations)
seealso:
  - module: kongops.upgrade.kong_config_freeze
  - name: Kong upgrade guide
    description: Guaranteed upgrade paths and strategies.
    link: https://developer.konghq.com/gateway/upgrade/
"""

EXAMPLES = r"""
- name: Is 3.4.2 -> 3.7.1 a supported jump? (it is not; the path is named)
  kongops.upgrade.kong_upgrade_check:
    current_versions: ["3.4.2"]
    target_version: 3.7.1
    mode: traditional
    fail_on_unsupported: false
  register: plan
  # plan.path == ["3.4.2", "3.5.x", "3.6.x", "3.7.1"]

- name: Check the next hop from the observed versions and scan the exported config
  kongops.upgrade.kong_upgrade_check:
    current_versions: "{{ node_info.results | map(attribute='version') | list }}"
    target_version: "{{ kong_version_target }}"
    mode: dbless
    config_file: /var/backups/kong/kong.yml
    fail_on_severity: high
  delegate_to: localhost
  run_once: true

- name: Hybrid data planes may follow only a control plane that is not older
  kongops.upgrade.kong_upgrade_check:
    mode: hybrid_dp
    cp_version: 3.9.3
    dp_versions: [3.8.1, 3.8.1]
    target_version: 3.9.3
"""

RETURN = r"""
supported:
  description: The direct jump is a guaranteed upgrade path (and, in hybrid modes, the versions are compatible).
  returned: always
  type: bool
  sample: false
reachable:
  description: A chain of guaranteed hops reaches the target (RV(path)).
  returned: always
  type: bool
  sample: true
current_version:
  description: The version the path starts from (the oldest of the current versions).
  returned: always
  type: str
  sample: 3.4.2
target_version:
  description: The target version.
  returned: always
  type: str
  sample: 3.7.1
path:
  description: Versions to pass through, start and target included; intermediate ones as C(X.Y.x). Empty when unreachable.
  returned: always
  type: list
  elements: str
  sample: ["3.4.2", "3.5.x", "3.6.x", "3.7.1"]
path_text:
  description: RV(path) as one string.
  returned: always
  type: str
  sample: 3.4.2 -> 3.5.x -> 3.6.x -> 3.7.1
hops:
  description: The hops of the path.
  returned: always
  type: list
  elements: dict
  contains:
    from:
      description: Start of the hop.
      type: str
      sample: 3.4.2
    to:
      description: End of the hop.
      type: str
      sample: 3.5.x
    kind:
      description: C(patch), C(minor), C(major) (2.8 to 3.0) or C(lts) (2.8 to 3.4).
      type: str
      sample: minor
rolling_jump:
  description:
    - For nodes upgraded rolling (O(mode=dbless), O(mode=hybrid_dp)) on a path of several hops, whether Kong's rules
      let them go from the current version to the target in one rolling upgrade (they run no database migrations;
      a data plane needs a control plane that accepts the target). V(null) otherwise.
  returned: always
  type: dict
  contains:
    allowed:
      description: One rolling upgrade may cover every hop of RV(path).
      type: bool
      sample: true
    from:
      description: The version the nodes run now.
      type: str
      sample: 3.6.1
    to:
      description: The target version.
      type: str
      sample: 3.8.1
    covers:
      description: The hops the one rolling upgrade covers; the breaking-change scan evaluates the rules of each.
      type: list
      elements: str
      sample: ["3.6.1 -> 3.7.x", "3.7.x -> 3.8.1"]
    chain:
      description: The end of each hop.
      type: list
      elements: str
      sample: ["3.7.x", "3.8.1"]
    reason:
      description: Why, with Kong's source or documentation.
      type: str
      sample: "DB-less nodes run no database migrations ..."
reasons:
  description: Why the path is or is not supported, in sentences with their source.
  returned: always
  type: list
  elements: str
  sample: ["3.4.2 -> 3.7.1 skips releases: ... go 3.4.2 -> 3.5.x -> 3.6.x -> 3.7.1 (3 hops ...)"]
hybrid:
  description: Hybrid checks (V(null) outside hybrid modes).
  returned: always
  type: dict
  contains:
    order:
      description: Upgrade order.
      type: list
      elements: str
      sample: ["control_plane", "data_planes"]
    compatible:
      description: No version rule is broken now or by the plan.
      type: bool
      sample: true
    blocking:
      description: Rules the plan breaks, with Kong's own messages.
      type: list
      elements: str
      sample: []
    notes:
      description: What happens during the upgrade.
      type: list
      elements: str
      sample: ["Upgrade the control planes first ..."]
    cp_version:
      description: Control plane version given.
      type: str
      sample: 3.9.3
    dp_versions:
      description: Distinct data plane versions given.
      type: list
      elements: str
      sample: ["3.8.1"]
    dp_paths:
      description: With O(mode=hybrid), the path of each data plane version to the target.
      type: list
      elements: dict
      sample: []
strategy:
  description: The strategy of the run (the operator's, O(strategy), or the planner's recommendation for the mode).
  returned: always
  type: dict
  contains:
    name:
      description: C(rolling), C(in_place), C(dual_cluster) or C(hybrid).
      type: str
      sample: rolling
    recommended:
      description: The planner's recommendation for the mode, whatever O(strategy) asked for.
      type: str
      sample: dual_cluster
    requested:
      description: O(strategy) as given.
      type: str
      sample: auto
    chosen_by:
      description: C(operator) when O(strategy) named a strategy, C(planner) with V(auto).
      type: str
      sample: planner
    playbook:
      description: The collection's playbook that runs RV(strategy.name).
      type: str
      sample: playbooks/dual_cluster_upgrade.yml
    steps:
      description: Components in order with their strategy.
      type: list
      elements: dict
      sample: [{"component": "control_plane", "strategy": "in_place"}, {"component": "data_planes", "strategy": "rolling"}]
    reason:
      description: Why this strategy (and, when the operator chose another than the planner, the planner's reason).
      type: str
      sample: DB-less nodes hold no database ...
    source:
      description: Source of the recommendation.
      type: str
      sample: "Kong Gateway upgrade guide, upgrade strategies: https://docs.konghq.com/gateway/3.9.x/upgrade/"
findings:
  description: Breaking changes of the path that apply to this deployment and configuration.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Rule id.
      type: str
      sample: route-regex-path-tilde
    severity:
      description: C(high), C(medium), C(low) or C(info).
      type: str
      sample: high
    hop:
      description: The hop that brings the change.
      type: str
      sample: 2.8.5 -> 3.4.2
    introduced:
      description: Version that introduced the change (V(null) for checks made on every hop).
      type: str
      sample: 3.0.0
    message:
      description: What changes and what to do.
      type: str
      sample: From 3.0 a route path is a regular expression only when it starts with ~ ...
    where:
      description: Places in the configuration (or the deployment) the rule hits.
      type: list
      elements: str
      sample: ["services[0].routes[0].paths[0] = '/users/\\d+' (route 'users') -> '~/users/\\d+'"]
    source:
      description: Source of the rule.
      type: str
      sample: Kong/kong 3.9.3 kong/db/declarative/migrations/route_path.lua (1.1/2.1 files rewritten on load); ...
    fix:
      description:
        - The mechanical conversion RV(conf_fixes) holds for this finding (V(rename) or V(remove)); V(null) when
          there is none.
      type: str
      sample: rename
findings_by_severity:
  description: Number of findings per severity.
  returned: always
  type: dict
  sample: {"high": 2, "medium": 1, "low": 0, "info": 0}
scanned:
  description: Whether a configuration was scanned.
  returned: always
  type: bool
  sample: true
conf_scanned:
  description: Whether O(conf_settings) were given and scanned.
  returned: always
  type: bool
  sample: true
conf_fixes:
  description:
    - The mechanical C(kong.conf) conversions of the findings, in the shape of M(kongops.upgrade.kong_conf)'s
      O(kongops.upgrade.kong_conf#module:rename) and O(kongops.upgrade.kong_conf#module:remove).
  returned: always
  type: dict
  contains:
    rename:
      description: Old property name to the replacement Kong reads instead.
      type: dict
      sample: {"client_max_body_size": "nginx_http_client_max_body_size"}
    remove:
      description: Properties the target no longer reads, with no replacement.
      type: list
      elements: str
      sample: ["nginx_optimizations"]
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kongops.upgrade.plugins.module_utils._argspec import kong_argument_spec
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_declarative import export_via_admin
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    KongAdminClient,
    KongAdminError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._upgrade_rules import (
    STRATEGY_CHOICES,
    UpgradeRulesError,
    evaluate,
    parse_config_text,
    version,
    severity_at_least,
)


def _load_config(module):
    p = module.params
    if p["config_file"]:
        try:
            with open(p["config_file"], encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            module.fail_json(msg=f"config_file: cannot read {p['config_file']}: {exc}")
        return parse_config_text(text, "config_file")
    if p["config_from_admin"]:
        if not HAS_REQUESTS:
            module.fail_json(msg=missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)
        if not p["admin_url"].startswith(("http://", "https://")):
            module.fail_json(msg=f"admin_url: '{p['admin_url']}' is not a URL (expected http:// or https://)")
        texts = [v.get("version") if isinstance(v, dict) else v for v in p["current_versions"] or []]
        texts = [t for t in texts if t] or [p["cp_version"]]
        versions = sorted(version(t, "current_versions") for t in texts if t)
        if not versions:
            module.fail_json(msg="config_from_admin: give current_versions (the export's format follows X's version)")
        try:
            doc, _counts, _skipped = export_via_admin(KongAdminClient.from_params(p), versions[0])
        except KongAdminError as exc:
            module.fail_json(msg=f"config_from_admin: cannot read the configuration from {p['admin_url']}: {exc}")
        return doc
    value = p["config"]
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        return parse_config_text(value, "config")
    module.fail_json(msg=f"config: expected YAML/JSON text or a dict, got {type(value).__name__}")


def main():
    module = AnsibleModule(
        argument_spec=kong_argument_spec(
            admin=True,
            **{
                "current_versions": {"type": "list", "elements": "raw"},
                "target_version": {"type": "str", "required": True},
                "mode": {"type": "str", "required": True, "choices": ["dbless", "traditional", "hybrid", "hybrid_cp", "hybrid_dp", "konnect_dp"]},
                "cp_version": {"type": "str"},
                "dp_versions": {"type": "list", "elements": "raw"},
                "database": {"type": "str", "choices": ["postgres", "cassandra", "off"]},
                "spare_capacity": {"type": "bool", "default": False},
                "strategy": {"type": "str", "default": "auto", "choices": list(STRATEGY_CHOICES)},
                "config_file": {"type": "path"},
                "config": {"type": "raw"},
                "custom_plugins": {"type": "list", "elements": "str", "default": []},
                "conf_settings": {"type": "dict"},
                "fail_on_unsupported": {"type": "bool", "default": True},
                "fail_on_severity": {"type": "str", "default": "none", "choices": ["none", "high", "medium", "low", "info"]},
                "config_from_admin": {"type": "bool", "default": False},
            },
        ),
        mutually_exclusive=[("config_file", "config", "config_from_admin")],
        supports_check_mode=True,
    )
    p = module.params
    try:
        config = _load_config(module)
        result = evaluate(
            current_versions=p["current_versions"],
            target_version=p["target_version"],
            mode=p["mode"],
            cp_version=p["cp_version"],
            dp_versions=p["dp_versions"],
            database=p["database"],
            spare_capacity=p["spare_capacity"],
            config=config,
            custom_plugins=p["custom_plugins"],
            conf_settings=p["conf_settings"],
            strategy=p["strategy"],
        )
    except UpgradeRulesError as exc:
        module.fail_json(msg=str(exc), param=exc.param)
    except Exception as exc:  # noqa: BLE001  # pylint: disable=broad-except
        module.fail_json(msg=f"Unexpected error: {exc}", exception=traceback.format_exc())

    # Remarks go out through module.warn(); Ansible returns them as the standard `warnings`
    # (passing a `warnings` key to exit_json/fail_json is deprecated in ansible-core 2.19).
    for text in result.pop("warnings"):
        module.warn(text)
    result["changed"] = False
    if p["fail_on_unsupported"] and not result["supported"]:
        if result["reachable"]:
            what = f"{result['current_version']} -> {result['target_version']} is not a supported upgrade jump; take the path {result['path_text']}"
        else:
            what = f"{result['current_version']} -> {result['target_version']} cannot be upgraded"
        module.fail_json(msg=f"{what}. " + " ".join(result["reasons"]), **result)
    threshold = p["fail_on_severity"]
    if threshold != "none":
        hits = [f for f in result["findings"] if severity_at_least(f["severity"], threshold)]
        if hits:
            ids = ", ".join(sorted({f"{f['id']} ({f['severity']}, {f['hop']})" for f in hits}))
            module.fail_json(msg=f"{len(hits)} breaking change(s) at or above severity {threshold}: {ids}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
