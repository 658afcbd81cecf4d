"""Every data plane is back in rotation, and the load never failed during both upgrades."""
import csv
import io
import json
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("kong_lb")
DATA_PLANES = RUNNER.get_hosts("kong_x")
CURRENT, TARGET = "3.8.1", "3.9.3"
LOAD_OUT = "/var/tmp/kongops-load.json"


def _servers(host):
    """`show stat` rows of the kong_proxy backend's servers, by server name."""
    out = host.check_output("echo 'show stat' | socat stdio UNIX-CONNECT:/run/haproxy/admin.sock")
    rows = csv.DictReader(io.StringIO(out.lstrip("# ")))
    return {r["svname"]: r for r in rows if r["pxname"] == "kong_proxy" and r["svname"] not in ("FRONTEND", "BACKEND")}


def test_data_planes_back_in_rotation(host):
    rows = _servers(host)
    for name in DATA_PLANES:
        assert rows[name]["status"] == "UP", rows[name]
        assert int(rows[name]["weight"]) == 100, rows[name]


def test_requests_through_the_lb_reach_target(host):
    for _ in range(10):
        out = host.check_output("curl -s -o /dev/null -D - -H 'apikey: demo-key' http://127.0.0.1:8000/echo")
        assert out.startswith("HTTP/1.1 200"), out
        assert ("kong/%s" % TARGET) in out


def test_load_during_the_upgrades_had_zero_failures(host):
    summary = json.loads(host.file(LOAD_OUT).content_string)["summary"]
    assert summary["total"] > 100, summary["total"]
    assert summary["failed"] == 0, summary["failures_by_reason"]
    assert summary["versions"].get(CURRENT, 0) > 0
    assert summary["versions"].get(TARGET, 0) > 0
    last = summary["per_second"][-3:]
    assert all(sec["versions"] and set(sec["versions"]) == {TARGET} for sec in last), last
