from __future__ import annotations

import os

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils import _backup_common


# the plugin runs in the controller (tests/unit/conftest.py controller_context)
pytestmark = pytest.mark.usefixtures("controller_context")


def lookup(terms):
    from ansible_collections.kongops.upgrade.plugins.lookup.free_space import LookupModule

    return LookupModule().run(terms, variables={})


def lookup_error():
    from ansible.errors import AnsibleLookupError

    return AnsibleLookupError


class FakeStat:
    f_bavail = 300
    f_frsize = 1024 * 1024


def test_each_path_is_measured_where_it_would_be_created(tmp_path, monkeypatch):
    seen = []

    def statvfs(path):
        seen.append(path)
        return FakeStat()

    monkeypatch.setattr(_backup_common.os, "statvfs", statvfs)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert lookup([str(tmp_path / "a" / "b"), "~/.kongops"]) == [300, 300]
    assert seen == [str(tmp_path), str(home)]


def test_a_path_it_cannot_measure_is_an_error_that_names_it(tmp_path, monkeypatch):
    def statvfs(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_backup_common.os, "statvfs", statvfs)
    with pytest.raises(lookup_error(), match="cannot read the free space of " + str(tmp_path) + ": Permission denied"):
        lookup([str(tmp_path)])


@pytest.mark.parametrize("term", ["", "  ", 3])
def test_a_term_that_is_not_a_path_is_refused(term):
    with pytest.raises(lookup_error(), match="is not a path"):
        lookup([term])


def test_free_space_never_raises_and_rounds_down_to_megabytes(tmp_path):
    class Odd:
        f_bavail = 3
        f_frsize = 1024 * 1024 - 1

    assert _backup_common.free_space(str(tmp_path / "x"), statvfs=lambda p: Odd()) == {"path": str(tmp_path), "free_mb": 2, "reason": None}
    real = _backup_common.free_space(os.sep)
    assert real["path"] == os.sep and real["free_mb"] >= 0
