"""HAProxy sends every request to cluster Y, and the load that ran during the upgrade never failed."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))

from kongops_verify import RUNNER, check_load_had_no_failure, haproxy_servers  # noqa: E402

testinfra_hosts = RUNNER.get_hosts("kong_lb")
X = RUNNER.get_hosts("kong_x")
Y = RUNNER.get_hosts("kong_y")
CURRENT, TARGET = "3.6.1", "3.7.1"


def test_weights_all_on_y(host):
    rows = haproxy_servers(host)
    for name in Y:
        assert rows[name]["status"] == "UP", rows[name]
        assert int(rows[name]["weight"]) > 0, rows[name]
    for name in X:
        assert rows[name]["status"] == "MAINT" or int(rows[name]["weight"]) == 0, rows[name]


def test_requests_through_the_lb_reach_y(host):
    seen = set()
    for _ in range(10):
        out = host.check_output("curl -s -o /dev/null -D - -H 'apikey: demo-key' http://127.0.0.1:8000/echo")
        assert out.startswith("HTTP/1.1 200"), out
        via = [ln for ln in out.splitlines() if ln.lower().startswith("via:")]
        seen.add(via[-1].split("kong/")[-1].strip() if via else None)
    assert seen == {TARGET}


def test_load_during_the_upgrade_had_zero_failures(host):
    check_load_had_no_failure(host, CURRENT, TARGET)
