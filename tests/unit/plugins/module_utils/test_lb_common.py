"""Load-balancer independent logic of lb_weight: share arithmetic, weights, planning, drain wait."""

from __future__ import annotations

import itertools

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._lb import (
    DrainTimeout,
    LbParamError,
    changed_servers,
    compute_share_weights,
    out_of_rotation,
    parse_weight,
    plan,
    share_warnings,
    wait_drained,
)


def groups_of(**sizes):
    return {g: [f"{g}{i}" for i in range(n)] for g, n in sizes.items()}


def observed_split(groups, weights):
    total = sum(weights[n] for members in groups.values() for n in members)
    return {g: 100.0 * sum(weights[n] for n in members) / total for g, members in groups.items()}


@pytest.mark.parametrize("nx,ny", list(itertools.product(range(1, 6), range(1, 6))))
def test_every_share_within_one_point_for_unequal_groups(nx, ny):
    groups = groups_of(x=nx, y=ny)
    for pct in range(101):
        weights, expected = compute_share_weights(groups, {"y": pct})
        assert all(0 <= w <= 256 and isinstance(w, int) for w in weights.values())
        split = observed_split(groups, weights)
        assert abs(split["y"] - pct) <= 1.0, (nx, ny, pct, weights)
        assert expected["y"] == pytest.approx(split["y"], abs=0.01)
        for group in groups:
            assert len({weights[n] for n in groups[group]}) == 1, "a group's servers share one weight"


def test_zero_and_hundred_put_a_group_fully_out_and_in():
    groups = groups_of(x=3, y=2)
    weights, expected = compute_share_weights(groups, {"y": 0})
    assert [weights[n] for n in groups["y"]] == [0, 0] and all(weights[n] > 0 for n in groups["x"])
    assert expected == {"x": 100.0, "y": 0.0}
    weights, expected = compute_share_weights(groups, {"y": 100})
    assert [weights[n] for n in groups["x"]] == [0, 0, 0] and all(weights[n] > 0 for n in groups["y"])
    assert expected == {"x": 0.0, "y": 100.0}


def test_ten_percent_uses_small_exact_weights():
    weights, expected = compute_share_weights(groups_of(x=3, y=3), {"y": 10})
    assert weights == {"x0": 9, "x1": 9, "x2": 9, "y0": 1, "y1": 1, "y2": 1}
    assert expected == {"x": 90.0, "y": 10.0}


def test_three_groups_and_remainder_split_equally():
    groups = groups_of(a=1, b=2, c=4)
    weights, _expected = compute_share_weights(groups, {"a": 20})
    split = observed_split(groups, weights)
    assert split["a"] == pytest.approx(20, abs=1) and split["b"] == pytest.approx(40, abs=1)
    assert split["c"] == pytest.approx(40, abs=1)


def test_unreachable_split_fails_naming_share():
    with pytest.raises(LbParamError, match="cannot split traffic") as exc:
        compute_share_weights(groups_of(x=1, y=7), {"y": 1})
    assert exc.value.param == "share"


@pytest.mark.parametrize(
    "share,message",
    [
        ({"z": 10}, "share: no such group: z"),
        ({"y": 101}, "share.y: 101 is not a percentage"),
        ({"y": -1}, "share.y: -1 is not a percentage"),
        ({"y": "ten"}, "share.y: 'ten' is not a percentage"),
        ({"x": 60, "y": 60}, "more than 100"),
        ({"x": 30, "y": 30}, "must add up to 100"),
        ({"x": 0, "y": 0}, "must add up to 100"),
    ],
)
def test_bad_shares_name_the_parameter(share, message):
    with pytest.raises(LbParamError, match=message) as exc:
        compute_share_weights(groups_of(x=2, y=2), share)
    assert exc.value.param == "share"


def test_bad_groups_name_the_parameter():
    with pytest.raises(LbParamError, match="in both x and y") as exc:
        compute_share_weights({"x": ["a"], "y": ["a", "b"]}, {"y": 10})
    assert exc.value.param == "groups"
    with pytest.raises(LbParamError, match="groups.y: must be a non-empty list"):
        compute_share_weights({"x": ["a"], "y": []}, {"y": 10})


@pytest.mark.parametrize(
    "value,initial,weight",
    [
        (0, 100, 0),
        (256, 1, 256),
        ("17", 100, 17),
        ("50%", 100, 50),
        ("33%", 10, 3),
        ("300%", 100, 256),
        ("0%", 5, 0),
    ],
)
def test_parse_weight(value, initial, weight):
    assert parse_weight(value, initial, "s1") == weight


@pytest.mark.parametrize("value", [257, -1, "abc", "1.5", True, None, "50 percent"])
def test_parse_weight_rejects(value):
    with pytest.raises(LbParamError, match="weights.s1") as exc:
        parse_weight(value, 100, "s1")
    assert exc.value.param == "weights"


CURRENT = {
    "x1": {"weight": 100, "initial_weight": 100, "state": "ready", "sessions": 0},
    "x2": {"weight": 100, "initial_weight": 100, "state": "ready", "sessions": 0},
    "y1": {"weight": 0, "initial_weight": 50, "state": "maint", "sessions": 0},
}


def test_plan_overlays_weights_and_states_and_keeps_the_rest():
    desired, computed, expected = plan(CURRENT, weights={"x1": "50%"}, state="ready", servers=["y1"])
    assert desired == {"x1": {"weight": 50, "state": "ready"}, "x2": {"weight": 100, "state": "ready"}, "y1": {"weight": 0, "state": "ready"}}
    assert computed is None and expected is None
    assert changed_servers(CURRENT, desired) == ["x1", "y1"]


def test_plan_restore_is_exact_and_ignores_extra_keys():
    before = {"x1": {"weight": 7, "state": "drain", "sessions": 3, "status": "DRAIN"}}
    desired, _c, _e = plan(CURRENT, restore=before)
    assert desired["x1"] == {"weight": 7, "state": "drain"}
    assert desired["x2"] == {"weight": 100, "state": "ready"}


@pytest.mark.parametrize(
    "kwargs,param,message",
    [
        ({"weights": {"zz": 1}}, "weights", "weights: no such server in the load balancer: zz .known servers: x1, x2, y1"),
        ({"state": "drain", "servers": ["x1", "nope"]}, "servers", "servers: no such server"),
        ({"servers": ["nope"]}, "servers", "servers: no such server"),
        ({"groups": {"x": ["x1", "q"]}, "share": {"x": 100}}, "groups", r"groups.x: no such server .*: q"),
        ({"restore": {"zz": {"weight": 1, "state": "ready"}}}, "restore", "restore: no such server"),
        ({"restore": {"x1": {"weight": 1}}}, "restore", "restore.x1: expected a dict with weight and state"),
        ({"restore": {"x1": {"weight": 1, "state": "gone"}}}, "restore", "restore.x1: state 'gone'"),
        ({"restore": {"x1": {"weight": "5%", "state": "ready"}}}, "restore", "must be absolute"),
    ],
)
def test_plan_errors_name_the_parameter(kwargs, param, message):
    with pytest.raises(LbParamError, match=message) as exc:
        plan(CURRENT, **kwargs)
    assert exc.value.param == param


def test_share_warnings_and_out_of_rotation():
    desired, _c, _e = plan(CURRENT, groups={"x": ["x1"], "y": ["y1"]}, share={"y": 10})
    warnings = share_warnings(CURRENT, desired, {"x": ["x1"], "y": ["y1"]})
    assert any("outside every group" in w and "x2" in w for w in warnings)
    assert any("not in state ready" in w and "y1" in w for w in warnings)
    assert out_of_rotation(desired) == ["y1"]


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_drained_polls_until_empty():
    clock = FakeClock()
    answers = iter([{"x1": "2 sessions"}, {"x1": "1 sessions"}, {}])
    waited = wait_drained(lambda: next(answers), timeout=10, interval=0.5, clock=clock, sleep=clock.sleep)
    assert waited == 1.0 and clock.sleeps == [0.5, 0.5]


def test_wait_drained_times_out_naming_what_is_open():
    clock = FakeClock()
    with pytest.raises(DrainTimeout, match=r"drain_timeout=3s: x1 \(1 sessions, 0 queued\)") as exc:
        wait_drained(lambda: {"x1": "1 sessions, 0 queued"}, timeout=3, interval=2, clock=clock, sleep=clock.sleep)
    assert exc.value.still_open == {"x1": "1 sessions, 0 queued"} and exc.value.waited == 3
    assert clock.sleeps == [2, 1], "the last sleep stops at the timeout"
