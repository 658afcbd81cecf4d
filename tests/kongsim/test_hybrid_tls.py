"""The hybrid cluster link refuses what Kong refuses, with cluster_mtls = pki (Kong/kong 3.9.3):

- the control plane's cluster listener verifies a data plane's certificate against cluster_ca_cert
  (`ssl_verify_client on`, kong/templates/nginx_kong.lua:568-576): OpenSSL refuses an expired one;
- the data plane verifies the control plane's certificate (`ssl_verify = true`) by cluster_server_name
  (kong/clustering/utils.lua:97-105): a control-plane certificate that does not carry that name is refused.

Neither data plane is ever listed by the control plane; one with a valid certificate and the right name is.
Certificates are made in the test (cryptography), so that one can be expired."""

from __future__ import annotations

import datetime
import time

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kongsim_testlib import wait_until
from test_hybrid import pg_settings

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def _write(directory, name, cert, key):
    crt, pem_key = directory / f"{name}.crt", directory / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    pem_key.chmod(0o600)
    return str(crt), str(pem_key)


def _issue(cn, issuer=None, ca=False, start=-1, days=30, dns=None):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + start * DAY)
        .not_valid_after(NOW + days * DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def _listed(cp) -> set:
    return {row["id"] for row in requests.get(cp.admin_url + "/clustering/data-planes", timeout=5).json()["data"]}


def _node_id(node) -> str:
    return requests.get(node.admin_url + "/", timeout=5).json()["node_id"]


def test_pki_refuses_an_expired_data_plane_certificate_and_a_control_plane_without_the_server_name(kong_node_factory, postgres, tmp_path):
    ca = _issue("cluster CA", ca=True, days=365)
    ca_crt, _ca_key = _write(tmp_path, "ca", *ca)
    cp_crt, cp_key = _write(tmp_path, "cp", *_issue("cp", issuer=ca, dns=["cp.kong.test"]))
    good = _write(tmp_path, "good", *_issue("good", issuer=ca))
    expired = _write(tmp_path, "expired", *_issue("expired", issuer=ca, start=-30, days=-1))
    common = {"cluster_mtls": "pki", "cluster_ca_cert": ca_crt}
    db = postgres.create_database("kongsim_hybrid_tls")
    cp = kong_node_factory("3.7.1", start=False, name="cp", role="control_plane", cluster_cert=cp_crt, cluster_cert_key=cp_key, **common, **pg_settings(db))
    assert cp.cli("migrations", "bootstrap", "-c", cp.conf_path).returncode == 0
    cp.start()
    link = {"role": "data_plane", "database": "off", "cluster_control_plane": f"127.0.0.1:{cp.cluster_port}", **common}
    ok = kong_node_factory("3.7.1", name="dp-ok", cluster_server_name="cp.kong.test", cluster_cert=good[0], cluster_cert_key=good[1], **link)
    old = kong_node_factory("3.7.1", name="dp-expired", cluster_server_name="cp.kong.test", cluster_cert=expired[0], cluster_cert_key=expired[1], **link)
    # the right CA, the wrong name: cluster_server_name is what the data plane checks
    misnamed = kong_node_factory("3.7.1", name="dp-misnamed", cluster_server_name="kong-cp.internal", cluster_cert=good[0], cluster_cert_key=good[1], **link)
    ok_id = _node_id(ok)
    wait_until(lambda: ok_id in _listed(cp), timeout=20, message="the data plane with a valid certificate listed")
    time.sleep(3)
    listed = _listed(cp)
    assert _node_id(old) not in listed and _node_id(misnamed) not in listed
    assert old.pid() and misnamed.pid(), "a refused data plane keeps running and retrying, as Kong's does"
    # the data plane names the certificate check that failed
    wait_until(lambda: "certificate verify failed" in misnamed.error_log(), timeout=20, message="the DP's refusal")
