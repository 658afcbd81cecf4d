"""Packaged and real-host behaviour: custom plugins, Admin/Status API over TLS, Enterprise RBAC,
and the `nginx` binary Kong's systemd unit runs.

Sources: Kong/kong at the tags named per test (kong/init.lua, kong/db/dao/plugins.lua,
kong/db/schema/plugin_loader.lua, build/package/kong.service); Enterprise RBAC: see
kongsim/enterprise.py (UNCONFIRMED against Enterprise source, which is not public).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from kongsim_testlib import wait_until

HERE = os.path.dirname(os.path.abspath(__file__))


def _plugin_tree(base, name="my-plugin", schema=True):
    root = base / "custom"
    plugin = root / "kong" / "plugins" / name
    plugin.mkdir(parents=True)
    (plugin / "handler.lua").write_text("return { PRIORITY = 1000, VERSION = '0.1.0' }\n")
    if schema:
        (plugin / "schema.lua").write_text("return { name = '%s', fields = {} }\n" % name)
    return str(root)


# kong/init.lua:708 (3.9.3) asserts load_plugin_schemas; kong/db/dao/plugins.lua:159-180 and
# kong/runloop/plugin_servers/init.lua:48 give the text; 2.8.5: kong/init.lua:543.
@pytest.mark.parametrize("version,line", [("3.9.3", 708), ("2.8.5", 543)])
def test_custom_plugin_missing_fails_start_with_kongs_text(kong_node_factory, version, line):
    node = kong_node_factory(version, start=False, plugins="bundled,my-plugin")
    res = node.start(check=False)
    assert res.returncode == 1, res.stdout + res.stderr
    assert (
        "nginx: [error] init_by_lua error: /usr/local/share/lua/5.1/kong/init.lua:%d: error loading "
        "plugin schemas: on plugin 'my-plugin': my-plugin plugin is enabled but not installed;\n"
        "no plugin found" % line
    ) in res.stderr
    assert not node.pid()


def test_custom_plugin_present_on_lua_package_path_starts(kong_node_factory, tmp_path):
    path = _plugin_tree(tmp_path)
    node = kong_node_factory("3.9.3", plugins="bundled,my-plugin", lua_package_path=f"{path}/?.lua;;")
    assert requests.get(node.admin_url + "/status", timeout=5).status_code == 200


# kong/db/schema/plugin_loader.lua:26-28 (3.9.3): a handler without a schema module.
def test_custom_plugin_without_schema_fails(kong_node_factory, tmp_path):
    path = _plugin_tree(tmp_path, schema=False)
    node = kong_node_factory("3.9.3", start=False, plugins="bundled,my-plugin", lua_package_path=f"{path}/?.lua;;")
    res = node.start(check=False)
    assert res.returncode == 1
    assert "on plugin 'my-plugin': no configuration schema found for plugin: my-plugin" in res.stderr


def test_bundled_plugins_need_no_files(kong_node_factory):
    node = kong_node_factory("3.9.3", plugins="bundled,key-auth")
    assert requests.get(node.admin_url + "/status", timeout=5).status_code == 200


def _ca_and_cert(tmp_path):
    """A self-signed CA and a server certificate for 127.0.0.1 signed by it."""
    ca_key, ca = tmp_path / "ca.key", tmp_path / "ca.crt"
    key, csr, crt = tmp_path / "admin.key", tmp_path / "admin.csr", tmp_path / "admin.crt"
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA", "-keyout", str(ca_key), "-out", str(ca))
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr))
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(crt),
    )
    return str(ca), str(crt), str(key)


# admin_listen/status_listen `ssl` entries are served with admin_ssl_cert(_key) /
# status_ssl_cert(_key) (kong/templates/nginx_kong.lua at 3.9.3: `listen ... ssl` with
# ssl_certificate ${{ADMIN_SSL_CERT}}); plain HTTP on a TLS port is refused.
def test_admin_and_status_api_over_tls(kong_node_factory, tmp_path):
    from tests.services.ports import free_port

    ca, crt, key = _ca_and_cert(tmp_path)
    admin, status = free_port(), free_port()
    node = kong_node_factory(
        "3.9.3",
        admin_listen=f"127.0.0.1:{admin} ssl",
        status_listen=f"127.0.0.1:{status} ssl",
        admin_ssl_cert=crt,
        admin_ssl_cert_key=key,
        status_ssl_cert=crt,
        status_ssl_cert_key=key,
    )
    resp = requests.get(f"https://127.0.0.1:{admin}/", verify=ca, timeout=5)
    assert resp.status_code == 200 and resp.json()["version"] == "3.9.3"
    assert requests.get(f"https://127.0.0.1:{status}/status", verify=ca, timeout=5).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{admin}/", timeout=5)  # the system CAs do not know the test CA
    plain = None
    try:
        plain = requests.get(f"http://127.0.0.1:{admin}/", timeout=5)
    except requests.exceptions.ConnectionError:
        pass
    assert plain is None or plain.status_code == 400
    assert node.pid()


# Kong generates a self-signed default when admin_ssl_cert is not set
# (kong/cmd/utils/prefix_handler.lua at 3.9.3, gen_default_ssl_cert: ssl/admin-kong-default.crt).
def test_admin_tls_without_cert_uses_generated_default(kong_node_factory):
    from tests.services.ports import free_port

    admin = free_port()
    node = kong_node_factory("3.9.3", admin_listen=f"127.0.0.1:{admin} ssl")
    assert os.path.exists(os.path.join(node.prefix, "ssl", "admin-kong-default.crt"))
    assert requests.get(f"https://127.0.0.1:{admin}/", verify=False, timeout=5).status_code == 200


# Enterprise RBAC (kongsim/enterprise.py; UNCONFIRMED against Enterprise source).
def test_enterprise_rbac_refuses_without_token(kong_node_factory):
    env = {"KONGSIM_EDITION": "enterprise", "KONG_PASSWORD": "s3cret-token"}
    node = kong_node_factory("3.4.2", start=False, enforce_rbac="on")
    node.start(env=env)
    resp = requests.get(node.admin_url + "/services", timeout=5)
    assert resp.status_code == 401
    assert resp.json() == {"message": "Invalid credentials. Token or User credentials required"}
    bad = requests.get(node.admin_url + "/services", headers={"Kong-Admin-Token": "wrong"}, timeout=5)
    assert bad.status_code == 401
    ok = requests.get(node.admin_url + "/services", headers={"Kong-Admin-Token": "s3cret-token"}, timeout=5)
    assert ok.status_code == 200


def test_oss_ignores_enforce_rbac(kong_node_factory):
    node = kong_node_factory("3.4.2", enforce_rbac="on")
    assert requests.get(node.admin_url + "/services", timeout=5).status_code == 200


def test_enterprise_without_enforce_rbac_needs_no_token(kong_node_factory):
    node = kong_node_factory("3.4.2", start=False)
    node.start(env={"KONGSIM_EDITION": "enterprise"})
    assert requests.get(node.admin_url + "/services", timeout=5).status_code == 200


# build/package/kong.service (3.9.3, lines 8-12): `kong prepare -p PREFIX`, then
# `nginx -p PREFIX -c nginx.conf` in the foreground (KONG_NGINX_DAEMON=off), `nginx -s reload`,
# and `kill -s QUIT $MAINPID`.
def test_unit_commands_run_the_node_in_the_foreground(kong_node_factory):
    node = kong_node_factory("3.9.3", start=False)
    res = node.cli("prepare", "-c", node.conf_path)
    assert res.returncode == 0, res.stderr
    kong_lib = os.path.join(os.path.dirname(os.path.dirname(node.kong_bin)), "lib", "kongsim-3.9.3")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
    env.update(KONGSIM_VERSION="3.9.3", PYTHONPATH=kong_lib, KONG_NGINX_DAEMON="off")
    nginx = [sys.executable, "-m", "kongsim.nginx", "-p", node.prefix, "-c", "nginx.conf"]
    proc = subprocess.Popen(nginx, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: requests.get(node.admin_url + "/status", timeout=1).status_code == 200, timeout=20, message="node served by nginx -p")
        assert node.pid() == proc.pid  # the process systemd starts is the node (MAINPID)
        reload = subprocess.run(nginx + ["-s", "reload"], env=env, capture_output=True, text=True, check=False)
        assert reload.returncode == 0, reload.stderr
        time.sleep(0.5)
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGQUIT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    missing = subprocess.run(nginx + ["-s", "reload"], env=env, capture_output=True, text=True, check=False)
    assert missing.returncode == 1
    assert missing.stderr == ('nginx: [error] open() "%s/pids/nginx.pid" failed (2: No such file or directory)\n' % node.prefix)
