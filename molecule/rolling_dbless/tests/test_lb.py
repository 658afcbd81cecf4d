"""HAProxy sends every request to Y, and the load that ran during the upgrade never failed."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))

from kongops_verify import RUNNER, check_all_on_y, check_load_had_no_failure, versions_through_lb  # noqa: E402

testinfra_hosts = RUNNER.get_hosts("kong_lb")
X = RUNNER.get_hosts("kong_x")
Y = RUNNER.get_hosts("kong_y")
CURRENT, TARGET = "3.8.1", "3.9.3"


def test_haproxy_runs(host):
    assert host.file("/run/haproxy.pid").exists
    assert host.socket("tcp://0.0.0.0:8000").is_listening
    assert host.file("/run/haproxy/admin.sock").is_socket


def test_weights_all_on_y(host):
    check_all_on_y(host, X, Y)


def test_requests_through_the_lb_reach_y(host):
    assert versions_through_lb(host, 20) == {TARGET}


def test_load_during_the_upgrade_had_zero_failures(host):
    check_load_had_no_failure(host, CURRENT, TARGET)
