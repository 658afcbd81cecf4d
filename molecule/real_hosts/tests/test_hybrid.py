"""The control plane sees every data plane on Y, and the data planes proxy with its configuration."""
import json
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("kong_cp")
DATA_PLANES = RUNNER.get_hosts("kong_x")
TARGET = "3.9.3"


def test_every_data_plane_connected_on_target_and_in_sync(host):
    # No token on this command line: testinfra's commands are logged on the host (OSS ignores it).
    listed = json.loads(host.check_output(
        "curl -sf --cacert /etc/kong/tls/ca.crt https://localhost:8444/clustering/data-planes"))["data"]
    latest = {}
    for dp in sorted(listed, key=lambda d: d.get("last_seen", 0)):
        latest[dp["hostname"]] = dp
    assert set(DATA_PLANES) <= set(latest), listed
    for name in DATA_PLANES:
        assert latest[name]["version"] == TARGET, latest[name]
        assert latest[name]["sync_status"] == "normal", latest[name]


def test_migrations_list_is_current(host):
    out = host.run("set -a; . /etc/kong/kong.env; /usr/local/bin/kong migrations list -c /etc/kong/kong.conf")
    assert out.rc == 0, out.stdout + out.stderr
    assert "Pending migrations:" not in out.stdout
    assert "New migrations available:" not in out.stdout
