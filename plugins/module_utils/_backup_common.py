# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Backup runs on disk: names, checksums, atomic private writes, staged run directories, free space."""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile

from ansible_collections.kongops.upgrade.plugins.module_utils._files import fsync_dir, fsync_path, sha256_file
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    KongAdminError,
)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
KINDS = ("declarative", "database", "files")
FILE_NAMES = {"declarative": "declarative.yml", "database": "database.dump", "files": "files.tar.gz"}
FILE_MODE = 0o600
DIR_MODE = 0o700
PARTIAL_SUFFIX = ".partial"
# Names of the databases a recreate restore works with, beside the target (first 40 characters of its name).
STAGING_SUFFIX = "_kongops_restore"
ASIDE_SUFFIX = "_kongops_old"
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class BackupError(Exception):
    """A backup or restore step failed; `context` holds what the module returns beside msg."""

    def __init__(self, msg: str, **context):
        super().__init__(msg)
        self.context = {k: v for k, v in context.items() if v is not None}


# --- checksums and private files -------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def kong_text_hash(text: str) -> str:
    """Kong's configuration_hash of a declarative config loaded as text: md5 of the raw bytes."""
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # nosec - Kong's own fingerprint, not security


def partial_path(path: str) -> str:
    return path + PARTIAL_SUFFIX


def commit_partial(tmp: str, path: str, mode: int = FILE_MODE) -> dict:
    """Give a verified temporary file its final name; returns its size and sha256."""
    os.chmod(tmp, mode)
    fsync_path(tmp)
    entry = {"size": os.path.getsize(tmp), "sha256": sha256_file(tmp)}
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")
    return entry


def discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_private(path: str, data: bytes, verify=None, mode: int = FILE_MODE) -> dict:
    """Write `data` to `path` through a temporary name, call `verify(tmp)`, then rename."""
    tmp = partial_path(path)
    discard(tmp)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if verify is not None:
            verify(tmp)
        return commit_partial(tmp, path, mode)
    except BaseException:
        discard(tmp)
        raise


# --- destination, free space, run directories -------------------------------------------------


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)  # noqa: UP017 - targets run Python 3.8+


def iso(ts: datetime.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def default_run_id(ts: datetime.datetime) -> str:
    return ts.strftime("%Y%m%dT%H%M%SZ")


def check_run_id(run_id: str) -> None:
    if not _RUN_ID_RE.match(run_id or "") or run_id.endswith(PARTIAL_SUFFIX):
        raise BackupError(
            f"run_id {run_id!r} is not usable as a directory name: use letters, digits, '.', '_' and '-' (at most 128 characters, not starting with '.' or '-')"
        )


def free_bytes(path: str, statvfs=None) -> int:
    st = (statvfs or os.statvfs)(existing_dir(path))
    return st.f_bavail * st.f_frsize


def existing_dir(path: str) -> str:
    """`path`, or the nearest directory above it that exists (where a directory made there would live)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return probe


def free_space(path: str, statvfs=None) -> dict:
    """The free space (MiB) of the file system that holds `path`, for a preflight check: never raises."""
    probe = existing_dir(path)
    try:
        free = free_bytes(probe, statvfs)
    except OSError as exc:
        return {"path": probe, "free_mb": None, "reason": f"cannot read the free space of {probe}: {exc.strerror or exc}"}
    return {"path": probe, "free_mb": free // (1024 * 1024), "reason": None}


def ensure_free_space(path: str, needed: int, statvfs=None) -> int:
    available = free_bytes(path, statvfs)
    if needed > available:
        raise BackupError(
            f"not enough free space in {path}: the backup needs about {_human(needed)}, {_human(available)} are available; free space or choose another dest",
            needed_bytes=needed,
            available_bytes=available,
        )
    return available


def destination_full(dest: str, exc: BaseException, statvfs=None) -> BackupError | None:
    """The error to report when `exc` (an OSError, or a tool's failure whose output says so) is the
    backup destination running out of space while the backup was written; None for any other error."""
    text = " ".join([str(exc), str(getattr(exc, "context", {}).get("stderr", ""))])
    if not ((isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or os.strerror(errno.ENOSPC) in text):
        return None
    try:
        left = _human(free_bytes(dest, statvfs))
    except OSError:
        left = "unknown"
    context = dict(getattr(exc, "context", {}))
    return BackupError(
        f"the backup destination {dest} filled up while the backup was written ({exc}); the partial backup was removed "
        f"and nothing else changed ({left} free there now). Free space in {dest} or point dest (the playbooks' kong_work_dir) at a larger file system, "
        "then run again",
        **context,
    )


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def prepare_dest(dest: str, check_mode: bool = False) -> None:
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise BackupError(f"dest {dest} exists and is not a directory; point dest at a directory")
    if not os.path.exists(dest):
        if check_mode:
            return
        try:
            os.makedirs(dest, DIR_MODE)
        except OSError as exc:
            raise BackupError(f"cannot create dest {dest}: {exc.strerror}; choose a writable dest") from exc
    if not os.access(dest, os.W_OK | os.X_OK):
        raise BackupError(f"dest {dest} is not writable by this user; choose a writable dest or become root")


def dump_manifest(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


class StagedRun:
    """A run directory written under a temporary name and renamed once every file is verified."""

    def __init__(self, dest: str, run_id: str):
        self.dest, self.run_id = dest, run_id
        self.final = os.path.join(dest, run_id)
        self.staging = None

    def open(self) -> StagedRun:
        try:
            self.staging = tempfile.mkdtemp(prefix=f".{self.run_id}.", suffix=PARTIAL_SUFFIX, dir=self.dest)
        except OSError as exc:
            raise BackupError(f"cannot write into dest {self.dest}: {exc.strerror}") from exc
        os.chmod(self.staging, DIR_MODE)
        return self

    def path(self, name: str) -> str:
        return os.path.join(self.staging, name)

    def commit(self, manifest: dict) -> str:
        write_private(self.path(MANIFEST_NAME), dump_manifest(manifest))
        fsync_dir(self.staging)
        try:
            os.rename(self.staging, self.final)
        except OSError as exc:
            raise BackupError(f"cannot move the verified backup to {self.final}: {exc.strerror}") from exc
        fsync_dir(self.dest)
        self.staging = None
        return self.final

    def abort(self) -> None:
        if self.staging:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


# --- Admin API probes ---------------------------------------------------------------------------


def answering_nodes(urls, make_client) -> list:
    """The Admin URLs where something still answers HTTP (any status counts as answering)."""
    answering = []
    for url in urls:
        try:
            make_client(url).raw("GET", "/")
        except KongAdminError:
            continue
        answering.append(url)
    return answering


def public_url(url: str) -> str:
    """A URL without user:password@ credentials."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url or "")
