# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Konnect API client: the data-plane node records of a control plane and its expected configuration hash.

Konnect API v2, Control Planes Configuration
(https://developer.konghq.com/api/konnect/control-planes-config/v2/, operations list-dataplane-nodes
and get-expected-config-hash; Kong/developer.konghq.com api-specs/konnect/control-planes-config/v2/openapi.yaml):
``GET /v2/control-planes/{controlPlaneId}/nodes`` answers ``{"items": [{id, version, hostname, last_ping,
type, created_at, updated_at, config_hash, compatibility_status}], "page": {total, next}}`` and pages with
``page[size]`` and ``page[after]``; ``GET /v2/control-planes/{controlPlaneId}/expected-config-hash`` answers
``{expected_hash, created_at, updated_at}``. Every call carries ``Authorization: Bearer <token>``."""

from __future__ import annotations

import re
import traceback
from urllib.parse import parse_qs, urlparse

try:
    import requests
except ImportError:
    HAS_REQUESTS, REQUESTS_IMPORT_ERROR = False, traceback.format_exc()
else:
    HAS_REQUESTS, REQUESTS_IMPORT_ERROR = True, None

from ansible_collections.kongops.upgrade.plugins.module_utils._poll import poll

KONNECT_ARG_OPTIONS = {
    "api_url": {"type": "str", "default": "https://us.api.konghq.com"},
    "token": {"type": "str", "no_log": True},
    "control_plane_id": {"type": "str"},
    "control_plane_version": {"type": "str"},
    "newest_supported": {"type": "str"},
}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class KonnectError(Exception):
    def __init__(self, msg: str, status: int | None = None, body: str | None = None, url: str | None = None):
        super().__init__(msg)
        self.status, self.body, self.url = status, body, url


def check_params(params: dict) -> str | None:
    """The message naming the bad option (the role's variable in brackets), or None."""
    url = str(params.get("api_url") or "")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return (
            f"konnect.api_url (kong_konnect_api_url): {url!r} is not a URL; give Konnect's regional API, "
            "for example https://us.api.konghq.com or https://eu.api.konghq.com"
        )
    if not params.get("token"):
        return "konnect.token (kong_konnect_token): a Konnect personal or system account access token is needed to read the control plane's data-plane nodes"
    if not _UUID.match(str(params.get("control_plane_id") or "")):
        return (
            f"konnect.control_plane_id (kong_konnect_control_plane_id): {params.get('control_plane_id')!r} is "
            "not a control plane id (a UUID, shown in Konnect's Gateway Manager)"
        )
    return None


class KonnectClient:
    def __init__(
        self,
        api_url: str,
        token: str,
        control_plane_id: str,
        timeout: int = 10,
        validate_certs: bool = True,
        ca_path: str | None = None,
        session=None,
        **_ignored,
    ):
        self.base_url = api_url.rstrip("/")
        if self.base_url.endswith("/v2"):
            self.base_url = self.base_url[:-3]
        self.cp_id, self.timeout = control_plane_id, timeout
        self.session = session or requests.Session()
        self.session.verify = ca_path if (validate_certs and ca_path) else validate_certs
        self.session.headers["Authorization"] = f"Bearer {token}"

    def _get(self, path: str, params=None) -> dict:
        url = self.base_url + path
        try:
            resp = self.session.get(url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise KonnectError(f"GET {url} failed: {exc}", url=url) from exc
        if resp.status_code in (401, 403):
            raise KonnectError(
                f"GET {url} returned HTTP {resp.status_code}: Konnect refused the token (kong_konnect_token) for this control plane",
                status=resp.status_code,
                url=url,
            )
        if resp.status_code != 200:
            raise KonnectError(f"GET {url} returned HTTP {resp.status_code}", status=resp.status_code, body=resp.text[:2000], url=url)
        try:
            return resp.json()
        except ValueError as exc:
            raise KonnectError(f"GET {url} did not answer JSON", status=resp.status_code, body=resp.text[:500], url=url) from exc

    def nodes(self, page_size: int = 100) -> list:
        """Every data-plane node record of the control plane, page by page (page.next)."""
        items, params = [], {"page[size]": page_size}
        for _page in range(1000):
            body = self._get(f"/v2/control-planes/{self.cp_id}/nodes", params)
            items += body.get("items") or []
            nxt = (body.get("page") or {}).get("next")
            if not nxt:
                return items
            after = parse_qs(urlparse(nxt).query).get("page[after]")
            if not after:
                return items
            params = {"page[size]": page_size, "page[after]": after[0]}
        return items

    def expected_hash(self) -> str | None:
        """The configuration hash the control plane expects its data planes to report (None when the
        endpoint is not there)."""
        try:
            body = self._get(f"/v2/control-planes/{self.cp_id}/expected-config-hash")
        except KonnectError as exc:
            if exc.status == 404:
                return None
            raise
        return body.get("expected_hash") or None


def wait_konnect(client: KonnectClient, check, timeout: float, interval: float = 1.0, sleep=None, clock=None):
    """Poll Konnect's node records until ``check(items)`` returns (True, value) or time is up; returns
    (done, value, items) of the last read."""

    def attempt():
        items = client.nodes()
        done, value = check(items)
        return done, (value, items)

    done, (value, items), _waited = poll(attempt, timeout, interval, sleep, clock)
    return done, value, items


def wait_same_hash(read_hash, peers: list, own_hash: str, timeout: float, interval: float = 1.0, sleep=None, clock=None) -> list:
    """Poll the data planes ``peers`` ({name, url}) with ``read_hash(url)`` until each reports
    ``own_hash``; returns what still differs when time is up ([] when they agree)."""

    def attempt():
        problems = []
        for peer in peers:
            try:
                seen = read_hash(peer["url"])
            except Exception as exc:  # pylint: disable=broad-exception-caught
                seen, why = None, f"unreachable ({exc})"
            else:
                why = f"configuration hash {seen}"
            if seen != own_hash:
                problems.append(f"{peer['name']} ({peer['url']}): {why}")
        return not problems, problems

    return poll(attempt, timeout, interval, sleep, clock)[1]
