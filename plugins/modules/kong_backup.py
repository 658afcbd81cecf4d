# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
module: kong_backup
short_description: Verified backups of a Kong node's declarative configuration, database and files
version_added: 0.1.0
description:
  - Writes a backup run directory O(dest)/O(run_id) holding one file per requested kind and a
    C(manifest.json) with the source node, its Kong version, the time, every file's size and sha256,
    the entity counts, and for a database its C(schema_meta) state and a digest of every table.
  - Every file is written with mode C(0600) under a temporary name, verified, and only then renamed;
    the run directory itself appears only once all its files are verified. A failed run leaves
    nothing behind.
  - C(declarative) reads C(GET /config) on a DB-less node or data plane. On a node with a database
    it runs C(kong config db_export) on the node (Kong need not run), or pages through the Admin API.
    The file is canonical YAML (sorted keys, entities ordered by id), except on a DB-less node when
    the text the node was loaded from is available (see O(declarative_config)).
  - C(database) runs C(pg_dump) in custom format inside the same snapshot from which the manifest's
    C(schema_meta), entity counts and table digests are read, so they describe exactly the dump.
    The password reaches C(pg_dump) through the environment only. The dump is checked with
    C(pg_restore --list).
  - C(files) writes a gzip tarball of the files and directories listed in O(files).
  - Running again with the O(run_id) of an intact backup changes nothing and returns its manifest;
    an earlier backup is never overwritten.
options:
  dest:
    description:
      - Directory that holds the backup run directories. Created with mode C(0700) if missing.
    type: path
    required: true
  run_id:
    description:
      - Name of this run's directory below O(dest), for example the upgrade run's id.
      - Defaults to the current UTC time, C(YYYYMMDDTHHMMSSZ).
    type: str
  kinds:
    description:
      - What to back up.
    type: list
    elements: str
    choices: [declarative, database, files]
    default: [declarative]
  declarative_method:
    description:
      - How the declarative configuration is read.
      - V(config) is C(GET /config) (DB-less nodes and data planes only).
      - V(db_export) is C(kong config db_export) run on this host with O(kong_bin) and O(kong_conf).
      - V(admin_api) pages through every entity collection of the Admin API.
      - V(auto) picks V(config) for a node with C(database=off), else V(db_export) when O(kong_bin) is
        found on this host, else V(admin_api).
    type: str
    choices: [auto, config, db_export, admin_api]
    default: auto
  declarative_config:
    description:
      - On a DB-less node, the file the node loaded its configuration from (Kong's C(declarative_config)),
        readable on this host. When its md5 is the node's C(configuration_hash), those exact bytes are
        backed up, so a restore gives the node back the very same C(configuration_hash).
      - When not set, the C(declarative_config) setting of O(kong_conf) (or C(KONG_DECLARATIVE_CONFIG) in
        O(kong_env)) is used if there is one.
    type: path
  files:
    description:
      - Files and directories for the V(files) kind, for example C(kong.conf), certificates and keys,
        custom nginx templates and plugin directories. Symbolic links are followed.
      - Required when O(kinds) contains V(files).
    type: list
    elements: path
    default: []
  cluster:
    description:
      - Name of the Kong cluster backed up, recorded in the manifest's RV(manifest.cluster). M(kongops.upgrade.kong_restore)
        refuses to restore the backup into a cluster given another O(kongops.upgrade.kong_restore#module:cluster) name,
        unless forced.
    type: str
  controller_copy:
    description:
      - Path on the controller where the declarative backup is copied once it is written and verified,
        in the same task (the action plugin reads it from the node, through the connection, or through
        C(slurp) with become). The copy must match the manifest's sha256; its directory is set to mode
        C(0700) and the file is written with mode C(0600) under a temporary name and renamed. A copy already there
        with the same content and mode is left as it is.
      - Nothing is copied in check mode or when no C(declarative) backup was taken.
      - A failed copy fails the task, naming the backup on the node, which stays where it was written.
    type: path
  retention:
    description:
      - Keep only the newest N run directories in O(dest) (by the manifest's creation time), this run
        included. Only directories holding a kongops.upgrade manifest are considered.
      - V(0) keeps every run.
    type: int
    default: 0
  pg_from_kong_conf:
    description:
      - Read C(pg_host), C(pg_port), C(pg_user), C(pg_password), C(pg_database) and C(pg_schema) from
        O(kong_conf), with C(KONG_PG_*) entries of O(kong_env) taking precedence as they do for Kong.
        Settings found there override the O(pg_host) ... O(pg_schema) options.
    type: bool
    default: false
  pg_dump_bin:
    description:
      - The C(pg_dump) executable. Its major version must be at least the server's.
    type: str
    default: pg_dump
  pg_restore_bin:
    description:
      - The C(pg_restore) executable, used to check the dump (C(pg_restore --list)).
    type: str
    default: pg_restore
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
      - Reads the node and the database (read-only) and reports the run directory, the files and their
        estimated sizes, and which older runs retention would remove. Nothing is written and no
        checksum is computed; C(kong config db_export) is not run.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Free space in O(dest) is checked before anything is written, against the size of the
    configuration text, C(pg_database_size) for a database (an upper bound for a compressed dump) and
    the sum of the file sizes. The output of C(kong config db_export) is not estimated beforehand.
  - The C(files) tarball holds whatever the listed files hold (C(kong.conf) may contain C(pg_password));
    it is written with mode C(0600) like every backup file. The manifest never holds a secret.
requirements:
  - requests (Admin API)
  - PyYAML (declarative kind)
  - psycopg2 and C(pg_dump)/C(pg_restore) (database kind)
seealso:
  - module: kongops.upgrade.kong_restore
author:
  - kongops.upgrade contributors (@kongops)
"""

EXAMPLES = r"""
- name: Back up a DB-less node before a rolling upgrade, keeping the last 5 runs
  kongops.upgrade.kong_backup:
    admin_url: http://127.0.0.1:8001
    dest: /var/backups/kong
    run_id: "{{ upgrade_run_id }}"
    kinds: [declarative]
    declarative_config: /etc/kong/kong.yml
    retention: 5
  register: backup

- name: Back up database, declarative configuration and files before an in-place upgrade
  kongops.upgrade.kong_backup:
    admin_url: http://kong-1:8001
    admin_token: "{{ vault_kong_admin_token }}"
    dest: /var/backups/kong
    run_id: "{{ upgrade_run_id }}"
    kinds: [database, declarative, files]
    kong_conf: /etc/kong/kong.conf
    pg_from_kong_conf: true
    files:
      - /etc/kong/kong.conf
      - /etc/kong/ssl
  register: backup

- name: Show where the manifest is
  ansible.builtin.debug:
    msg: "{{ backup.manifest_path }} ({{ backup.manifest.database.entity_counts }})"
"""

RETURN = r"""
backup_dir:
  description: The run directory (written, or in check mode that would be written).
  returned: success
  type: str
  sample: /var/backups/kong/20250101T120000Z
manifest_path:
  description: Path of the run's C(manifest.json).
  returned: success
  type: str
  sample: /var/backups/kong/20250101T120000Z/manifest.json
manifest:
  description:
    - Contents of C(manifest.json). Holds no secret. Not returned in check mode.
  returned: success and not in check mode
  type: dict
  contains:
    format:
      description: Manifest format version.
      type: int
      sample: 1
    run_id:
      description: Name of the run directory.
      type: str
      sample: 20250101T120000Z
    created:
      description: UTC time the backup was taken.
      type: str
      sample: "2025-01-01T12:00:00Z"
    kinds:
      description: The kinds this run holds.
      type: list
      elements: str
      sample: [declarative, database]
    source:
      description: The node backed up (Admin URL without credentials, hostname, node_id, Kong version, database, role).
      type: dict
      sample: {"admin_url": "http://kong-1:8001", "hostname": "kong-1", "kong_version": "3.8.1", "database": "postgres"}
    cluster:
      description:
        - Identity of the cluster backed up, which M(kongops.upgrade.kong_restore) compares with its target.
        - C(name) is O(cluster); C(database) (with the C(database) kind) is the database's name, host, port and the
          PostgreSQL server's C(system_identifier) (null when the role may not read it); C(node_ids) are the
          C(node_id) of the node that answered C(GET /), recorded only, as Kong regenerates it at every start
          except on data planes.
      type: dict
      sample: {"name": "prod-eu", "database": {"name": "kong", "host": "db.internal", "port": 5432,
               "system_identifier": "7301658813411429421"}, "node_ids": ["6a0e6ab4-3c3d-4cd0-a2c3-9c6d7ee5c3f1"]}
    files:
      description: Every file of the run with its kind, size and sha256.
      type: list
      elements: dict
      sample: [{"name": "declarative.yml", "kind": "declarative", "size": 5120, "sha256": "9f86d0..."}]
    declarative:
      description:
        - Method, entity counts per type, C(_format_version), and on DB-less nodes the node's
          C(configuration_hash) and whether the stored text reproduces it (C(hash_exact)).
      type: dict
      sample: {"method": "config", "entity_counts": {"services": 10, "routes": 20}, "hash_exact": true}
    database:
      description:
        - Database name, host, user, schema, C(schema_meta) by subsystem, entity counts, and row count
          and md5 digest of every table.
      type: dict
      sample: {"database": "kong", "entity_counts": {"services": 500}, "schema_meta": {"core": {"last_executed": "023_360_to_370"}}}
    entity_counts:
      description: Entity counts per type of the database part, else of the declarative part.
      type: dict
      sample: {"services": 500, "routes": 500}
    files_archive:
      description: The archived files with their original path, size, sha256, mode, owner and group.
      type: dict
      sample: {"members": [{"path": "/etc/kong/kong.conf", "size": 812, "mode": "0640"}]}
paths:
  description: Path of the file of each kind in the run directory. Not returned in check mode.
  returned: success and not in check mode
  type: dict
  sample: {"declarative": /var/backups/kong/r1/declarative.yml, "database": /var/backups/kong/r1/database.dump}
planned:
  description: The files of this run with their estimated sizes (check mode) or actual sizes.
  returned: success
  type: list
  elements: dict
  sample: [{"kind": "database", "path": "/var/backups/kong/r1/database.dump", "size": 9437184}]
controller_copy:
  description: The controller's copy of the declarative backup (O(controller_copy)).
  returned: when O(controller_copy) is set, the declarative backup was taken, and not in check mode
  type: str
  sample: /home/ops/.kongops/prod-eu/backups/20250101T120000Z-declarative.yml
removed:
  description: Older run directories deleted by O(retention) (in check mode, that would be deleted).
  returned: success
  type: list
  elements: str
  sample: [/var/backups/kong/20241201T120000Z]
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kongops.upgrade.plugins.module_utils import _backup as bk
from ansible_collections.kongops.upgrade.plugins.module_utils._argspec import kong_argument_spec
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    KongAdminClient,
    KongAdminError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import (
    KongCli,
    KongCliError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_conf import (
    kong_setting,
    pg_params_from_kong_conf,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._versions import (
    KongVersionError,
    parse_version,
)


def argument_spec() -> dict:
    return kong_argument_spec(
        admin=True,
        pg=True,
        cli=True,
        dest={"type": "path", "required": True},
        run_id={"type": "str"},
        kinds={"type": "list", "elements": "str", "choices": list(bk.KINDS), "default": ["declarative"]},
        declarative_method={"type": "str", "choices": ["auto", "config", "db_export", "admin_api"], "default": "auto"},
        declarative_config={"type": "path"},
        files={"type": "list", "elements": "path", "default": []},
        retention={"type": "int", "default": 0},
        # taken by the action plugin on the controller (plugins/action/kong_backup.py), never by the module
        controller_copy={"type": "path"},
        cluster={"type": "str"},
        pg_from_kong_conf={"type": "bool", "default": False},
        pg_dump_bin={"type": "str", "default": "pg_dump"},
        pg_restore_bin={"type": "str", "default": "pg_restore"},
        **bk.PG_TOOLS_ARG_SPEC,
    )


def check_params(module: AnsibleModule) -> list:
    p = module.params
    problem = bk.options_problem(p)
    if problem:
        module.fail_json(msg=problem)
    kinds = list(dict.fromkeys(p["kinds"]))
    if not kinds:
        module.fail_json(msg="kinds is empty: name at least one of declarative, database, files")
    if "files" in kinds and not p["files"]:
        module.fail_json(msg="kinds contains 'files' but files is empty: list the files and directories to archive")
    if p["retention"] < 0:
        module.fail_json(msg=f"retention must be 0 (keep every run) or a positive number, not {p['retention']}")
    if p["run_id"] is not None:
        try:
            bk.check_run_id(p["run_id"])
        except bk.BackupError as exc:
            module.fail_json(msg=str(exc))
    missing = bk.missing_library(kinds)
    if missing:
        module.fail_json(msg=missing_required_lib(missing[0]), exception=missing[1])
    return kinds


def source_node(module: AnsibleModule, admin, cli, kinds: list, method: str) -> tuple:
    """GET / of the node; when Kong does not answer, `kong version` is enough for a database or
    files backup and for db_export."""
    try:
        node = admin.node()
    except KongAdminError as exc:
        if (
            exc.status is not None
            or method in ("config", "admin_api")
            or ("declarative" in kinds and method == "auto" and not module.get_bin_path(cli.kong_bin))
        ):
            raise
        module.warn(f"the Admin API does not answer ({exc}); recording the version of `{cli.kong_bin} version`")
        try:
            version = parse_version(cli.version()) if module.get_bin_path(cli.kong_bin) else None
        except KongCliError:
            version = None
        return {"admin_url": bk.public_url(admin.base_url), "kong_version": str(version) if version else None, "answering": False}, version
    conf = node.get("configuration") or {}
    try:
        version = parse_version(node.get("version", ""))
    except KongVersionError:
        version = None
    return {
        "admin_url": bk.public_url(admin.base_url),
        "hostname": node.get("hostname"),
        "node_id": node.get("node_id"),
        "kong_version": node.get("version"),
        "edition": node.get("edition"),
        "database": conf.get("database"),
        "role": conf.get("role"),
        "answering": True,
    }, version


def resolve_method(module: AnsibleModule, method: str, source: dict, cli) -> str:
    if method != "auto":
        return method
    if source.get("database") == "off":
        return "config"
    return "db_export" if module.get_bin_path(cli.kong_bin) else "admin_api"


def build_parts(module: AnsibleModule, kinds: list, admin, cli, source: dict, version, method: str) -> list:
    p = module.params
    parts = []
    for kind in kinds:
        if kind == "declarative":
            if method == "config" and source.get("database") not in (None, "off"):
                module.fail_json(
                    msg="declarative_method=config needs a DB-less node (GET /config answers only "
                    f"with database=off; this node has database={source.get('database')}); use "
                    "db_export or admin_api"
                )
            loaded = p["declarative_config"] or (
                kong_setting("declarative_config", p["kong_conf"], p["kong_env"]) if method == "config" and p["kong_conf"] else None
            )
            parts.append(
                bk.DeclarativeBackup(
                    method,
                    admin=admin if source.get("answering") else None,
                    cli=cli,
                    node=source if source.get("answering") else None,
                    kong_version=version,
                    loaded_file=loaded,
                )
            )
        elif kind == "database":
            pg = pg_params_from_kong_conf(p) if p["pg_from_kong_conf"] else dict(p)
            if pg.get("pg_password"):
                module.no_log_values.add(pg["pg_password"])
            tools = bk.pg_tools_for(module, pg)
            parts.append(bk.DatabaseBackup(bk.SnapshotDb.from_params(pg), tools, schema=pg.get("pg_schema")))
        else:
            parts.append(bk.FilesBackup(p["files"]))
    return parts


def run(module: AnsibleModule) -> dict:
    p = module.params
    kinds = check_params(module)
    now = bk.utc_now()
    run_id = p["run_id"] or bk.default_run_id(now)
    dest = os.path.abspath(p["dest"])
    final = os.path.join(dest, run_id)
    manifest_path = os.path.join(final, bk.MANIFEST_NAME)
    result = {"changed": False, "backup_dir": final, "manifest_path": manifest_path, "planned": [], "removed": []}

    bk.prepare_dest(dest, module.check_mode)
    existing = bk.existing_run(dest, run_id, kinds)
    if existing is not None:
        result.update(
            manifest=existing,
            paths={f["kind"]: os.path.join(final, f["name"]) for f in existing["files"]},
            planned=[{"kind": f["kind"], "path": os.path.join(final, f["name"]), "size": f["size"]} for f in existing["files"]],
        )
        return result

    admin = KongAdminClient.from_params(p)
    cli = KongCli.from_params(module.run_command, p)
    source, version = source_node(module, admin, cli, kinds, p["declarative_method"])
    method = resolve_method(module, p["declarative_method"], source, cli)
    parts = build_parts(module, kinds, admin, cli, source, version, method)
    try:
        for part in parts:
            part.prepare()
            flush_warnings(module, part)
        bk.ensure_free_space(dest, sum(part.estimate for part in parts) + (1 << 20))
        result["planned"] = [{"kind": part.kind, "path": os.path.join(final, bk.FILE_NAMES[part.kind]), "size": part.estimate} for part in parts]
        result["changed"] = True
        if module.check_mode:
            result["removed"] = bk.apply_retention(dest, p["retention"], current=final, check_mode=True)
            return result
        manifest = {
            "format": bk.MANIFEST_FORMAT,
            "collection": "kongops.upgrade",
            "run_id": run_id,
            "created": bk.iso(now),
            "kinds": kinds,
            "source": {k: v for k, v in source.items() if k != "answering"},
            "files": [],
        }
        staged = bk.StagedRun(dest, run_id).open()
        try:
            for part in parts:
                manifest["files"].extend(part.write(staged))
                manifest["files_archive" if part.kind == "files" else part.kind] = part.section
                flush_warnings(module, part)
            db_part = next((part for part in parts if isinstance(part, bk.DatabaseBackup)), None)
            manifest["cluster"] = bk.cluster_identity(p["cluster"], db_part.identity if db_part else None, [source.get("node_id")])
            counts = (manifest.get("database") or manifest.get("declarative") or {}).get("entity_counts")
            if counts is not None:
                manifest["entity_counts"] = counts
            staged.commit(manifest)
        except BaseException as exc:
            staged.abort()
            full = bk.destination_full(dest, exc)
            if full is not None:
                raise full from exc
            raise
    finally:
        for part in parts:
            if isinstance(part, bk.DatabaseBackup):
                part.close()
    result["manifest"] = manifest
    result["paths"] = {f["kind"]: os.path.join(final, f["name"]) for f in manifest["files"]}
    result["planned"] = [{"kind": f["kind"], "path": os.path.join(final, f["name"]), "size": f["size"]} for f in manifest["files"]]
    result["removed"] = bk.apply_retention(dest, p["retention"], current=final)
    return result


def flush_warnings(module: AnsibleModule, part) -> None:
    while part.warnings:
        module.warn(part.warnings.pop(0))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    bk.run_module(module, run, "write the backup")


if __name__ == "__main__":
    main()
