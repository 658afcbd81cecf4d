"""Both nodes run Kong 3.7.1 from the kong package against the shared database."""
import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("kong_x")

TARGET = "3.7.1"
CONSUMERS = 51


def test_kong_package_is_the_target_version(host):
    pkg = host.package("kong")
    assert pkg.is_installed
    assert pkg.version == TARGET


def test_kong_conf_points_at_the_database(host):
    conf = host.file("/etc/kong/kong.conf")
    assert conf.mode == 0o640
    assert "database = postgres" in conf.content_string
    assert "pg_host = ip-pg" in conf.content_string


def test_kong_runs_and_listens(host):
    assert host.run("/usr/local/bin/kong health -p /usr/local/kong").rc == 0
    assert host.socket("tcp://0.0.0.0:8000").is_listening
    assert host.socket("tcp://0.0.0.0:8001").is_listening


def test_admin_api_reports_target_and_every_consumer(host):
    info = json.loads(host.check_output("curl -sf http://127.0.0.1:8001/"))
    assert info["version"] == TARGET
    consumers = json.loads(host.check_output("curl -sf 'http://127.0.0.1:8001/consumers?size=1000'"))
    assert len(consumers["data"]) == CONSUMERS


def test_route_answers_with_key_and_refuses_without(host):
    ok = host.run("curl -s -o /dev/null -D - -H 'apikey: key-050' http://127.0.0.1:8000/echo")
    assert ok.stdout.startswith("HTTP/1.1 200"), ok.stdout
    assert ("kong/%s" % TARGET) in ok.stdout
    denied = host.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/echo")
    assert denied.stdout == "401"


def test_migrations_list_is_current(host):
    out = host.run("KONG_PG_PASSWORD=kong-molecule /usr/local/bin/kong migrations list -c /etc/kong/kong.conf")
    assert out.rc == 0, out.stdout + out.stderr
    assert out.stdout.startswith("Executed migrations:")
    assert "Pending migrations:" not in out.stdout
    assert "New migrations available:" not in out.stdout
