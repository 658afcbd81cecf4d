# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""The load balancers' server names of Kong hosts: each host's ``kong_lb_server``, or its inventory
name. The gate, the shift and the drain name the servers the same way through it."""

from __future__ import annotations


def lb_servers(hosts, hostvars) -> list:
    """Each host's ``kong_lb_server`` (when set and not empty) or the host's name, in order."""
    names = []
    for host in hosts or []:
        try:
            server = hostvars[host].get("kong_lb_server") or ""
        except (KeyError, AttributeError):
            server = ""
        names.append(str(server) if server else host)
    return names


class FilterModule:
    def filters(self):
        return {"lb_servers": lb_servers}
