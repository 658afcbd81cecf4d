"""Served Admin API / Status API responses validated against Kong's OSS OpenAPI specs of the same
version (kong-oss-3.4.yaml, kong-oss-3.7.yaml, kong-oss.yaml = 3.9, gateway-status.yaml).

Kong returns unset fields as JSON null while the specs declare plain types without `nullable`;
null values are therefore removed before validation (they are legal Kong output)."""

from __future__ import annotations

import copy
import functools
import os
import textwrap

import pytest
import requests
import yaml
from openapi_schema_validator import OAS30Validator

from kongsim_testlib import gen_cluster_cert

REF_DIR = os.environ.get("KONG_REFERENCE_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "reference", "kong")
SPECS = {"3.4.2": "kong-oss-3.4.yaml", "3.7.1": "kong-oss-3.7.yaml", "3.9.3": "kong-oss.yaml"}

pytestmark = pytest.mark.skipif(not os.path.isdir(REF_DIR), reason=f"reference specs not found in {REF_DIR}")


@functools.cache
def spec(name: str) -> dict:
    with open(os.path.join(REF_DIR, name), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def resolve(node, doc, depth=0):
    if depth > 20:
        return {}
    if isinstance(node, dict):
        if "$ref" in node:
            target = doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return resolve(target, doc, depth + 1)
        return {k: resolve(v, doc, depth + 1) for k, v in node.items() if not k.startswith("x-")}
    if isinstance(node, list):
        return [resolve(v, doc, depth + 1) for v in node]
    return node


def drop_nulls(value):
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def check(schema: dict, instance) -> None:
    errors = sorted(OAS30Validator(schema).iter_errors(drop_nulls(copy.deepcopy(instance))), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def component(doc, name):
    return resolve(doc["components"]["schemas"][name], doc)


def op_schema(doc, path, method="get", status="200"):
    op = doc["paths"][path][method]
    resp = resolve(op["responses"][status], doc)
    return resp["content"]["application/json"]["schema"]


@pytest.fixture(scope="module")
def nodes(module_node_factory, echo_upstream, tmp_path_factory):
    cert, key = gen_cluster_cert(str(tmp_path_factory.mktemp("pem")))
    with open(cert, encoding="utf-8") as fh:
        pem = fh.read()
    with open(key, encoding="utf-8") as fh:
        pkey = fh.read()
    ind = lambda s: textwrap.indent(s, "      ")
    cfg = (
        f'_format_version: "3.0"\nservices:\n- name: echo\n  url: {echo_upstream.url}/base\n'
        "  routes:\n  - name: r1\n    paths: [/echo]\n    hosts: [a.example.com]\n    methods: [GET]\n"
        "  plugins:\n  - name: key-auth\n"
        "consumers:\n- username: demo\n  custom_id: c1\n  keyauth_credentials:\n  - key: demo-key\n"
        "upstreams:\n- name: pool.internal\n  targets:\n  - target: 127.0.0.1:9\n    weight: 10\n"
        f"certificates:\n- cert: |\n{ind(pem)}  key: |\n{ind(pkey)}  snis:\n  - name: a.example.com\n"
        f"ca_certificates:\n- cert: |\n{ind(pem)}"
    )
    return module_node_factory.many({v: (v, {"name": f"oas-{v}", "declarative": cfg}) for v in SPECS})


ENTITY_CASES = [
    ("/services", "/services/{service_id_or_name}", "Service"),
    ("/routes", "/routes/{route_id_or_name}", "Route"),
    ("/plugins", "/plugins/{plugin_id}", "Plugin"),
    ("/consumers", "/consumers/{consumer_username_or_id}", "Consumer"),
    ("/upstreams", "/upstreams/{upstream_id_or_name}", "Upstream"),
    ("/certificates", "/certificates/{certificate_id}", "Certificate"),
    ("/snis", "/snis/{sni_name_or_id}", "SNI"),
    ("/ca_certificates", "/ca_certificates/{ca_certificate_id}", "CA-Certificate"),
]


@pytest.mark.parametrize("version", list(SPECS))
@pytest.mark.parametrize("collection,item_path,schema_name", ENTITY_CASES)
def test_entity_endpoints_match_spec(nodes, version, collection, item_path, schema_name):
    doc = spec(SPECS[version])
    base = nodes[version].admin_url
    listing = requests.get(base + collection)
    assert listing.status_code == 200
    body = listing.json()
    assert set(body) >= {"data", "next"} and body["data"], collection
    entity_schema = component(doc, schema_name)
    for item in body["data"]:
        check(entity_schema, item)
    one = requests.get(base + f"{collection}/{body['data'][0]['id']}")
    assert one.status_code == 200
    item_op = doc["paths"].get(item_path, {}).get("get")
    schema = op_schema(doc, item_path) if item_op and "200" in item_op["responses"] else entity_schema
    check(schema, one.json())
    check(entity_schema, one.json())


@pytest.mark.parametrize("version", list(SPECS))
def test_targets_match_spec(nodes, version):
    doc = spec(SPECS[version])
    body = requests.get(nodes[version].admin_url + "/upstreams/pool.internal/targets").json()
    assert body["data"]
    for item in body["data"]:
        check(component(doc, "Target"), item)


@pytest.mark.parametrize("version", list(SPECS))
def test_status_and_config_match_spec(nodes, version):
    doc = spec(SPECS[version])
    node = nodes[version]
    check(op_schema(doc, "/status"), requests.get(node.admin_url + "/status").json())
    if "/config" in doc["paths"]:
        check(op_schema(doc, "/config"), requests.get(node.admin_url + "/config").json())
    if "/" in doc["paths"]:
        check(op_schema(doc, "/"), requests.get(node.admin_url + "/").json())
    status = spec("gateway-status.yaml")
    check(op_schema(status, "/status"), requests.get(node.status_url + "/status").json())
    ready = requests.get(node.status_url + "/status/ready")
    check(op_schema(status, "/status/ready", status=str(ready.status_code)), ready.json())
    metrics = requests.get(node.status_url + "/metrics")
    assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/plain")
