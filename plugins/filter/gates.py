# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""Health gates of a traffic step as filters, for playbooks of their own; the collection's roles use
the kongops.upgrade.kong_gate module, which holds the same logic (plugins/module_utils/_gates.py)."""

from __future__ import annotations

from ansible_collections.kongops.upgrade.plugins.module_utils._gates import gate_eval, node_gate_eval


class FilterModule:
    def filters(self):
        return {"gate_eval": gate_eval, "node_gate_eval": node_gate_eval}
