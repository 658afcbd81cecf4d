# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kong_bin:
    description:
      - The C(kong) executable on the node, a name looked up in E(PATH) or an absolute path.
    type: str
    default: kong
  kong_conf:
    description:
      - The node's C(kong.conf), passed to C(kong) as C(-c).
    type: path
  kong_prefix:
    description:
      - The node's prefix directory, passed to C(kong) as C(-p) where a command takes it.
    type: path
  kong_env:
    description:
      - Extra environment for the C(kong) command, for example C(KONG_PG_PASSWORD), so that
        secrets stay off the command line. Values are not logged.
    type: dict
    default: {}
"""
