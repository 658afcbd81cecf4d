# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
module: kong_restore
short_description: Restore a Kong node's configuration, database or files from a verified kong_backup run
version_added: 0.1.0
description:
  - Reads the C(manifest.json) of a run directory written by M(kongops.upgrade.kong_backup) and checks the
    size and sha256 of every file of the requested O(kinds) before anything is touched. A truncated,
    corrupted or missing file is refused.
  - C(database) refuses while any Kong node in O(kong_nodes) still answers its Admin API, or while
    sessions are open on the target database, or when the backup was taken from another cluster (O(cluster)),
    unless O(force). With O(database_mode=recreate) the dump is restored into a new database and checked;
    only then is the target renamed aside, the new one renamed into its place, and the old copy dropped last.
    If a rename fails, the original database keeps (or gets back) its name and data. With O(database_mode=clean) C(pg_restore --clean --if-exists) runs in one
    transaction into the target itself. In both modes the restored C(schema_meta), row counts and table
    digests must equal the manifest's, or the module fails.
  - C(declarative) on a DB-less node (or data plane) is C(POST /config?check_hash=1); Kong answers 304
    when the node already runs that exact text. On a node with a database it is C(kong config parse),
    then C(kong config db_import) on this host. That is an upsert, so entities created after the
    backup stay; they are reported.
  - C(files) writes back every archived file whose content or mode differs.
  - Kinds are restored in the order files, database, declarative.
options:
  src:
    description:
      - The backup run directory (RV(kongops.upgrade.kong_backup#module:backup_dir)) or its C(manifest.json).
    type: path
    required: true
  kinds:
    description:
      - What to restore. Each kind must be in the backup.
    type: list
    elements: str
    choices: [declarative, database, files]
    required: true
  declarative_method:
    description:
      - V(config) loads the configuration into a DB-less node with C(POST /config?check_hash=1).
      - V(db_import) runs C(kong config parse) and C(kong config db_import) with O(kong_bin) and O(kong_conf).
      - V(auto) picks V(config) when the node at O(admin_url) reports C(database=off), else V(db_import)
        (also when the Admin API does not answer).
    type: str
    choices: [auto, config, db_import]
    default: auto
  kong_nodes:
    description:
      - Admin API URLs of every Kong node that uses the database. A database restore is refused while
        any of them answers (any HTTP response counts), unless O(force).
    type: list
    elements: str
    default: []
  force:
    description:
      - Restore the database although nodes in O(kong_nodes) answer or sessions are open on it; open
        sessions are ended (C(pg_terminate_backend)).
      - Restore a backup taken from another cluster (see O(cluster)). Without O(force) the module refuses when
        the identity the backup recorded differs from the target's.
    type: bool
    default: false
  cluster:
    description:
      - Name of the Kong cluster restored into. When both this and the backup's
        O(kongops.upgrade.kong_backup#module:cluster) are set and differ, the restore is refused unless O(force).
      - Independently, a C(database) restore is refused unless O(force) when the target database has another name
        than the one backed up, or is on another PostgreSQL server (the server's C(system_identifier) where
        both are known, else host and port).
    type: str
  only_if_different:
    description:
      - Skip a kind when the target already equals the backup, so that C(changed) is V(false).
      - For a database, every table's row count and content digest and C(schema_meta) equal the manifest's.
      - For V(db_import), every backed-up entity exists with the same fields (timestamps aside).
      - A DB-less node always uses Kong's own check (C(check_hash=1)); a file is skipped when its content
        and mode are equal.
    type: bool
    default: true
  database_mode:
    description:
      - V(recreate) restores into a new database, verifies it, then replaces the target with it. Tables
        created after the backup (for example by C(kong migrations up)) disappear. Needs a role that may
        create databases and owns the target (O(pg_admin_user)).
      - V(clean) runs C(pg_restore --clean --if-exists --single-transaction) into the target. It is all
        or nothing, but tables that are not in the backup stay (a warning names them).
    type: str
    choices: [recreate, clean]
    default: recreate
  pg_admin_user:
    description:
      - Role used to create, drop and rename databases. Defaults to O(pg_user). The restored objects are
        always owned by O(pg_user).
    type: str
  pg_admin_password:
    description:
      - Password of O(pg_admin_user). Defaults to O(pg_password).
    type: str
  pg_maintenance_database:
    description:
      - Database to connect to while creating, dropping and renaming Kong's database.
    type: str
    default: postgres
  pg_from_kong_conf:
    description:
      - Read C(pg_host), C(pg_port), C(pg_user), C(pg_password), C(pg_database) and C(pg_schema) from
        O(kong_conf), with C(KONG_PG_*) entries of O(kong_env) taking precedence as they do for Kong.
    type: bool
    default: false
  pg_restore_bin:
    description:
      - The C(pg_restore) executable.
    type: str
    default: pg_restore
  files_root:
    description:
      - Write restored files below this directory instead of their original absolute paths.
    type: path
extends_documentation_fragment:
  - kongops.upgrade.kong_admin
  - kongops.upgrade.kong_pg
  - kongops.upgrade.kong_pg.pg_tools
  - kongops.upgrade.kong_cli
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.actiongroup_kong
attributes:
  check_mode:
    support: partial
    details:
      - Verifies the checksums, probes O(kong_nodes), reads the target (C(/status), the database's digests,
        C(kong config db_export)) and runs C(kong config parse), then reports what would change. No
        database is created or dropped, nothing is loaded or imported.
  diff_mode:
    support: partial
    details:
      - The diff shows entity counts, C(schema_meta) subsystems, the configuration hash and the names of
        changed files, not entity contents.
  platform:
    platforms: posix
notes:
  - After a C(db_import) or a database restore, running Kong nodes must be restarted or reloaded to serve
    the restored configuration (RV(declarative.reload_required)).
requirements:
  - requests (Admin API)
  - PyYAML (declarative kind)
  - psycopg2 and C(pg_restore) (database kind)
seealso:
  - module: kongops.upgrade.kong_backup
author:
  - kongops.upgrade contributors (@kongops)
"""

EXAMPLES = r"""
- name: Roll the database back to the pre-upgrade backup (every node stopped)
  kongops.upgrade.kong_restore:
    src: "{{ backup.backup_dir }}"
    kinds: [database]
    pg_host: db.example.internal
    pg_password: "{{ vault_kong_pg_password }}"
    pg_admin_user: postgres
    pg_admin_password: "{{ vault_pg_superuser_password }}"
    kong_nodes: "{{ groups['kong_x'] | map('regex_replace', '^(.*)$', 'http://\\1:8001') | list }}"

- name: Give a DB-less node its backed-up configuration back
  kongops.upgrade.kong_restore:
    src: /var/backups/kong/20250101T120000Z
    kinds: [declarative]
    admin_url: http://kong-dbless-1:8001
"""

RETURN = r"""
src:
  description: The run directory restored from.
  returned: success
  type: str
  sample: /var/backups/kong/20250101T120000Z
kinds:
  description: The kinds restored (or checked), in order.
  returned: success
  type: list
  elements: str
  sample: [database]
verified_files:
  description: The backup files whose size and sha256 matched the manifest before anything was touched.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "database.dump", "kind": "database", "size": 102400, "sha256": "1f2e..."}]
manifest:
  description: Run id, creation time and source node of the backup.
  returned: success
  type: dict
  sample: {"run_id": "20250101T120000Z", "created": "2025-01-01T12:00:00Z", "source": {"kong_version": "3.7.1"}}
cluster:
  description:
    - The identity the backup recorded (C(backup)), the target's (C(target)) and how they differ (C(mismatches));
      see O(cluster) and O(force).
  returned: success
  type: dict
  sample: {"backup": {"name": "prod-eu", "database": {"name": "kong", "host": "db", "port": 5432,
           "system_identifier": "7301658813411429421"}, "node_ids": []},
           "target": {"name": "prod-eu", "database": {"name": "kong", "host": "db", "port": 5432,
           "system_identifier": "7301658813411429421"}}, "mismatches": []}
database:
  description:
    - Database restore details; C(before) and C(after) hold entity counts and C(schema_meta).
  returned: when O(kinds) contains V(database)
  type: dict
  sample: {"database": "kong", "mode": "recreate", "changed": true, "verified": true, "extra_tables": []}
declarative:
  description:
    - Declarative restore details. For V(config), the HTTP status (201, or 304 when unchanged) and the
      configuration hashes before, expected and after; for V(db_import), C(reload_required) and
      C(extra_entities) (entities newer than the backup that C(db_import) keeps).
  returned: when O(kinds) contains V(declarative)
  type: dict
  sample: {"method": "config", "status": 201, "configuration_hash_after": "5d41402abc4b2a76b9719d911017c592"}
  contains:
    method:
      description: V(config) or V(db_import).
      type: str
      sample: config
    changed:
      description: Whether the configuration was (or in check mode would be) loaded.
      type: bool
      sample: true
    status:
      description: HTTP status of C(POST /config) (V(config) only; V(null) in check mode).
      type: int
      sample: 201
    configuration_hash_after:
      description: The node's C(configuration_hash) after the restore (V(config) only).
      type: str
      sample: 5d41402abc4b2a76b9719d911017c592
    reload_required:
      description: Running nodes must be reloaded or restarted to serve the imported entities (V(db_import) only).
      type: bool
      sample: true
    extra_entities:
      description: Entities in the database that are not in the backup, kept by C(db_import) (V(db_import) only).
      type: list
      elements: str
      sample: ["services/3f1c9a52-8b5e-4c6a-9d0e-2b7a1f4c8e11"]
files:
  description: Files written back (in check mode, that would be written).
  returned: when O(kinds) contains V(files)
  type: dict
  sample: {"changed_files": ["/etc/kong/kong.conf"]}
before:
  description: State per kind before the restore (entity counts, schema_meta, configuration hash).
  returned: success
  type: dict
  sample: {"database": {"entity_counts": {"services": 499}}}
after:
  description: State per kind after the restore (in check mode, the prediction).
  returned: success
  type: dict
  sample: {"database": {"entity_counts": {"services": 500}}}
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kongops.upgrade.plugins.module_utils import _backup as bk
from ansible_collections.kongops.upgrade.plugins.module_utils._argspec import kong_argument_spec
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    KongAdminClient,
    KongAdminError,
    serves_declarative,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import (
    KongCli,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_conf import (
    pg_params_from_kong_conf,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import (
    KongDb,
)

ORDER = ("files", "database", "declarative")


def argument_spec() -> dict:
    return kong_argument_spec(
        admin=True,
        pg=True,
        cli=True,
        src={"type": "path", "required": True},
        kinds={"type": "list", "elements": "str", "choices": list(bk.KINDS), "required": True},
        declarative_method={"type": "str", "choices": ["auto", "config", "db_import"], "default": "auto"},
        kong_nodes={"type": "list", "elements": "str", "default": []},
        force={"type": "bool", "default": False},
        only_if_different={"type": "bool", "default": True},
        database_mode={"type": "str", "choices": ["recreate", "clean"], "default": "recreate"},
        pg_admin_user={"type": "str"},
        pg_admin_password={"type": "str", "no_log": True},
        pg_maintenance_database={"type": "str", "default": "postgres"},
        pg_from_kong_conf={"type": "bool", "default": False},
        pg_restore_bin={"type": "str", "default": "pg_restore"},
        **bk.PG_TOOLS_ARG_SPEC,
        files_root={"type": "path"},
        cluster={"type": "str"},
    )


def check_params(module: AnsibleModule) -> list:
    p = module.params
    problem = bk.options_problem(p)
    if problem:
        module.fail_json(msg=problem)
    kinds = [k for k in ORDER if k in p["kinds"]]
    if not kinds:
        module.fail_json(msg="kinds is empty: name at least one of declarative, database, files")
    missing = bk.missing_library(kinds)
    if missing:
        module.fail_json(msg=missing_required_lib(missing[0]), exception=missing[1])
    return kinds


def node_client(p: dict, url: str) -> KongAdminClient:
    return KongAdminClient(url, admin_token=p["admin_token"], validate_certs=p["validate_certs"], ca_path=p["ca_path"], timeout=min(p["timeout"], 5), retries=0)


def target_pg(module: AnsibleModule) -> tuple:
    """(Kong's database parameters, the maintenance connection's) of the restore target."""
    p = module.params
    pg = pg_params_from_kong_conf(p) if p["pg_from_kong_conf"] else dict(p)
    if pg.get("pg_password"):
        module.no_log_values.add(pg["pg_password"])
    admin_params = dict(
        pg, pg_database=p["pg_maintenance_database"], pg_user=p["pg_admin_user"] or pg["pg_user"], pg_password=p["pg_admin_password"] or pg.get("pg_password")
    )
    return pg, admin_params


def check_identity(module: AnsibleModule, manifest: dict, kinds: list, result: dict) -> None:
    """Refuse (unless force) a restore into another cluster than the one the backup records."""
    p = module.params
    target = {"name": p["cluster"], "database": None}
    if "database" in kinds and (manifest.get("cluster") or {}).get("database"):
        pg, admin_params = target_pg(module)
        maintenance = KongDb.from_params(admin_params)
        try:
            target["database"] = dict(bk.database_identity(maintenance), name=pg["pg_database"])
        finally:
            maintenance.close()
    mismatches = bk.identity_mismatches(manifest.get("cluster"), target, kinds)
    result["cluster"] = {"backup": manifest.get("cluster"), "target": target, "mismatches": mismatches}
    if mismatches and not p["force"]:
        module.fail_json(msg=bk.identity_refusal(mismatches), identity_mismatches=mismatches, **result)
    if mismatches:
        module.warn("restoring a backup of another cluster (force): " + "; ".join(mismatches))


def restore_database(module: AnsibleModule, run_dir: str, manifest: dict, result: dict) -> None:
    p = module.params
    section = manifest.get("database") or {}
    answering = bk.answering_nodes(p["kong_nodes"], lambda url: node_client(p, url))
    if answering and not p["force"]:
        module.fail_json(
            msg=f"Kong nodes still answer: {', '.join(answering)}; stop every node that uses the database before restoring it (or set force)",
            answering_nodes=answering,
        )
    if answering:
        module.warn(f"restoring the database while Kong nodes answer (force): {', '.join(answering)}")
    pg, admin_params = target_pg(module)
    tools = bk.pg_tools_for(module, pg)
    dump = os.path.join(run_dir, section.get("file") or bk.FILE_NAMES["database"])
    tools.toc(dump)
    job = bk.DatabaseRestore(pg, admin_params, tools, mode=p["database_mode"], force=p["force"], only_if_different=p["only_if_different"])
    try:
        outcome = job.run(dump, section, module.check_mode)
    finally:
        for warning in job.warnings:
            module.warn(warning)
    result["database"] = outcome
    result["before"]["database"] = outcome["before"]
    result["after"]["database"] = outcome["after"]
    result["changed"] = result["changed"] or outcome["changed"]


def restore_declarative(module: AnsibleModule, run_dir: str, manifest: dict, result: dict) -> None:
    p = module.params
    section = manifest.get("declarative") or {}
    path = os.path.join(run_dir, section.get("file") or bk.FILE_NAMES["declarative"])
    with open(path, "rb") as fh:
        text = fh.read().decode("utf-8")
    admin = KongAdminClient.from_params(p)
    method = p["declarative_method"]
    mode = None
    try:
        mode = admin.mode()
    except KongAdminError as exc:
        if exc.status is not None or method == "config":
            raise
    if mode in ("hybrid_dp", "konnect_dp"):
        module.fail_json(
            msg=f"the node at admin_url ({bk.public_url(admin.base_url)}) is a data plane: it takes its "
            "configuration from its control plane, which replaces anything loaded into it. Restore "
            "the control plane instead (its database, kinds: [database], or kinds: [declarative] "
            "with admin_url of the control plane)"
        )
    if method == "auto":
        method = "config" if mode is not None and serves_declarative(mode) else "db_import"
    if method == "config":
        outcome = bk.restore_dbless(admin, text, section, module.check_mode)
        result["before"]["declarative"] = {"configuration_hash": outcome["configuration_hash_before"]}
        result["after"]["declarative"] = {"configuration_hash": outcome["configuration_hash_after"]}
    else:
        cli = KongCli.from_params(module.run_command, p)
        outcome = bk.restore_db_import(cli, path, text, p["only_if_different"], module.check_mode)
        if outcome["extra_entities"]:
            module.warn(
                f"kong config db_import keeps {len(outcome['extra_entities'])} entities that are not in the "
                f"backup, e.g. {', '.join(outcome['extra_entities'][:5])}"
            )
        result["before"]["declarative"] = {"differing_entities": outcome.get("differing_entities")}
        result["after"]["declarative"] = {"differing_entities": 0}
    result["declarative"] = outcome
    result["changed"] = result["changed"] or outcome["changed"]


def restore_files(module: AnsibleModule, run_dir: str, manifest: dict, result: dict) -> None:
    section = manifest.get("files_archive") or {}
    path = os.path.join(run_dir, section.get("file") or bk.FILE_NAMES["files"])
    changed = bk.restore_files(path, section.get("members") or [], module.params["files_root"], module.check_mode)
    result["files"] = {"changed_files": changed}
    result["before"]["files"] = {"differing_files": changed}
    result["after"]["files"] = {"differing_files": []}
    result["changed"] = result["changed"] or bool(changed)


def run(module: AnsibleModule) -> dict:
    kinds = check_params(module)
    src = os.path.abspath(module.params["src"])
    manifest = bk.load_manifest(src)
    run_dir = os.path.dirname(bk.manifest_path_of(src))
    verified = bk.verify_files(run_dir, manifest, kinds)
    result = {
        "changed": False,
        "src": run_dir,
        "kinds": kinds,
        "before": {},
        "after": {},
        "verified_files": [{k: v for k, v in f.items() if k != "path"} for f in verified],
        "manifest": {k: manifest.get(k) for k in ("run_id", "created", "source", "kinds")},
    }
    check_identity(module, manifest, kinds, result)
    steps = {"files": restore_files, "database": restore_database, "declarative": restore_declarative}
    for kind in kinds:
        steps[kind](module, run_dir, manifest, result)
    if module._diff:
        result["diff"] = {"before": result["before"], "after": result["after"]}
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    bk.run_module(module, run, "restore")


if __name__ == "__main__":
    main()
