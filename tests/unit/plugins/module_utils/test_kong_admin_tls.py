"""Admin API client: CA, certificate checks, client certificates and the RBAC token reach the session."""

from __future__ import annotations

import requests
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import KONG_ADMIN_ARG_SPEC, KongAdminClient


def test_client_certificate_ca_and_token_from_params():
    params = {
        "admin_url": "https://127.0.0.1:8444",
        "admin_token": "t0k",
        "validate_certs": True,
        "ca_path": "/etc/kong/ca.pem",
        "client_cert": "/etc/kong/c.pem",
        "client_key": "/etc/kong/c.key",
        "timeout": 5,
    }
    client = KongAdminClient.from_params(params)
    assert client.session.verify == "/etc/kong/ca.pem"
    assert client.session.cert == ("/etc/kong/c.pem", "/etc/kong/c.key")
    assert client.session.headers["Kong-Admin-Token"] == "t0k"


def test_combined_pem_and_no_verification():
    client = KongAdminClient("https://n:8444", validate_certs=False, client_cert="/both.pem", session=requests.Session())
    assert client.session.verify is False and client.session.cert == "/both.pem"


def test_spec_has_the_tls_options_and_hides_the_token():
    assert {"client_cert", "client_key", "ca_path", "validate_certs"} <= set(KONG_ADMIN_ARG_SPEC)
    assert KONG_ADMIN_ARG_SPEC["admin_token"]["no_log"] is True


def test_the_ca_is_kept_when_the_environment_names_another_bundle(monkeypatch):
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace a CA set on the session only
    (psf/requests#3829): the client passes its CA with every request, so the operator's CA wins."""
    seen = {}

    class Recorder(requests.Session):
        def send(self, request, **kwargs):
            seen["verify"] = kwargs.get("verify")
            resp = requests.Response()
            resp.status_code, resp._content, resp.url = 200, b"{}", request.url
            return resp

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    client = KongAdminClient("https://kong-1:8444", ca_path="/etc/kong/admin-ca.pem", session=Recorder())
    client.request("GET", "/")
    assert seen["verify"] == "/etc/kong/admin-ca.pem"
