# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Kong Admin API client shared by the modules."""

from __future__ import annotations

import importlib.util
import json
import time
import urllib.error

from ansible.module_utils.basic import env_fallback

# The Python library requests is looked up here and imported by the first KongAdminClient (_requests): it
# is about 90 ms of imports, which the module runs that read only status listeners (kong_gate) or never call
# the Admin API (kong_service's quit and stop) do not pay.
if importlib.util.find_spec("requests") is None:
    HAS_REQUESTS, REQUESTS_IMPORT_ERROR = False, "ModuleNotFoundError: No module named 'requests'"
else:
    HAS_REQUESTS, REQUESTS_IMPORT_ERROR = True, None


def _requests():
    """The library requests, imported at its first use; a copy that fails to import is a KongAdminError
    that says so, not a traceback."""
    try:
        import requests
    except ImportError as exc:
        raise KongAdminError(f"the Python library requests does not import on this host: {exc.__class__.__name__}: {exc}") from exc
    return requests


# A connection that was refused or reset never reached Kong: both clients below try it again this many
# times with this backoff factor (StatusListener after 0.3 s, then 0.6 s; KongAdminClient through urllib3's
# Retry, which makes its first retry at once, then waits 0.6 s).
CONNECT_RETRIES = 2
CONNECT_BACKOFF = 0.3

KONG_ADMIN_ARG_SPEC = dict(
    admin_url=dict(type="str", default="http://127.0.0.1:8001", fallback=(env_fallback, ["KONG_ADMIN_URL"])),
    admin_token=dict(type="str", no_log=True, fallback=(env_fallback, ["KONG_ADMIN_TOKEN"])),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    client_cert=dict(type="path"),
    client_key=dict(type="path", no_log=False),
    timeout=dict(type="int", default=10),
)

# Node modes, from `GET /` configuration.database and configuration.role (Kong/kong 3.9.3
# kong/api/routes/kong.lua). A data plane always runs with database = off (Kong/kong 3.9.3
# kong/conf_loader/init.lua refuses another database for role = data_plane), but takes its
# configuration from its control plane: it holds a declarative configuration it must not be given.
NODE_MODES = ("traditional", "dbless", "hybrid_cp", "hybrid_dp", "konnect_dp")
# Konnect's cluster endpoints (<prefix>.<region>.cp0.konghq.com, developer.konghq.com/konnect-platform/network);
# konghq.tech for Kong's own test regions. UNCONFIRMED for every region: a data plane that reports
# konnect_mode (Kong Enterprise; OSS 3.9.3 reads conf.konnect_mode in kong/clustering/data_plane.lua:69
# but does not declare it) is a Konnect data plane too.
KONNECT_DOMAINS = (".konghq.com", ".konghq.tech")


def node_mode(node: dict) -> str:
    """traditional | dbless | hybrid_cp | hybrid_dp | konnect_dp of a `GET /` answer."""
    conf = node.get("configuration") or {}
    role = conf.get("role") or "traditional"
    if role == "control_plane":
        return "hybrid_cp"
    if role == "data_plane":
        host = str(conf.get("cluster_control_plane") or "").rsplit(":", 1)[0].lower()
        if conf.get("konnect_mode") in (True, "on") or host.endswith(KONNECT_DOMAINS):
            return "konnect_dp"
        return "hybrid_dp"
    return "dbless" if conf.get("database") == "off" else "traditional"


def serves_declarative(mode: str) -> bool:
    """The node runs from a declarative configuration in memory (no database): DB-less nodes and data
    planes. It refuses entity writes (405) and answers GET /config."""
    return mode in ("dbless", "hybrid_dp", "konnect_dp")


_HINTS = {
    401: "the Admin API wants credentials: set admin_token (Kong-Admin-Token header)",
    403: "the admin token was refused: check admin_token",
    404: "no such path on the Admin API: check admin_url",
}


# Answers of a GET that are tried again (KongAdminClient._read): Kong's Admin API answers 500 when a
# database query fails for a moment, and a proxy in front of it 502/503/504.
_TRANSIENT = (500, 502, 503, 504)


class KongAdminError(Exception):
    """An Admin API call failed; carries the HTTP status and a truncated body."""

    def __init__(self, msg: str, status: int | None = None, body: str | None = None, url: str | None = None):
        super().__init__(msg)
        self.status, self.body, self.url = status, body, url


class KongAdminClient:
    def __init__(
        self,
        admin_url: str,
        admin_token: str | None = None,
        validate_certs: bool = True,
        ca_path: str | None = None,
        timeout: int = 10,
        retries: int = CONNECT_RETRIES,
        session=None,
        client_cert: str | None = None,
        client_key: str | None = None,
        read_retries: int = 2,
        sleep=None,
    ):
        self.base_url = admin_url.rstrip("/")
        self.timeout = timeout
        self.read_retries = max(0, read_retries)
        self.sleep = sleep or time.sleep
        self._requests = _requests()
        if session is None:
            session = self._requests.Session()
            # Retries on connection errors only: a request that reached Kong is never repeated.
            from requests.adapters import HTTPAdapter  # imported with requests above
            from urllib3.util.retry import Retry

            retry = Retry(
                total=retries, connect=retries, read=0, status=0, other=0, backoff_factor=CONNECT_BACKOFF, allowed_methods=None, raise_on_status=False
            )
            session.mount("http://", HTTPAdapter(max_retries=retry))
            session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session = session
        # Passed with every request, not only set on the session: requests lets REQUESTS_CA_BUNDLE or
        # CURL_CA_BUNDLE in the environment replace a session-level CA (psf/requests#3829).
        self.verify = ca_path if (validate_certs and ca_path) else validate_certs
        self.session.verify = self.verify
        if client_cert:
            # mutual TLS towards an Admin API that asks for a client certificate
            self.session.cert = (client_cert, client_key) if client_key else client_cert
        if admin_token:
            self.session.headers["Kong-Admin-Token"] = admin_token

    @classmethod
    def from_params(cls, params: dict, url_key: str = "admin_url") -> "KongAdminClient":
        return cls(
            admin_url=params[url_key],
            admin_token=params.get("admin_token"),
            validate_certs=params.get("validate_certs", True),
            ca_path=params.get("ca_path"),
            timeout=params.get("timeout", 10),
            client_cert=params.get("client_cert"),
            client_key=params.get("client_key"),
        )

    def raw(self, method: str, path: str, **kwargs):
        """Send a request and return the response whatever its status."""
        url = self.base_url + path
        try:
            kwargs.setdefault("verify", self.verify)
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except self._requests.RequestException as exc:
            raise KongAdminError(f"{method} {url} failed: {exc.__class__.__name__}: {exc}", url=url) from exc

    def request(self, method: str, path: str, expected=(200,), **kwargs):
        if method == "GET":
            resp, tries = self._read(path, **kwargs)
        else:
            resp, tries = self.raw(method, path, **kwargs), 1
        if resp.status_code not in expected:
            hint = _HINTS.get(resp.status_code)
            msg = f"{method} {resp.url} returned HTTP {resp.status_code}"
            if tries > 1:
                msg += f" {tries} times in a row"
            raise KongAdminError(msg + (f" ({hint})" if hint else ""), status=resp.status_code, body=resp.text[:2000], url=resp.url)
        if not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError as exc:
            raise KongAdminError(f"{method} {resp.url} did not answer JSON", status=resp.status_code, body=resp.text[:2000], url=resp.url) from exc

    def _read(self, path: str, **kwargs):
        """GET with bounded retries; returns (response, tries). An answer of 500, 502, 503 or 504 (Kong's
        Admin API failing for a moment, or a proxy in front of it) and a read that timed out are tried again
        after 0.5 s, 1 s, ... up to ``read_retries`` times. A read changes nothing, so repeating it is safe;
        other methods are never repeated once they reached Kong. The last answer or error stands."""
        tries = self.read_retries + 1
        for attempt in range(1, tries + 1):
            try:
                resp = self.raw("GET", path, **kwargs)
            except KongAdminError as exc:
                if attempt == tries or not isinstance(exc.__cause__, self._requests.ReadTimeout):
                    if attempt > 1:
                        raise KongAdminError(f"{exc} ({attempt} tries)", url=exc.url) from exc.__cause__
                    raise
            else:
                if resp.status_code not in _TRANSIENT or attempt == tries:
                    return resp, attempt
            self.sleep(0.5 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

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

    def mode(self, node: dict | None = None) -> str:
        """traditional | dbless | hybrid_cp | hybrid_dp (see node_mode)."""
        return node_mode(node if node is not None else self.node())

    def is_dbless(self, node: dict | None = None) -> bool:
        """The node runs without a database (DB-less node or data plane)."""
        return serves_declarative(self.mode(node))

    def walk_entities(self, collections, skipped: list | None = None):
        """(entity type, entity) for every entity of every page of `collections`, a sequence of
        (entity type, path, optional). A 404 on an optional collection (a plugin's credentials that
        this Kong does not load) appends its path to `skipped` instead of failing. Right after
        `upstreams` come the targets of each upstream, as type `targets` (Kong lists them only per
        upstream: /upstreams/{id}/targets)."""
        for etype, path, optional in collections:
            try:
                items = self.paged(path)
            except KongAdminError as exc:
                if exc.status == 404 and optional:
                    if skipped is not None:
                        skipped.append(path)
                    continue
                raise
            for item in items:
                yield etype, item
            if etype == "upstreams":
                for upstream in items:
                    for target in self.paged(f"/upstreams/{upstream['id']}/targets"):
                        yield "targets", target

    def get_config(self) -> str:
        """The declarative configuration of a DB-less node as YAML text (GET /config)."""
        return self.get("/config").get("config", "")

    def post_config(self, text: str, check_hash: bool = True, busy_wait: float = 60.0, sleep=None, clock=None) -> int:
        """Load a declarative configuration into a DB-less node; returns 201, or 304 when unchanged.

        While the node loads another configuration Kong answers 429 with Retry-After (Kong/kong 3.9.3
        kong/api/routes/config.lua:154-158); the load is tried again after that many seconds for at
        most ``busy_wait`` seconds in all. A body above the Admin API's nginx limit is refused by
        nginx with 413 (nginx_admin_client_max_body_size, 10m by default:
        kong/templates/kong_defaults.lua)."""
        sleep = sleep or time.sleep
        clock = clock or time.monotonic
        path = "/config?check_hash=1" if check_hash else "/config"
        body = text.encode("utf-8")
        deadline = clock() + busy_wait
        while True:
            resp = self.raw("POST", path, data=body, headers={"Content-Type": "application/yaml"})
            if resp.status_code != 429:
                break
            left = deadline - clock()
            if left <= 0:
                raise KongAdminError(
                    f"POST {resp.url} returned HTTP 429: the node was still loading a previous "
                    f"configuration after {busy_wait:g}s of waiting ({_message(resp)}); try again "
                    "once its earlier load has finished",
                    status=429,
                    body=resp.text[:2000],
                    url=resp.url,
                )
            sleep(min(_retry_after(resp), left))
        if resp.status_code == 413:
            if "lmdb" in resp.text.lower():
                hint = f"Kong: {_message(resp)}; raise lmdb_map_size in kong.conf on this node"
            else:
                hint = (
                    f"the configuration ({len(body)} bytes) is larger than the Admin API accepts: raise "
                    "nginx_admin_client_max_body_size in kong.conf (10m by default) on this node"
                )
            raise KongAdminError(f"POST {resp.url} returned HTTP 413: {hint}", status=413, body=resp.text[:2000], url=resp.url)
        if resp.status_code not in (200, 201, 304):
            raise KongAdminError(
                f"POST {resp.url} returned HTTP {resp.status_code}: {resp.text[:500]}", status=resp.status_code, body=resp.text[:2000], url=resp.url
            )
        return resp.status_code


class _Answer:
    """What StatusListener.raw returns: the part of a requests response that _kong_node reads."""

    def __init__(self, status_code: int, url: str, text: str):
        self.status_code, self.url, self.text = status_code, url, text

    def json(self):
        return json.loads(self.text)


class StatusListener:
    """GETs on one node's status listener with Ansible's own HTTP client (ansible.module_utils.urls), so
    that an action plugin reads the nodes from the controller without the Python library requests there.
    A refused or reset connection is tried again as KongAdminClient does (CONNECT_RETRIES, CONNECT_BACKOFF);
    an answer of any status is returned as it is."""

    def __init__(
        self,
        url: str,
        validate_certs: bool = True,
        ca_path: str | None = None,
        timeout: int = 5,
        retries: int = CONNECT_RETRIES,
        sleep=time.sleep,
        context=None,
    ):
        self.base_url = url.rstrip("/")
        self.timeout, self.retries, self.sleep = timeout, retries, sleep
        # Ansible's open_url builds a TLS context (the system's CA certificates read again) for every request,
        # http:// too: about 50 ms of CPU each. One context (status_context), made once and shared by every
        # listener of a reading, serves all their requests.
        self.context = context or status_context(validate_certs, ca_path)

    def raw(self, method: str, path: str) -> _Answer:
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            try:
                resp = _urls().Request().open(method, url, timeout=self.timeout, follow_redirects="none", use_netrc=False, context=self.context)
                return _Answer(resp.getcode(), url, resp.read().decode("utf-8", "replace"))
            except urllib.error.HTTPError as exc:
                return _Answer(exc.code, url, (exc.read() if exc.fp else b"").decode("utf-8", "replace"))
            except Exception as exc:  # noqa: BLE001 - refused, reset, timed out, TLS: the node does not answer  # pylint: disable=broad-exception-caught
                error = exc
                if attempt < self.retries and _connection_refused_or_reset(exc):
                    self.sleep(CONNECT_BACKOFF * (2**attempt))
                    continue
                break
        raise KongAdminError(f"{method} {url} failed: {error.__class__.__name__}: {error}", url=url)


def status_context(validate_certs: bool = True, ca_path: str | None = None):
    """The TLS context of StatusListener: ``ca_path`` alone when given, else the system's CA certificates;
    no verification when ``validate_certs`` is false (as Ansible's open_url makes it)."""
    return _urls().make_context(cafile=ca_path, validate_certs=validate_certs)


def _urls():
    """Ansible's HTTP client, imported where StatusListener is used: the modules that use only KongAdminClient
    would pay for it on every run (about 36 ms of imports beside requests, and its compilation from the
    module's zip)."""
    from ansible.module_utils import urls

    return urls


def _connection_refused_or_reset(exc: Exception) -> bool:
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, (ConnectionRefusedError, ConnectionResetError))


def _message(resp) -> str:
    """Kong's `message` of an answer, or the start of its text when it is not Kong's JSON."""
    try:
        return str(resp.json().get("message", ""))
    except (ValueError, AttributeError):
        return resp.text[:200]


def _retry_after(resp, default: float = 10.0) -> float:
    """Seconds of a Retry-After header (Kong sends a number of seconds; at most 10 from POST /config)."""
    try:
        return max(0.0, float(resp.headers.get("Retry-After", default)))
    except (TypeError, ValueError):
        return default
