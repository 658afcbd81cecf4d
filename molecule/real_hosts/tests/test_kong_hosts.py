"""Every Kong host runs Y under systemd from the held package, with the operator's kong.conf kept."""
import json
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
# get_hosts matches one name or glob (fnmatch), not an Ansible pattern such as "a:b".
testinfra_hosts = RUNNER.get_hosts("kong_cp") + RUNNER.get_hosts("kong_x")
TARGET = "3.9.3"
CA = "/etc/kong/tls/ca.crt"
# Kong's own unit lines (Kong/kong build/package/kong.service at 3.9.3, lines 8-12).
UNIT_LINES = [
    "ExecStartPre=/usr/local/bin/kong prepare -p /usr/local/kong",
    "ExecStart=/usr/local/openresty/nginx/sbin/nginx -p /usr/local/kong -c nginx.conf",
    "ExecReload=/usr/local/bin/kong prepare -p /usr/local/kong",
    "ExecReload=/usr/local/openresty/nginx/sbin/nginx -p /usr/local/kong -c nginx.conf -s reload",
    "ExecStop=/bin/kill -s QUIT $MAINPID",
]


def test_systemd_is_pid_1_and_running(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state


def test_kong_service_enabled_and_active(host):
    svc = host.service("kong")
    assert svc.is_enabled
    assert svc.is_running
    assert host.run("systemctl is-active kong").stdout.strip() == "active"


def test_the_node_is_the_units_main_process_and_the_only_one(host):
    main_pid = host.check_output("systemctl show -p MainPID --value kong").strip()
    assert main_pid not in ("", "0")
    cmdline = host.file("/proc/%s/cmdline" % main_pid).content_string.replace("\0", " ")
    assert "kongsim.server --prefix /usr/local/kong" in cmdline, cmdline
    nodes = host.check_output("pgrep -f '[k]ongsim[.]server' || true").split()
    assert nodes == [main_pid], nodes


def test_unit_is_kongs_own(host):
    unit = host.file("/lib/systemd/system/kong.service").content_string.splitlines()
    for line in UNIT_LINES:
        assert line in unit


def test_package_is_target_and_held(host):
    pkg = host.package("kong")
    assert pkg.is_installed and pkg.version == TARGET
    assert "kong" in host.check_output("apt-mark showhold").split()
    assert host.check_output("/usr/local/bin/kong version").strip() == TARGET


def test_private_keys_and_secrets_owner_only_after_the_upgrade(host):
    """Kong's package post-install runs `chown -R kong:kong` and `chmod -R g=u` on /etc/kong/ at every
    install and upgrade (Kong/kong build/package/postinstall.sh at 3.9.3, lines 11-31): every private
    key and environment file there (the operator's and the collection's) must still be owner-only."""
    paths = host.check_output("find /etc/kong -type f \\( -name '*.key' -o -name '*.env' \\)").split()
    assert "/etc/kong/cluster.key" in paths and "/etc/kong/tls/admin.key" in paths, paths
    modes = {p: oct(host.file(p).mode) for p in paths}
    assert modes == {p: oct(0o600) for p in paths}


def test_every_operator_line_and_comment_kept_in_order(host):
    original = host.file("/root/kong.conf.operator").content_string.splitlines()
    current = host.file("/etc/kong/kong.conf").content_string.splitlines()
    missing = [line for line in original if line not in current]
    assert missing == [], missing
    # in the same order: each line found after the one before it (a line such as a ruler of dashes
    # can occur more than once)
    at = -1
    for line in original:
        if not line.strip():
            continue
        assert line in current[at + 1:], f"the operator's lines were reordered: {line!r} is not after line {at + 1}"
        at = current.index(line, at + 1)


def test_admin_api_on_https_with_the_operators_ca(host):
    info = json.loads(host.check_output("curl -sf --cacert %s https://localhost:8444/" % CA))
    assert info["version"] == TARGET
    assert info["configuration"]["admin_listen"] in (["0.0.0.0:8444 ssl"], "0.0.0.0:8444 ssl")
    # Without the CA the certificate is not trusted; without TLS the port does not speak HTTP.
    assert host.run("curl -sf https://localhost:8444/").rc == 60
    assert host.run("curl -sf http://localhost:8444/").rc != 0


def test_custom_plugin_and_nginx_directive_in_effect(host):
    info = json.loads(host.check_output("curl -sf --cacert %s https://localhost:8444/" % CA))
    conf = info["configuration"]
    assert "my-plugin" in str(conf["plugins"]), conf["plugins"]
    assert str(conf.get("nginx_http_keepalive_requests")) == "5000"
