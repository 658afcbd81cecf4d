# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Atomic file writes: the one way the collection replaces a file a server or another run reads; and the
one way it creates a directory only its owner may read."""

from __future__ import annotations

import hashlib
import os
import tempfile


def private_dirs(path: str) -> None:
    """Create ``path`` and each missing parent mode 0700 (``os.makedirs`` gives only the leaf its
    mode): where a journal, a lock or a backup goes, no directory on the way is readable by others."""
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass


def sha256_file(path: str) -> str:
    """The file's sha256 (hex), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: str) -> None:
    """Flush a file or a directory (a rename is durable once its directory is synced)."""
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_path


def write_temp(directory: str, data, mode: int, prefix: str = ".kongops-") -> str:
    """A new file in `directory` (same file system as its final name) holding `data`, synced, with `mode`."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory or ".")
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w", **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write(path: str, data, mode: int | None = None, prefix: str = ".kongops-", verify=None) -> None:
    """Replace `path` by `data` (str or bytes) through a rename in its directory, so that a reader sees
    the old or the new content and never a part. An existing file keeps its owner, and its mode unless
    `mode` is given; a new file gets `mode` (default 0644). `verify(tmp)` may check the new file (and
    raise) before it takes the name. Raises OSError; nothing is left behind on failure."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    if mode is None:
        mode = (old.st_mode & 0o7777) if old else 0o644
    tmp = write_temp(directory, data, mode, prefix)
    try:
        if old and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
            try:
                os.chown(tmp, old.st_uid, old.st_gid)
            except PermissionError:
                pass  # only root gives a file away: the new file is the writer's, as Ansible's atomic_move leaves it
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)
