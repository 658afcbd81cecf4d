"""Cluster Y runs Kong 3.7.1 from the package, under systemd, on Y's database on dc-pg-y."""
import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("kong_y")


def test_y_runs_the_target_on_its_own_database(host):
    node = json.loads(host.check_output("curl -s http://127.0.0.1:8001/"))
    assert node["version"] == "3.7.1"
    conf = host.file("/etc/kong/kong.conf").content_string
    assert "pg_host = dc-pg-y" in conf and "pg_database = kong_y" in conf, conf
