# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""Command lines (argv lists) for the package operations the kong_node role runs itself:
holding and releasing Kong's installed version, and downloading a version without installing it;
and the file modes that Kong's package post-install changed."""

from __future__ import annotations


class KongPackageArgvError(ValueError):
    """A package operation that cannot be written as a command line; Ansible reports the message."""


_MANAGERS = ("apt", "dnf", "yum")
# dpkg keeps a changed conffile (the operator's kong.conf) and takes the default where unchanged:
# no question even from a package that would ask (Kong 3.8's Debian package asks about logrotate).
_DPKG_OPTIONS = ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]


def package_spec(manager: str, name: str, version: str = "") -> str:
    if manager == "apt":
        return f"{name}={version}" if version else name
    return f"{name}-{version}" if version else name


def kong_package_argv(action: str, manager: str, name: str, version: str = "") -> list:
    """argv for `hold`, `unhold`, `download` or `installed` (the installed version, printed alone) of
    package `name` (at `version`) with `manager`."""
    if manager not in _MANAGERS:
        raise KongPackageArgvError(f"kong_package_argv: package manager '{manager}' is not one of {', '.join(_MANAGERS)}")
    if not name or any(c.isspace() for c in name):
        raise KongPackageArgvError(f"kong_package_argv: '{name}' is not a package name")
    if action == "hold":
        if manager == "apt":
            return ["apt-mark", "hold", name]
        # dnf's versionlock plugin (python3-dnf-plugin-versionlock) locks name-version
        return [manager, "versionlock", "add", package_spec(manager, name, version)]
    if action == "unhold":
        if manager == "apt":
            return ["apt-mark", "unhold", name]
        return [manager, "versionlock", "delete", name]
    if action == "download":
        if not version:
            raise KongPackageArgvError("kong_package_argv: download needs a version")
        if manager == "apt":
            return (
                ["apt-get", "install", "-y", "-q", "--download-only", "--allow-downgrades", "--allow-change-held-packages"]
                + _DPKG_OPTIONS
                + [package_spec(manager, name, version)]
            )
        return [manager, "install", "-y", "--downloadonly", package_spec(manager, name, version)]
    if action == "installed":
        if manager == "apt":
            return ["dpkg-query", "--show", "--showformat=${Version}", name]
        return ["rpm", "--query", "--queryformat=%{VERSION}", name]
    raise KongPackageArgvError(f"kong_package_argv: action '{action}' is not one of hold, unhold, download, installed")


def _modes(lines) -> dict:
    """{path: "0600"} from the lines of `find DIR -type f -printf '%m %p\\n'`."""
    modes = {}
    for line in lines or []:
        mode, _sep, path = str(line).partition(" ")
        if path and mode.isdigit():
            modes[path] = "0" + mode.lstrip("0").rjust(3, "0")
    return modes


def kong_modes_to_restore(before: list, after: list) -> list:
    """The files listed in `before` (lines of `find /etc/kong -type f -printf '%m %p\\n'` run before
    the package install) whose mode the install changed, each as {path, mode} with the mode they had
    before. Kong's package post-install runs `chmod -R g=u /etc/kong/` (Kong/kong
    build/package/postinstall.sh at 3.9.3), which makes an owner-only private key group-readable and
    group-writable."""
    was, now = _modes(before), _modes(after)
    return [{"path": path, "mode": mode} for path, mode in was.items() if path in now and now[path] != mode]


class FilterModule:
    def filters(self):
        return {"kong_package_argv": kong_package_argv, "kong_modes_to_restore": kong_modes_to_restore}
