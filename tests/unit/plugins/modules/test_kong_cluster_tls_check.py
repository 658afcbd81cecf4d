"""kong_cluster_tls_check: every refusal of the hybrid cluster link, with certificates made in the test
(shared: the control plane's own certificate only; pki: issued by cluster_ca_cert, at most four CA
certificates deep, named as the data plane checks it; expiry windows; a key of another certificate)."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.kongops.upgrade.tests.unit.conftest import run_module, warning_texts
from ansible_collections.kongops.upgrade.plugins.modules import kong_cluster_tls_check

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def cert(cn, key=None, issuer=None, ca=False, days=365, start=-1, dns=None, eku=None):
    """(certificate, key): self-signed without `issuer`, else signed by issuer = (cert, key)."""
    key = key or _key()
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
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def run(capsys, cp, dps, **extra):
    return run_module(kong_cluster_tls_check.main, capsys, dict(control_plane=cp, data_planes=dps, **extra))[:2]


def shared_pair():
    return cert("kong_clustering")


# ---------------------------------------------------------------- shared
def test_shared_accepts_the_control_planes_own_certificate(capsys):
    crt, key = shared_pair()
    rc, r = run(capsys, {"name": "cp", "cert": _pem(crt)}, [{"name": "y1", "cert": _pem(crt), "key": _pem(key)}])
    assert rc == 0 and r["refused"] == [] and r["data_planes"][0]["server_name"] == "kong_clustering"
    assert r["changed"] is False


def test_shared_refuses_another_certificate_naming_the_dp_and_the_fix(capsys):
    crt, _k = shared_pair()
    other, other_key = shared_pair()
    rc, r = run(capsys, {"name": "cp", "cert": _pem(crt)}, [{"name": "y1", "cert": _pem(other), "key": _pem(other_key)}])
    assert rc == 1 and r["refused"] == ["y1"]
    assert "y1" in r["msg"] and "accepts only its own cluster_cert" in r["msg"]
    assert "kong_node_cluster_cert" in r["msg"] and "kong/clustering/tls.lua:28-39" in r["msg"]


def test_shared_refuses_a_certificate_without_the_name_kong_clustering(capsys):
    crt, key = cert("cp.example.com")
    rc, r = run(capsys, {"cert": _pem(crt)}, [{"name": "y1", "cert": _pem(crt), "key": _pem(key)}])
    assert rc == 1 and "does not carry the name kong_clustering" in r["msg"]


def test_key_of_another_certificate_is_refused_and_never_shown(capsys):
    crt, _k = shared_pair()
    stranger = _key()
    rc, r = run(capsys, {"cert": _pem(crt)}, [{"name": "y1", "cert": _pem(crt), "key": _pem(stranger)}])
    assert rc == 1 and "cluster_cert_key of y1 is not the private key of its cluster_cert" in r["msg"]
    assert "PRIVATE KEY" not in json_text(r)


def json_text(result):
    import json

    return json.dumps(result)


def test_expired_certificate_is_refused(capsys):
    crt, key = cert("kong_clustering", days=-1, start=-30)
    rc, r = run(capsys, {"cert": _pem(crt)}, [{"name": "y1", "cert": _pem(crt), "key": _pem(key)}])
    assert rc == 1 and "expired on" in r["msg"] and "y1" in r["msg"]


def test_expiry_within_min_days_is_refused_and_within_warn_days_warned(capsys):
    crt, key = cert("kong_clustering", days=10)
    rc, r = run(capsys, {"cert": _pem(crt)}, [{"name": "y1", "cert": _pem(crt), "key": _pem(key)}])
    assert rc == 1 and "fewer than kong_cluster_cert_min_days (14)" in r["msg"]
    rc, r = run(capsys, {"cert": _pem(crt)}, [{"name": "y1", "cert": _pem(crt)}], min_days=7)
    assert rc == 0 and any("kong_cluster_cert_warn_days" in w for w in warning_texts(r))
    assert r["data_planes"][0]["expiries"][0]["days_left"] < 10.1


def test_not_yet_valid_is_refused(capsys):
    crt, key = cert("kong_clustering", start=2, days=300)
    rc, r = run(capsys, {"cert": _pem(crt)}, [{"name": "y1", "cert": _pem(crt)}])
    assert rc == 1 and "is not valid before" in r["msg"]


def test_mode_mismatch_is_refused(capsys):
    crt, _k = shared_pair()
    rc, r = run(capsys, {"cert": _pem(crt)}, [{"name": "y1", "cert": _pem(crt), "mtls": "pki", "ca_cert": _pem(crt)}])
    assert rc == 1 and "y1 has cluster_mtls = pki but the control plane has cluster_mtls = shared" in r["msg"]


def test_not_a_certificate_is_refused_by_name(capsys):
    crt, _k = shared_pair()
    rc, r = run(capsys, {"cert": _pem(crt)}, [{"name": "y1", "cert": "not a certificate"}])
    assert rc == 1 and "cluster_cert of y1 holds no PEM certificate" in r["msg"]


def test_report_only_when_asked(capsys):
    crt, _k = shared_pair()
    other, _ok = shared_pair()
    rc, r = run(capsys, {"cert": _pem(crt)}, [{"name": "y1", "cert": _pem(other)}], fail_on_refusal=False)
    assert rc == 0 and r["refused"] == ["y1"] and r["data_planes"][0]["refusals"]


def test_bad_windows_are_refused_naming_the_variables(capsys):
    crt, _k = shared_pair()
    rc, r = run(capsys, {"cert": _pem(crt)}, [{"name": "y1", "cert": _pem(crt)}], min_days=30, warn_days=10)
    assert rc == 1 and "kong_cluster_cert_min_days" in r["msg"]


# ---------------------------------------------------------------- pki
def pki():
    ca = cert("cluster-ca", ca=True, days=3650)
    cp = cert("cp.example.com", issuer=ca, dns=["cp.example.com"])
    return ca, cp


def pki_cp(ca, cp):
    return {"name": "cp", "mtls": "pki", "cert": _pem(cp[0]), "ca_cert": _pem(ca[0])}


def pki_dp(name, leaf, ca, chain=(), **extra):
    return dict(
        name=name,
        mtls="pki",
        cert=_pem(leaf[0]) + "".join(_pem(c[0]) for c in chain),
        key=_pem(leaf[1]),
        ca_cert=_pem(ca[0]),
        control_plane="cp.example.com:8005",
        **extra,
    )


def test_pki_accepts_a_certificate_of_the_ca(capsys):
    ca, cp = pki()
    dp = cert("y1", issuer=ca, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    rc, r = run(capsys, pki_cp(ca, cp), [pki_dp("y1", dp, ca)])
    assert rc == 0, r.get("msg")
    assert r["data_planes"][0]["server_name"] == "cp.example.com"


def test_pki_refuses_a_certificate_of_another_ca(capsys):
    ca, cp = pki()
    rogue_ca = cert("cluster-ca", ca=True)  # same name, other key: the signature decides
    dp = cert("y1", issuer=rogue_ca)
    rc, r = run(capsys, pki_cp(ca, cp), [pki_dp("y1", dp, ca)])
    assert rc == 1 and "is not issued by the cluster_ca_cert of cp" in r["msg"] and "y1" in r["msg"]


def test_pki_chain_depth_four_accepted_five_refused(capsys):
    ca, cp = pki()
    chain, issuer = [], ca
    for i in range(5):
        issuer = cert(f"int{i}", issuer=issuer, ca=True)
        chain.insert(0, issuer)
    four = cert("y4", issuer=chain[1])
    rc, r = run(capsys, pki_cp(ca, cp), [pki_dp("y4", four, ca, chain=chain[1:])])
    assert rc == 0, r.get("msg")
    five = cert("y5", issuer=chain[0])
    rc, r = run(capsys, pki_cp(ca, cp), [pki_dp("y5", five, ca, chain=chain)])
    assert rc == 1 and "through 5 intermediate CA certificates" in r["msg"] and "ssl_verify_depth 4" in r["msg"]


def test_pki_expired_ca_is_refused(capsys):
    ca = cert("old-ca", ca=True, days=-1, start=-400)
    cp = cert("cp.example.com", issuer=ca, dns=["cp.example.com"], start=-300, days=-2)
    dp = cert("y1", issuer=ca, start=-300, days=30)
    rc, r = run(capsys, pki_cp(ca, cp), [pki_dp("y1", dp, ca)])
    assert rc == 1 and "CA certificate CN=old-ca" in r["msg"] and "expired on" in r["msg"]


def test_pki_server_name_must_match_the_control_planes_certificate(capsys):
    ca, cp = pki()
    dp = cert("y1", issuer=ca)
    rc, r = run(capsys, pki_cp(ca, cp), [pki_dp("y1", dp, ca, server_name="kong-cp.internal")])
    assert rc == 1 and "names cp.example.com, not kong-cp.internal" in r["msg"]
    assert "kong_node_cluster_server_name" in r["msg"]
    # no cluster_server_name: the host of cluster_control_plane is checked
    rc, r = run(capsys, pki_cp(ca, cp), [dict(pki_dp("y1", dp, ca), control_plane="10.0.0.5:8005")])
    assert rc == 1 and "not 10.0.0.5" in r["msg"]
    wild_cp = cert("cp", issuer=ca, dns=["*.example.com"])
    rc, r = run(capsys, pki_cp(ca, wild_cp), [pki_dp("y1", dp, ca)])
    assert rc == 0, r.get("msg")


def test_pki_data_plane_that_does_not_trust_the_control_plane(capsys):
    ca, cp = pki()
    other_ca = cert("other-ca", ca=True)
    dp = cert("y1", issuer=ca)
    args = dict(pki_dp("y1", dp, ca), ca_cert=_pem(other_ca[0]))
    rc, r = run(capsys, pki_cp(ca, cp), [args])
    assert rc == 1 and "so y1 refuses the control plane" in r["msg"]


def test_pki_control_plane_behind_an_intermediate_needs_lua_ssl_verify_depth(capsys):
    ca = cert("root", ca=True, days=3650)
    mid1 = cert("mid1", issuer=ca, ca=True)
    mid2 = cert("mid2", issuer=mid1, ca=True)
    cp = cert("cp.example.com", issuer=mid2, dns=["cp.example.com"])
    cp_arg = {"name": "cp", "mtls": "pki", "cert": _pem(cp[0]) + _pem(mid2[0]) + _pem(mid1[0]), "ca_cert": _pem(ca[0])}
    dp = cert("y1", issuer=ca)
    rc, r = run(capsys, cp_arg, [pki_dp("y1", dp, ca)])
    assert rc == 1 and "more than lua_ssl_verify_depth (1)" in r["msg"]
    rc, r = run(capsys, cp_arg, [pki_dp("y1", dp, ca, verify_depth=2)])
    assert rc == 0, r.get("msg")


def test_pki_client_certificate_without_client_auth_is_refused(capsys):
    ca, cp = pki()
    dp = cert("y1", issuer=ca, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    rc, r = run(capsys, pki_cp(ca, cp), [pki_dp("y1", dp, ca)])
    assert rc == 1 and "without clientAuth" in r["msg"]


def test_pki_needs_the_control_planes_ca(capsys):
    ca, cp = pki()
    rc, r = run(capsys, {"mtls": "pki", "cert": _pem(cp[0])}, [pki_dp("y1", cert("y1", issuer=ca), ca)])
    assert rc == 1 and "control_plane.ca_cert is required" in r["msg"]


def test_only_the_refused_data_plane_is_named(capsys):
    ca, cp = pki()
    good = cert("y1", issuer=ca)
    bad = cert("y2", issuer=cert("elsewhere", ca=True))
    rc, r = run(capsys, pki_cp(ca, cp), [pki_dp("y1", good, ca), pki_dp("y2", bad, ca)])
    assert rc == 1 and r["refused"] == ["y2"] and "y1:" not in r["msg"]


def test_one_certificate_shared_by_several_nodes_is_one_warning(capsys):
    crt, _k = cert("kong_clustering", days=20)
    rc, r = run(capsys, {"cert": _pem(crt)}, [{"name": "y1", "cert": _pem(crt)}, {"name": "y2", "cert": _pem(crt)}])
    warnings = [w for w in warning_texts(r) if "kong_cluster_cert_warn_days" in w]
    assert rc == 0 and len(warnings) == 1 and "CN=kong_clustering" in warnings[0]
