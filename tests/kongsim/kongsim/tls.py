"""TLS of the Admin and Status API listeners (`admin_listen ... ssl`, `status_listen ... ssl`).

Kong serves an `ssl` entry of admin_listen with `admin_ssl_cert`/`admin_ssl_cert_key` (and
status_listen with `status_ssl_cert`/`status_ssl_cert_key`); when they are not set it generates
a self-signed default certificate in the prefix, `ssl/admin-kong-default.crt` and `.key`
(kong/cmd/utils/prefix_handler.lua at 3.9.3, gen_default_ssl_cert; kong/conf_loader/init.lua
at 3.9.3 reads the `*_ssl_cert` lists). The simulator serves the first certificate of the list
(Kong also serves an ECDSA default beside the RSA one: not modelled).
"""

from __future__ import annotations

import os
import ssl
import subprocess


def _first(value):
    if value is None:
        return None
    text = str(value).strip()
    if not text or text.upper() == "NONE":
        return None
    return text.split(",")[0].strip()


def default_cert(prefix: str, name: str) -> tuple:
    ssl_dir = os.path.join(prefix, "ssl")
    cert = os.path.join(ssl_dir, f"{name}-kong-default.crt")
    key = os.path.join(ssl_dir, f"{name}-kong-default.key")
    if not (os.path.exists(cert) and os.path.exists(key)):
        os.makedirs(ssl_dir, exist_ok=True)
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "3650",
                "-subj",
                "/C=US/ST=California/L=San Francisco/O=Kong/OU=IT Department/CN=localhost",
                "-keyout",
                key,
                "-out",
                cert,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.chmod(key, 0o600)
    return cert, key


def server_context(conf: dict, name: str) -> ssl.SSLContext:
    """SSL context of the `name` (admin, status) listeners; raises OSError/ssl.SSLError on a bad file."""
    cert = _first(conf.get(f"{name}_ssl_cert"))
    key = _first(conf.get(f"{name}_ssl_cert_key"))
    if not cert or not key:
        cert, key = default_cert(conf["prefix"], name)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


# The CP-DP link (cluster_listen, cluster_control_plane) is always TLS (Kong/kong 3.9.3
# kong/templates/nginx_kong.lua:558-577: `listen ... ssl`, the cluster certificate). With
# cluster_mtls = shared (the default) nginx asks for a client certificate without checking it
# (`ssl_verify_client optional_no_ca`) and Kong then accepts only the control plane's own
# certificate, compared by sha256 digest (kong/clustering/tls.lua:28-39, 194-231); with pki, nginx
# verifies it against cluster_ca_cert (`ssl_verify_client on`, depth 4). The data plane connects to
# wss:// with its cluster certificate and verifies the control plane's: server name
# `kong_clustering` in shared mode, else cluster_server_name or the host
# (kong/clustering/utils.lua:69-112), trusting the cluster certificate (shared) or cluster_ca_cert
# (pki), which kong/conf_loader adds to lua_ssl_trusted_certificate.
def _mtls(conf: dict) -> str:
    return str(conf.get("cluster_mtls") or "shared").strip()


def cluster_server_context(conf: dict) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(conf["cluster_cert"], conf["cluster_cert_key"])
    if _mtls(conf) == "pki":
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(_first(conf.get("cluster_ca_cert")))
    else:
        # Python cannot ask for a certificate without checking it: trusting only the control plane's
        # own (self-signed) certificate lets exactly the certificates through that could match its
        # digest; the digest itself is compared by the listener's handler, as Kong does
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(conf["cluster_cert"])
    return ctx


def cluster_client(conf: dict) -> tuple:
    """(SSL context, server name) of a data plane's connection to its control plane."""
    trusted = conf["cluster_cert"] if _mtls(conf) == "shared" else _first(conf.get("cluster_ca_cert"))
    ctx = ssl.create_default_context(cafile=trusted)
    # lua_ssl_trusted_certificate, to which Kong adds the certificate above
    for entry in str(conf.get("lua_ssl_trusted_certificate") or "").split(","):
        entry = entry.strip()
        if entry == "system":
            ctx.load_default_certs()
        elif entry and entry.upper() != "NONE" and os.path.exists(entry):
            ctx.load_verify_locations(entry)
    ctx.load_cert_chain(conf["cluster_cert"], conf["cluster_cert_key"])
    if _mtls(conf) == "shared":
        name = "kong_clustering"
    else:
        name = _first(conf.get("cluster_server_name")) or str(conf.get("cluster_control_plane") or "").rsplit(":", 1)[0]
    return ctx, name


def cert_digest(path_or_der) -> str:
    """sha256 of a certificate (a PEM file's path, or DER bytes)."""
    import hashlib

    if isinstance(path_or_der, (bytes, bytearray)):
        der = bytes(path_or_der)
    else:
        with open(path_or_der, encoding="ascii") as fh:
            der = ssl.PEM_cert_to_DER_cert(fh.read())
    return hashlib.sha256(der).hexdigest()
