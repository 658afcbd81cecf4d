"""The Y nodes run Kong 3.9.3 from the kong package and serve the demo route."""
import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("kong_y")

TARGET = "3.9.3"


def test_kong_package_is_the_target_version(host):
    pkg = host.package("kong")
    assert pkg.is_installed
    assert pkg.version == TARGET


def test_kong_files(host):
    kong = host.file("/usr/local/bin/kong")
    assert kong.exists and kong.mode & 0o111
    conf = host.file("/etc/kong/kong.conf")
    assert conf.mode == 0o640
    assert "database = off" in conf.content_string
    assert "declarative_config = /etc/kong/kong.yml" in conf.content_string
    assert host.file("/etc/kong/kong.yml").exists


def test_kong_runs(host):
    assert host.run("/usr/local/bin/kong health -p /usr/local/kong").rc == 0
    pid = host.file("/usr/local/kong/pids/nginx.pid").content_string.strip()
    assert host.file("/proc/%s" % pid).is_directory


def test_listening_ports(host):
    assert host.socket("tcp://0.0.0.0:8000").is_listening
    assert host.socket("tcp://0.0.0.0:8001").is_listening
    assert host.socket("tcp://127.0.0.1:8007").is_listening



def test_admin_api_reports_target(host):
    info = json.loads(host.check_output("curl -sf http://127.0.0.1:8001/"))
    assert info["version"] == TARGET
    assert json.loads(host.check_output("curl -sf http://127.0.0.1:8007/status/ready")) == {"message": "ready"}


def test_route_answers_with_key_and_refuses_without(host):
    ok = host.run("curl -s -o /dev/null -D - -H 'apikey: demo-key' http://127.0.0.1:8000/echo")
    assert ok.rc == 0
    assert ok.stdout.startswith("HTTP/1.1 200")
    assert ("kong/%s" % TARGET) in ok.stdout
    denied = host.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/echo")
    assert denied.stdout == "401"
