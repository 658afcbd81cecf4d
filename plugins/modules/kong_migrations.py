# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kong_migrations
short_description: Bring a Kong database to a migrations state with C(kong migrations)
version_added: 0.1.0
description:
  - Runs on a Kong node and drives C(kong migrations) with the node's C(kong.conf), so Kong itself
    decides which migrations exist for the installed version.
  - Reads the state from C(kong migrations list) (exit code and the executed, pending and new names per
    subsystem); before deciding, on Kong 3.0 and later, also from C(kong migrations status) (JSON) as a
    cross-check; and,
    when O(schema_meta_check) is on, from the C(schema_meta) table read with psycopg2. Views that disagree
    are re-read (another node may be migrating) and then reported as an error naming both.
  - Runs only what the requested O(state) needs, so every state is idempotent, and reports C(changed)
    only when migrations ran.
  - Kong's two phases are kept apart. C(up) runs the new migrations and leaves those with a teardown
    pending; old nodes keep working. C(finish) runs the teardowns, after which older nodes can no longer
    use the database, so it is gated by O(finish_gate_nodes).
  - "When another node holds Kong's migration lock, Kong prints C(aborted: another node is performing
    database changes). The module then waits (up to O(lock_timeout) seconds) until the other node's work
    shows in the state, and reports RV(lock_aborted) and the final state without claiming a change."
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - kongops.upgrade.kong_cli
  - kongops.upgrade.kong_pg
  - kongops.upgrade.kong_admin
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.actiongroup_kong
attributes:
  check_mode:
    support: partial
    details:
      - Runs only the read-only C(kong migrations list)/C(status) and the finish gate, and returns the
        commands that would run with the names of the migrations each would process in RV(plan).
      - Names are not known before running for C(bootstrap) (every migration the binary knows), nor which
        C(up) migrations stay pending (that depends on each migration having a teardown), so RV(after)
        is null for O(state=bootstrapped) and O(state=up) when something would run.
  diff_mode:
    support: partial
    details:
      - The diff shows the pending and new migrations before and after; in check mode only where
        RV(after) can be predicted.
  platform:
    platforms: posix
options:
  state:
    description:
      - V(bootstrapped) runs C(kong migrations bootstrap) on a database that needs it, and nothing otherwise.
      - V(up) runs C(kong migrations up) when new migrations exist. Migrations left pending are fine
        (old and new nodes can share the database). When the database also holds pending migrations from
        an earlier upgrade Kong refuses C(up); the module fails with guidance unless O(force=true).
      - V(finished) runs C(kong migrations finish) when migrations are pending. New migrations that were
        never C(up)ed are reported with a warning, not run.
      - V(current) runs whatever is needed (C(finish) of earlier pending ones, C(up), C(finish)) until
        nothing is pending or new.
      - V(list) only reads and reports the state. It is deprecated and will be removed in version 2.0.0 of
        the collection; use M(kongops.upgrade.kong_migrations_info) instead.
      - States other than V(bootstrapped) and V(list) fail on a database that needs bootstrapping, so that a
        C(kong.conf) pointing at the wrong database is not silently initialised.
      - The module checks the value itself rather than listing choices, so that the deprecated read-only
        V(list) stays accepted.
    type: str
    required: true
  force:
    description:
      - Add C(-f) to the C(up) and C(finish) commands the module runs, and allow C(up) while pending
        migrations of an earlier upgrade exist. With C(-f) Kong also re-runs migrations already recorded as
        executed. The module never runs a command the state does not need, also with O(force=true).
    type: bool
    default: false
  db_timeout:
    description:
      - Passed as C(--db-timeout) (seconds). Kong 2.8 to 3.6 default to 60; from 3.7 Kong uses C(pg_timeout)
        from C(kong.conf) unless this is set.
    type: int
  lock_timeout:
    description:
      - Passed as C(--lock-timeout) (seconds); how long C(up) waits for another node's lock. Also bounds how
        long the module waits for another node's migrations to show in the state. Kong's default is 60.
    type: int
  finish_gate_nodes:
    description:
      - Admin API URLs of every node that uses this database. Before any C(finish), C(GET /) of each must
        report a version not older than O(finish_gate_version); otherwise the module refuses and lists the
        offenders, having changed nothing.
      - O(admin_token), O(validate_certs), O(ca_path) and O(timeout) apply to these requests.
    type: list
    elements: str
    default: []
  finish_gate_version:
    description:
      - The lowest version the O(finish_gate_nodes) may run. Defaults to the version of the local
        C(kong) binary (C(kong version)), the version being migrated to.
    type: str
  finish_gate_unreachable:
    description:
      - How a node of O(finish_gate_nodes) that does not answer at all (connection refused, timeout) counts.
      - V(fail) counts it as an offender. V(absent) counts it as gone, which suits in-place upgrades where
        the old nodes are stopped before C(finish); a node that answers with an HTTP error always counts as
        an offender.
    type: str
    choices: [fail, absent]
    default: fail
  finish_gate_db_clients:
    description:
      - Addresses or host names of every Kong node that may be connected to the database when C(finish)
        runs (the nodes of O(finish_gate_nodes)). Before any C(finish), C(pg_stat_activity) is read through
        the O(pg_host), O(pg_port), O(pg_user), O(pg_password) and O(pg_database) options; a Kong connection
        (C(application_name) C(kong)) from any other address makes the module refuse, having changed nothing.
      - A loopback entry also accepts connections over a Unix socket.
      - Empty (the default) skips this check.
    type: list
    elements: str
    default: []
  schema_meta_check:
    description:
      - Cross-check the state with the C(schema_meta) table read through the O(pg_host), O(pg_port),
        O(pg_user), O(pg_password), O(pg_database) and O(pg_schema) options, and watch Kong's migration lock
        (table C(locks)) to wait for another node instead of guessing.
      - Defaults to V(true) when O(pg_password) is set, V(false) otherwise.
    type: bool
  admin_url:
    description:
      - Not used by this module (the gate uses O(finish_gate_nodes)); accepted so that C(module_defaults)
        for C(group/kongops.upgrade.kong) apply to it.
    type: str
    default: http://127.0.0.1:8001
notes:
  - The database password reaches C(kong) only through the environment (O(kong_env), for example
    C(KONG_PG_PASSWORD)), never on the command line.
  - Run it once per database (C(run_once), or a single host). Two nodes running it at the same time are
    safe, because Kong's lock lets one of them migrate and the other reports the result.
  - Kong's Helm chart runs C(finish) as soon as new pods are ready; here C(finish) waits for the gate.
seealso:
  - module: kongops.upgrade.kong_migrations_info
  - module: kongops.upgrade.kong_node_info
  - name: Kong upgrade guide
    description: Kong's two-phase migrations (up, then finish) and the supported upgrade paths.
    link: https://developer.konghq.com/gateway/upgrade/
requirements:
  - the C(kong) CLI on the host that runs the module
  - requests (when O(finish_gate_nodes) is set)
"""

EXAMPLES = r"""
- name: Run the new migrations of the installed Kong (old nodes keep working)
  kongops.upgrade.kong_migrations:
    state: up
    kong_conf: /etc/kong/kong.conf
    kong_env:
      KONG_PG_PASSWORD: "{{ kong_pg_password }}"
    pg_host: db.internal
    pg_password: "{{ kong_pg_password }}"
  run_once: true
  register: migrations_up

- name: Show what is still pending
  ansible.builtin.debug:
    var: migrations_up.after.pending

- name: Finish once no node older than the target version answers
  kongops.upgrade.kong_migrations:
    state: finished
    kong_conf: /etc/kong/kong.conf
    kong_env:
      KONG_PG_PASSWORD: "{{ kong_pg_password }}"
    finish_gate_nodes: "{{ groups['kong_x'] | map('extract', hostvars, 'kong_admin_url') | list }}"
    finish_gate_unreachable: absent
    lock_timeout: 120
  run_once: true

- name: Read the state only
  kongops.upgrade.kong_migrations_info:
    kong_conf: /etc/kong/kong.conf
  register: migrations

- name: Fail early when the database is not fully migrated
  ansible.builtin.assert:
    that: migrations.status == 'current'
"""

RETURN = r"""
state:
  description: The requested state.
  returned: always
  type: str
  sample: up
status:
  description:
    - The database's migrations status after the run (the prediction in check mode, when known).
    - One of V(needs_bootstrap), V(current), V(pending), V(new), V(pending_and_new).
  returned: success
  type: str
  sample: pending
before:
  description:
    - The state before the run, as the local C(kong) binary sees the database, in the shape of
      RV(kongops.upgrade.kong_migrations_info#module:migrations) (C(status), C(needs_bootstrap), C(executed),
      C(pending) and C(new) per subsystem, C(counts)).
  returned: success
  type: dict
  sample: {"status": "new", "needs_bootstrap": false, "executed": {"core": ["000_base"]}, "pending": {},
           "new": {"acme": ["001_280_to_300"]}, "counts": {"executed": 40, "pending": 0, "new": 15}}
after:
  description:
    - The state after the run, re-read from Kong, in the shape of RV(before).
    - In check mode the prediction, or null where it cannot be known before running.
  returned: success
  type: dict
  sample: {"status": "pending", "pending": {"core": ["016_280_to_300"]}, "new": {}}
plan:
  description:
    - The commands the run needed from the state before, with the migrations each would process
      (null where Kong decides while running). In check mode, what would run.
  returned: success
  type: list
  elements: dict
  sample: [{"command": "up", "migrations": {"core": ["016_280_to_300", "017_300_to_310"]}}]
ran:
  description:
    - The C(kong migrations) sub-commands that ran, not counting those Kong aborted because another node
      held the lock. One may have found nothing left to do when another node got there first; RV(migrated)
      and C(changed) tell what this run did.
  returned: success
  type: list
  elements: str
  sample: [up]
migrated:
  description: What the commands reported per subsystem (C(<subsystem> migrated up to <name> (<state>))).
  returned: success
  type: dict
  sample: {"core": [{"name": "016_280_to_300", "state": "pending"}]}
commands:
  description: Every C(kong) command the module ran, in order, with its exit code and output.
  returned: always
  type: list
  elements: dict
  sample: [{"cmd": ["kong", "migrations", "list", "-c", "/etc/kong/kong.conf"], "rc": 5,
            "stdout": "Executed migrations:\n...", "stderr": ""}]
lock_aborted:
  description: "Kong printed C(aborted: another node is performing database changes) at least once."
  returned: success
  type: bool
  sample: false
concurrent:
  description: Another node ran migrations during this run (lock abort, or Kong refusing C(up) because the
    other node's C(up) had just recorded pending migrations).
  returned: success
  type: bool
  sample: false
kong_version:
  description:
    - Version of the local C(kong) binary (C(kong version)), when the finish gate needed it as its default
      O(finish_gate_version); null otherwise, to spare a C(kong) call.
  returned: success
  type: str
  sample: 3.4.2
finish_gate:
  description: The finish gate's verdict per node; null when no C(finish) was needed or no nodes were given.
  returned: success
  type: dict
  sample: {"version": "3.4.2", "passed": true,
           "nodes": [{"url": "http://kong1:8001", "version": "3.4.2", "verdict": "ok", "reason": null}]}
finish_gate_db:
  description:
    - The Kong connections C(pg_stat_activity) showed before C(finish), by client address, and those from
      none of O(finish_gate_db_clients); null when no C(finish) was needed or the option is empty.
  returned: success
  type: dict
  sample: {"passed": true, "sessions": [{"client": "10.0.0.11", "count": 4}], "foreign": []}
schema_meta_checked:
  description: Whether C(schema_meta) was read and agreed with C(kong migrations list).
  returned: success
  type: bool
  sample: true
status_checked:
  description: Whether C(kong migrations status) (Kong 3.0+) was read and agreed with C(kong migrations list).
  returned: success
  type: bool
  sample: true
entity_counts:
  description:
    - Rows per Kong entity table (services, routes, plugins, consumers, ...) after the run, read through the
      C(pg_*) options (only tables that exist); null when O(schema_meta_check) is off.
  returned: success
  type: dict
  sample: {"services": 3, "routes": 5, "plugins": 2, "consumers": 1}
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
  sample: ran up; the database is now 'pending'
"""

import functools

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kongops.upgrade.plugins.module_utils._argspec import kong_argument_spec
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    KongAdminClient,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import (
    KongCli,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import (
    HAS_PSYCOPG2,
    PSYCOPG2_IMPORT_ERROR,
    KongDb,
    KongDbError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_migrations import (
    DESIRED_STATES,
    KongMigrations,
    KongMigrationsError,
    check_db_sessions,
    check_finish_gate,
    check_migrations_params,
    find_kong,
    kong_not_found,
    migrations_argument_spec,
    kong_sessions,
    resolve_clients,
    summary,
    uses_schema_meta,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._versions import (
    KongVersionError,
    parse_version,
)


def argument_spec() -> dict:
    spec = migrations_argument_spec()
    spec.update(kong_argument_spec(admin=True))
    spec.update(
        # No `choices`: the read-only `list` stays accepted (deprecated) without being advertised.
        state={"type": "str", "required": True},
        force={"type": "bool", "default": False},
        finish_gate_nodes={"type": "list", "elements": "str", "default": []},
        finish_gate_version={"type": "str"},
        finish_gate_unreachable={
            "type": "str",
            "choices": ["fail", "absent"],
            "default": "fail",
        },
        finish_gate_db_clients={"type": "list", "elements": "str", "default": []},
    )
    return spec


def check_params(module) -> None:
    p = module.params
    if p["state"] not in DESIRED_STATES:
        module.fail_json(
            msg=f"value of state must be one of: {', '.join(s for s in DESIRED_STATES if s != 'list')}, "
            f"got: {p['state']} (to read the state use kongops.upgrade.kong_migrations_info)"
        )
    problem = check_migrations_params(p)
    if problem:
        module.fail_json(msg=problem)
    if p["finish_gate_version"]:
        try:
            parse_version(p["finish_gate_version"])
        except KongVersionError as exc:
            module.fail_json(msg=f"finish_gate_version: {exc}")
    for url in p["finish_gate_nodes"]:
        if not url.startswith(("http://", "https://")):
            module.fail_json(msg=f"finish_gate_nodes: '{url}' is not an Admin API URL (http:// or https://)")


def state_dict(state):
    return state.as_dict() if state is not None else None


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    check_params(module)
    if p["state"] == "list":
        module.deprecate(
            "state=list is deprecated: read the state with kongops.upgrade.kong_migrations_info, which takes the same kong_* and pg_* options",
            version="2.0.0",
            collection_name="kongops.upgrade",
        )
    use_db = uses_schema_meta(p)
    if (use_db or p["finish_gate_db_clients"]) and not HAS_PSYCOPG2:
        module.fail_json(
            msg=missing_required_lib("psycopg2") + " (needed by schema_meta_check)",
            exception=PSYCOPG2_IMPORT_ERROR,
        )
    if p["finish_gate_nodes"] and not HAS_REQUESTS:
        module.fail_json(
            msg=missing_required_lib("requests") + " (needed by finish_gate_nodes)",
            exception=REQUESTS_IMPORT_ERROR,
        )
    kong_path = find_kong(p["kong_bin"], module.get_bin_path)
    if kong_path is None:
        module.fail_json(msg=kong_not_found(p["kong_bin"]))

    run_command = functools.partial(module.run_command, handle_exceptions=False)
    cli = KongCli(run_command, kong_path, p["kong_conf"], p["kong_prefix"], p["kong_env"])
    db = KongDb.from_params(p) if use_db else None
    runner = KongMigrations(
        cli,
        db=db,
        db_timeout=p["db_timeout"],
        lock_timeout=p["lock_timeout"],
        force=p["force"],
    )
    gate_result = {}

    def gate():
        target = p["finish_gate_version"] or runner.version()

        def client(url):
            # one immediate retry: a stopped node refuses at once, and the gate runs inside the
            # in-place upgrade's downtime window, where backoff sleeps would count
            return KongAdminClient(
                admin_url=url,
                admin_token=p["admin_token"],
                validate_certs=p["validate_certs"],
                ca_path=p["ca_path"],
                timeout=p["timeout"],
                retries=1,
            )

        gate_result["value"] = check_finish_gate(p["finish_gate_nodes"], target, p["finish_gate_unreachable"], client)
        if p["finish_gate_db_clients"]:
            sessions_db = db or KongDb.from_params(p)
            try:
                gate_result["db"] = check_db_sessions(kong_sessions(sessions_db), resolve_clients(p["finish_gate_db_clients"]))
            finally:
                if sessions_db is not db:
                    sessions_db.close()

    result = {"changed": False, "state": p["state"], "commands": runner.commands}
    entity_counts = None
    try:
        report = runner.converge(
            p["state"],
            gate=gate if p["finish_gate_nodes"] or p["finish_gate_db_clients"] else None,
            check_mode=module.check_mode,
        )
        if db is not None:
            entity_counts = db.entity_counts()
    except KongDbError as exc:
        module.fail_json(
            msg=f"cannot count entities: {exc}",
            query=exc.query,
            state=p["state"],
            commands=runner.commands,
        )
    except KongMigrationsError as exc:
        context = exc.context()
        context.pop("commands", None)
        module.fail_json(
            msg=str(exc),
            state=p["state"],
            commands=runner.commands,
            kong_version=runner.kong_version,
            **context,
        )
    finally:
        if db is not None:
            db.close()

    report["check_mode"] = module.check_mode
    after = report["after"]
    result.update(
        changed=report["changed"],
        status=after.status if after is not None else None,
        before=state_dict(report["before"]),
        after=state_dict(after),
        plan=report["plan"],
        ran=report["ran"],
        migrated=report["migrated"],
        lock_aborted=report["lock_aborted"],
        concurrent=report["concurrent"],
        kong_version=runner.kong_version,
        finish_gate=gate_result.get("value"),
        finish_gate_db=gate_result.get("db"),
        schema_meta_checked=runner.schema_meta_checked,
        status_checked=runner.status_checked,
        entity_counts=entity_counts,
        msg=summary(p["state"], report),
    )
    for text in runner.warnings:
        module.warn(text)
    final = after if after is not None else report["before"]
    if p["state"] == "finished" and final.new:
        module.warn(f"state=finished: {sum(len(v) for v in final.new.values())} new migration(s) have not run 'up' yet; use state=up or state=current")
    if module._diff and after is not None:
        result["diff"] = {
            "before": {
                "status": report["before"].status,
                "pending": report["before"].pending,
                "new": report["before"].new,
            },
            "after": {
                "status": after.status,
                "pending": after.pending,
                "new": after.new,
            },
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
