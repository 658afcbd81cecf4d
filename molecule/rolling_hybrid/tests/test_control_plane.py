"""The control plane runs 3.7.1 on the migrated database and sees both data planes on 3.7.1, in sync."""
import json
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("kong_cp")
DATA_PLANES = RUNNER.get_hosts("kong_x")
TARGET = "3.7.1"


def test_kong_package_is_the_target_version(host):
    pkg = host.package("kong")
    assert pkg.is_installed and pkg.version == TARGET


def test_control_plane_conf(host):
    conf = host.file("/etc/kong/kong.conf").content_string
    assert "role = control_plane" in conf
    assert "database = postgres" in conf
    # Kong's package post-install runs `chmod -R g=u /etc/kong/` at every install and upgrade
    # (Kong/kong build/package/postinstall.sh at 3.9.3): the key must still be owner-only.
    assert host.file("/etc/kong/cluster.key").mode == 0o600


def test_control_plane_runs_and_listens(host):
    assert host.run("/usr/local/bin/kong health -p /usr/local/kong").rc == 0
    assert host.socket("tcp://0.0.0.0:8001").is_listening
    assert host.socket("tcp://0.0.0.0:8005").is_listening
    assert json.loads(host.check_output("curl -sf http://127.0.0.1:8001/"))["version"] == TARGET


def test_every_data_plane_connected_on_target_and_in_sync(host):
    listed = json.loads(host.check_output("curl -sf http://127.0.0.1:8001/clustering/data-planes"))["data"]
    latest = {}
    for dp in sorted(listed, key=lambda d: d.get("last_seen", 0)):
        latest[dp["hostname"]] = dp
    assert set(DATA_PLANES) <= set(latest), listed
    for name in DATA_PLANES:
        assert latest[name]["version"] == TARGET, latest[name]
        assert latest[name]["sync_status"] == "normal", latest[name]


def test_migrations_list_is_current(host):
    out = host.run("KONG_PG_PASSWORD=kong-molecule /usr/local/bin/kong migrations list -c /etc/kong/kong.conf")
    assert out.rc == 0, out.stdout + out.stderr
    assert "Pending migrations:" not in out.stdout
