"""_files.atomic_write: the one atomic replace of the collection; _files.private_dirs."""

from __future__ import annotations

import os
import stat

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._files import atomic_write, private_dirs


def test_new_file_gets_the_mode_and_no_temporary_is_left(tmp_path):
    path = tmp_path / "a.conf"
    atomic_write(str(path), "x = 1\n")
    assert path.read_text() == "x = 1\n" and stat.S_IMODE(os.stat(path).st_mode) == 0o644
    atomic_write(str(tmp_path / "b"), b"\x00\x01", mode=0o600)
    assert (tmp_path / "b").read_bytes() == b"\x00\x01" and stat.S_IMODE(os.stat(tmp_path / "b").st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["a.conf", "b"]


def test_existing_file_keeps_its_mode_unless_one_is_given(tmp_path):
    path = tmp_path / "map"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    atomic_write(str(path), "new\n")
    assert path.read_text() == "new\n" and stat.S_IMODE(os.stat(path).st_mode) == 0o640
    atomic_write(str(path), "newer\n", mode=0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_failed_verification_leaves_the_old_content_and_nothing_else(tmp_path):
    path = tmp_path / "upstream.conf"
    path.write_text("old\n")

    def refuse(tmp):
        assert open(tmp).read() == "broken\n"
        raise ValueError("nginx -t failed")

    with pytest.raises(ValueError):
        atomic_write(str(path), "broken\n", verify=refuse)
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["upstream.conf"]


def test_a_missing_directory_is_an_oserror_and_writes_nothing(tmp_path):
    with pytest.raises(OSError):
        atomic_write(str(tmp_path / "no" / "such" / "file"), "x")
    assert os.listdir(tmp_path) == []


def test_private_dirs_makes_every_missing_parent_0700_and_leaves_existing_ones(tmp_path):
    os.chmod(tmp_path, 0o755)
    leaf = tmp_path / "work" / "prod-eu" / "backups"
    private_dirs(str(leaf))
    private_dirs(str(leaf))  # exists: nothing to do
    for directory in (tmp_path / "work", tmp_path / "work" / "prod-eu", leaf):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700, directory
    assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o755
