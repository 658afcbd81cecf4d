"""Kong Enterprise behaviour of the `kong-enterprise-edition` package (KONGSIM_EDITION=enterprise).

RBAC: with `enforce_rbac` on (values on, both, entity: Kong Enterprise's kong.conf reference), the
Admin API refuses a request without a valid `Kong-Admin-Token` header with
    401 {"message":"Invalid credentials. Token or User credentials required"}
UNCONFIRMED: Kong Enterprise's source is not public (not in Kong/kong). The status and text are
those Kong Enterprise answers in published output (Server: kong/3.11.0.0-enterprise-edition) and
in its api helpers (`validate_admin`); the same answer for an unknown token is UNCONFIRMED.
Tokens: Kong Enterprise's `kong migrations bootstrap` creates the super admin `kong_admin` whose
RBAC token is the KONG_PASSWORD of the bootstrap (Kong Enterprise documentation, "Enable RBAC").
The simulator keeps no rbac_users table: it accepts the KONG_PASSWORD of the node's environment.
"""

from __future__ import annotations

import hmac
import os

RBAC_DENIED = {"message": "Invalid credentials. Token or User credentials required"}


def is_enterprise() -> bool:
    return os.environ.get("KONGSIM_EDITION", "") == "enterprise"


def rbac_enforced(conf: dict) -> bool:
    value = str(conf.get("enforce_rbac") or "off").strip().lower()
    return is_enterprise() and value in ("on", "both", "entity", "true")


def rbac_refusal(conf: dict, headers) -> tuple | None:
    """(status, body, headers) when RBAC refuses the request, else None."""
    if not rbac_enforced(conf):
        return None
    token = headers.get("Kong-Admin-Token")
    valid = os.environ.get("KONG_PASSWORD") or ""
    if token and valid and hmac.compare_digest(token.encode(), valid.encode()):
        return None
    return 401, dict(RBAC_DENIED), {}
