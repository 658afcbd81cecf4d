# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations


class ModuleDocFragment:
    # Every module of the collection extends one of the two fragments below, so that action-group
    # membership reads the same everywhere. The members of group kong are exactly the modules that
    # take the Admin API options of the kongops.upgrade.kong_admin fragment (meta/runtime.yml).
    DOCUMENTATION = r"""
options: {}
"""

    ACTIONGROUP_KONG = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/kongops.upgrade.kong) in C(module_defaults) to set the Admin API options
      (O(admin_url), O(admin_token), O(validate_certs), O(ca_path), O(timeout)) once for every module of the group.
    support: full
    membership:
      - kongops.upgrade.kong
"""

    ACTIONGROUP_NONE = r"""
options: {}
attributes:
  action_group:
    description: This module takes no Admin API options and belongs to no action group; set its options per task.
    support: none
    membership: []
"""

    # The attributes of a module that only reads (the *_info modules and the checks), as
    # community.general.attributes.info_module words them.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: This module only reads; it runs the same in check mode.
  diff_mode:
    support: N/A
    details: This module only reads.
  platform:
    platforms: posix
"""
