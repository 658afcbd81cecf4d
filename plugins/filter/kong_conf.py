# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""kong.conf values read the way Kong reads them (the parsers live in module_utils._kong_conf)."""

from __future__ import annotations

from ansible_collections.kongops.upgrade.plugins.module_utils._kong_conf import KongConfError, listen_url as _listen_url


class ListenUrlError(ValueError):
    """A listener value Kong would refuse; Ansible reports the message, which names the setting."""


def listen_url(value, setting: str = "listen") -> str:
    try:
        return _listen_url(value)
    except KongConfError as exc:
        raise ListenUrlError(f"{setting}: {exc}") from None


class FilterModule:
    def filters(self):
        return {"listen_url": listen_url}
