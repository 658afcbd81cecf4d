"""Package command lines, apt and the RHEL paths (dnf/yum) that cannot run here."""

from __future__ import annotations

import pytest
from ansible_collections.kongops.upgrade.plugins.filter.packages import KongPackageArgvError, kong_package_argv


@pytest.mark.parametrize(
    "action, manager, name, version, argv",
    [
        ("hold", "apt", "kong", "3.9.3", ["apt-mark", "hold", "kong"]),
        ("unhold", "apt", "kong-enterprise-edition", "", ["apt-mark", "unhold", "kong-enterprise-edition"]),
        (
            "download",
            "apt",
            "kong",
            "3.9.3",
            [
                "apt-get",
                "install",
                "-y",
                "-q",
                "--download-only",
                "--allow-downgrades",
                "--allow-change-held-packages",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
                "kong=3.9.3",
            ],
        ),
        ("hold", "dnf", "kong-enterprise-edition", "3.4.3.12", ["dnf", "versionlock", "add", "kong-enterprise-edition-3.4.3.12"]),
        ("unhold", "dnf", "kong", "3.9.3", ["dnf", "versionlock", "delete", "kong"]),
        ("download", "dnf", "kong", "3.9.3", ["dnf", "install", "-y", "--downloadonly", "kong-3.9.3"]),
        ("hold", "yum", "kong", "3.9.3", ["yum", "versionlock", "add", "kong-3.9.3"]),
        ("installed", "apt", "kong", "", ["dpkg-query", "--show", "--showformat=${Version}", "kong"]),
        ("installed", "dnf", "kong", "", ["rpm", "--query", "--queryformat=%{VERSION}", "kong"]),
    ],
)
def test_argv(action, manager, name, version, argv):
    assert kong_package_argv(action, manager, name, version) == argv


@pytest.mark.parametrize(
    "args, msg",
    [
        (("hold", "zypper", "kong"), "package manager 'zypper'"),
        (("hold", "apt", "kong; rm -rf /"), "not a package name"),
        (("download", "apt", "kong"), "download needs a version"),
        (("purge", "apt", "kong"), "action 'purge'"),
    ],
)
def test_refused(args, msg):
    with pytest.raises(KongPackageArgvError, match=msg):
        kong_package_argv(*args)


def test_modes_to_restore_only_what_the_install_changed():
    from ansible_collections.kongops.upgrade.plugins.filter.packages import kong_modes_to_restore

    before = [
        "600 /etc/kong/tls/admin.key",
        "640 /etc/kong/kong.conf",
        "600 /etc/kong/kong.env",
        "600 /etc/kong/gone.key",
        "4755 /etc/kong/odd name with spaces",
    ]
    after = [
        "660 /etc/kong/tls/admin.key",
        "640 /etc/kong/kong.conf",
        "660 /etc/kong/kong.env",
        "644 /etc/kong/kong.conf.default",
        "4775 /etc/kong/odd name with spaces",
    ]
    assert kong_modes_to_restore(before, after) == [
        {"path": "/etc/kong/tls/admin.key", "mode": "0600"},
        {"path": "/etc/kong/kong.env", "mode": "0600"},
        {"path": "/etc/kong/odd name with spaces", "mode": "04755"},
    ]
    assert kong_modes_to_restore([], after) == [] and kong_modes_to_restore(None, None) == []
