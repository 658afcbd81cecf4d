"""Upgrades of a traditional (PostgreSQL) sandbox under load: the downtime the clients saw in place
against the time of each phase (stop, migrations, start) read from the run's task timeline, and beside
it the dual-cluster upgrade of the same sandbox (Y on a clone of X's database, traffic moved through
the load balancer), whose client-measured downtime is expected to be 0."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from bench.common import loadavg, low_port_base, tail
from bench.fleet import FleetSandbox
from bench.rolling import SETTLE, _summary_fields, failure_timeline, outage, read_journal, read_report, short_error, teardown
from tests.loadgen import LoadGenerator
from tests.sandbox import render
from tests.sandbox.core import REPO, VENV_BIN
from tests.sandbox.timeline import in_place_phases


def _dual_cluster(box, kong_y: str, log_path: str) -> int:
    """playbooks/dual_cluster_upgrade.yml on the sandbox, Y on a new database of the same server."""
    box.install(kong_y)
    inventory = box.write_dual_inventory(os.path.join(box.state_dir, "dual-inventory.yml"))
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), os.path.join(REPO, "playbooks", "dual_cluster_upgrade.yml"), "-i", inventory]
    cmd += ["-e", f"kong_version_target={kong_y}", "-e", "kong_y_pg_database=kong_y", "-e", "kong_spare_capacity=true"]
    env = dict(box.ansible_env())
    env.setdefault("ANSIBLE_CALLBACKS_ENABLED", "kongops.upgrade.upgrade_report")
    with open(log_path, "w") as fh:
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO, timeout=1800, check=False).returncode


def upgrade_under_load(work: str, strategy: str, kong_x: str, kong_y: str, rate: float, out=print) -> dict:
    """One upgrade (``in_place`` or ``dual_cluster``) of a fresh 3-node traditional sandbox under a steady load."""
    name = f"{strategy.replace('_', '')}-{kong_x}-{kong_y}"
    state_dir = os.path.join(work, name)
    shutil.rmtree(state_dir, ignore_errors=True)
    box = FleetSandbox(
        state_dir=state_dir, lb_port=low_port_base(40), nodes=3, out=lambda msg: out(f"    [{name}] {msg}") if msg.startswith("sandbox") else None
    )
    log_path = os.path.join(work, "logs", f"{name}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    result: dict = {"strategy": strategy, "from": kong_x, "to": kong_y, "rate": rate, "log": log_path, "loadavg_before": loadavg()}
    try:
        box.up("traditional", kong_x)
        url = f"http://127.0.0.1:{box.lb_port}{render.DEMO_PATH}"
        gen = LoadGenerator(url, rate=rate, headers={"apikey": render.DEMO_KEY}, timeout=2.0).start()
        try:
            time.sleep(SETTLE)
            started = time.time()
            if strategy == "in_place":
                rc = box.upgrade("in_place", kong_y, log_path=log_path, stream=lambda line: None)
            else:
                rc = _dual_cluster(box, kong_y, log_path)
            ended = time.time()
            time.sleep(SETTLE)
        finally:
            summary = gen.stop()
        journal = read_journal(box)
        first, final = summary.get("first_failure_wall"), summary.get("last_failure_wall")
        result.update(
            rc=rc,
            playbook_seconds=round(ended - started, 1),
            load=_summary_fields(summary),
            client_downtime_seconds=round(final - first, 2) if first is not None else 0.0,
            outage=outage(gen.records),
            failure_timeline=failure_timeline(summary),
            playbook_window=[round(started - summary["started_at"], 1), round(ended - summary["started_at"], 1)],
            journal_downtime_seconds=float(journal["downtime_seconds"]) if journal.get("downtime_seconds") else None,
            journal_status=journal.get("status"),
        )
        if strategy == "in_place":
            phases = in_place_phases(read_report(box))
            stop_start, start_end = phases.pop("first_stop"), phases.pop("last_ready")
            if stop_start is not None and start_end is not None:
                phases["first_stop_to_last_ready"] = round(start_end - stop_start, 2)
                phases["first_stop_at"] = round(stop_start - summary["started_at"], 1)
                phases["last_ready_at"] = round(start_end - summary["started_at"], 1)
            result["phases"] = phases
        tail_seconds = [s for s in summary["per_second"] if s["versions"]][-2:]
        result["ends_on_y"] = bool(tail_seconds) and all(set(s["versions"]) == {kong_y} for s in tail_seconds)
        if rc != 0:
            result["error"] = f"playbook exit code {rc}; see {log_path}"
            result["log_tail"] = tail(log_path)
    except Exception as exc:  # noqa: BLE001 - a failed flow is a result, not the end of the bench
        result["error"] = short_error(exc)
    finally:
        teardown(box, result, work, name)
    return result


def in_place_under_load(work: str, kong_x: str, kong_y: str, rate: float, out=print) -> dict:
    return upgrade_under_load(work, "in_place", kong_x, kong_y, rate, out=out)


def dual_cluster_under_load(work: str, kong_x: str, kong_y: str, rate: float, out=print) -> dict:
    return upgrade_under_load(work, "dual_cluster", kong_x, kong_y, rate, out=out)
