# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""The load balancers' server names of Kong hosts: each host's ``kong_lb_server``, or its inventory
name. The gate, the shift and the drain name the servers the same way through it. And what one
batch's drain (one lb_weight run per load balancer for every server of the batch) says about one of
its servers."""

from __future__ import annotations

from ansible_collections.kongops.upgrade.plugins.plugin_utils._hostvars import host_setting


def lb_servers(hosts, hostvars) -> list:
    """Each host's ``kong_lb_server`` (when set and not empty) or the host's name, in order."""
    return [host_setting(hostvars, host, "kong_lb_server") or host for host in hosts or []]


def drain_failure(results, server, batch_servers) -> str:
    """Why the batch's drain failed for `server`, or "" when it drained on every load balancer.

    `results` are the items of the batch's lb_weight loop (one per load balancer, with ``_lb``). A load
    balancer whose drain wait ran out names what still held sessions (``still_open``): the server fails
    when it is named there, or when nothing named there is a server of the batch (nginx counts its old
    workers, not servers: every server of the batch waited on them). Any other failure of a load balancer
    (its socket, its files) is every server's."""
    reasons = []
    batch = {str(s) for s in batch_servers or []}
    for item in results or []:
        if not isinstance(item, dict) or not item.get("failed"):
            continue
        still_open = item.get("still_open")
        if isinstance(still_open, dict) and still_open and server not in still_open and batch & set(still_open):
            continue
        reasons.append(f"{item.get('_lb', 'load balancer')}: {item.get('msg') or 'the drain failed'}")
    return "; ".join(reasons)


class FilterModule:
    def filters(self):
        return {"lb_servers": lb_servers, "drain_failure": drain_failure}
