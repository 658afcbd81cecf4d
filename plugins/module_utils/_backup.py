# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Verified Kong backups, the entry point of kong_backup and kong_restore. The work is split by concern:
_backup_common (run directories, checksums), _backup_manifest (manifest, verification, retention),
_backup_declarative, _backup_database and _backup_files; their public names are re-exported here."""

from __future__ import annotations

import traceback

from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    KongAdminError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import (
    KongCliError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_conf import (
    KongConfError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import (
    HAS_PSYCOPG2,
    PSYCOPG2_IMPORT_ERROR,
    KongDbError,
    pg_params_problem,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_common import (
    dump_manifest,
    ASIDE_SUFFIX,
    BackupError,
    DIR_MODE,
    FILE_MODE,
    FILE_NAMES,
    KINDS,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    PARTIAL_SUFFIX,
    STAGING_SUFFIX,
    StagedRun,
    answering_nodes,
    check_run_id,
    commit_partial,
    default_run_id,
    destination_full,
    discard,
    ensure_free_space,
    free_bytes,
    fsync_dir,
    iso,
    kong_text_hash,
    partial_path,
    prepare_dest,
    public_url,
    sha256_bytes,
    sha256_file,
    utc_now,
    write_private,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_manifest import (
    apply_retention,
    existing_run,
    list_runs,
    load_manifest,
    manifest_path_of,
    verify_files,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_declarative import (
    ADMIN_COLLECTIONS,
    DeclarativeBackup,
    HAS_YAML,
    YAML_IMPORT_ERROR,
    admin_entities,
    canonical_doc,
    canonical_yaml,
    compare_counts,
    compare_entities,
    entity_counts,
    entity_index,
    export_via_admin,
    format_version_for,
    parse_declarative,
    require_yaml,
    restore_db_import,
    restore_dbless,
    wait_for_hash,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_database import (
    DatabaseBackup,
    DatabaseRestore,
    PgTools,
    SnapshotDb,
    cluster_identity,
    compare_tables,
    database_identity,
    database_state,
    identity_mismatches,
    identity_refusal,
    verify_dump_toc,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_files import (
    FilesBackup,
    collect_files,
    read_tarball,
    restore_files,
    verify_tarball,
    write_tarball,
)

__all__ = [
    "ADMIN_COLLECTIONS",
    "ASIDE_SUFFIX",
    "BackupError",
    "DIR_MODE",
    "DatabaseBackup",
    "DatabaseRestore",
    "DeclarativeBackup",
    "FILE_MODE",
    "FILE_NAMES",
    "FilesBackup",
    "HAS_YAML",
    "KINDS",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "PARTIAL_SUFFIX",
    "PgTools",
    "STAGING_SUFFIX",
    "SnapshotDb",
    "StagedRun",
    "YAML_IMPORT_ERROR",
    "admin_entities",
    "answering_nodes",
    "apply_retention",
    "canonical_doc",
    "canonical_yaml",
    "check_run_id",
    "cluster_identity",
    "collect_files",
    "commit_partial",
    "compare_counts",
    "compare_entities",
    "compare_tables",
    "database_identity",
    "database_state",
    "default_run_id",
    "destination_full",
    "discard",
    "dump_manifest",
    "ensure_free_space",
    "entity_counts",
    "entity_index",
    "existing_run",
    "export_via_admin",
    "format_version_for",
    "free_bytes",
    "fsync_dir",
    "identity_mismatches",
    "identity_refusal",
    "iso",
    "kong_text_hash",
    "list_runs",
    "load_manifest",
    "manifest_path_of",
    "parse_declarative",
    "partial_path",
    "prepare_dest",
    "public_url",
    "read_tarball",
    "require_yaml",
    "restore_db_import",
    "restore_dbless",
    "restore_files",
    "sha256_bytes",
    "sha256_file",
    "utc_now",
    "verify_dump_toc",
    "verify_files",
    "verify_tarball",
    "wait_for_hash",
    "write_private",
    "write_tarball",
    "failure_result",
    "options_problem",
    "missing_library",
    "pg_tools_for",
    "PG_TOOLS_ARG_SPEC",
    "run_module",
]


def failure_result(exc: BaseException, action: str) -> dict:
    """The fail_json arguments for an error of a backup or restore run (``action``: "write the backup",
    "restore"); the modules' main() passes them on. Unknown errors keep their traceback."""
    if isinstance(exc, (BackupError, KongConfError)):
        return dict(msg=str(exc), **getattr(exc, "context", {}))
    if isinstance(exc, KongAdminError):
        return dict(msg=f"Kong Admin API error: {exc}", status_code=exc.status, body=exc.body)
    if isinstance(exc, KongCliError):
        return dict(msg=f"kong command failed: {exc}", **exc.context())
    if isinstance(exc, KongDbError):
        return dict(msg=f"PostgreSQL error: {exc}", query=exc.query)
    if isinstance(exc, OSError):
        return dict(msg=f"cannot {action}: {exc}")
    return dict(msg=f"unexpected error: {exc.__class__.__name__}: {exc}", exception=traceback.format_exc())


# --- shared by kong_backup and kong_restore -------------------------------------------------


def options_problem(p: dict) -> str | None:
    """The first problem with the options both modules take, as a message naming the option."""
    problem = pg_params_problem(p)
    if problem:
        return problem
    if p["pg_tool_timeout"] < 0:
        return f"pg_tool_timeout must be 0 (no limit) or a positive number of seconds, got {p['pg_tool_timeout']}"
    if p["pg_from_kong_conf"] and not p["kong_conf"]:
        return "pg_from_kong_conf needs kong_conf (the node's kong.conf)"
    return None


def missing_library(kinds) -> tuple | None:
    """(library, import error) of the first library the kinds need that is not installed."""
    needs = [
        ("declarative" in kinds, HAS_YAML, "PyYAML", YAML_IMPORT_ERROR),
        ("database" in kinds, HAS_PSYCOPG2, "psycopg2", PSYCOPG2_IMPORT_ERROR),
        (True, HAS_REQUESTS, "requests", REQUESTS_IMPORT_ERROR),
    ]
    return next(((lib, error) for needed, present, lib, error in needs if needed and not present), None)


# the option of the doc fragment kongops.upgrade.kong_pg.pg_tools
PG_TOOLS_ARG_SPEC = {"pg_tool_timeout": {"type": "int", "default": 3600}}


def pg_tools_for(module, pg: dict):
    """PgTools of kong_backup and kong_restore, bounded by pg_tool_timeout through `timeout` and by
    pg_lock_timeout; warns when the host has no `timeout` command."""
    p = module.params
    timeout_bin = module.get_bin_path("timeout") if p["pg_tool_timeout"] > 0 else None
    if p["pg_tool_timeout"] > 0 and not timeout_bin:
        module.warn("no `timeout` command on this host: pg_dump/pg_restore run without the pg_tool_timeout bound")
    return PgTools(
        module.run_command,
        p.get("pg_dump_bin") or "pg_dump",
        p["pg_restore_bin"],
        timeout=p["pg_tool_timeout"],
        timeout_bin=timeout_bin,
        lock_timeout=pg.get("pg_lock_timeout"),
    )


def run_module(module, run, action: str) -> None:
    """main() of kong_backup and kong_restore: run, and report every error with a message (never a bare
    traceback); `action` completes "cannot ..." for file system errors."""
    try:
        result = run(module)
    except Exception as exc:  # noqa: BLE001 - every error is reported, never a bare traceback
        module.fail_json(**failure_result(exc, action))
    module.exit_json(**result)
