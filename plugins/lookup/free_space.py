# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
name: free_space
version_added: 0.2.0
author: kongops.upgrade contributors (@kongops)
short_description: Free space on the controller where a directory is or would be
description:
  - For each path, the free space in megabytes (MiB) of the controller's file system that holds it, for an
    unprivileged user. A path that does not exist yet is measured at the nearest directory above it that
    does (where it would be created); C(~) is the controller user's home.
  - Lookups run on the controller, so this measures where the run journal and the copy of a declarative
    backup are written without a module run. The node side of the same check is
    M(kongops.upgrade.kong_node_info)'s O(kongops.upgrade.kong_node_info#module:free_space_path).
options:
  _terms:
    description: Paths on the controller.
    type: list
    elements: path
    required: true
"""

EXAMPLES = r"""
- name: Refuse when the controller's work directory is short of space
  ansible.builtin.assert:
    that: lookup('kongops.upgrade.free_space', kong_work_dir) | int >= 100
    fail_msg: "{{ kong_work_dir }} has less than 100 MB free on the controller"
"""

RETURN = r"""
_raw:
  description: The free megabytes (MiB) for each path, in order.
  type: list
  elements: int
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_common import free_space


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        found = []
        for term in terms:
            if not isinstance(term, str) or not term.strip():
                raise AnsibleLookupError(f"free_space: {term!r} is not a path (give the directory on the controller to measure)")
            space = free_space(os.path.expanduser(term))
            if space["free_mb"] is None:
                raise AnsibleLookupError(f"free_space: {space['reason']}")
            found.append(space["free_mb"])
        return found
