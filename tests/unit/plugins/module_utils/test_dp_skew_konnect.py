"""_dp_skew on Konnect's data-plane node records: the published compatibility table, the control plane's
version, and the expected configuration hash."""

from __future__ import annotations

from ansible_collections.kongops.upgrade.plugins.module_utils._dp_skew import (
    hash_divergence,
    konnect_rows,
    konnect_version_problem,
)

NOW = 1_800_000_000


def test_versions_konnect_supports_and_refuses():
    assert konnect_version_problem("2.8.4") is None  # an older major is served by Konnect
    assert konnect_version_problem("3.9.3", "3.14.0") is None
    assert "older than Konnect supports" in konnect_version_problem("2.4.1")
    assert "newest version Konnect's published compatibility table lists (3.14.x" in konnect_version_problem("3.15.0")
    assert konnect_version_problem("3.15.0", newest_supported="3.15.0") is None
    assert "newer than its Konnect control plane on 3.8.1" in konnect_version_problem("3.9.0", "3.8.1")
    assert "no Kong version" in konnect_version_problem("")


def test_expected_hash_without_sync_status():
    rows = konnect_rows(
        [
            {"id": "a", "hostname": "y1", "version": "3.7.1", "last_ping": NOW - 5, "config_hash": "1" * 32},
            {"id": "b", "hostname": "x1", "version": "3.6.1", "last_ping": NOW - 5, "config_hash": "2" * 32},
            {"id": "c", "hostname": "gone", "version": "3.4.2", "last_ping": NOW - 900, "config_hash": "3" * 32},
        ]
    )
    assert rows[0]["last_seen"] == NOW - 5
    found, problems = hash_divergence(rows, NOW, 90, expected="1" * 32, sync_status=False)
    assert found is None and len(problems) == 2
    assert problems[0].startswith("x1 (id b") and problems[-1] == "the control plane expects " + "1" * 32
    found, problems = hash_divergence(rows[:1], NOW, 90, expected="1" * 32, sync_status=False)
    assert found == "1" * 32 and problems == []
