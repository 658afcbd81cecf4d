# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""The files archive of a backup: tarball written, verified and restored with owners and modes."""

from __future__ import annotations

import grp
import io
import os
import pwd
import tarfile

from ansible_collections.kongops.upgrade.plugins.module_utils._backup_common import (
    BackupError,
    FILE_MODE,
    FILE_NAMES,
    StagedRun,
    commit_partial,
    discard,
    partial_path,
    sha256_bytes,
    sha256_file,
)


# --- files --------------------------------------------------------------------------------------


def collect_files(paths) -> list:
    """Absolute paths of the regular files named by `paths` (directories walked, links followed)."""
    found = []
    for raw in paths:
        path = os.path.abspath(raw)
        if os.path.isfile(path):
            found.append(path)
        elif os.path.isdir(path):
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs.sort()
                found.extend(os.path.join(root, f) for f in sorted(files) if os.path.isfile(os.path.join(root, f)))
        else:
            raise BackupError(f"files: {raw} does not exist (or is not a regular file or directory)")
    seen, unique = set(), []
    for path in found:
        if path not in seen:
            seen.add(path)
            unique.append(path)
    return unique


def _arcname(path: str) -> str:
    return path.lstrip("/")


def write_tarball(tmp: str, paths) -> list:
    members = []
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for path in paths:
            with open(path, "rb") as fh:
                info = tar.gettarinfo(arcname=_arcname(path), fileobj=fh)
                data = fh.read()
            info.size = len(data)
            tar.addfile(info, fileobj=io.BytesIO(data))
            members.append(
                {
                    "path": path,
                    "size": len(data),
                    "sha256": sha256_bytes(data),
                    "mode": "%04o" % (info.mode & 0o7777),
                    "owner": info.uname or str(info.uid),
                    "group": info.gname or str(info.gid),
                }
            )
    return members


def read_tarball(path: str) -> dict:
    """{absolute path: bytes} of a files backup; refuses anything but plain relative files."""
    out = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for info in tar.getmembers():
                name = info.name
                if not info.isreg() or name.startswith("/") or ".." in name.split("/"):
                    raise BackupError(f"the files backup {path} holds an unexpected member {name!r}")
                out["/" + name] = tar.extractfile(info).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"the files backup {path} cannot be read: {exc}") from exc
    return out


def verify_tarball(path: str, members: list) -> None:
    content = read_tarball(path)
    for member in members:
        data = content.get(member["path"])
        if data is None or sha256_bytes(data) != member["sha256"]:
            raise BackupError(f"the files backup {path} does not hold {member['path']} as read")


def _owner_ids(member: dict):
    try:
        uid = pwd.getpwnam(member["owner"]).pw_uid
    except (KeyError, TypeError):
        uid = int(member["owner"]) if str(member.get("owner", "")).isdigit() else -1
    try:
        gid = grp.getgrnam(member["group"]).gr_gid
    except (KeyError, TypeError):
        gid = int(member["group"]) if str(member.get("group", "")).isdigit() else -1
    return uid, gid


def restore_files(tar_path: str, members: list, root: str | None = None, check_mode: bool = False) -> list:
    """Write back every file whose content or mode differs; returns the paths written (or to write)."""
    content = read_tarball(tar_path)
    changed = []
    for member in members:
        data = content.get(member["path"])
        if data is None or sha256_bytes(data) != member["sha256"]:
            raise BackupError(f"the files backup {tar_path} does not hold {member['path']} as the manifest says")
        target = os.path.join(root, _arcname(member["path"])) if root else member["path"]
        mode = int(member.get("mode", "0600"), 8)
        if os.path.isfile(target) and sha256_file(target) == member["sha256"] and (os.stat(target).st_mode & 0o7777) == mode:
            continue
        changed.append(target)
        if check_mode:
            continue
        parent = os.path.dirname(target)
        os.makedirs(parent, 0o755, exist_ok=True)
        tmp = partial_path(target)
        discard(tmp)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if os.geteuid() == 0:
                uid, gid = _owner_ids(member)
                os.chown(tmp, uid, gid)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            discard(tmp)
            raise
    return changed


class FilesBackup:
    kind = "files"

    def __init__(self, paths):
        self.requested = list(paths)
        self.paths, self.section, self.warnings = [], {}, []
        self.estimate = 0

    def prepare(self) -> None:
        self.paths = collect_files(self.requested)
        self.estimate = sum(os.path.getsize(p) for p in self.paths)

    def write(self, run: StagedRun) -> list:
        name = FILE_NAMES[self.kind]
        final = run.path(name)
        tmp = partial_path(final)
        discard(tmp)
        try:
            members = write_tarball(tmp, self.paths)
            verify_tarball(tmp, members)
            entry = commit_partial(tmp, final)
        finally:
            discard(tmp)
        self.section.update(file=name, members=members)
        return [dict(entry, name=name, kind=self.kind)]
