# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Load-balancer independent parts of lb_weight: the backend interface, planning of the
desired weights and states, the group-share arithmetic and the drain wait."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time

MAX_WEIGHT = 256
STATES = ("ready", "drain", "maint")
# The smallest weights whose expected split is this close to the requested share win; the
# contract itself only promises one percentage point.
SHARE_PRECISION = 0.05
SHARE_TOLERANCE = 1.0

_PERCENT = re.compile(r"^\s*(\d+)\s*%\s*$")
_INT = re.compile(r"^\s*(\d+)\s*$")


class LbParamError(ValueError):
    """A parameter cannot be applied to the load balancer; `param` names the option to fix."""

    def __init__(self, msg: str, param: str):
        super().__init__(msg)
        self.param = param


class DrainTimeout(Exception):
    """Servers still had open sessions when the drain wait ran out."""

    def __init__(self, msg: str, still_open: dict, waited: float):
        super().__init__(msg)
        self.still_open, self.waited = still_open, waited


class LbLockTimeout(Exception):
    """Another run kept the lock on a directory of the load balancer's files for the whole timeout."""


class LbBackend:
    """The interface lb_weight drives; one implementation per load balancer.

    Servers are plain dicts keyed by server name, each with at least ``weight``,
    ``initial_weight``, ``state`` (one of STATES) and ``sessions`` (an int, or None when the
    load balancer cannot count them).
    """

    kind = ""

    def __init__(self):
        self.warnings: list[str] = []

    def read(self) -> dict:
        raise NotImplementedError

    def prepare(self, current: dict, desired: dict) -> list:
        """Check that `desired` can be written, before anything changes. Returns the files the
        change would write, as dicts with ``path``, ``before``, ``after`` and ``existed``."""
        raise NotImplementedError

    def apply(self, current: dict, desired: dict, files: list) -> None:
        """Write `desired` (and `files`); all or nothing: on error put `current` back and raise."""
        raise NotImplementedError

    def lock_dirs(self) -> list:
        """The directories of the files a change reads and rewrites (an nginx upstream file, HAProxy's
        server-state file or config): lb_weight holds them locked from its read to the end of its change,
        so that two runs at once (the hosts of one batch, each changing its own server) cannot each write
        the file from the same old copy and lose the other's change."""
        return []

    def drain_probe(self, servers: list) -> dict:
        """What still holds traffic for `servers`, as {label: detail}; empty when drained."""
        raise NotImplementedError

    def stats(self) -> dict:
        return {}


@contextlib.contextmanager
def exclusive(dirs, timeout: float, interval: float = 0.05, clock=time.monotonic, sleep=time.sleep):
    """An exclusive flock(2) on each directory of `dirs` (in a fixed order, so two runs cannot each hold
    one and wait for the other), waited for at most `timeout` seconds. A directory is locked rather than
    the file, which a change replaces by a rename: a lock on the old file would not keep out a run that
    opened the new one. The locks go with their descriptors when the block ends or the process dies."""
    fds = []
    try:
        for path in sorted({os.path.abspath(d) for d in dirs if d}):
            fd = os.open(path, os.O_RDONLY)
            fds.append(fd)
            start = clock()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if clock() - start >= timeout:
                        raise LbLockTimeout(
                            f"another change of this load balancer held {path} for {timeout:g}s (timeout): "
                            "two lb_weight runs at once on its files; nothing was changed, run again"
                        ) from None
                    sleep(interval)
        yield
    finally:
        for fd in fds:
            os.close(fd)


def read_text(path: str):
    """The file's text, or None when it does not exist."""
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def known(names) -> str:
    return ", ".join(sorted(names)) or "(none)"


def parse_weight(value, initial: int, server: str, param: str = "weights") -> int:
    """An absolute weight 0-256, or "N%" of the server's initial weight (rounded down and
    capped at 256, as HAProxy computes it)."""
    if isinstance(value, int) and not isinstance(value, bool):
        weight = value
    elif isinstance(value, str) and _INT.match(value):
        weight = int(value)
    elif isinstance(value, str) and _PERCENT.match(value):
        return min(MAX_WEIGHT, int(initial) * int(_PERCENT.match(value).group(1)) // 100)
    else:
        raise LbParamError(
            f"{param}.{server}: {value!r} is not a weight; use an integer 0-{MAX_WEIGHT} or a percentage of the initial weight such as '50%'", param
        )
    if not 0 <= weight <= MAX_WEIGHT:
        raise LbParamError(f"{param}.{server}: weight {weight} is out of range; use 0-{MAX_WEIGHT}", param)
    return weight


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().rstrip("%"))
        except ValueError:
            return None
    return None


def share_targets(groups: dict, share: dict) -> dict:
    """Validate `groups` and `share` and return the target percentage of every group. Groups
    left out of `share` split the remainder equally."""
    if not groups:
        raise LbParamError("groups: give at least one group, a name with a list of servers", "groups")
    owner = {}
    for group, members in groups.items():
        if not isinstance(members, list) or not members:
            raise LbParamError(f"groups.{group}: must be a non-empty list of server names", "groups")
        for name in members:
            if name in owner:
                raise LbParamError(f"groups: server {name} is in both {owner[name]} and {group}; a server belongs to one group", "groups")
            owner[name] = group
    unknown = sorted(set(share) - set(groups))
    if unknown:
        raise LbParamError(f"share: no such group: {', '.join(unknown)} (groups: {known(groups)})", "share")
    targets = {}
    for group, value in share.items():
        number = _number(value)
        if number is None or not 0 <= number <= 100:
            raise LbParamError(f"share.{group}: {value!r} is not a percentage; use a number from 0 to 100", "share")
        targets[group] = number
    named = sum(targets.values())
    rest = [g for g in groups if g not in targets]
    if named > 100 + 1e-9:
        raise LbParamError(f"share: the shares add up to {named:g} %, more than 100", "share")
    if rest:
        for group in rest:
            targets[group] = (100.0 - named) / len(rest)
    elif abs(named - 100) > 1e-6:
        raise LbParamError(f"share: the shares of all groups add up to {named:g} %; they must add up to 100", "share")
    if not any(targets.values()):
        raise LbParamError("share: at least one group needs a share above 0", "share")
    return targets


def compute_share_weights(groups: dict, share: dict, max_weight: int = MAX_WEIGHT):
    """Integer per-server weights that split traffic between `groups` as `share` asks.

    Every server of a group gets the same weight, so a group's expected share is
    ``size * weight / sum(size * weight)``. Scales 1..max_weight are tried for the group with
    the highest per-server share; the smallest scale whose split is within SHARE_PRECISION
    points wins, else the closest one. A group at 0 % gets weight 0. Fails when no weights up to
    max_weight reach the split within SHARE_TOLERANCE points.
    Returns ({server: weight}, {group: expected percentage}).
    """
    targets = share_targets(groups, share)
    active = {g: t for g, t in targets.items() if t > 0}
    per_server = {g: t / len(groups[g]) for g, t in active.items()}
    top = max(per_server.values())
    best = None
    for scale in range(1, max_weight + 1):
        weights = {g: max(1, int(scale * per_server[g] / top + 0.5)) for g in active}
        total = sum(weights[g] * len(groups[g]) for g in active)
        split = {g: 100.0 * weights[g] * len(groups[g]) / total for g in active}
        error = max(abs(split[g] - active[g]) for g in active)
        if best is None or error < best[0] - 1e-9:
            best = (error, weights, split)
        if error <= SHARE_PRECISION:
            break
    error, weights, split = best
    if error > SHARE_TOLERANCE:
        closest = ", ".join(f"{g} {split[g]:.2f} %" for g in sorted(split))
        raise LbParamError(
            f"share: weights of at most {max_weight} per server cannot split traffic as asked "
            f"within {SHARE_TOLERANCE:g} percentage point (closest: {closest}); change the share "
            "or the group sizes",
            "share",
        )
    result = {name: weights.get(group, 0) for group, members in groups.items() for name in members}
    expected = {g: round(split.get(g, 0.0), 2) for g in groups}
    return result, expected


def _check_known(names, current: dict, param: str) -> None:
    unknown = sorted(set(names) - set(current))
    if unknown:
        raise LbParamError(f"{param}: no such server in the load balancer: {', '.join(unknown)} (known servers: {known(current)})", param.split(".")[0])


def _restore_entry(name: str, entry) -> tuple:
    if not isinstance(entry, dict) or "weight" not in entry or "state" not in entry:
        raise LbParamError(f"restore.{name}: expected a dict with weight and state, as returned in before", "restore")
    if isinstance(entry["weight"], str) and _PERCENT.match(entry["weight"]):
        raise LbParamError(f"restore.{name}: weight must be absolute, as returned in before", "restore")
    weight = parse_weight(entry["weight"], 0, name, "restore")
    if entry["state"] not in STATES:
        raise LbParamError(f"restore.{name}: state {entry['state']!r} is not one of {', '.join(STATES)}", "restore")
    return weight, entry["state"]


def plan(current: dict, weights=None, groups=None, share=None, state=None, servers=None, restore=None):
    """The desired {server: {weight, state}} for every server of the load balancer.

    Returns (desired, computed_weights or None, expected_share or None); raises LbParamError,
    naming the option, for anything that cannot be applied.
    """
    desired = {n: {"weight": s["weight"], "state": s["state"]} for n, s in current.items()}
    computed = expected = None
    if restore:
        _check_known(restore, current, "restore")
        for name, entry in restore.items():
            weight, wanted = _restore_entry(name, entry)
            desired[name] = {"weight": weight, "state": wanted}
    if weights:
        _check_known(weights, current, "weights")
        for name, value in weights.items():
            desired[name]["weight"] = parse_weight(value, current[name]["initial_weight"], name)
    if share is not None:
        for group, members in (groups or {}).items():
            if isinstance(members, list):
                _check_known(members, current, f"groups.{group}")
        computed, expected = compute_share_weights(groups or {}, share)
        for name, weight in computed.items():
            desired[name]["weight"] = weight
    _check_known(servers or [], current, "servers")
    if state:
        for name in servers or []:
            desired[name]["state"] = state
    return desired, computed, expected


def changed_servers(current: dict, desired: dict) -> list:
    return sorted(n for n in desired if (desired[n]["weight"], desired[n]["state"]) != (current[n]["weight"], current[n]["state"]))


def predict(current: dict, desired: dict) -> dict:
    return {n: dict(current[n], weight=desired[n]["weight"], state=desired[n]["state"]) for n in current}


def share_warnings(current: dict, desired: dict, groups: dict) -> list:
    """Servers that make the observed split differ from the computed one: outside every group
    yet taking traffic, or in a group with a share but out of rotation."""
    grouped = {n for members in groups.values() for n in members}
    warnings = []
    strays = sorted(n for n in current if n not in grouped and desired[n]["weight"] > 0 and desired[n]["state"] == "ready")
    if strays:
        warnings.append(f"servers outside every group still take traffic and distort the share: {', '.join(strays)}")
    idle = sorted(n for n in grouped if n in desired and desired[n]["weight"] > 0 and desired[n]["state"] != "ready")
    if idle:
        warnings.append(f"servers with a share are not in state ready and take no traffic (set state ready): {', '.join(idle)}")
    return warnings


def out_of_rotation(desired: dict) -> list:
    return sorted(n for n, d in desired.items() if d["weight"] == 0 or d["state"] != "ready")


def wait_drained(probe, timeout: float, interval: float, clock=time.monotonic, sleep=time.sleep) -> float:
    """Poll `probe()` (a dict of what is still open, empty when drained) until it is empty.
    Returns the seconds waited; raises DrainTimeout naming what is still open."""
    start = clock()
    while True:
        still_open = probe()
        waited = clock() - start
        if not still_open:
            return waited
        if waited >= timeout:
            detail = ", ".join(f"{k} ({v})" for k, v in sorted(still_open.items()))
            raise DrainTimeout(f"still open after drain_timeout={timeout}s: {detail}", still_open, waited)
        sleep(max(0.0, min(interval, timeout - waited)))
