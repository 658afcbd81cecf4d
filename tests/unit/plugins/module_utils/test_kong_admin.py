"""_kong_admin directly: node modes, pagination, the entity walk, error hints, the token header."""

from __future__ import annotations

import json
import sys

import pytest
import requests
from ansible_collections.kongops.upgrade.tests.unit.conftest import FakeAdminApi, collection_env
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    KONG_ADMIN_ARG_SPEC,
    KongAdminClient,
    KongAdminError,
    node_mode,
    serves_declarative,
)


@pytest.mark.parametrize(
    "conf, mode",
    [
        ({"database": "postgres", "role": "traditional"}, "traditional"),
        ({"database": "off", "role": "traditional"}, "dbless"),
        ({"database": "postgres", "role": "control_plane"}, "hybrid_cp"),
        ({"database": "off", "role": "data_plane"}, "hybrid_dp"),
        ({"database": "off"}, "dbless"),
        ({}, "traditional"),
    ],
)
def test_node_mode(conf, mode):
    assert node_mode({"configuration": conf}) == mode


def test_data_planes_and_dbless_nodes_serve_declarative_config_control_planes_do_not():
    assert [m for m in ("traditional", "dbless", "hybrid_cp", "hybrid_dp") if serves_declarative(m)] == ["dbless", "hybrid_dp"]


def client(collections, admin_token=None, **fake):
    api = FakeAdminApi("http://kong:8001", collections=collections, **fake)
    session = requests.Session()
    session.request = lambda method, url, **kw: api.answer(method, url, dict(session.headers), kw)
    c = KongAdminClient("http://kong:8001/", session=session, admin_token=admin_token)
    c.api = api
    return c


def test_paged_follows_next_links():
    c = client({"/services": [{"id": i} for i in range(5)]})
    assert [s["id"] for s in c.paged("/services")] == [0, 1, 2, 3, 4]
    assert [url.split("8001", 1)[1] for _m, url, _h in c.api.calls] == ["/services?size=1000", "/services?offset=2", "/services?offset=4"]


def test_walk_entities_lists_targets_per_upstream_and_skips_only_optional_404s():
    pages = {"/services": [{"id": "s"}], "/upstreams": [{"id": "u1"}, {"id": "u2"}], "/upstreams/u1/targets": [{"id": "t1"}], "/upstreams/u2/targets": []}
    skipped: list = []
    walk = [("services", "/services", False), ("basicauth_credentials", "/basic-auths", True), ("upstreams", "/upstreams", False)]
    got = list(client(pages).walk_entities(walk, skipped))
    assert got == [("services", {"id": "s"}), ("upstreams", {"id": "u1"}), ("upstreams", {"id": "u2"}), ("targets", {"id": "t1"})]
    assert skipped == ["/basic-auths"]
    with pytest.raises(KongAdminError) as exc:
        list(client(pages).walk_entities([("consumers", "/consumers", False)]))
    assert exc.value.status == 404 and "check admin_url" in str(exc.value)


@pytest.mark.parametrize("status, hint", [(401, "set admin_token"), (403, "check admin_token")])
def test_errors_carry_status_and_a_hint(status, hint):
    c = client({})
    c.api.answer = lambda method, url, headers, kw: FakeAdminApi.response(status, {"message": "no"}, url)
    with pytest.raises(KongAdminError) as exc:
        c.node()
    assert exc.value.status == status and hint in str(exc.value)


def test_token_goes_in_the_kong_admin_token_header_and_mode_is_read_from_get_root():
    c = client({}, admin_token="t0k", root={"configuration": {"database": "off", "role": "data_plane"}})
    assert c.mode() == "hybrid_dp" and c.is_dbless() is True
    assert c.api.calls[0][2]["Kong-Admin-Token"] == "t0k"


def test_connection_errors_name_the_url():
    c = KongAdminClient("http://127.0.0.1:1", timeout=1, retries=0)
    with pytest.raises(KongAdminError, match=r"GET http://127.0.0.1:1/ failed") as exc:
        c.node()
    assert exc.value.status is None


def test_arg_spec_keeps_its_public_options():
    assert set(KONG_ADMIN_ARG_SPEC) >= {"admin_url", "admin_token", "validate_certs", "ca_path", "timeout"}
    assert KONG_ADMIN_ARG_SPEC["admin_token"]["no_log"] is True


class _Answers:
    """A session answering POST /config with the given (status, body, headers) in turn."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.headers = {}
        self.posts = 0

    def request(self, method, url, **_kwargs):
        self.posts += 1
        code, body, headers = self.answers.pop(0)
        resp = requests.Response()
        resp.status_code, resp.url = code, url
        resp._content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        resp.headers.update(headers)
        return resp


def _config_client(session):
    return KongAdminClient("http://kong:8001", session=session)


def test_post_config_waits_out_a_load_in_progress_as_retry_after_says():
    # Kong/kong 3.9.3 kong/api/routes/config.lua:154-158: 429 while another load holds the lock
    busy = (429, {"message": "Currently loading previous configuration"}, {"Retry-After": "10"})
    session = _Answers(busy, busy, (201, {}, {}))
    slept = []
    assert _config_client(session).post_config("_format_version: '3.0'\n", sleep=slept.append, clock=lambda: sum(slept)) == 201
    assert slept == [10.0, 10.0] and session.posts == 3


def test_post_config_gives_up_after_busy_wait_naming_the_reason():
    busy = (429, {"message": "Currently loading previous configuration"}, {"Retry-After": "10"})
    session = _Answers(*[busy] * 10)
    slept = []
    with pytest.raises(KongAdminError) as err:
        _config_client(session).post_config("x: 1\n", busy_wait=25, sleep=slept.append, clock=lambda: sum(slept))
    assert err.value.status == 429 and "still loading a previous configuration after 25s" in str(err.value)
    assert sum(slept) == 25


def test_post_config_413_from_nginx_names_the_body_limit_setting():
    page = "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n</html>\r\n"
    with pytest.raises(KongAdminError) as err:
        _config_client(_Answers((413, page, {"Content-Type": "text/html"}))).post_config("a" * 100)
    assert err.value.status == 413
    assert "nginx_admin_client_max_body_size" in str(err.value) and "100 bytes" in str(err.value)


def test_post_config_413_from_lmdb_names_lmdb_map_size():
    # kong/api/routes/config.lua:172-176 at 3.9.3
    body = {"message": 'Configuration does not fit in LMDB database, consider raising the "lmdb_map_size" config for Kong'}
    with pytest.raises(KongAdminError) as err:
        _config_client(_Answers((413, body, {}))).post_config("x: 1\n")
    assert "raise lmdb_map_size" in str(err.value)


class _Reads:
    """A session answering each request with the next of the given statuses (or raising the exception)."""

    def __init__(self, *answers):
        self.answers, self.headers, self.calls = list(answers), {}, []

    def request(self, method, url, **_kwargs):
        self.calls.append(method)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        resp = requests.Response()
        resp.status_code, resp.url = answer, url
        resp._content = json.dumps({"message": "An unexpected error occurred"} if answer >= 500 else {"version": "3.9.3"}).encode()
        return resp


@pytest.mark.parametrize("first", [500, 502, 503, 504, requests.ReadTimeout("read timed out")])
def test_a_read_is_tried_again_after_a_transient_failure(first):
    slept: list = []
    session = _Reads(first, first, 200)
    c = KongAdminClient("http://kong:8001", session=session, sleep=slept.append)
    assert c.node() == {"version": "3.9.3"}
    assert session.calls == ["GET"] * 3 and slept == [0.5, 1.0]


def test_a_read_that_keeps_failing_stops_bounded_and_says_how_often_it_was_tried():
    slept: list = []
    c = KongAdminClient("http://kong:8001", session=_Reads(502, 502, 502, 200), sleep=slept.append)
    with pytest.raises(KongAdminError) as err:
        c.node()
    assert err.value.status == 502 and "returned HTTP 502 3 times in a row" in str(err.value)
    assert slept == [0.5, 1.0]
    c = KongAdminClient("http://kong:8001", session=_Reads(*[requests.ReadTimeout("read timed out")] * 3), sleep=slept.append)
    with pytest.raises(KongAdminError, match=r"GET http://kong:8001/ failed: ReadTimeout: read timed out \(3 tries\)"):
        c.node()


def test_writes_and_other_errors_are_never_repeated():
    slept: list = []
    session = _Reads(502, 200)
    c = KongAdminClient("http://kong:8001", session=session, sleep=slept.append)
    with pytest.raises(KongAdminError, match="POST http://kong:8001/services returned HTTP 502$"):
        c.request("POST", "/services", expected=(201,), json={})
    assert session.calls == ["POST"] and slept == []
    for status in (400, 404, 401):
        session = _Reads(status, 200)
        with pytest.raises(KongAdminError):
            KongAdminClient("http://kong:8001", session=session, sleep=slept.append).node()
        assert session.calls == ["GET"] and slept == []
    session = _Reads(requests.ConnectionError("refused"), 200)
    with pytest.raises(KongAdminError, match="ConnectionError"):
        KongAdminClient("http://kong:8001", session=session, sleep=slept.append).node()
    assert session.calls == ["GET"] and slept == []


def test_requests_is_imported_by_the_first_client_not_by_the_module_utils():
    """A module that reads only status listeners (kong_gate) imports _kong_admin without the library
    requests: its imports are about 90 ms of every such module run."""
    import subprocess

    code = (
        "import sys\n"
        "from ansible_collections.kongops.upgrade.plugins.module_utils import _kong_admin\n"
        "assert _kong_admin.HAS_REQUESTS and 'requests' not in sys.modules, sorted(m for m in sys.modules if 'requests' in m)\n"
        "_kong_admin.KongAdminClient('http://127.0.0.1:1')\n"
        "assert 'requests' in sys.modules\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=collection_env())
    assert res.returncode == 0, res.stderr


def test_a_requests_that_does_not_import_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "requests", None)
    with pytest.raises(KongAdminError, match="the Python library requests does not import on this host"):
        KongAdminClient("http://127.0.0.1:1")
