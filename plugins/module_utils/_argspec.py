# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""The one assembly of a module's argument spec from the collection's shared option groups.

Each group has its doc fragment, which a module using the group extends:
  admin  KONG_ADMIN_ARG_SPEC  kongops.upgrade.kong_admin  (and the `kong` action group, meta/runtime.yml)
  pg     KONG_PG_ARG_SPEC     kongops.upgrade.kong_pg
  cli    KONG_CLI_ARG_SPEC    kongops.upgrade.kong_cli
"""

from __future__ import annotations

import copy

from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import KONG_ADMIN_ARG_SPEC
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import KONG_CLI_ARG_SPEC
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import KONG_PG_ARG_SPEC

GROUPS = {
    "admin": (KONG_ADMIN_ARG_SPEC, "kongops.upgrade.kong_admin"),
    "pg": (KONG_PG_ARG_SPEC, "kongops.upgrade.kong_pg"),
    "cli": (KONG_CLI_ARG_SPEC, "kongops.upgrade.kong_cli"),
}


def kong_argument_spec(admin: bool = False, pg: bool = False, cli: bool = False, **options) -> dict:
    """Copies of the chosen option groups, then the module's own `options` (which may override one)."""
    spec: dict = {}
    for name, wanted in (("admin", admin), ("pg", pg), ("cli", cli)):
        if wanted:
            spec.update(copy.deepcopy(GROUPS[name][0]))
    spec.update(copy.deepcopy(options))
    return spec
