"""Hybrid cluster TLS on the sandbox: a Y data plane whose cluster certificate the control plane would
refuse (cluster_mtls = shared, and a certificate other than the control plane's: Kong/kong 3.9.3
kong/clustering/tls.lua:28-39) stops the hybrid upgrade in preflight, before the control plane is stopped
and before any traffic moves: HAProxy's weights read back unchanged, the control plane and X keep running
and serving, and the message names the data plane and the fix. Smallest fleet: cp, x1, y1. The same
preflight tasks with cluster_mtls = pki run alone on a local inventory (no sandbox). The accepted path
on the sandbox is every other hybrid end-to-end test, which runs through the same check."""

from __future__ import annotations

import os
import time

import pytest
import requests
import yaml

from tests.kongsim.kongsim_testlib import gen_cluster_cert
from tests.sandbox import procs, render
from tests.sandbox.core import VENV_BIN as REPO_VENV_BIN, Sandbox, haproxy_admin_view

X, Y = "3.6.1", "3.7.1"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster_tls")
    sandbox = Sandbox(state_dir=str(tmp / "sb"), lb_port=procs.sandbox_base_port(), out=lambda msg: None)
    sandbox.log_dir = str(tmp)
    sandbox.up(mode="hybrid", kong_x=X, kong_cp=X, nodes=1)
    yield sandbox
    sandbox.down()


def _through_lb(box: Sandbox, count: int = 20) -> list:
    url = f"http://127.0.0.1:{box.state['lb_port']}{render.DEMO_PATH}"
    return [requests.get(url, headers={"apikey": render.DEMO_KEY}, timeout=5).status_code for _i in range(count)]


def _pid(box: Sandbox, name: str) -> int | None:
    try:
        with open(os.path.join(box.state["nodes"][name]["prefix"], "pids", "nginx.pid")) as fh:
            pid = int(fh.read().strip() or 0)
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _give_y1(box: Sandbox, cert: str, key: str) -> None:
    """The inventory names another certificate for y1 (what an operator who rotated it by hand would have)."""
    with open(box.inventory) as fh:
        inv = yaml.safe_load(fh)
    host = inv["all"]["children"]["kong_y"]["hosts"]["y1"]
    host.update(kong_node_cluster_cert=cert, kong_node_cluster_cert_key=key)
    with open(box.inventory, "w") as fh:
        yaml.safe_dump(inv, fh, sort_keys=False)


def test_a_data_plane_certificate_the_control_plane_refuses_stops_the_hybrid_upgrade_in_preflight(box, tmp_path):
    other = tmp_path / "rotated"
    other.mkdir()
    cert, key = gen_cluster_cert(str(other))
    _give_y1(box, cert, key)
    sock = box.state["haproxy"]["socket"]
    before = haproxy_admin_view(sock)
    pids = {name: _pid(box, name) for name in ("cp", "x1")}
    assert all(pids.values()), pids
    assert _through_lb(box) == [200] * 20

    box.last_log = os.path.join(box.log_dir, f"upgrade-hybrid-{time.time():.0f}.log")
    rc = box.upgrade("hybrid", Y, log_path=box.last_log, stream=lambda line: None)
    with open(box.last_log) as fh:
        log = fh.read()
    assert rc != 0, log[-3000:]
    # stopped in the control planes' preflight, with the data plane and the fix named; no key in the output
    assert "y1 would be refused on the cluster link to cp" in log, log[-3000:]
    assert "accepts only its own cluster_cert" in log and "kong_node_cluster_cert" in log
    assert "PRIVATE KEY" not in log
    assert "Stop every X node" not in log and "kong migrations up" not in log
    # nothing moved: same weights, the control plane and X still run (same processes) and serve
    after = haproxy_admin_view(sock)
    assert after == before
    assert {name: _pid(box, name) for name in ("cp", "x1")} == pids
    assert _through_lb(box) == [200] * 20
    root = requests.get(f"http://127.0.0.1:{box.state['nodes']['cp']['admin_port']}/", timeout=5).json()
    assert root["version"] == X


# ---------------------------------------------------------------- the preflight tasks alone, pki, no sandbox
def _pki_files(directory):
    """A CA, the control plane's certificate for cp.kong.test, and a data plane's, written as files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def issue(cn, issuer=None, ca=False, dns=None):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer[0].subject if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if dns:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
        return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key

    ca = issue("cluster CA", ca=True)
    paths = {}
    for name, pair in (("ca", ca), ("cp", issue("cp", issuer=ca, dns=["cp.kong.test"])), ("dp", issue("dp", issuer=ca))):
        paths[name] = str(directory / f"{name}.crt")
        paths[name + "_key"] = str(directory / f"{name}.key")
        (directory / f"{name}.crt").write_bytes(pair[0].public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(
            pair[1].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return paths


def test_preflight_pki_names_the_data_plane_that_checks_the_wrong_server_name(tmp_path):
    from tests.integration.ansible_run import run_playbook

    f = _pki_files(tmp_path)
    pki = {"cluster_mtls": "pki", "cluster_ca_cert": f["ca"]}
    hosts = {
        "cp": {"kong_node_cluster_cert": f["cp"], "kong_node_cluster_cert_key": f["cp_key"], "kong_node_conf": pki},
        "y1": {"kong_node_cluster_cert": f["dp"], "kong_node_cluster_cert_key": f["dp_key"], "kong_node_conf": dict(pki, cluster_server_name="cp.kong.test")},
        # no cluster_server_name: the host of cluster_control_plane is checked, and the certificate does not carry it
        "y2": {
            "kong_node_cluster_cert": f["dp"],
            "kong_node_cluster_cert_key": f["dp_key"],
            "kong_node_conf": pki,
            "kong_node_cluster_control_plane": "10.1.2.3:8005",
        },
    }
    local = {"ansible_connection": "local", "ansible_python_interpreter": os.path.join(REPO_VENV_BIN, "python")}
    inventory = {
        "all": {
            "vars": {"kong_mode": "hybrid_dp"},
            "children": {
                "kong_cp": {"hosts": {"cp": dict(local, **hosts["cp"])}},
                "kong_y": {"hosts": {"y1": dict(local, **hosts["y1"]), "y2": dict(local, **hosts["y2"])}},
            },
        }
    }
    inv_path = tmp_path / "inventory.yml"
    inv_path.write_text(yaml.safe_dump(inventory))
    play = (
        "- hosts: kong_cp\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role:\n        name: kongops.upgrade.preflight\n"
        "        tasks_from: cluster_tls.yml\n"
    )
    res = run_playbook(play, inventory=str(inv_path))
    judged = res.result("kongops.upgrade.preflight : Judge whether the control plane accepts each Y data plane, and each Y data plane the control plane")
    assert res.rc != 0 and judged["refused"] == ["y2"], judged
    assert "names cp.kong.test, not 10.1.2.3" in judged["msg"] and "kong_node_cluster_server_name" in judged["msg"]
    assert "y1:" not in judged["msg"] and "PRIVATE KEY" not in res.stdout
    # with y2's name set, the same certificates pass
    hosts_ok = inventory["all"]["children"]["kong_y"]["hosts"]["y2"]
    hosts_ok["kong_node_conf"] = dict(pki, cluster_server_name="cp.kong.test")
    inv_path.write_text(yaml.safe_dump(inventory))
    res = run_playbook(play, inventory=str(inv_path))
    assert res.rc == 0, res.stdout[-3000:]
