"""Upgrade planner and breaking-change scan (_upgrade_rules.py over _breaking_changes.py), pure logic."""

from __future__ import annotations

import itertools
import re

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils import (
    _breaking_changes as data,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._upgrade_rules import (
    MODES,
    SEVERITIES,
    UpgradeRulesError,
    _match,
    bundled_plugins,
    choose_strategy,
    evaluate,
    is_regex_path,
    parse_config_text,
    plan_path,
    recommend_strategy,
    scan,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._versions import (
    KongVersion,
)

# The simulator chain (FACTS.md 8) and, written out by hand, the series each must pass through.
CHAIN = ("2.8.5", "3.4.2", "3.5.0", "3.6.1", "3.7.1", "3.8.1", "3.9.3")
STONES = {"3.4": "3.4.x", "3.5": "3.5.x", "3.6": "3.6.x", "3.7": "3.7.x", "3.8": "3.8.x"}


def expected_path(a: str, b: str) -> list:
    """FACTS.md 5.1 by hand: 2.8 jumps to 3.4 (LTS), then one minor at a time."""
    order = ["2.8", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9"]
    sa, sb = a[:3], b[:3]
    between = order[order.index(sa) + 1 : order.index(sb)]
    return [a] + [STONES[s] for s in between] + [b]


@pytest.mark.parametrize("a,b", list(itertools.combinations(CHAIN, 2)))
def test_every_upgrade_between_285_and_393(a, b):
    plan = plan_path(KongVersion(a), KongVersion(b))
    path = expected_path(a, b)
    assert plan["path"] == path
    assert plan["reachable"] is True
    assert plan["supported"] is (len(path) == 2)
    assert [h["from"] for h in plan["hops"]] == path[:-1] and [h["to"] for h in plan["hops"]] == path[1:]
    if len(path) > 2:
        assert " -> ".join(path) in plan["reasons"][-1]


@pytest.mark.parametrize("a,b", [(b, a) for a, b in itertools.combinations(CHAIN, 2)])
def test_every_downgrade_between_393_and_285_is_refused(a, b):
    plan = plan_path(KongVersion(a), KongVersion(b))
    assert (plan["supported"], plan["reachable"], plan["path"], plan["hops"]) == (False, False, [], [])
    assert "downgrade" in plan["reasons"][0] and "restoring the backup" in plan["reasons"][0]


def test_hop_kinds_of_the_simulator_chain():
    kinds = [plan_path(KongVersion(a), KongVersion(b))["hops"][0]["kind"] for a, b in itertools.pairwise(CHAIN)]
    assert kinds == ["lts", "minor", "minor", "minor", "minor", "minor"]


def test_342_to_371_names_three_hops():
    res = evaluate(["3.4.2"], "3.7.1", mode="traditional")
    assert res["supported"] is False and res["reachable"] is True
    assert res["path"] == ["3.4.2", "3.5.x", "3.6.x", "3.7.1"]
    assert res["path_text"] == "3.4.2 -> 3.5.x -> 3.6.x -> 3.7.1"
    assert [h["kind"] for h in res["hops"]] == ["minor", "minor", "minor"]


def test_393_to_371_refused():
    res = evaluate(["3.9.3"], "3.7.1", mode="dbless")
    assert (res["supported"], res["reachable"], res["path"]) == (False, False, [])
    assert "3.9.3 -> 3.7.1 is a downgrade" in res["reasons"][0]


def test_28_to_35_refused_with_the_lts_stepping_stone_named():
    res = evaluate(["2.8.5"], "3.5.0", mode="traditional")
    assert res["supported"] is False and res["path"] == ["2.8.5", "3.4.x", "3.5.0"]
    assert res["hops"][0]["kind"] == "lts"


def test_patch_same_version_and_intermediate_series():
    assert plan_path(KongVersion("3.4.1"), KongVersion("3.4.2"))["hops"] == [{"from": "3.4.1", "to": "3.4.2", "kind": "patch"}]
    same = plan_path(KongVersion("3.9.3"), KongVersion("3.9.3"))
    assert same["supported"] and same["path"] == ["3.9.3"] and same["hops"] == []
    assert plan_path(KongVersion("2.8.4"), KongVersion("3.0.1"))["hops"][0]["kind"] == "major"
    assert plan_path(KongVersion("2.8.4"), KongVersion("3.2.0"))["path"] == ["2.8.4", "3.0.x", "3.1.x", "3.2.0"]
    assert plan_path(KongVersion("3.2.2"), KongVersion("3.3.0"))["supported"] is True


def test_patch_downgrade_and_unknown_series_refused():
    assert plan_path(KongVersion("3.4.2"), KongVersion("3.4.1"))["reachable"] is False
    old = plan_path(KongVersion("2.5.0"), KongVersion("3.4.2"))
    assert old["reachable"] is False and "older than" in old["reasons"][0] and "2.8.x first" in old["reasons"][0]
    new = plan_path(KongVersion("3.16.0.1"), KongVersion("3.17.0.0"))
    assert new["reachable"] is False and "newer than" in new["reasons"][0] and "3.16" in new["reasons"][0]


def test_enterprise_series_through_316_and_their_lts_jumps():
    # 3.9 -> 3.10 is the next minor; the LTS guides give 3.4 -> 3.10 and 3.10 -> 3.14 directly
    assert plan_path(KongVersion("3.9.3"), KongVersion("3.10.0.0"))["supported"] is True
    lts = plan_path(KongVersion("3.4.2"), KongVersion("3.10.0.7"))
    assert lts["supported"] is True and lts["hops"][0]["kind"] == "lts"
    assert "lts-upgrade/" in lts["reasons"][0]
    assert plan_path(KongVersion("3.10.0.7"), KongVersion("3.14.0.2"))["hops"][0]["kind"] == "lts"
    chain = plan_path(KongVersion("2.8.5"), KongVersion("3.16.0.1"))
    assert chain["path"] == ["2.8.5", "3.4.x", "3.10.x", "3.14.x", "3.15.x", "3.16.0.1"]
    assert "LTS -> next LTS (2.8 -> 3.4, 3.4 -> 3.10, 3.10 -> 3.14)" in chain["reasons"][0]
    # not an LTS pair: 3.5 -> 3.10 goes minor by minor
    assert plan_path(KongVersion("3.5.0"), KongVersion("3.10.0.0"))["path"] == ["3.5.0", "3.6.x", "3.7.x", "3.8.x", "3.9.x", "3.10.0.0"]


def test_a_version_kong_says_to_avoid_is_refused_with_the_one_to_take():
    res = evaluate(["3.10.0.7"], "3.11.0.0", mode="traditional")
    assert res["reachable"] is False and res["supported"] is False
    assert "Set the target to 3.11.0.1 instead" in res["reasons"][0] and "license migration" in res["reasons"][0]
    assert evaluate(["3.10.0.7"], "3.11.0.1", mode="traditional")["supported"] is True


def test_unsourced_series_say_so_instead_of_guessing():
    config = {"_format_version": "4.0", "plugins": [{"name": "my-custom-plugin"}]}
    res = evaluate(["3.9.3"], "3.10.0.0", mode="dbless", config=config)
    # neither the accepted formats nor the bundled plugins of 3.10 were read from source: no finding claims them
    assert [f["id"] for f in res["findings"] if f["id"] in ("format-version-rejected", "plugin-not-bundled")] == []
    assert any("source is not public" in w and "3.10.0.0" in w for w in res["warnings"])
    sourced = evaluate(["3.8.1"], "3.9.3", mode="dbless", config=config)
    assert "format-version-rejected" in [f["id"] for f in sourced["findings"]]
    assert not any("source is not public" in w for w in sourced["warnings"])
    lts = evaluate(["3.4.2"], "3.10.0.7", mode="traditional")
    assert any("Kong Gateway Enterprise path" in w for w in lts["warnings"])


def test_enterprise_versions_follow_the_same_series():
    plan = plan_path(KongVersion("Kong Enterprise 3.7.1.2"), KongVersion("3.8.1.0"))
    assert plan["supported"] is True and plan["path"] == ["3.7.1.2", "3.8.1.0"]


def test_cassandra_refused_from_34_but_not_before():
    bad = evaluate(["2.8.5"], "3.4.2", mode="traditional", database="cassandra")
    assert bad["reachable"] is False and "Cassandra" in bad["reasons"][0] and "PostgreSQL" in bad["reasons"][0]
    ok = evaluate(["2.8.5"], "3.0.0", mode="traditional", database="cassandra")
    assert ok["supported"] is True


def test_hybrid_dp_never_newer_than_cp():
    ok = evaluate(target_version="3.9.3", mode="hybrid_dp", cp_version="3.9.3", dp_versions=["3.8.1"])
    assert ok["supported"] is True and ok["hybrid"]["compatible"] is True
    newer = evaluate(target_version="3.9.3", mode="hybrid_dp", cp_version="3.8.1", dp_versions=["3.8.1"])
    assert newer["supported"] is False and newer["reachable"] is False
    assert "data plane version 3.9.3 is incompatible with older control plane version 3.8.1" in newer["hybrid"]["blocking"][0]
    assert "control planes to 3.9.3 first" in newer["reasons"][-1]
    major = evaluate(target_version="3.4.2", mode="hybrid_dp", cp_version="2.8.5", dp_versions=["2.8.5"])
    assert "(2.x.y are accepted)" in major["hybrid"]["blocking"][0]


def test_hybrid_cp_first_and_old_dps_reported():
    res = evaluate(target_version="3.4.2", mode="hybrid_cp", cp_version="2.8.5", dp_versions=["2.8.5", "2.8.5"])
    assert res["supported"] is True and res["hybrid"]["order"] == ["control_plane", "data_planes"]
    assert any("rejected by a 3.4.2 control plane" in n for n in res["hybrid"]["notes"])
    assert res["strategy"]["name"] == "in_place"


def test_hybrid_cluster_plans_cp_and_each_dp():
    res = evaluate(target_version="3.6.1", mode="hybrid", cp_version="3.5.0", dp_versions=["3.5.0", "3.4.2"])
    assert res["path"] == ["3.5.0", "3.6.1"] and res["supported"] is True
    assert [p["path"] for p in res["hybrid"]["dp_paths"]] == [["3.4.2", "3.5.x", "3.6.1"], ["3.5.0", "3.6.1"]]
    assert [s["component"] for s in res["strategy"]["steps"]] == ["control_plane", "data_planes"]
    broken = evaluate(target_version="3.6.1", mode="hybrid", cp_version="3.5.0", dp_versions=["3.6.1"])
    assert broken["hybrid"]["compatible"] is False and broken["supported"] is False


def test_hybrid_31_wire_protocol_step():
    res = evaluate(target_version="3.2.0.0", mode="hybrid_cp", cp_version="3.1.1.1")
    assert res["path"] == ["3.1.1.1", "3.1.1.2", "3.2.0.0"]
    assert res["reasons"][0].startswith("Hybrid mode on 3.1.1.1: go to 3.1.1.2 first")


def test_strategy_per_mode():
    assert recommend_strategy("dbless")["name"] == "rolling"
    assert recommend_strategy("hybrid_dp")["name"] == "rolling"
    assert recommend_strategy("traditional")["name"] == "in_place"
    assert recommend_strategy("traditional", spare_capacity=True)["name"] == "dual_cluster"
    assert recommend_strategy("hybrid_cp")["name"] == "in_place"
    hybrid = recommend_strategy("hybrid")
    assert hybrid["steps"] == [{"component": "control_plane", "strategy": "in_place"}, {"component": "data_planes", "strategy": "rolling"}]
    assert all("https://docs.konghq.com/gateway/" in recommend_strategy(m)["source"] for m in MODES)


def test_choose_strategy_recommends_dual_cluster_with_spare_capacity_and_says_who_chose():
    auto = choose_strategy("traditional", spare_capacity=True)
    assert (auto["name"], auto["recommended"], auto["chosen_by"]) == ("dual_cluster", "dual_cluster", "planner")
    assert auto["playbook"] == "playbooks/dual_cluster_upgrade.yml" and "Spare capacity" in auto["reason"]
    assert choose_strategy("traditional")["name"] == "in_place"
    # the operator's choice wins when it fits the mode, and the reason names the planner's
    chosen = choose_strategy("traditional", spare_capacity=False, requested="dual_cluster")
    assert (chosen["name"], chosen["recommended"], chosen["chosen_by"]) == ("dual_cluster", "in_place", "operator")
    assert "kong_upgrade_strategy=dual_cluster" in chosen["reason"] and "kong_spare_capacity" in chosen["reason"]
    kept = choose_strategy("traditional", spare_capacity=True, requested="in_place")
    assert (kept["name"], kept["recommended"], kept["playbook"]) == ("in_place", "dual_cluster", "playbooks/in_place_upgrade.yml")
    same = choose_strategy("dbless", requested="rolling")
    assert same["name"] == "rolling" and same["chosen_by"] == "operator" and "as the planner recommends" in same["reason"]


@pytest.mark.parametrize(
    "mode,requested,fits",
    [
        ("dbless", "in_place", "traditional and hybrid_cp"),
        ("hybrid_dp", "dual_cluster", "traditional"),
        ("traditional", "rolling", "dbless, hybrid_dp and konnect_dp"),
        ("hybrid_cp", "dual_cluster", "traditional"),
    ],
)
def test_choose_strategy_refuses_a_strategy_that_does_not_fit_the_mode(mode, requested, fits):
    with pytest.raises(UpgradeRulesError) as err:
        choose_strategy(mode, requested=requested)
    assert err.value.param == "strategy"
    assert f"{requested} does not upgrade {mode} nodes (it upgrades {fits} nodes)" in str(err.value)
    assert "kong_upgrade_strategy" in str(err.value)


def test_choose_strategy_refuses_an_unknown_strategy():
    with pytest.raises(UpgradeRulesError, match="strategy: 'blue_green' is not one of auto, in_place, dual_cluster, rolling"):
        choose_strategy("traditional", requested="blue_green")


def test_mixed_current_versions_plan_from_the_oldest_and_warn():
    res = evaluate(["3.5.0", "3.4.2", {"version": "3.4.2"}], "3.6.1", mode="traditional")
    assert res["current_version"] == "3.4.2" and res["path"] == ["3.4.2", "3.5.x", "3.6.1"]
    assert "different release series" in res["warnings"][0]
    newer = evaluate(["3.4.2", "3.7.1"], "3.6.1", mode="traditional")
    assert newer["reachable"] is False and "3.7.1 -> 3.6.1 is a downgrade" in newer["reasons"][0]


@pytest.mark.parametrize(
    "kwargs,param",
    [
        ({"current_versions": ["3.x"], "target_version": "3.4.2"}, "current_versions"),
        ({"current_versions": ["3.4.2"], "target_version": "latest"}, "target_version"),
        ({"current_versions": [{"name": "n1"}], "target_version": "3.4.2"}, "current_versions"),
        ({"target_version": "3.4.2"}, "current_versions"),
        ({"target_version": "3.4.2", "mode": "hybrid_dp", "dp_versions": ["3.4.2"]}, "cp_version"),
        ({"current_versions": ["3.4.2"], "target_version": "3.4.2", "mode": "konnect"}, "mode"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, param):
    with pytest.raises(UpgradeRulesError) as exc:
        evaluate(**kwargs)
    assert exc.value.param == param and str(exc.value).startswith(param)


# --------------------------------------------------------------------------- breaking-change scan

CONFIG_28 = """
_format_version: "2.1"
_transform: true
services:
- name: users
  url: http://users.internal:8080
  routes:
  - name: user-by-id
    paths: ["/users/\\\\d+", "/users"]
  - name: tilde-already
    paths: ["~/orders/[0-9]+$"]
  plugins:
  - name: legacy-auth-header
  - name: key-auth
consumers:
- username: alice
  keyauth_credentials:
  - key: alice-secret-key
plugins:
- name: acl
  config:
    whitelist: [admins]
- name: http-log
  config:
    http_endpoint: http://logs.internal
    headers:
      X-Team: [a, b]
"""


def by_id(findings):
    return {f["id"]: f for f in findings}


def test_scan_of_a_28_config_reports_regex_path_and_removed_plugin():
    res = evaluate(["2.8.5"], "3.4.2", mode="traditional", config=parse_config_text(CONFIG_28))
    found = by_id(res["findings"])
    regex = found["route-regex-path-tilde"]
    assert regex["severity"] == "high" and regex["hop"] == "2.8.5 -> 3.4.2"
    assert regex["where"] == ["services[0].routes[0].paths[0] = '/users/\\d+' (route 'user-by-id') -> '~/users/\\d+'"]
    plugin = found["plugin-not-bundled"]
    assert plugin["severity"] == "high"
    assert plugin["where"] == ["services[0].plugins[0] plugin 'legacy-auth-header' on service 'users': not bundled"]
    # the regex path is converted by Kong itself (kong_breaking_fix lets the run go on); no plugin fix exists
    assert regex["fix"] == "kong" and "kong_breaking_fix" in regex["message"] and not plugin["fix"]
    # and it gives no kong.conf conversion
    assert res["conf_fixes"] == {"rename": {}, "remove": []}
    assert "plugin is in use but not enabled" in plugin["message"]
    assert found["plugin-allowlist-fields-removed"]["where"] == ["plugins[0] plugin 'acl' on global: config.whitelist"]
    assert found["http-log-headers-single-value"]["where"] == ["plugins[1] plugin 'http-log' on global: config.headers has array values"]
    assert found["format-version-legacy"]["where"] == ["_format_version: 2.1"]
    assert "format-version-rejected" not in found
    assert "key-auth-invalid-key-message" not in found
    assert "alice-secret-key" not in repr(res)
    assert all(f["source"] for f in res["findings"])


def test_key_auth_findings_appear_on_the_hops_that_bring_them():
    res = evaluate(["3.4.2"], "3.8.1", mode="dbless", config=parse_config_text(CONFIG_28))
    found = by_id(res["findings"])
    assert found["key-auth-invalid-key-message"]["hop"] == "3.5.x -> 3.6.x"
    assert found["key-auth-www-authenticate"]["hop"] == "3.6.x -> 3.7.x"
    assert found["via-header-format"]["hop"] == "3.7.x -> 3.8.1"
    assert found["status-listen-default"]["hop"] == "3.5.x -> 3.6.x"
    assert found["request-id-header"]["hop"] == "3.4.2 -> 3.5.x"
    assert "route-regex-path-tilde" not in found and "status-database-key-removed" not in found
    assert found["plugin-not-bundled"]["hop"] == "3.4.2 -> 3.5.x"
    assert "'legacy-auth-header'" in found["plugin-not-bundled"]["where"][0]


def test_status_database_rule_is_about_dbless_modes_only():
    dbless = by_id(evaluate(["2.8.5"], "3.4.2", mode="dbless")["findings"])
    assert dbless["status-database-key-removed"]["where"] == ["mode dbless"]
    trad = by_id(evaluate(["2.8.5"], "3.4.2", mode="traditional")["findings"])
    assert "status-database-key-removed" not in trad


def test_without_a_config_only_deployment_rules_fire():
    res = evaluate(["3.5.0"], "3.6.1", mode="traditional")
    assert res["scanned"] is False
    assert {f["id"] for f in res["findings"]} == {"status-listen-default"}


def test_custom_plugins_are_not_reported_missing():
    res = evaluate(["2.8.5"], "3.4.2", mode="traditional", config=parse_config_text(CONFIG_28), custom_plugins=["legacy-auth-header"])
    assert "plugin-not-bundled" not in by_id(res["findings"])


def test_a_plugin_removed_between_versions_is_named_as_removed():
    bundled = {"3.4": ("key-auth", "acl", "gone-plugin"), "3.5": ("key-auth", "acl")}
    hops = [{"from": "3.4.2", "to": "3.5.0", "kind": "minor"}]
    config = {"_format_version": "3.0", "plugins": [{"name": "gone-plugin"}, {"name": "acl"}]}
    findings = scan(hops, config, "dbless", rules=[r for r in data.RULES if r["id"] == "plugin-not-bundled"], bundled=bundled)
    assert findings[0]["where"] == ["plugins[0] plugin 'gone-plugin' on global: removed in 3.5 (bundled in 3.4)"]


def test_missing_format_version_is_reported_once():
    res = evaluate(["3.4.2"], "3.6.1", mode="dbless", config={"services": []})
    rejected = [f for f in res["findings"] if f["id"] == "format-version-rejected"]
    assert len(rejected) == 1 and rejected[0]["where"] == ["_format_version: (missing)"]
    assert "1.1, 2.1, 3.0" in rejected[0]["message"]


def test_flat_db_export_and_3x_configs():
    flat = {
        "_format_version": "2.1",
        "routes": [{"id": "r1", "name": "re", "paths": ["/v1/(?<id>[a-z]+)/(?=x)"], "service": "s1"}],
        "plugins": [{"name": "key-auth", "route": "r1"}],
    }
    found = by_id(evaluate(["2.8.5"], "3.4.2", mode="traditional", config=flat)["findings"])
    assert found["route-regex-path-tilde"]["where"][0].startswith("routes[0].paths[0] = '/v1/(?<id>[a-z]+)/(?=x)'")
    assert found["route-regex-lookaround"]["where"] == ["routes[0].paths[0] = '/v1/(?<id>[a-z]+)/(?=x)' (route 're')"]
    three = {"_format_version": "3.0", "routes": [{"name": "plain", "paths": ["/users/\\d+"]}]}
    assert "route-regex-path-tilde" not in by_id(evaluate(["3.4.2"], "3.5.0", mode="dbless", config=three)["findings"])


@pytest.mark.parametrize(
    "path,regex",
    [
        ("/users", False),
        ("/a-b_c.d~e/%20", False),
        ("/users/\\d+", True),
        ("/v1/(foo|bar)", True),
        ("/x$", True),
        ("/files/*", True),
        ("~/already", False),
        ("", False),
    ],
)
def test_regex_heuristic_is_kongs(path, regex):
    assert is_regex_path(path) is regex


def test_rules_are_complete_data():
    ids = [r["id"] for r in data.RULES]
    assert len(ids) == len(set(ids)) and len(ids) >= 12
    for rule in data.RULES:
        assert rule["severity"] in SEVERITIES and rule["message"] and rule["source"]
        assert rule["introduced"] is None or KongVersion(rule["introduced"])
        hop = {"from": "2.8.5", "to": "3.9.3", "kind": "lts"}
        _match(rule, hop, parse_config_text(CONFIG_28), "dbless", ([], []), None, frozenset())
    assert {
        "route-regex-path-tilde",
        "plugin-not-bundled",
        "format-version-rejected",
        "key-auth-invalid-key-message",
        "key-auth-www-authenticate",
        "via-header-format",
        "status-database-key-removed",
        "status-listen-default",
    } <= set(ids)


_CITATION = re.compile(r"Kong/kong (\d+\.\d+\.\d+ )?kong/[\w/.-]+\.lua|https://(docs|developer)\.konghq\.com/")


def test_every_rule_source_is_a_citation_users_can_follow():
    """A source names Kong's source (Kong/kong, tag, file) or a Kong documentation page, never a file
    the collection does not ship."""
    for rule in data.RULES:
        assert _CITATION.search(rule["source"]), rule["id"]
        assert "FACTS" not in rule["source"] and "DESIGN" not in rule["source"] and "reference/" not in rule["source"]
    res = plan_path(KongVersion("2.8.5"), KongVersion("3.9.3"))
    text = " ".join(res["reasons"])
    assert "FACTS" not in text and "https://docs.konghq.com/gateway/" in text


def test_bundled_plugin_counts_match_facts():
    counts = {s: len(bundled_plugins(s)) for s in ("2.8", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9")}
    assert counts == {"2.8": 36, "3.4": 37, "3.5": 37, "3.6": 43, "3.7": 43, "3.8": 44, "3.9": 45}


def test_config_text_errors_name_the_parameter():
    with pytest.raises(UpgradeRulesError, match="^config_file: a declarative configuration is a mapping"):
        parse_config_text("- just\n- a list\n", "config_file")
    with pytest.raises(UpgradeRulesError, match="^config: neither JSON nor YAML"):
        parse_config_text("key: [unclosed", "config")


def test_kong_conf_properties_a_hop_stops_reading_are_found_with_their_conversion():
    conf = {
        "x1": ["prefix", "client_max_body_size", "nginx_upstream_keepalive", "nginx_optimizations", "cassandra_keyspace"],
        "x2": ["prefix", "client_max_body_size"],
    }
    res = evaluate(["2.8.5"], "3.4.2", mode="traditional", conf_settings=conf)
    by_id = {f["id"]: f for f in res["findings"]}
    alias = by_id["conf-deprecated-alias-dropped"]
    assert alias["severity"] == "high" and alias["fix"] == "rename"
    assert alias["where"] == [
        "x1: client_max_body_size (set nginx_http_client_max_body_size instead)",
        "x1: nginx_upstream_keepalive (set upstream_keepalive_pool_size instead)",
        "x2: client_max_body_size (set nginx_http_client_max_body_size instead)",
    ]
    assert "kong/conf_loader/init.lua" in alias["source"]
    removed = by_id["conf-setting-removed"]
    assert removed["where"] == ["x1: cassandra_keyspace", "x1: nginx_optimizations"]
    assert res["conf_scanned"] is True
    assert res["conf_fixes"] == {
        "rename": {"client_max_body_size": "nginx_http_client_max_body_size", "nginx_upstream_keepalive": "upstream_keepalive_pool_size"},
        "remove": ["cassandra_keyspace", "nginx_optimizations"],
    }


def test_kong_conf_rules_follow_the_hop():
    conf = {"x1": ["client_max_body_size", "privileged_agent", "cassandra_keyspace"]}
    # 3.4.2 -> 3.5.0 stops reading privileged_agent only; the 3.0 aliases and cassandra_* are behind
    res = evaluate(["3.4.2"], "3.5.0", mode="dbless", conf_settings=conf)
    assert [(f["id"], f["where"]) for f in res["findings"] if f["id"].startswith("conf-")] == [("conf-setting-removed", ["x1: privileged_agent"])]
    assert evaluate(["3.8.1"], "3.9.3", mode="dbless", conf_settings=conf)["conf_fixes"] == {"rename": {}, "remove": []}
    assert evaluate(["3.8.1"], "3.9.3", mode="dbless")["conf_scanned"] is False


def test_conf_settings_of_the_wrong_shape_name_the_parameter():
    with pytest.raises(UpgradeRulesError) as err:
        evaluate(["3.8.1"], "3.9.3", mode="dbless", conf_settings={"x1": "client_max_body_size"})
    assert err.value.param == "conf_settings"


def test_a_custom_plugin_whose_name_the_target_bundles_is_found_without_a_config():
    res = evaluate(["3.8.1"], "3.9.3", mode="dbless", custom_plugins=["redirect", "my-auth"])
    hit = [f for f in res["findings"] if f["id"] == "custom-plugin-name-bundled"]
    assert len(hit) == 1 and hit[0]["severity"] == "high"
    assert hit[0]["where"] == ["custom plugin 'redirect' (kong.conf `plugins`): bundled from 3.9"]
    # bundled already on X: not new on this path
    assert not [f for f in evaluate(["3.9.1"], "3.9.3", mode="dbless", custom_plugins=["redirect"])["findings"] if f["id"] == "custom-plugin-name-bundled"]
