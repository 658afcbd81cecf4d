"""What every scenario's testinfra verifier checks the same way: the run's journal on the controller,
HAProxy's servers read back from its admin socket, and the load that ran during the upgrade.
A scenario's tests import it with `sys.path` pointed here (molecule/shared is not a scenario)."""
import csv
import io
import json
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
LOAD_OUT = "/var/tmp/kongops-load.json"


def work_dir():
    """The run's work directory on the controller: <ephemeral>/kongops/<kong_cluster_name>."""
    cluster = RUNNER.get_variables(RUNNER.get_hosts("kong_x")[0])["kong_cluster_name"]
    return os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "kongops", cluster)


def check_journal_done():
    with open(os.path.join(work_dir(), "journal.json"), encoding="utf-8") as fh:
        journal = json.load(fh)
    assert journal["status"] == "done", journal.get("status")
    assert journal["thawed"] is True
    assert not os.path.exists(os.path.join(work_dir(), "freeze.lock.json"))


def haproxy_servers(host):
    """`show stat` rows of the kong_proxy backend's servers, by server name."""
    out = host.check_output("echo 'show stat' | socat stdio UNIX-CONNECT:/run/haproxy/admin.sock")
    rows = csv.DictReader(io.StringIO(out.lstrip("# ")))
    return {r["svname"]: r for r in rows if r["pxname"] == "kong_proxy" and r["svname"] not in ("FRONTEND", "BACKEND")}


def check_load_had_no_failure(host, current, target):
    """The load generator's summary on the LB host: no failed request, both versions served, the last
    three seconds on the target alone."""
    summary = json.loads(host.file(LOAD_OUT).content_string)["summary"]
    assert summary["total"] > 100, summary["total"]
    assert summary["failed"] == 0, summary["failures_by_reason"]
    assert summary["versions"].get(current, 0) > 0
    assert summary["versions"].get(target, 0) > 0
    last = summary["per_second"][-3:]
    assert all(sec["versions"] and set(sec["versions"]) == {target} for sec in last), last
