# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""Health gates of a traffic step as filters, for playbooks of their own; the collection's roles use
the kongops.upgrade.kong_gate module, which holds the same logic (plugins/module_utils/_gates.py).
And gate_urls: whether a gate reads its nodes from the controller, the one place that rule is written."""

from __future__ import annotations

from ansible_collections.kongops.upgrade.plugins.module_utils._gates import gate_eval, node_gate_eval
from ansible_collections.kongops.upgrade.plugins.plugin_utils._hostvars import host_setting


def gate_urls(hosts, hostvars) -> dict:
    """Each host's ``kong_status_gate_url`` when every host has one (not empty), else ``{}``: a gate reads
    its nodes from the controller only when it can read them all there (one soak task for every node);
    otherwise each node reads its own counters on its host. Empty for no hosts."""
    urls = {}
    for host in hosts or []:
        url = host_setting(hostvars, host, "kong_status_gate_url")
        if not url:
            return {}
        urls[host] = url
    return urls


class FilterModule:
    def filters(self):
        return {"gate_eval": gate_eval, "node_gate_eval": node_gate_eval, "gate_urls": gate_urls}
