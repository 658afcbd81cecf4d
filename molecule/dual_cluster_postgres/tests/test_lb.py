"""HAProxy sends every request to cluster Y, and the load that ran during the upgrade never failed."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))

from kongops_verify import RUNNER, check_all_on_y, check_load_had_no_failure, versions_through_lb  # noqa: E402

testinfra_hosts = RUNNER.get_hosts("kong_lb")
CURRENT, TARGET = "3.6.1", "3.7.1"


def test_weights_all_on_y(host):
    check_all_on_y(host, RUNNER.get_hosts("kong_x"), RUNNER.get_hosts("kong_y"))


def test_requests_through_the_lb_reach_y(host):
    assert versions_through_lb(host) == {TARGET}


def test_load_during_the_upgrade_had_zero_failures(host):
    check_load_had_no_failure(host, CURRENT, TARGET)
