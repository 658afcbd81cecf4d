# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
# PRIVATE to the collection: not a public API.
"""A host's setting as the collection's filters read it from ``hostvars`` on the controller."""

from __future__ import annotations


def host_setting(hostvars, host, name: str) -> str:
    """The host's variable `name` as a string; "" when it is unset or empty, or the host is unknown."""
    try:
        value = hostvars[host].get(name) or ""
    except (KeyError, AttributeError):
        value = ""
    return str(value) if value else ""
