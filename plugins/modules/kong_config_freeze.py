#!/usr/bin/python
# ruff: noqa: EXE001
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kong_config_freeze
short_description: Freeze, verify and thaw the configuration of a Kong cluster
version_added: 0.1.0
description:
  - Step 1 of every Kong upgrade strategy is "stop all configuration updates". This module does it
    and proves it held.
  - O(state=frozen) fingerprints the whole configuration, records a lock (holder, time, reason, run
    id, fingerprint, expiry) in a JSON file, optionally writes a tagged marker that can be read
    through the Admin API, and optionally enforces the freeze at the load balancer in front of the
    Admin API, which then answers C(POST), C(PUT), C(PATCH) and C(DELETE) with HTTP 423 and a JSON
    body naming the lock.
  - The fingerprint is Kong's C(configuration_hash) where the node reports one (DB-less nodes and
    hybrid data planes, C(GET /status)); otherwise a sha256 over the canonical JSON of every entity
    of every page of the Admin API. Per-entity digests are kept in the lock file in both cases, so
    that drift names the entities.
  - O(state=verified) recomputes the fingerprint and fails, naming every entity added, removed or
    changed (type, name and id), if anything drifted. Kong's own C(created_at)/C(updated_at) are
    left out of the entity digests (a write that changes no field is not drift). The
    C(configuration_hash) decides only on the node and Kong version that took the fingerprint, as it is
    the md5 of the text the node loaded, so another node fed an export, or the node after an
    upgrade, reports another hash for the same entities; the entities decide there. When the Kong
    version changed since the freeze, fields the new version shows that the frozen entities did not
    have (new fields with their defaults) are left out and listed in RV(drift.new_fields).
  - O(state=thawed) verifies (unless O(force)), then removes the enforcement, the marker and the
    lock. It is idempotent.
  - A lock left by another run (another O(run_id)) is reported loudly with its holder and age;
    O(state=frozen) then fails unless O(force=true).
  - The module runs where the task runs. Use C(delegate_to) and C(run_once) to keep the lock file on
    the controller (O(enforce=none) or O(enforce=haproxy) with a TCP runtime socket), or delegate to
    the nginx host for O(enforce=nginx) (the include file and C(nginx -s reload) are local), with
    O(lock_path) on storage that later tasks and pipelines can read.
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - kongops.upgrade.kong_admin
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.actiongroup_kong
attributes:
  check_mode:
    support: full
    details:
      - The fingerprint is read (read-only Admin API calls); the lock, the marker and the enforcement
        are only predicted.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  state:
    description:
      - V(frozen) takes the lock and enforces it, V(verified) checks nothing drifted,
        V(thawed) verifies and releases.
    type: str
    required: true
    choices: [frozen, verified, thawed]
  cluster:
    description:
      - Name of the Kong cluster; used in the default O(lock_path), the marker name and the default
        O(haproxy_map_key).
    type: str
    default: kong
  run_id:
    description:
      - Identifier of the pipeline run that owns the freeze, for example the AWX job id. Required with
        O(state=frozen). Re-running V(frozen) with the same run id changes nothing.
      - With V(verified) or V(thawed), a lock held by another run id fails unless O(force=true).
    type: str
  holder:
    description:
      - Who holds the lock. Defaults to C(<user>@<host>) of the machine the module runs on.
    type: str
  reason:
    description:
      - Why the configuration is frozen; shown in the lock, the marker and the 423 answers.
    type: str
    default: Kong upgrade
  lock_path:
    description:
      - The lock file. Defaults to C(~/.kongops/locks/<cluster>.json) on the machine the module runs on.
      - Written with mode 0600 (directory 0700), atomically.
    type: path
  lock_ttl:
    description:
      - Seconds after which the lock counts as expired. An expired lock is still a lock (it is reported
        as "most likely died"), only O(force=true) takes it over.
    type: int
    default: 86400
  force:
    description:
      - With V(frozen), take over a lock held by another run id (reported as a warning).
      - With V(thawed), skip the verification and release even if the configuration drifted, or if
        the lock belongs to another run id.
      - With V(verified), accept a lock held by another run id.
    type: bool
    default: false
  marker:
    description:
      - Also write a marker readable through the Admin API, a consumer named
        C(kongops-freeze-<cluster>) tagged C(kongops-freeze) whose C(custom_id) holds the lock as JSON
        (C(GET /consumers?tags=kongops-freeze)). The fingerprint leaves it out.
      - DB-less nodes and data planes refuse every entity write, so there the marker is skipped with a
        warning.
    type: bool
    default: false
  enforce:
    description:
      - V(none) records and verifies only.
      - V(nginx) writes O(enforce_file), an include placed in the C(server) block that fronts the
        Admin API. The operator adds C(include <enforce_file>;) to that server block once; the module
        writes the refusal rule into it, validates with C(nginx -t) (the previous file comes back if
        the test fails) and reloads nginx. Thawing writes a comment-only file (the include must stay
        loadable).
      - V(haproxy) sets the key O(haproxy_map_key) in the map O(haproxy_map) through the runtime API
        (HAProxy cannot add rules at runtime) and persists it to the map file. The operator adds this
        line once to the frontend or listen section that fronts the Admin API (here with cluster
        C(kong) and map C(/etc/haproxy/kong-freeze.map), which must exist, empty is fine)
        C(http-request return status 423 content-type application/json lf-string
        "%[str(kong),map(/etc/haproxy/kong-freeze.map)]" if { method POST PUT PATCH DELETE }
        { str(kong),map(/etc/haproxy/kong-freeze.map) -m found }).
      - With V(thawed) the enforcement recorded in the lock is removed, whatever this option says.
    type: str
    default: none
    choices: [none, nginx, haproxy]
  enforce_file:
    description:
      - The nginx include file for O(enforce=nginx).
    type: path
  nginx_bin:
    description:
      - The nginx executable used for C(nginx -t) and C(nginx -s reload).
    type: str
    default: nginx
  nginx_conf:
    description:
      - Main nginx configuration, passed as C(-c) when set.
    type: path
  nginx_prefix:
    description:
      - nginx prefix directory, passed as C(-p) when set.
    type: path
  haproxy_socket:
    description:
      - HAProxy runtime API with C(level admin), a UNIX socket path or C(host:port).
    type: str
  haproxy_map:
    description:
      - The map file named in the 423 rule (the runtime API addresses the map by this path).
    type: path
  haproxy_map_key:
    description:
      - Key of the freeze entry in the map; the 423 rule looks up C(str(<key>)). Defaults to O(cluster).
    type: str
  haproxy_persist:
    description:
      - Also write the entry to the map file, so that the freeze survives a reload or restart of
        HAProxy. Needs the file to be local to where the module runs. Without it a reload silently
        lifts the freeze.
    type: bool
    default: true
  enforce_probe_url:
    description:
      - URL of the Admin API through the enforcing front (for example C(http://lb:8001)). When set, the
        module proves the enforcement works by deleting a consumer that cannot exist, expecting 423
        while frozen and anything else after thawing, retrying for O(enforce_probe_timeout) seconds.
    type: str
  enforce_probe_timeout:
    description:
      - Seconds to wait for the probe to see the expected answer (nginx reloads asynchronously).
    type: int
    default: 15
requirements:
  - requests
notes:
  - Writes made directly to a node, bypassing the enforcing front, are not blocked; O(state=verified)
    catches them.
seealso:
  - module: kongops.upgrade.kong_upgrade_check
"""

EXAMPLES = r"""
- name: Freeze the configuration, enforced by nginx in front of the Admin API
  kongops.upgrade.kong_config_freeze:
    state: frozen
    admin_url: http://kong-1:8001
    cluster: prod
    run_id: "{{ tower_job_id | default(ansible_date_time.epoch) }}"
    reason: "Upgrade 3.8.1 -> 3.9.3"
    enforce: nginx
    enforce_file: /etc/nginx/kong-admin-freeze.conf
    enforce_probe_url: http://kong-admin.example.com
    lock_path: /srv/shared/kongops/prod.lock.json
  delegate_to: "{{ groups['kong_lb'][0] }}"
  run_once: true

- name: Freeze with HAProxy enforcement and a marker, lock on the controller
  kongops.upgrade.kong_config_freeze:
    state: frozen
    admin_url: http://kong-1:8001
    run_id: "{{ run_id }}"
    marker: true
    enforce: haproxy
    haproxy_socket: lb-1:9999
    haproxy_map: /etc/haproxy/kong-freeze.map
    haproxy_persist: false
  delegate_to: localhost
  run_once: true

- name: Check nothing changed during the upgrade
  kongops.upgrade.kong_config_freeze:
    state: verified
    admin_url: http://kong-1:8001
    run_id: "{{ run_id }}"
  delegate_to: localhost
  run_once: true

- name: Thaw (verifies first)
  kongops.upgrade.kong_config_freeze:
    state: thawed
    admin_url: http://kong-1:8001
    run_id: "{{ run_id }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
state:
  description: The state requested.
  returned: always
  type: str
  sample: frozen
lock_path:
  description: The lock file used.
  returned: always
  type: str
  sample: /root/.kongops/locks/kong.json
lock:
  description: The lock record (after the task; the prediction in check mode), without per-entity digests.
  returned: when a lock exists or was predicted
  type: dict
  contains:
    holder:
      description: Who holds the lock.
      type: str
      sample: deploy@ci-runner-3
    time:
      description: When the lock was taken (UTC, ISO 8601).
      type: str
      sample: "2026-05-01T10:00:00Z"
    reason:
      description: Why.
      type: str
      sample: Kong upgrade
    run_id:
      description: Run that owns the lock.
      type: str
      sample: "4711"
    expiry:
      description: When the lock counts as expired (UTC).
      type: str
      sample: "2026-05-02T10:00:00Z"
    fingerprint:
      description: Summary of the recorded fingerprint (see RV(fingerprint)).
      type: dict
      sample: {"kind": "entities_sha256", "value": "9f2c...", "entity_count": 12}
    enforcement:
      description: The enforcement installed with the lock.
      type: dict
      sample: {"type": "nginx", "file": "/etc/nginx/kong-admin-freeze.conf"}
    marker:
      description: Whether a marker consumer was written.
      type: bool
      sample: false
fingerprint:
  description: The fingerprint computed now.
  returned: unless the state was thawed with nothing to release
  type: dict
  contains:
    kind:
      description: C(configuration_hash) (DB-less node or data plane) or C(entities_sha256).
      type: str
      sample: configuration_hash
    value:
      description: The fingerprint value.
      type: str
      sample: 5f2c6a0e8e2f4a8f9b0c1d2e3f405162
    entities_sha256:
      description: sha256 over the canonical JSON of every entity (always computed).
      type: str
      sample: 9f2c6d...
    entity_count:
      description: Entities fingerprinted (the marker excluded).
      type: int
      sample: 12
    by_type:
      description: Entities per type.
      type: dict
      sample: {"services": 2, "routes": 3}
drift:
  description: Comparison of the recorded and the current fingerprint.
  returned: when a lock was compared
  type: dict
  contains:
    drifted:
      description: Whether anything changed.
      type: bool
      sample: true
    added:
      description: Entities that appeared (type, id, name).
      type: list
      elements: dict
      sample: [{"change": "added", "type": "services", "id": "a1b2...", "name": "sneaky"}]
    removed:
      description: Entities that disappeared.
      type: list
      elements: dict
      sample: []
    changed:
      description: Entities whose content changed.
      type: list
      elements: dict
      sample: []
    value_before:
      description: Recorded fingerprint value.
      type: str
      sample: 9f2c...
    value_after:
      description: Current fingerprint value.
      type: str
      sample: 1a7e...
    value_compared:
      description: Whether the values were compared (a C(configuration_hash) only on the same node and version).
      type: bool
      sample: true
    version_before:
      description: Kong version of the node that took the fingerprint.
      type: str
      sample: 3.8.1
    version_after:
      description: Kong version of the node compared now.
      type: str
      sample: 3.9.3
    new_fields:
      description: Per entity type (C(plugins:<name>) for plugins), fields a newer Kong version added, left out.
      type: dict
      sample: {"plugins:key-auth": ["config.realm"]}
compared:
  description: Set when only the entities were compared, with the reason.
  returned: when the fingerprint value could not be compared
  type: str
  sample: "entities only: the configuration_hash of another node or another Kong version is not comparable"
enforcement:
  description: State of the enforcement after the task.
  returned: when enforcement is configured or recorded
  type: dict
  sample: {"type": "haproxy", "active": true, "run_id": "4711", "map": "/etc/haproxy/kong-freeze.map", "key": "kong"}
probe:
  description: Result of the enforcement probe through O(enforce_probe_url).
  returned: when O(enforce_probe_url) is set and something was enforced or lifted
  type: dict
  sample: {"url": "http://lb:8001", "status": 423, "verified": true}
marker:
  description: The marker consumer after the task (V(null) when none).
  returned: when O(marker=true) or a marker was recorded
  type: dict
  sample: {"username": "kongops-freeze-kong", "tags": ["kongops-freeze", "kongops-run-4711"]}
stale_lock:
  description: A lock of another run found by this task, with holder and age.
  returned: when such a lock was found
  type: dict
  sample: {"holder": "ops@bastion", "run_id": "4690", "age": "3h 12m", "expired": false}
"""

import getpass
import os
import socket
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kongops.upgrade.plugins.module_utils._argspec import kong_argument_spec
from ansible_collections.kongops.upgrade.plugins.module_utils._freeze import (
    FreezeError,
    HaproxyEnforcer,
    LockFile,
    NginxEnforcer,
    compare,
    compute_fingerprint,
    default_lock_path,
    delete_marker,
    describe_drift,
    describe_lock,
    lock_age,
    lock_record,
    node_kind,
    probe_enforcement,
    public_record,
    read_marker,
    summary,
    write_marker,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    KongAdminClient,
    KongAdminError,
)


def _enforcer_from_params(module, p):
    if p["enforce"] == "nginx":
        return NginxEnforcer(p["enforce_file"], module.run_command, p["nginx_bin"], p["nginx_conf"], p["nginx_prefix"])
    if p["enforce"] == "haproxy":
        return HaproxyEnforcer(p["haproxy_socket"], p["haproxy_map"], p["haproxy_map_key"] or p["cluster"], p["timeout"], p["haproxy_persist"])
    return None


def _enforcer_from_record(module, settings):
    if not settings:
        return None
    if settings.get("type") == "nginx":
        cmd = settings.get("nginx_cmd") or ["nginx"]
        prefix = cmd[cmd.index("-p") + 1] if "-p" in cmd else None
        conf = cmd[cmd.index("-c") + 1] if "-c" in cmd else None
        return NginxEnforcer(settings["file"], module.run_command, cmd[0], conf, prefix)
    if settings.get("type") == "haproxy":
        return HaproxyEnforcer(settings["socket"], settings["map"], settings["key"], module.params["timeout"], settings.get("persist", True))
    return None


class Freeze:
    """One task: reads state, decides, writes (unless check mode), fills the result."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.client = KongAdminClient.from_params(self.p)
        self.lock = LockFile(self.p["lock_path"] or default_lock_path(self.p["cluster"]))
        self.result = {"changed": False, "state": self.p["state"], "lock_path": self.lock.path}

    def fail(self, msg, **extra):
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    def probe(self, expect_frozen):
        url = self.p["enforce_probe_url"]
        if not url or self.module.check_mode:
            return
        res = probe_enforcement(url, expect_frozen, self.p["enforce_probe_timeout"], self.p["admin_token"], self.p["validate_certs"], self.p["ca_path"])
        self.result["probe"] = res
        if not res["verified"]:
            want = "423" if expect_frozen else "an answer other than 423"
            raise FreezeError(
                f"The enforcement probe through {url} did not get {want} within "
                f"{self.p['enforce_probe_timeout']} s (last status {res['status']}): the front of "
                "the Admin API does not behave as the freeze requires"
            )

    def stale(self, record):
        info = lock_age(record)
        self.result["stale_lock"] = info
        return info

    def diff(self, before, after):
        if self.module._diff:
            self.result["diff"] = {"before": before, "after": after}

    @staticmethod
    def view(record, enforcement_active, marker_present):
        if record is None:
            return {"frozen": False, "enforcement_active": enforcement_active, "marker_present": marker_present}
        return {
            "frozen": True,
            "run_id": record.get("run_id"),
            "holder": record.get("holder"),
            "reason": record.get("reason"),
            "expiry": record.get("expiry"),
            "enforcement_active": enforcement_active,
            "marker_present": marker_present,
        }

    def verify(self, record):
        frozen = record.get("fingerprint") or {}
        kind = node_kind(self.client)
        upgraded = (frozen.get("node") or {}).get("version") != kind["version"]
        current = compute_fingerprint(self.client, kind, shapes=frozen.get("shapes") if upgraded else None)
        self.result["fingerprint"] = summary(current)
        drift = compare(frozen, current)
        self.result["drift"] = drift
        if not drift["value_compared"]:
            self.result["compared"] = f"entities only: the {frozen.get('kind')} of another node or another Kong version is not comparable"
        return drift

    # ------------------------------------------------------------------ frozen
    def frozen(self):
        p = self.p
        existing = self.lock.read()
        if existing and existing.get("run_id") != p["run_id"]:
            info = self.stale(existing)
            if not p["force"]:
                self.fail(
                    f"Kong cluster '{p['cluster']}' is already frozen: lock {self.lock.path} "
                    f"{describe_lock(info)}. Thaw it with that run_id, or take it over with force=true."
                )
            self.module.warn(f"Taking over the freeze lock {self.lock.path} {describe_lock(info)} (force=true).")
            return self.freeze(takeover=True)
        if existing:
            return self.refreeze(existing)
        return self.freeze(takeover=False)

    def freeze(self, takeover):
        p = self.p

        kind = node_kind(self.client)
        record = lock_record(p["holder"], p["reason"], p["run_id"], p["lock_ttl"], p["cluster"])
        enforcer = _enforcer_from_params(self.module, p)
        record["enforcement"] = enforcer.settings() if enforcer else {"type": "none"}
        use_marker = p["marker"]
        if use_marker and kind["dbless"]:
            self.module.warn(
                "marker=true skipped: the node is DB-less or a data plane, which refuses every "
                "entity write (405, Kong/kong kong/db/strategies/off/init.lua); the lock file and the fingerprint still apply."
            )
            use_marker = False
        record["marker"] = use_marker
        before_enf = enforcer.state() if enforcer else None
        self.result["changed"] = True
        if self.module.check_mode:
            record["fingerprint"] = compute_fingerprint(self.client, kind)
            self.result.update(lock=public_record(record), fingerprint=summary(record["fingerprint"]))
            if enforcer:
                self.result["enforcement"] = dict(before_enf, active=True, run_id=p["run_id"])
            self.diff(self.view(None, bool(before_enf and before_enf["active"]), False), self.view(record, bool(enforcer), use_marker))
            return
        done = []
        try:
            if use_marker:
                write_marker(self.client, p["cluster"], record)
                done.append("marker")
            if enforcer:
                enforcer.apply(record)
                done.append("enforcement")
                self.probe(True)
            record["fingerprint"] = compute_fingerprint(self.client, kind)
            if takeover:
                self.lock.replace(record)
            elif not self.lock.create(record):
                raise FreezeError(f"another run created the lock {self.lock.path} while this one was freezing")
        except (FreezeError, KongAdminError):
            self.rollback(done, enforcer)
            raise
        self.result.update(lock=public_record(record), fingerprint=summary(record["fingerprint"]))
        if enforcer:
            self.result["enforcement"] = enforcer.state()
        if use_marker:
            self.result["marker"] = read_marker(self.client, p["cluster"])
        self.diff(self.view(None, bool(before_enf and before_enf["active"]), False), self.view(record, bool(enforcer), use_marker))

    def rollback(self, done, enforcer):
        if "enforcement" in done:
            try:
                enforcer.remove()
            except FreezeError as exc:
                self.module.warn(f"Could not remove the enforcement after the failed freeze: {exc}; remove it by hand or run state=thawed with force=true")
        if "marker" in done:
            try:
                delete_marker(self.client, self.p["cluster"])
            except KongAdminError as exc:
                self.module.warn(f"Could not remove the marker after the failed freeze: {exc}")

    def refreeze(self, record):
        """Same run id: keep the recorded fingerprint, put back any piece that went missing."""
        p = self.p
        enforcer = _enforcer_from_record(self.module, record.get("enforcement"))
        enf = enforcer.state() if enforcer else None
        marker = read_marker(self.client, p["cluster"]) if record.get("marker") else None
        missing = []
        if enforcer and not (enf["active"] and enf["run_id"] == record["run_id"]):
            missing.append("enforcement")
        if record.get("marker") and marker is None:
            missing.append("marker")
        drift = self.verify(record)
        if drift["drifted"]:
            self.module.warn(f"The configuration drifted since run {record['run_id']} froze it: {describe_drift(drift)}")
        self.result["lock"] = public_record(record)
        before = self.view(record, bool(enf and enf["active"]), marker is not None)
        if missing:
            self.result["changed"] = True
            self.result["restored"] = missing
            if not self.module.check_mode:
                if "marker" in missing:
                    write_marker(self.client, p["cluster"], record)
                    marker = read_marker(self.client, p["cluster"])
                if "enforcement" in missing:
                    enforcer.apply(record)
                    self.probe(True)
                    enf = enforcer.state()
        if enforcer:
            self.result["enforcement"] = enf if not (missing and self.module.check_mode) else dict(enf, active=True)
        if record.get("marker"):
            self.result["marker"] = marker
        self.diff(before, self.view(record, bool(enforcer), bool(record.get("marker"))))

    # ------------------------------------------------------------------ verified
    def owned(self, record):
        p = self.p
        if p["run_id"] and record.get("run_id") != p["run_id"]:
            info = self.stale(record)
            if not p["force"]:
                self.fail(
                    f"The lock {self.lock.path} belongs to another run: {describe_lock(info)}; this task "
                    f"runs as run_id {p['run_id']}. Use that run_id, or force=true."
                )
            self.module.warn(f"Acting on the lock of another run (force=true): {describe_lock(info)}")

    def verified(self):
        record = self.lock.read()
        if record is None:
            self.fail(f"Kong cluster '{self.p['cluster']}' is not frozen: no lock at {self.lock.path}")
        self.owned(record)
        self.result["lock"] = public_record(record)
        enforcer = _enforcer_from_record(self.module, record.get("enforcement"))
        if enforcer:
            enf = enforcer.state()
            self.result["enforcement"] = enf
            if not (enf["active"] and enf["run_id"] == record["run_id"]):
                self.module.warn(
                    f"The {enf['type']} enforcement of run {record['run_id']} is no longer in place "
                    f"({enf}); writes through the front are not blocked. Re-run state=frozen to "
                    "restore it."
                )
        drift = self.verify(record)
        if drift["drifted"]:
            self.fail(f"The Kong configuration drifted while frozen by run {record['run_id']}: {describe_drift(drift)}")

    # ------------------------------------------------------------------ thawed
    def thawed(self):
        p = self.p
        record = self.lock.read()
        if record is not None:
            self.owned(record)
            self.result["lock"] = public_record(record)
            if p["force"]:
                self.result["verification"] = "skipped (force=true)"
            else:
                drift = self.verify(record)
                if drift["drifted"]:
                    self.fail(
                        f"Not thawing: the Kong configuration drifted while frozen by run "
                        f"{record['run_id']}: {describe_drift(drift)}. Nothing was released; investigate, "
                        "then thaw with force=true."
                    )
            enforcer = _enforcer_from_record(self.module, record.get("enforcement"))
            use_marker = bool(record.get("marker"))
        else:
            enforcer = _enforcer_from_params(self.module, p)
            use_marker = p["marker"]
            self.result["verification"] = "skipped (no lock to compare with)"
        enf = enforcer.state() if enforcer else None
        marker = read_marker(self.client, p["cluster"]) if use_marker and not self.dbless() else None
        active = bool(enf and enf["active"])
        self.result["changed"] = bool(record is not None or active or marker is not None)
        self.diff(self.view(record, active, marker is not None), self.view(None, False, False))
        if enforcer:
            self.result["enforcement"] = dict(enf, active=False, run_id=None)
        if use_marker:
            self.result["marker"] = None
        if not self.result["changed"] or self.module.check_mode:
            return
        if active:
            enforcer.remove()
            self.probe(False)
            self.result["enforcement"] = enforcer.state()
        if marker is not None:
            delete_marker(self.client, p["cluster"])
        self.lock.remove()

    def dbless(self):
        return node_kind(self.client)["dbless"]


def main():
    argument_spec = kong_argument_spec(
        admin=True,
        state={"type": "str", "required": True, "choices": ["frozen", "verified", "thawed"]},
        cluster={"type": "str", "default": "kong"},
        run_id={"type": "str"},
        holder={"type": "str"},
        reason={"type": "str", "default": "Kong upgrade"},
        lock_path={"type": "path"},
        lock_ttl={"type": "int", "default": 86400},
        force={"type": "bool", "default": False},
        marker={"type": "bool", "default": False},
        enforce={"type": "str", "default": "none", "choices": ["none", "nginx", "haproxy"]},
        enforce_file={"type": "path"},
        nginx_bin={"type": "str", "default": "nginx"},
        nginx_conf={"type": "path"},
        nginx_prefix={"type": "path"},
        haproxy_socket={"type": "str"},
        haproxy_map={"type": "path"},
        haproxy_map_key={"type": "str", "no_log": False},
        haproxy_persist={"type": "bool", "default": True},
        enforce_probe_url={"type": "str"},
        enforce_probe_timeout={"type": "int", "default": 15},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[
            ("state", "frozen", ["run_id"]),
            ("enforce", "nginx", ["enforce_file"]),
            ("enforce", "haproxy", ["haproxy_socket", "haproxy_map"]),
        ],
    )
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)
    p = module.params
    if p["lock_ttl"] <= 0:
        module.fail_json(msg="lock_ttl must be a positive number of seconds")
    if p["enforce_probe_timeout"] < 0:
        module.fail_json(msg="enforce_probe_timeout must be 0 or more seconds")
    if not p["holder"]:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        p["holder"] = f"{user}@{socket.gethostname()}"

    task = Freeze(module)
    try:
        getattr(task, p["state"])()
    except FreezeError as exc:
        module.fail_json(msg=str(exc), **exc.context, **task.result)
    except KongAdminError as exc:
        module.fail_json(msg=f"Kong Admin API error: {exc}", status_code=exc.status, body=exc.body, **task.result)
    except Exception as exc:  # noqa: BLE001  # pylint: disable=broad-except
        module.fail_json(msg=f"Unexpected error: {exc}", exception=traceback.format_exc(), **task.result)
    module.exit_json(**task.result)


if __name__ == "__main__":
    main()
