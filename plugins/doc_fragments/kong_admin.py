# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  admin_url:
    description:
      - Base URL of the Kong Admin API of the node, for example C(http://127.0.0.1:8001).
      - If not set, the environment variable E(KONG_ADMIN_URL) is used.
    type: str
    default: http://127.0.0.1:8001
  admin_token:
    description:
      - Value of the C(Kong-Admin-Token) header, when the Admin API is protected.
      - If not set, the environment variable E(KONG_ADMIN_TOKEN) is used.
    type: str
  validate_certs:
    description:
      - Verify the Admin API's TLS certificate. Only set to V(false) on test systems.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle used to verify the Admin API's TLS certificate.
    type: path
  client_cert:
    description:
      - PEM client certificate presented to an Admin API that requires mutual TLS (may hold the key too).
    type: path
  client_key:
    description:
      - PEM private key of O(client_cert) when it is in a separate file.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP request. Connection errors are retried twice; a request
        that reached Kong is never repeated.
    type: int
    default: 10
"""
