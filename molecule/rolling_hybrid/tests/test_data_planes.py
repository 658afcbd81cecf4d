"""Both data planes run 3.7.1 from the kong package, with the control plane's configuration."""
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("kong_x")
TARGET = "3.7.1"


def test_kong_package_is_the_target_version(host):
    pkg = host.package("kong")
    assert pkg.is_installed and pkg.version == TARGET


def test_data_plane_conf(host):
    conf = host.file("/etc/kong/kong.conf").content_string
    assert "role = data_plane" in conf
    assert "database = off" in conf
    assert "cluster_control_plane = rh-cp:8005" in conf


def test_data_plane_runs_and_listens(host):
    assert host.run("/usr/local/bin/kong health -p /usr/local/kong").rc == 0
    assert host.socket("tcp://0.0.0.0:8000").is_listening
    assert host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8007/status/ready") == "200"


def test_route_from_the_control_plane_answers(host):
    ok = host.run("curl -s -o /dev/null -D - -H 'apikey: key-010' http://127.0.0.1:8000/echo")
    assert ok.stdout.startswith("HTTP/1.1 200"), ok.stdout
    assert ("kong/%s" % TARGET) in ok.stdout
    assert host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/echo") == "401"
