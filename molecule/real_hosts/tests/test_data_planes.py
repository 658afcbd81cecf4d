"""Both data planes proxy the control plane's routes on Y."""
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("kong_x")
TARGET = "3.9.3"


def test_ready_and_route_answers(host):
    assert host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8007/status/ready") == "200"
    ok = host.run("curl -s -o /dev/null -D - -H 'apikey: key-010' http://127.0.0.1:8000/echo")
    assert ok.stdout.startswith("HTTP/1.1 200"), ok.stdout
    assert ("kong/%s" % TARGET) in ok.stdout
    assert host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/echo") == "401"
