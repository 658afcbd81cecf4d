"""The unit-test harness shared by every module test: one driver that runs a module's main() the way
Ansible does and returns (exit code, result, raw output), and one fake Kong Admin API.

Import it as ``ansible_collections.kongops.upgrade.tests.unit.conftest`` (how collections share test
utilities), so that it resolves under pytest and under ansible-test alike."""

from __future__ import annotations

import json
import os

import pytest
import requests
from ansible.module_utils.testing import patch_module_args


@pytest.fixture(autouse=True)
def fresh_ansible_messages():
    """Ansible keeps warnings and deprecations per process; each test starts clean."""
    from ansible.module_utils.common import warnings

    warnings._global_deprecations.clear()
    warnings._global_warnings.clear()
    yield


@pytest.fixture
def controller_context():
    """For tests of plugins that run in the controller (actions, lookups): importing one marks the whole
    process as the controller, which changes how modules tested later in the same session report
    warnings. The mark is kept to the test (``pytestmark = pytest.mark.usefixtures("controller_context")``)."""
    from ansible.module_utils import _internal

    was = _internal.is_controller
    _internal.is_controller = True
    yield
    _internal.is_controller = was


def collection_env() -> dict:
    """The environment of a Python subprocess that imports the collection as
    ``ansible_collections.kongops.upgrade``: this process's, with the venv's collections directory (where
    `make venv` links the checkout) first on PYTHONPATH."""
    env = dict(os.environ)
    collections = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".venv", "collections"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [collections, env.get("PYTHONPATH")]))
    return env


def run_module(main, capsys, args: dict, defaults: dict | None = None) -> tuple:
    """Run `main()` with `defaults` updated by `args` as module arguments; (rc, result dict, raw stdout)."""
    params = dict(defaults or {})
    params.update(args)
    with patch_module_args(params), pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr().out
    return exc.value.code, json.loads(out), out


def warning_texts(result: dict) -> list:
    """Warning texts; ansible-core 2.19 reports each as a WarningSummary dict."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


class FakeAdminApi:
    """A Kong Admin API in memory, answering requests.Session.request once `install`ed.

    `root` is the `GET /` body, `status` the `GET /status` body; `collections` maps a path
    (`/services`, `/upstreams/<id>/targets`) to its entities, served in pages of `page_size` with
    Kong's `next` links; an unknown path is 404 `{"message": "Not found"}`. Every call is recorded."""

    def __init__(
        self, base: str = "http://127.0.0.1:8001", root: dict | None = None, status: dict | None = None, collections: dict | None = None, page_size: int = 2
    ):
        self.base, self.page_size = base.rstrip("/"), page_size
        self.root = root if root is not None else {"version": "3.9.3", "node_id": "n-1", "configuration": {"database": "postgres", "role": "traditional"}}
        self.status = status if status is not None else {"database": {"reachable": True}}
        self.collections = collections or {}
        self.calls: list = []

    def install(self, monkeypatch) -> "FakeAdminApi":
        fake = self

        def request(session, method, url, **kwargs):
            return fake.answer(method, url, dict(session.headers), kwargs)

        monkeypatch.setattr(requests.Session, "request", request)
        return self

    @staticmethod
    def response(code: int, body, url: str) -> requests.Response:
        resp = requests.Response()
        resp.status_code, resp.url = code, url
        resp._content = b"" if body is None else json.dumps(body).encode()
        return resp

    def answer(self, method, url, headers, kwargs):
        self.calls.append((method, url, headers))
        if not url.startswith(self.base):
            raise requests.ConnectionError(f"connection refused: {url}")
        path, _sep, query = url[len(self.base) :].partition("?")
        path = path or "/"
        if method == "GET" and path == "/":
            return self.response(200, self.root, url)
        if method == "GET" and path == "/status":
            return self.response(200, self.status, url)
        if method == "GET" and path in self.collections:
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            start = int(params.get("offset", 0))
            items = self.collections[path]
            page = items[start : start + self.page_size]
            nxt = f"{path}?offset={start + self.page_size}" if start + self.page_size < len(items) else None
            return self.response(200, {"data": page, "next": nxt}, url)
        if method == "GET":
            return self.response(404, {"message": "Not found"}, url)
        return self.response(405, {"message": "Method not allowed"}, url)
