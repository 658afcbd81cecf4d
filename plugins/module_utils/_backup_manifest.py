# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""The manifest of a backup run: writing, loading, verifying the files it lists, retention."""

from __future__ import annotations

import json
import os
import shutil

from ansible_collections.kongops.upgrade.plugins.module_utils._backup_common import (
    BackupError,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    sha256_file,
)


# --- manifest ---------------------------------------------------------------------------------


def manifest_path_of(src: str) -> str:
    if os.path.basename(src) == MANIFEST_NAME and not os.path.isdir(src):
        return src
    return os.path.join(src, MANIFEST_NAME)


def load_manifest(src: str) -> dict:
    path = manifest_path_of(src)
    if not os.path.exists(path):
        raise BackupError(f"no backup at {src}: {path} does not exist; pass the run directory a backup returned as backup_dir", path=path)
    try:
        with open(path, "rb") as fh:
            manifest = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"the manifest {path} is unreadable or corrupted: {exc}", path=path) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("files"), list):
        raise BackupError(f"{path} is not a kongops.upgrade backup manifest (format {MANIFEST_FORMAT})", path=path)
    return manifest


def verify_files(run_dir: str, manifest: dict, kinds) -> list:
    """Check every file of `kinds` against the manifest's size and sha256; nothing is changed."""
    checked = []
    for kind in kinds:
        if kind not in (manifest.get("kinds") or []):
            raise BackupError(
                f"the backup in {run_dir} has no '{kind}' part (it holds: {', '.join(manifest.get('kinds') or []) or 'nothing'}); drop it from kinds"
            )
        entries = [f for f in manifest["files"] if f.get("kind") == kind]
        if not entries:
            raise BackupError(f"the manifest in {run_dir} lists no file for '{kind}'")
        for entry in entries:
            name = entry.get("name", "")
            if os.path.basename(name) != name or name in ("", ".", ".."):
                raise BackupError(f"the manifest in {run_dir} names an unsafe file {name!r}")
            path = os.path.join(run_dir, name)
            if not os.path.isfile(path):
                raise BackupError(f"backup file {path} is missing", path=path)
            size = os.path.getsize(path)
            if size != entry.get("size"):
                raise BackupError(
                    f"backup file {path} has {size} bytes, the manifest says {entry.get('size')}: the file is truncated or was changed; refusing to restore it",
                    path=path,
                )
            digest = sha256_file(path)
            if digest != entry.get("sha256"):
                raise BackupError(
                    f"backup file {path} fails its sha256 check (manifest {entry.get('sha256')}, file {digest}): the file is corrupted; refusing to restore it",
                    path=path,
                )
            checked.append(dict(entry, path=path))
    return checked


def list_runs(dest: str) -> list:
    """Run directories in dest holding a valid manifest, oldest first."""
    runs = []
    if not os.path.isdir(dest):
        return runs
    for name in os.listdir(dest):
        path = os.path.join(dest, name)
        if name.startswith(".") or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            manifest = load_manifest(path)
        except BackupError:
            continue
        runs.append((str(manifest.get("created", "")), name, path))
    runs.sort()
    return runs


def apply_retention(dest: str, keep: int, current: str | None = None, check_mode: bool = False) -> list:
    """Remove all but the newest `keep` run directories (never `current`); returns removed paths."""
    if not keep or keep < 1:
        return []
    runs = list_runs(dest)
    if current:
        runs = [r for r in runs if r[2] != current]
        keep -= 1
    doomed = [path for _created, _name, path in runs[: max(len(runs) - keep, 0)]]
    if not check_mode:
        for path in doomed:
            shutil.rmtree(path)
    return doomed


def existing_run(dest: str, run_id: str, kinds) -> dict | None:
    """The manifest of an intact earlier backup with this run_id, None when there is none."""
    final = os.path.join(dest, run_id)
    if not os.path.lexists(final):
        return None
    try:
        manifest = load_manifest(final)
        verify_files(final, manifest, kinds)
    except BackupError as exc:
        raise BackupError(f"{final} exists but is not an intact backup of {', '.join(kinds)} ({exc}); remove it or choose another run_id") from exc
    return manifest
