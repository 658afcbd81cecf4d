"""What every scenario's testinfra verifier checks the same way: the run's journal on the controller,
HAProxy's servers read back from its admin socket, the load that ran during the upgrade, and Kong's
schema_meta read on a PostgreSQL host.
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
    assert summary.get("error") is None, summary["error"]
    assert summary["total"] > 100, summary["total"]
    assert summary["failed"] == 0, summary["failures_by_reason"]
    assert summary["versions"].get(current, 0) > 0
    assert summary["versions"].get(target, 0) > 0
    last = summary["per_second"][-3:]
    assert all(sec["versions"] and set(sec["versions"]) == {target} for sec in last), last


def check_all_on_y(host, x_servers, y_servers):
    """HAProxy's kong_proxy backend: every Y server UP with a weight, every X server out of rotation."""
    rows = haproxy_servers(host)
    for name in y_servers:
        assert rows[name]["status"] == "UP", rows[name]
        assert int(rows[name]["weight"]) > 0, rows[name]
    for name in x_servers:
        assert rows[name]["status"] == "MAINT" or int(rows[name]["weight"]) == 0, rows[name]


def versions_through_lb(host, requests=10):
    """The Kong versions that answered ``requests`` requests sent through HAProxy (each answered 200)."""
    seen = set()
    for _ in range(requests):
        out = host.check_output("curl -s -o /dev/null -D - -H 'apikey: demo-key' http://127.0.0.1:8000/echo")
        assert out.startswith("HTTP/1.1 200"), out
        via = [ln for ln in out.splitlines() if ln.lower().startswith("via:")]
        seen.add(via[-1].split("kong/")[-1].strip() if via else None)
    return seen


def schema_meta(host, database="kong"):
    """Kong's schema_meta rows of ``database``, by subsystem: last executed, executed and pending migrations."""
    out = host.check_output(
        "runuser -u postgres -- psql -d %s -tA -F '|' -c %s",
        database,
        "SELECT subsystem, last_executed, array_to_string(executed, ','), coalesce(array_to_string(pending, ','), '') "
        "FROM schema_meta WHERE key = 'schema_meta'",
    )
    rows = {}
    for line in out.splitlines():
        subsystem, last, executed, pending = line.split("|")
        rows[subsystem] = {"last": last, "executed": executed.split(",") if executed else [], "pending": pending.split(",") if pending else []}
    return rows


def missing_migrations(meta, target):
    """The migrations of Kong ``target`` (the simulator's catalog, taken from Kong's source) that ``meta`` has not executed."""
    catalog_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "kongsim", "kongsim", "data", "migrations-by-version.json")
    with open(catalog_path, encoding="utf-8") as fh:
        catalog = json.load(fh)["versions"][target]["subsystems"]
    missing = {}
    for entry in catalog:
        lacking = [m["name"] for m in entry["migrations"] if m["name"] not in meta.get(entry["subsystem"], {}).get("executed", [])]
        if lacking:
            missing[entry["subsystem"]] = lacking
    return missing
