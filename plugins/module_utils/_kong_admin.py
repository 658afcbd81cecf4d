# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Kong Admin API client shared by the modules."""
from __future__ import annotations

import traceback

from ansible.module_utils.basic import env_fallback

try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry
except ImportError:
    HAS_REQUESTS, REQUESTS_IMPORT_ERROR = False, traceback.format_exc()
else:
    HAS_REQUESTS, REQUESTS_IMPORT_ERROR = True, None

KONG_ADMIN_ARG_SPEC = dict(
    admin_url=dict(type="str", default="http://127.0.0.1:8001", fallback=(env_fallback, ["KONG_ADMIN_URL"])),
    admin_token=dict(type="str", no_log=True, fallback=(env_fallback, ["KONG_ADMIN_TOKEN"])),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    timeout=dict(type="int", default=10),
)

# Entity collections of the Admin API in dependency order (parents before children). Kong serves
# key-auth credentials at /key-auths; targets only under their upstream (/upstreams/{id}/targets).
ENTITY_TYPES = (
    "ca_certificates", "certificates", "snis", "services", "routes", "consumers",
    "key-auths", "upstreams", "plugins",
)

_HINTS = {
    401: "the Admin API wants credentials: set admin_token (Kong-Admin-Token header)",
    403: "the admin token was refused: check admin_token",
    404: "no such path on the Admin API: check admin_url",
}


class KongAdminError(Exception):
    """An Admin API call failed; carries the HTTP status and a truncated body."""

    def __init__(self, msg: str, status: int | None = None, body: str | None = None, url: str | None = None):
        super().__init__(msg)
        self.status, self.body, self.url = status, body, url


class KongAdminClient:
    def __init__(self, admin_url: str, admin_token: str | None = None, validate_certs: bool = True,
                 ca_path: str | None = None, timeout: int = 10, retries: int = 2, session=None):
        self.base_url = admin_url.rstrip("/")
        self.timeout = timeout
        if session is None:
            session = requests.Session()
            # Retries on connection errors only: a request that reached Kong is never repeated.
            retry = Retry(total=retries, connect=retries, read=0, status=0, other=0, backoff_factor=0.3,
                          allowed_methods=None, raise_on_status=False)
            session.mount("http://", HTTPAdapter(max_retries=retry))
            session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session = session
        self.session.verify = ca_path if (validate_certs and ca_path) else validate_certs
        if admin_token:
            self.session.headers["Kong-Admin-Token"] = admin_token

    @classmethod
    def from_params(cls, params: dict, url_key: str = "admin_url") -> "KongAdminClient":
        return cls(admin_url=params[url_key], admin_token=params.get("admin_token"),
                   validate_certs=params.get("validate_certs", True), ca_path=params.get("ca_path"),
                   timeout=params.get("timeout", 10))

    def raw(self, method: str, path: str, **kwargs):
        """Send a request and return the response whatever its status."""
        url = self.base_url + path
        try:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise KongAdminError(f"{method} {url} failed: {exc.__class__.__name__}: {exc}", url=url) from exc

    def request(self, method: str, path: str, expected=(200,), **kwargs):
        resp = self.raw(method, path, **kwargs)
        if resp.status_code not in expected:
            hint = _HINTS.get(resp.status_code)
            msg = f"{method} {resp.url} returned HTTP {resp.status_code}"
            raise KongAdminError(msg + (f" ({hint})" if hint else ""), status=resp.status_code,
                                 body=resp.text[:2000], url=resp.url)
        if not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError as exc:
            raise KongAdminError(f"{method} {resp.url} did not answer JSON", status=resp.status_code,
                                 body=resp.text[:2000], url=resp.url) from exc

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def paged(self, path: str, size: int = 1000) -> list:
        """Every element of a paginated collection, following Kong's `next` links."""
        items: list = []
        sep = "&" if "?" in path else "?"
        page = self.get(f"{path}{sep}size={size}")
        while True:
            items.extend(page.get("data") or [])
            nxt = page.get("next")
            if not nxt:
                return items
            if nxt.startswith("http://") or nxt.startswith("https://"):
                nxt = "/" + nxt.split("/", 3)[3]
            page = self.get(nxt)

    def node(self) -> dict:
        return self.get("/")

    def status(self) -> dict:
        return self.get("/status")

    def is_dbless(self, node: dict | None = None) -> bool:
        conf = (node or self.node()).get("configuration") or {}
        return conf.get("database") == "off"

    def entities(self, types=ENTITY_TYPES) -> dict:
        """All entities of the given types, every page (database or DB-less node); with
        `upstreams`, their `targets` too."""
        found = {name: self.paged(f"/{name}") for name in types}
        if "upstreams" in found:
            found["targets"] = [t for up in found["upstreams"] for t in self.paged(f"/upstreams/{up['id']}/targets")]
        return found

    def get_config(self) -> str:
        """The declarative configuration of a DB-less node as YAML text (GET /config)."""
        return self.get("/config").get("config", "")

    def post_config(self, text: str, check_hash: bool = True) -> int:
        """Load a declarative configuration into a DB-less node; returns 201, or 304 when unchanged."""
        path = "/config?check_hash=1" if check_hash else "/config"
        resp = self.raw("POST", path, data=text.encode("utf-8"), headers={"Content-Type": "application/yaml"})
        if resp.status_code not in (200, 201, 304):
            raise KongAdminError(f"POST {resp.url} returned HTTP {resp.status_code}: {resp.text[:500]}",
                                 status=resp.status_code, body=resp.text[:2000], url=resp.url)
        return resp.status_code
