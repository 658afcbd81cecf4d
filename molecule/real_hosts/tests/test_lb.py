"""Every data plane is back in rotation, and the load never failed during both upgrades."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))

from kongops_verify import RUNNER, check_load_had_no_failure, haproxy_servers  # noqa: E402

testinfra_hosts = RUNNER.get_hosts("kong_lb")
DATA_PLANES = RUNNER.get_hosts("kong_x")
CURRENT, TARGET = "3.8.1", "3.9.3"


def test_data_planes_back_in_rotation(host):
    rows = haproxy_servers(host)
    for name in DATA_PLANES:
        assert rows[name]["status"] == "UP", rows[name]
        assert int(rows[name]["weight"]) == 100, rows[name]


def test_requests_through_the_lb_reach_target(host):
    for _ in range(10):
        out = host.check_output("curl -s -o /dev/null -D - -H 'apikey: demo-key' http://127.0.0.1:8000/echo")
        assert out.startswith("HTTP/1.1 200"), out
        assert ("kong/%s" % TARGET) in out


def test_load_during_the_upgrades_had_zero_failures(host):
    check_load_had_no_failure(host, CURRENT, TARGET)
