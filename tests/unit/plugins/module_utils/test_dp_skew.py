"""The judgement of a hybrid control plane's data planes (plugins/module_utils/_dp_skew.py)."""

from __future__ import annotations

from ansible_collections.kongops.upgrade.plugins.module_utils import _dp_skew as S

NOW = 1_700_000_000
H1, H2 = "a" * 32, "b" * 32


def row(i, version, seen=0, sync="normal", conf_hash=H1):
    return {
        "id": f"id-{i}",
        "hostname": f"dp{i}",
        "ip": f"10.0.0.{i}",
        "version": version,
        "sync_status": sync,
        "config_hash": conf_hash,
        "last_seen": NOW - seen,
    }


def test_stale_rows_are_named_and_left_out():
    out = S.judge([row(1, "3.7.1"), row(2, "3.9.3", seen=3600)], "3.7.1", NOW)
    assert out["live"] == ["dp1 (id id-1, ip 10.0.0.1, Kong 3.7.1)"]
    assert out["stale"] == ["dp2 (id id-2, ip 10.0.0.2, Kong 3.9.3) last seen 3600 s ago"]
    assert out["blocking"] == [] and out["dp_versions"] == ["3.7.1"]


def test_a_data_plane_newer_than_its_control_plane_or_a_major_apart_blocks_named():
    out = S.judge([row(1, "3.8.1"), row(2, "2.8.5"), row(3, "3.6.1"), row(4, "3.7.0")], "3.7.1", NOW)
    assert len(out["blocking"]) == 2
    assert out["blocking"][0].startswith("data plane dp1 (id id-1, ip 10.0.0.1, Kong 3.8.1) is newer than its control plane on 3.7.1")
    assert "upgrade the control plane first" in out["blocking"][0]
    assert out["blocking"][1].startswith("data plane dp2 (id id-2, ip 10.0.0.2, Kong 2.8.5) is a major version apart")


def test_a_target_newer_than_the_control_plane_blocks():
    out = S.judge([row(1, "3.6.1")], "3.6.1", NOW, target_version="3.7.1")
    assert out["blocking"] == [
        "the data planes would run Kong 3.7.1, which is newer than its control plane on 3.6.1 "
        "(Kong refuses a data plane of a newer minor): upgrade the control plane to 3.7.1 "
        "first (playbooks/hybrid_upgrade.yml)"
    ]
    assert S.judge([row(1, "3.6.1")], "3.7.1", NOW, target_version="3.7.1")["blocking"] == []


def test_left_behind_outside_the_inventory_always_stops():
    rows = [row(1, "3.6.1"), row(2, "3.6.1"), row(9, "3.6.1"), row(8, "3.7.1")]
    out = S.judge(rows, "3.7.1", NOW, target_version="3.7.1", inventory_ids={"id-1": "x1", "id-2": "x2"})
    assert [r["label"] for r in out["left_behind"]] == ["dp9 (id id-9, ip 10.0.0.9, Kong 3.6.1)"]
    for choice in S.LEFT_BEHIND_CHOICES:
        msg = S.left_behind_message(out, choice)
        assert "not in the inventory's current groups: dp9 (id id-9, ip 10.0.0.9, Kong 3.6.1)" in msg
        assert "put its host in kong_x" in msg


def test_an_inventory_host_on_an_older_version_stops_unless_told_to_upgrade():
    rows = [row(1, "3.5.0"), row(2, "3.6.1"), row(3, "3.6.1")]
    out = S.judge(rows, "3.7.1", NOW, target_version="3.7.1", inventory_ids={"id-1": "x1", "id-2": "x2", "id-3": "x3"})
    assert [(r["host"], r["version"]) for r in out["left_behind"]] == [("x1", "3.5.0")]
    assert "x1 = dp1 (id id-1, ip 10.0.0.1, Kong 3.5.0)" in S.left_behind_message(out, "stop")
    assert "kong_dp_left_behind=upgrade" in S.left_behind_message(out, "stop")
    assert S.left_behind_message(out, "upgrade") is None
    # a replace run interrupted after x3: x1 and x2 were left on X, x3 runs Y
    half = S.judge(
        [row(1, "3.6.1"), row(2, "3.6.1"), row(3, "3.7.1")], "3.7.1", NOW, target_version="3.7.1", inventory_ids={"id-1": "x1", "id-2": "x2", "id-3": "x3"}
    )
    assert [r["host"] for r in half["left_behind"]] == ["x1", "x2"] and half["unreachable"] == []
    one = S.judge(rows[1:], "3.7.1", NOW, target_version="3.7.1", inventory_ids={"id-2": "x2", "id-3": "x3"})
    assert one["left_behind"] == [] and S.left_behind_message(one, "stop") is None


def test_hash_divergence_names_the_data_plane_that_differs_and_ignores_stale_rows():
    rows = [row(1, "3.7.1"), row(2, "3.7.1"), row(3, "3.6.1", conf_hash=H2), row(4, "3.6.1", seen=600, conf_hash=H2)]
    conf_hash, problems = S.hash_divergence(rows, NOW, 90)
    assert conf_hash is None
    assert problems == [f"dp3 (id id-3, ip 10.0.0.3, Kong 3.6.1): configuration hash {H2}", f"the others report {H1}"]
    assert S.hash_divergence(rows[:2] + rows[3:], NOW, 90) == (H1, [])
    _h, problems = S.hash_divergence([row(1, "3.7.1", sync="unknown")], NOW, 90)
    assert problems[0] == "dp1 (id id-1, ip 10.0.0.1, Kong 3.7.1): sync_status unknown"
    assert S.hash_divergence([], NOW, 90) == (None, ["no live data plane listed"])
    assert S.hash_divergence([row(1, "3.7.1", conf_hash=S.EMPTY_CONFIG_HASH)], NOW, 90)[0] is None


class _Planes:
    """KongNodeInfo with a scripted data-plane list, one answer per poll."""

    def __init__(self, *answers):
        from ansible_collections.kongops.upgrade.plugins.module_utils._kong_node import KongNodeInfo

        self.info = KongNodeInfo(admin=None)
        self.answers = list(answers)
        self.info.data_planes = lambda: self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _clocked(planes, timeout):
    clock = [0.0]
    return planes.info.wait_config_sync(timeout, 90, sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0], now=lambda: NOW)


def test_wait_config_sync_returns_the_hash_once_every_live_data_plane_reports_it():
    planes = _Planes(
        [row(1, "3.7.1"), row(2, "3.7.1", sync="unknown", conf_hash=S.EMPTY_CONFIG_HASH)],
        [row(1, "3.7.1"), row(2, "3.7.1"), row(3, "3.6.1", seen=900, conf_hash=H2)],
    )
    assert _clocked(planes, 60) == (H1, [])


def test_a_data_plane_that_never_reaches_the_hash_is_named_when_the_wait_ends():
    planes = _Planes([row(1, "3.7.1"), row(2, "3.7.1"), row(3, "3.7.1", conf_hash=H2)])
    conf_hash, problems = _clocked(planes, 5)
    assert conf_hash is None
    assert problems == [f"dp3 (id id-3, ip 10.0.0.3, Kong 3.7.1): configuration hash {H2}", f"the others report {H1}"]
