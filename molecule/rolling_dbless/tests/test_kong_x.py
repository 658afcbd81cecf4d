"""The X nodes were drained, quit and decommissioned: nothing listens or runs."""
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("kong_x")

CURRENT = "3.8.1"


def test_package_stays_installed(host):
    pkg = host.package("kong")
    assert pkg.is_installed
    assert pkg.version == CURRENT


def test_kong_is_stopped(host):
    assert host.run("/usr/local/bin/kong health -p /usr/local/kong").rc != 0
    assert not host.file("/usr/local/kong/pids/nginx.pid").exists


def test_nothing_listens(host):
    for port in (8000, 8001, 8007):
        assert not host.socket("tcp://0.0.0.0:%d" % port).is_listening
        assert not host.socket("tcp://127.0.0.1:%d" % port).is_listening
    assert host.run("curl -s -m 3 http://127.0.0.1:8000/echo").rc != 0
