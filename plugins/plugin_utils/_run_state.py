# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""PRIVATE to the collection: the run journal and run lock of one cluster, on the controller.

The journal (``<work_dir>/<cluster>/journal.json``) is the run's state: what ran, which node is
where, the traffic steps with their gate verdicts, the failure that stopped the run. Every change is
a read-merge-write under an advisory lock (``flock``) and lands atomically: a temporary file in the
same directory, fsync, rename, fsync of the directory. A reader sees the old journal or the new one,
never half of one.

The run lock (``run.lock`` beside it) says which run owns the cluster: host, pid of the
``ansible-playbook`` process, user, run id, when it started and when it last wrote. A second run is
refused while the holder lives; the lock is stale when the holder's process is gone (same host) or
when it has not written for ``ttl`` seconds (any host). A live lock is taken over only with force.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import fcntl
import getpass
import json
import os
import socket
import time

from ansible_collections.kongops.upgrade.plugins.module_utils._files import atomic_write, private_dirs
from ansible_collections.kongops.upgrade.plugins.module_utils._procs import pid_alive

JOURNAL = "journal.json"
LOCK = "run.lock"
GUARD = ".run.guard"
# awaiting_finish: `kong migrations up` ran and Y serves; `finish` waits for the operator (--tags finish).
RESUMABLE = ("running", "failed", "awaiting_finish")
# Rolled back by putting every request back on X: Y stands deployed beside X, and a new run goes on
# from there (the weights saved before the first step stay the ones to go back to). An in-place run is
# rolled back by restoring the database: the next run starts anew.
RESUMABLE_ROLLED_BACK = ("rolling", "dual_cluster")
DEFAULT_TTL = 7200


class RunStateError(Exception):
    """A refusal or failure with a sentence for the operator; ``holder`` names a lock's owner."""

    def __init__(self, msg: str, holder: dict | None = None):
        super().__init__(msg)
        self.holder = holder


def utc_stamp(epoch: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(time.time() if epoch is None else epoch, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(stamp) -> float | None:
    try:
        return datetime.datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


def merge(base: dict, update: dict) -> dict:
    """Recursive merge with the semantics of Ansible's ``combine(recursive=True)``: dictionaries
    merge key by key, anything else (lists included) is replaced."""
    out = dict(base)
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def write_atomic(path: str, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` with mode 0600, all or nothing (the collection's one atomic
    write, module_utils/_files.py)."""
    atomic_write(path, json.dumps(data, indent=4, sort_keys=True) + "\n", mode=0o600)


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RunStateError(f"cannot read {path}: {exc.strerror}") from exc
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RunStateError(f"{path} is not valid JSON ({exc}); move it aside or repair it, then re-run") from exc
    if not isinstance(data, dict):
        raise RunStateError(f"{path} does not hold a JSON object; move it aside or repair it, then re-run")
    return data


def describe(holder: dict) -> str:
    return (
        f"run {holder.get('run_id') or '?'} of {holder.get('user') or '?'} on {holder.get('host') or '?'} "
        f"(pid {holder.get('pid') or '?'}, started {holder.get('started') or '?'}, "
        f"last write {holder.get('updated') or holder.get('started') or '?'})"
    )


class RunState:
    """The journal and lock of one cluster. ``owner`` identifies this run's process (host, pid, user)."""

    def __init__(self, work_dir: str, cluster: str, owner: dict | None = None, now=time.time):
        if not cluster or "/" in cluster or cluster in (".", ".."):
            raise RunStateError(f"cluster must be a plain name without '/' (got {cluster!r}); set kong_cluster_name")
        self.dir = os.path.join(os.path.expanduser(work_dir), cluster)
        self.journal_path = os.path.join(self.dir, JOURNAL)
        self.lock_path = os.path.join(self.dir, LOCK)
        self.owner = owner or dict(host=socket.gethostname(), pid=os.getppid(), user=getpass.getuser())
        self.now = now

    # -- plumbing --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self, check: bool = False):
        if check and not os.path.exists(os.path.join(self.dir, GUARD)):
            # check mode creates nothing; where no run ever wrote there is nothing to guard either
            yield
            return
        private_dirs(self.dir)
        fd = os.open(os.path.join(self.dir, GUARD), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self) -> dict:
        return _read_json(self.journal_path) or {}

    def lock(self) -> dict | None:
        return _read_json(self.lock_path)

    def _mine(self, holder: dict | None) -> bool:
        return bool(holder) and all(str(holder.get(k)) == str(self.owner.get(k)) for k in ("host", "pid"))

    def stale_reason(self, holder: dict, ttl: int) -> str | None:
        """Why a lock no longer protects anything, or None while its run may still be working."""
        if holder.get("host") == self.owner.get("host") and not pid_alive(holder.get("pid")):
            return f"its process {holder.get('pid')} on {holder.get('host')} is gone"
        last = _epoch(holder.get("updated") or holder.get("started"))
        if last is None:
            return "it does not say when it was last written"
        idle = self.now() - last
        if idle > int(holder.get("ttl") or ttl):
            return f"it was last written {int(idle)} s ago (TTL {int(holder.get('ttl') or ttl)} s)"
        return None

    def _write_lock(self, run_id: str, started: str | None, ttl: int) -> dict:
        holder = dict(self.owner, run_id=run_id, started=started or utc_stamp(self.now()), updated=utc_stamp(self.now()), ttl=int(ttl))
        write_atomic(self.lock_path, holder)
        return holder

    # -- operations ------------------------------------------------------------------------
    def open(
        self,
        strategy: str,
        to_version: str,
        run_id: str = "",
        mode: str = "",
        from_version: str = "",
        path: list | None = None,
        ttl: int = DEFAULT_TTL,
        force: bool = False,
        check: bool = False,
    ) -> dict:
        """Take the run lock, then resume the unfinished run of the same upgrade or start a new one
        (a previous journal that cannot be resumed is kept as ``journal-<run_id>.json``)."""
        with self._guard(check):
            holder = self.lock()
            taken_over = None
            warnings = []
            if holder and not self._mine(holder):
                stale = self.stale_reason(holder, ttl)
                if stale:
                    taken_over = dict(holder, why=f"stale: {stale}")
                elif force:
                    taken_over = dict(holder, why="force")
                elif check:
                    warnings.append(f"cluster {os.path.basename(self.dir)} is locked by {describe(holder)}; a real run would be refused")
                else:
                    raise RunStateError(
                        f"cluster {os.path.basename(self.dir)} is being upgraded by {describe(holder)}: "
                        f"wait for it to finish, or if that run is dead take the lock over with "
                        f"kong_run_lock_force=true (it becomes stale by itself after its TTL of "
                        f"{int(holder.get('ttl') or ttl)} s)",
                        holder=holder,
                    )
            previous = self.read()
            resume = (
                (previous.get("status") in RESUMABLE or (previous.get("status") == "rolled_back" and strategy in RESUMABLE_ROLLED_BACK))
                and previous.get("to") == to_version
                and previous.get("strategy") == strategy
            )
            stamp = utc_stamp(self.now())
            if resume:
                journal = merge(previous, {"status": "running", "resumed_at": stamp})
            else:
                journal = {
                    "run_id": run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.now())),
                    "cluster": os.path.basename(self.dir),
                    "strategy": strategy,
                    "mode": mode,
                    "from": from_version,
                    "to": to_version,
                    "path": list(path or []),
                    "status": "running",
                    "started_at": stamp,
                    "phases": {},
                    "nodes": {},
                    "steps": [],
                }
            archived = ""
            if not check:
                if previous and not resume:
                    archived = os.path.join(self.dir, f"journal-{previous.get('run_id') or 'old'}.json")
                    os.replace(self.journal_path, archived)
                held = self._write_lock(journal["run_id"], (holder or {}).get("started") if self._mine(holder) else None, ttl)
                write_atomic(self.journal_path, journal)
            else:
                held = holder or {}
            return dict(journal=journal, resumed=resume, archived=archived, lock=held, taken_over=taken_over, warnings=warnings, changed=not check)

    def record(
        self,
        update: dict | None = None,
        node: str = "",
        node_state: str = "",
        step: dict | None = None,
        base: dict | None = None,
        check: bool = False,
        ttl: int = DEFAULT_TTL,
    ) -> dict:
        """Merge ``update`` into the journal; ``node``/``node_state`` set one node (a failed node also
        joins ``failed_nodes``); ``step`` is appended to ``steps``. In check mode nothing is written and
        ``base`` (the journal as the play knows it) is the starting point. A record that changes
        nothing (a resumed run writing back what its first attempt recorded) writes nothing and
        reports no change; it still refreshes the run lock."""
        if not check and not os.path.exists(self.journal_path):
            raise RunStateError(f"{self.journal_path} does not exist: open the run first (the preflight role's start_run.yml)")
        with self._guard(check):
            before = base if (check and base is not None) else self.read()
            if not check:
                self._hold(ttl)
            # a copy: the node and step edits below change nested dictionaries in place
            journal = merge(copy.deepcopy(before), update or {})
            if node:
                journal.setdefault("nodes", {})[node] = node_state
                if node_state == "failed":
                    failed = list(journal.get("failed_nodes") or [])
                    journal["failed_nodes"] = failed + ([node] if node not in failed else [])
            if step:
                journal["steps"] = list(journal.get("steps") or []) + [copy.deepcopy(step)]
            changed = not check and journal != before
            if changed:
                write_atomic(self.journal_path, journal)
            return dict(journal=journal, changed=changed)

    def abort(self, phase: str, reason: str, needs_attention: bool = False, base: dict | None = None, check: bool = False, ttl: int = DEFAULT_TTL) -> dict:
        failure = dict(phase=phase, reason=reason, at=utc_stamp(self.now()), needs_attention=bool(needs_attention))
        result = self.record({"status": "failed", "failure": failure}, base=base, check=check, ttl=ttl)
        result["abort"] = dict(phase=phase, reason=reason, needs_attention=bool(needs_attention))
        return result

    def conclude(self, update: dict | None = None, base: dict | None = None, check: bool = False, ttl: int = DEFAULT_TTL) -> dict:
        """Close the journal (``ended_at``) and release the run lock."""
        update = merge({"ended_at": utc_stamp(self.now())}, update or {})
        result = self.record(update, base=base, check=check, ttl=ttl)
        if not check:
            with self._guard():
                holder = self.lock()
                if self._mine(holder):
                    os.unlink(self.lock_path)
        return result

    def _hold(self, ttl: int) -> None:
        """Refresh this run's lock; refuse to write for a run whose lock another live run holds.
        Writes without a lock of this run (after the conclusion released it, or a rollback run on its
        own) take none: a lock left behind would block the next run on another controller for its TTL."""
        holder = self.lock()
        if holder is None:
            return
        if self._mine(holder):
            self._write_lock(holder.get("run_id", ""), holder.get("started"), int(holder.get("ttl") or ttl))
            return
        if not self.stale_reason(holder, ttl):
            raise RunStateError(
                f"this run does not hold the run lock of cluster {os.path.basename(self.dir)}: {describe(holder)} holds it; this run stops without writing",
                holder=holder,
            )

    @staticmethod
    def budget(journal: dict, max_failed_nodes) -> dict:
        failed = list(journal.get("failed_nodes") or [])
        return dict(failed_nodes=failed, failed=len(failed), max_failed_nodes=int(max_failed_nodes), spent=len(failed) > int(max_failed_nodes))
