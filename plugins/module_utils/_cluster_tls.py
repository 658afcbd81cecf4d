# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""Would a hybrid control plane accept a data plane's cluster certificate, and the data plane the
control plane's? Judged from the certificates alone, before anything starts, as Kong does at the link:

- The control plane's cluster listener (Kong/kong 3.9.3 kong/templates/nginx_kong.lua:568-576, the same
  at 3.4.2 and 2.8.5): ``cluster_mtls = shared`` asks for a client certificate with
  ``ssl_verify_client optional_no_ca`` and Kong then accepts only a certificate whose sha256 digest is
  the control plane's own ``cluster_cert`` (kong/clustering/tls.lua:28-39, 194-231);
  ``cluster_mtls = pki`` has nginx verify it against ``cluster_ca_cert`` with ``ssl_verify_depth 4``
  (expiry, signature, at most four CA certificates between the certificate and the trust anchor).
- The data plane (kong/clustering/utils.lua:69-113 at 3.9.3): ``wss://`` with ``ssl_verify = true``,
  server name ``kong_clustering`` in shared mode, else ``cluster_server_name`` or the host of
  ``cluster_control_plane``; it trusts ``cluster_cert`` (shared) or ``cluster_ca_cert`` (pki), which
  kong/conf_loader/parse.lua:775-780 adds to ``lua_ssl_trusted_certificate``, verified to
  ``lua_ssl_verify_depth`` (default 1, kong/templates/kong_defaults.lua:193).

Pure logic over PEM text: no AnsibleModule, raises ClusterTlsError on unreadable input.
"""

from __future__ import annotations

import datetime
import ipaddress
import traceback

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:
    HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR = False, traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMPORT_ERROR = True, None

SHARED_SERVER_NAME = "kong_clustering"
CP_VERIFY_DEPTH = 4  # ssl_verify_depth of the cluster listener in pki mode
DP_VERIFY_DEPTH_DEFAULT = 1  # lua_ssl_verify_depth default
SRC_LISTENER = "Kong/kong 3.9.3 kong/templates/nginx_kong.lua:568-576"
SRC_SHARED = "Kong/kong 3.9.3 kong/clustering/tls.lua:28-39"
SRC_DP = "Kong/kong 3.9.3 kong/clustering/utils.lua:97-105"


class ClusterTlsError(Exception):
    pass


def load_certs(pem, what):
    """Every certificate of a PEM text, in file order (the first is the leaf)."""
    text = pem.encode() if isinstance(pem, str) else (pem or b"")
    if b"-----BEGIN CERTIFICATE-----" not in text:
        raise ClusterTlsError("%s holds no PEM certificate" % what)
    try:
        return x509.load_pem_x509_certificates(text)
    except ValueError as exc:
        raise ClusterTlsError("%s is not a readable PEM certificate: %s" % (what, exc)) from None


def load_key(pem, what):
    text = pem.encode() if isinstance(pem, str) else (pem or b"")
    try:
        return serialization.load_pem_private_key(text, password=None)
    except (ValueError, TypeError) as exc:
        # the error text of cryptography never carries key material
        raise ClusterTlsError("%s is not a readable unencrypted PEM private key (%s)" % (what, type(exc).__name__)) from None


def _not_after(cert):
    return cert.not_valid_after_utc


def _not_before(cert):
    return cert.not_valid_before_utc


def digest(cert):
    return cert.fingerprint(hashes.SHA256()).hex()


def subject_cn(cert):
    found = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else ""


def names(cert):
    """(DNS names, IP addresses) a host-name check matches: the subjectAltName entries, else the CN
    (OpenSSL's X509_check_host falls back to the subject CN when there is no DNS entry)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        ips = [str(n) for n in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    if not dns:
        cn = subject_cn(cert)
        dns = [cn] if cn else []
    return dns, ips


def name_matches(cert, name):
    dns, ips = names(cert)
    try:
        addr = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        addr = None
    if addr is not None:
        return any(ipaddress.ip_address(i) == addr for i in ips)
    name = name.lower().rstrip(".")
    for pattern in dns:
        pattern = pattern.lower().rstrip(".")
        if pattern == name:
            return True
        # a wildcard stands for exactly one left-most label
        if pattern.startswith("*.") and "." in name and name.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def key_matches(cert, key):
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, pub) == key.public_key().public_bytes(enc, pub)


def _issued_by(cert, issuer):
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # noqa: BLE001 - InvalidSignature, and key types that cannot sign
        return False
    return True


def chain_to(leaf, extra, anchors):
    """The CA certificates between `leaf` and a trust anchor, found among `extra` (what the peer
    sends after its certificate), then the anchor; None when no anchor is reached. A leaf that is
    itself an anchor (a self-signed certificate put in the CA file) has an empty chain."""
    digests = {digest(a) for a in anchors}
    if digest(leaf) in digests:
        return [], leaf
    path, current = [], leaf
    for _hop in range(len(extra) + 1):
        for anchor in anchors:
            if _issued_by(current, anchor):
                return path, anchor
        nxt = next((c for c in extra if c not in path and c is not current and _issued_by(current, c)), None)
        if nxt is None:
            return None
        path.append(nxt)
        current = nxt
    return None


def _eku_refusal(cert, usage, label):
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    oid = ExtendedKeyUsageOID.CLIENT_AUTH if usage == "client" else ExtendedKeyUsageOID.SERVER_AUTH
    if oid in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku:
        return None
    return "%s has an extendedKeyUsage without %s, which OpenSSL's verification of a TLS %s refuses" % (
        label,
        "clientAuth" if usage == "client" else "serverAuth",
        usage,
    )


def _when(cert):
    return _not_after(cert).strftime("%Y-%m-%dT%H:%M:%SZ")


RENEW = "renew it (the same key may be kept) and deploy it before the upgrade"


def judge_validity(cert, label, now, min_days, warn_days, refusals, warnings, expiries):
    """Expired, not yet valid, within min_days (refused) or warn_days (warned)."""
    left = (_not_after(cert) - now).total_seconds() / 86400.0
    expiries.append({"certificate": label, "not_after": _when(cert), "days_left": round(left, 1)})
    if _not_before(cert) > now:
        refusals.append("%s is not valid before %s; fix: use a certificate valid now" % (label, _not_before(cert).strftime("%Y-%m-%dT%H:%M:%SZ")))
    elif left <= 0:
        refusals.append("%s expired on %s, and TLS verification refuses it; fix: %s" % (label, _when(cert), RENEW))
    elif left < min_days:
        refusals.append(
            "%s expires on %s, in %.1f days, fewer than kong_cluster_cert_min_days (%s); fix: %s, or"
            " lower kong_cluster_cert_min_days" % (label, _when(cert), left, min_days, RENEW)
        )
    elif left < warn_days:
        # named by the certificate itself, so that one certificate several nodes share is one warning
        warnings.append(
            "the certificate CN=%s (sha256 %s...) expires on %s, in %.1f days (kong_cluster_cert_warn_days"
            " is %s): renew it soon" % (subject_cn(cert) or "-", digest(cert)[:16], _when(cert), left, warn_days)
        )


def judge(cp, dp, now=None, min_days=14, warn_days=30):
    """Judge one data plane against its control plane.

    cp: name, mtls (shared|pki), cert (PEM of its cluster_cert, chain allowed), ca_cert (PEM, pki).
    dp: name, mtls, cert (PEM, chain allowed), key (PEM or None), ca_cert (PEM, pki), server_name,
        control_plane (host:port), verify_depth (lua_ssl_verify_depth).
    Returns dict(refusals=[...], warnings=[...], expiries=[...], server_name=...); each refusal ends
    with the fix. Raises ClusterTlsError on input that is not a certificate or key."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    refusals, warnings, expiries = [], [], []
    cp_mtls = (cp.get("mtls") or "shared").strip()
    dp_mtls = (dp.get("mtls") or "shared").strip()
    dp_name, cp_name = dp.get("name") or "the data plane", cp.get("name") or "the control plane"
    dp_chain = load_certs(dp.get("cert"), "cluster_cert of %s" % dp_name)
    cp_chain = load_certs(cp.get("cert"), "cluster_cert of %s" % cp_name)
    dp_leaf, cp_leaf = dp_chain[0], cp_chain[0]
    judged = set()

    def validity(cert, label):
        if digest(cert) not in judged:
            judged.add(digest(cert))
            judge_validity(cert, label, now, min_days, warn_days, refusals, warnings, expiries)

    dp_label = "the cluster certificate of %s (CN=%s)" % (dp_name, subject_cn(dp_leaf) or "-")
    cp_label = "the cluster certificate of %s (CN=%s)" % (cp_name, subject_cn(cp_leaf) or "-")

    if cp_mtls != dp_mtls:
        refusals.append(
            "%s has cluster_mtls = %s but %s has cluster_mtls = %s (%s); fix: set the same cluster_mtls"
            " on both (kong_node_conf.cluster_mtls)" % (dp_name, dp_mtls, cp_name, cp_mtls, SRC_LISTENER)
        )
    if dp.get("key"):
        key = load_key(dp["key"], "cluster_cert_key of %s" % dp_name)
        if not key_matches(dp_leaf, key):
            refusals.append(
                "cluster_cert_key of %s is not the private key of its cluster_cert, so Kong cannot"
                " present the certificate; fix: point kong_node_cluster_cert_key at the key the"
                " certificate was issued for" % dp_name
            )

    validity(dp_leaf, dp_label)
    validity(cp_leaf, cp_label)

    if cp_mtls == "shared":
        if digest(dp_leaf) != digest(cp_leaf):
            refusals.append(
                "%s is not the control plane's: with cluster_mtls = shared %s accepts only its own"
                " cluster_cert (sha256 %s..., CN=%s) and %s presents sha256 %s... (%s); fix: give %s"
                " the control plane's cluster_cert and cluster_cert_key (kong_node_cluster_cert,"
                " kong_node_cluster_cert_key), or move both ends to cluster_mtls = pki"
                % (dp_label, cp_name, digest(cp_leaf)[:16], subject_cn(cp_leaf) or "-", dp_name, digest(dp_leaf)[:16], SRC_SHARED, dp_name)
            )
        if not name_matches(cp_leaf, SHARED_SERVER_NAME):
            refusals.append(
                "%s does not carry the name %s, which every data plane checks in shared mode (%s);"
                " fix: issue the shared certificate for CN=%s (`kong hybrid gen_cert` does)" % (cp_label, SHARED_SERVER_NAME, SRC_DP, SHARED_SERVER_NAME)
            )
        return dict(refusals=_dedupe(refusals), warnings=_dedupe(warnings), expiries=expiries, server_name=SHARED_SERVER_NAME)

    # pki: the control plane verifies the data plane's chain against its cluster_ca_cert
    if not cp.get("ca_cert"):
        raise ClusterTlsError("cluster_ca_cert of %s is needed with cluster_mtls = pki" % cp_name)
    cp_anchors = load_certs(cp["ca_cert"], "cluster_ca_cert of %s" % cp_name)
    found = chain_to(dp_leaf, dp_chain[1:], cp_anchors)
    if found is None:
        refusals.append(
            "%s (issuer %s) is not issued by the cluster_ca_cert of %s (%s), so its cluster listener"
            " refuses it (%s); fix: issue %s's certificate from that CA (put any intermediate CA"
            " certificates after it in the file)"
            % (dp_label, dp_leaf.issuer.rfc4514_string(), cp_name, "; ".join(c.subject.rfc4514_string() for c in cp_anchors), SRC_LISTENER, dp_name)
        )
    else:
        path, anchor = found
        if len(path) > CP_VERIFY_DEPTH:
            refusals.append(
                "%s reaches the cluster_ca_cert of %s through %d intermediate CA certificates and the"
                " cluster listener verifies %d at most (ssl_verify_depth 4, %s); fix: issue it from a"
                " CA closer to the root" % (dp_label, cp_name, len(path), CP_VERIFY_DEPTH, SRC_LISTENER)
            )
        for cert in path + [anchor]:
            validity(cert, "CA certificate CN=%s (chain of %s)" % (subject_cn(cert) or "-", dp_name))
    eku = _eku_refusal(dp_leaf, "client", dp_label)
    if eku:
        refusals.append(eku + "; fix: issue it with clientAuth")

    # the data plane verifies the control plane's chain against its own cluster_ca_cert, by name
    host = str(dp.get("control_plane") or "").strip()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    server_name = (dp.get("server_name") or "").strip() or host
    depth = int(dp.get("verify_depth") or DP_VERIFY_DEPTH_DEFAULT)
    if not dp.get("ca_cert"):
        refusals.append(
            "%s has no cluster_ca_cert, which with cluster_mtls = pki it verifies %s against"
            " (Kong/kong 3.9.3 kong/conf_loader/parse.lua:775-780); fix: set kong_node_cluster_ca_cert"
            " (or kong_node_conf.cluster_ca_cert) for %s" % (dp_name, cp_name, dp_name)
        )
    else:
        dp_anchors = load_certs(dp["ca_cert"], "cluster_ca_cert of %s" % dp_name)
        found = chain_to(cp_leaf, cp_chain[1:], dp_anchors)
        if found is None:
            refusals.append(
                "%s (issuer %s) is not issued by the cluster_ca_cert of %s, so %s refuses the control"
                " plane (%s); fix: give %s the CA that issued the control plane's certificate"
                % (cp_label, cp_leaf.issuer.rfc4514_string(), dp_name, dp_name, SRC_DP, dp_name)
            )
        elif len(found[0]) > depth:
            refusals.append(
                "%s reaches the cluster_ca_cert of %s through %d intermediate CA certificates, more"
                " than lua_ssl_verify_depth (%d) lets it verify; fix: raise lua_ssl_verify_depth of %s"
                " (kong_node_conf.lua_ssl_verify_depth) to %d" % (cp_label, dp_name, len(found[0]), depth, dp_name, len(found[0]))
            )
        else:
            for cert in found[0] + [found[1]]:
                validity(cert, "CA certificate CN=%s (chain of %s)" % (subject_cn(cert) or "-", cp_name))
    if not server_name:
        refusals.append(
            "%s has neither cluster_server_name nor a cluster_control_plane host to check %s by; fix: set kong_node_cluster_control_plane" % (dp_name, cp_name)
        )
    elif not name_matches(cp_leaf, server_name):
        dns, ips = names(cp_leaf)
        refusals.append(
            "%s names %s, not %s, the name %s checks it by (cluster_server_name, else the host of"
            " cluster_control_plane; %s); fix: set cluster_server_name of %s"
            " (kong_node_cluster_server_name or kong_node_conf.cluster_server_name) to a name of the"
            " certificate, or reissue it for %s" % (cp_label, ", ".join(dns + ips) or "nothing", server_name, dp_name, SRC_DP, dp_name, server_name)
        )
    eku = _eku_refusal(cp_leaf, "server", cp_label)
    if eku:
        refusals.append(eku + "; fix: issue it with serverAuth")
    return dict(refusals=_dedupe(refusals), warnings=_dedupe(warnings), expiries=expiries, server_name=server_name)


def _dedupe(items):
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out
