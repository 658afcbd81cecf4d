"""DB-less rolling upgrades on fresh sandboxes: ours against the naive playbook under the same load,
the traffic share of each step, and the orchestration overhead at several fleet sizes."""

from __future__ import annotations

import datetime
import glob
import json
import math
import os
import resource
import shutil
import time

from bench.common import REPO, VENV_BIN, loadavg, low_port_base, run_logged, tail
from bench.fleet import FleetSandbox
from tests.loadgen import KeepAliveClients, LoadGenerator, summarize
from tests.sandbox import render, timeline
from tests.sandbox.timeline import task_name

NAIVE_PLAYBOOK = os.path.join(REPO, "bench", "naive_rolling.yml")
SETTLE = 2.0


def epoch(text) -> float | None:
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    try:
        parsed = datetime.datetime.fromisoformat(str(text).strip().removesuffix("Z"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def read_journal(box) -> dict:
    return timeline.read_journal(box.work_dir)


def read_report(box) -> dict:
    """The upgrade_report callback's report.json of the newest run (empty when the callback did not write one)."""
    return timeline.read_report(box.work_dir)


def phase_spans(report: dict) -> dict:
    """Seconds from the first task start to the last task end of each play, in play order."""
    spans: dict[str, list] = {}
    for entry in report.get("timeline", []):
        span = spans.setdefault(entry["phase"], [entry["start"], entry["end"]])
        span[0], span[1] = min(span[0], entry["start"]), max(span[1], entry["end"])
    return {phase: round(end - start, 2) for phase, (start, end) in spans.items()}


def task_seconds(report: dict, prefix: str) -> float:
    """Sum over the hosts of the time spent in tasks whose name starts with ``prefix``."""
    return round(sum(e["end"] - e["start"] for e in report.get("timeline", []) if task_name(e).startswith(prefix)), 2)


def task_span(report: dict, prefix: str) -> float | None:
    """Wall time from the first start to the last end of the tasks whose name starts with ``prefix``."""
    hits = [e for e in report.get("timeline", []) if task_name(e).startswith(prefix)]
    if not hits:
        return None
    return round(max(e["end"] for e in hits) - min(e["start"] for e in hits), 2)


def share_accuracy(records, steps: list, version: str, skip: float = 0.2) -> list[dict]:
    """Per journal step: target share, share implied by the weights set, and the share of ``version``
    among the successful requests sent while the step soaked (from the load's own records)."""
    rows = []
    for step in steps:
        # from when the weights were in place (shifted_at), not from when the step began setting them
        start, end = epoch(step.get("shifted_at") or step.get("started_at")), epoch(step.get("ended_at"))
        if start is None or end is None:
            continue
        window = [r for r in records if start + skip <= r.wall < end and r.ok]
        hits = sum(1 for r in window if r.version == version)
        weights = step.get("weights") or {}
        total_w = sum(int(w) for w in weights.values()) if weights else 0
        y_w = sum(int(w) for name, w in weights.items() if name.startswith("y"))
        measured = round(100.0 * hits / len(window), 1) if window else None
        rows.append(
            {
                "target": step.get("share"),
                "weights": weights,
                "weights_share": round(100.0 * y_w / total_w, 1) if total_w else None,
                "measured": measured,
                "error_points": round(measured - float(step.get("share")), 1) if measured is not None else None,
                "requests": len(window),
                "seconds": round(end - start - skip, 1),
            }
        )
    return rows


def _failed(record) -> bool:
    """Sent and answered non-2xx or not at all (not: due but never sent, the load generator's backlog being full)."""
    if record.status is not None:
        return not record.ok
    return not (record.error or "").startswith(("in_flight", "not_sent"))


def outage(records) -> dict:
    """The longest time between two successive requests that were answered 2xx (by send time), and the
    failed requests sent inside and outside that window."""
    sent_ok = sorted(r.wall for r in records if r.ok)
    failed = [r.wall for r in records if _failed(r)]
    if len(sent_ok) < 2:
        return {"longest_seconds": None, "failed_inside": len(failed), "failed_outside": 0}
    gap, start, end = max((b - a, a, b) for a, b in zip(sent_ok, sent_ok[1:]))
    inside = sum(1 for w in failed if start < w < end)
    return {"longest_seconds": round(gap, 2), "from": start, "to": end, "failed_inside": inside, "failed_outside": len(failed) - inside}


def failure_timeline(summary: dict) -> list:
    """[second since the load started, failed, not sent] for every second with a failed or unsent request."""
    return [[s["second"], s["failed"], s.get("not_sent", 0)] for s in summary.get("per_second", []) if s["failed"] or s.get("not_sent")]


def _summary_fields(summary: dict) -> dict:
    return {
        key: summary.get(key)
        for key in (
            "due",
            "total",
            "ok",
            "failed",
            "not_sent",
            "failures_by_reason",
            "versions",
            "latency_ms",
            "achieved_rate",
            "target_rate",
            "duration_s",
            "first_failure_wall",
            "last_failure_wall",
            "skipped_over_limit",
        )
    }


def _new_box(work: str, name: str, nodes: int, out) -> FleetSandbox:
    state_dir = os.path.join(work, name)
    shutil.rmtree(state_dir, ignore_errors=True)
    return FleetSandbox(
        state_dir=state_dir,
        lb_port=low_port_base(3 * 2 * nodes + 20),
        nodes=nodes,
        out=lambda msg: out(f"    [{name}] {msg}") if msg.startswith("sandbox") else None,
    )


def short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 700 else text[:700] + " ..."


def teardown(box, result: dict, work: str, name: str) -> None:
    """Keep the sandbox's own logs (start-nodes.log, haproxy.log, ...), then stop everything it runs."""
    result["loadavg_after"] = loadavg()
    logs = os.path.join(box.state_dir, "logs")
    if os.path.isdir(logs):
        dest = os.path.join(work, "logs", f"{name}-sandbox")
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(logs, dest)
        result["sandbox_logs"] = dest
        for found in glob.glob(os.path.join(box.work_dir, "sandbox", "journal.json")) + glob.glob(
            os.path.join(box.work_dir, "sandbox", "reports", "*", "report.json")
        ):
            shutil.copy(found, dest)
    t0 = time.monotonic()
    try:
        box.down()
    except Exception as exc:  # noqa: BLE001
        result["teardown_error"] = short_error(exc)
    result["sandbox_down_seconds"] = round(time.monotonic() - t0, 1)
    if "teardown_error" not in result:
        shutil.rmtree(box.state_dir, ignore_errors=True)


def _run_naive(box, kong_y: str, log_path: str) -> tuple[int, float, float]:
    box.install(kong_y)
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), NAIVE_PLAYBOOK, "-i", box.inventory, "-e", f"kong_version_target={kong_y}"]
    started = time.time()
    rc, _secs = run_logged(argv, log_path, env=box.ansible_env())
    return rc, started, time.time()


def _run_ours(box, kong_y: str, log_path: str, extra: list[str] | None = None) -> tuple[int, float, float]:
    rc = box.upgrade("rolling", kong_y, extra_args=extra or [], log_path=log_path, stream=lambda line: None)
    box.load()
    last = box.state["upgrades"][-1]
    return rc, last["started"], last["ended"]


# The loads of section 1. "plain": GETs of the echo route at the bench's rate, through an HAProxy that
# retries empty and timed-out responses. "realistic": what real APIs carry and no proxy can retry for
# them (slow requests of 1-3 s, POSTs with a body, long-lived keep-alive clients) beside the same
# GETs, through an HAProxy with its documented retry defaults (connection failures only).
PROFILES = {
    "plain": {"lb_retries": "retrying", "label": "plain GETs, HAProxy retrying empty/timed-out responses"},
    "realistic": {"lb_retries": "defaults", "label": "GETs + slow 1-3 s + POSTs + keep-alive clients, HAProxy's default retries (connection failures only)"},
}
SLOW_RATE, POST_RATE, KEEPALIVE_CLIENTS = 20.0, 30.0, 8


class _Loads:
    """The load generators of a profile, started and stopped together; ``base`` is the GET load at the
    bench's rate (its records give the share and the gap)."""

    def __init__(self, profile: str, url: str, rate: float):
        headers = {"apikey": render.DEMO_KEY}
        self.parts = {"get": LoadGenerator(url, rate=rate, headers=headers)}
        if profile == "realistic":
            self.parts["slow"] = LoadGenerator(url, rate=SLOW_RATE, headers=headers, sleep_range=(1.0, 3.0))
            self.parts["post"] = LoadGenerator(
                url, rate=POST_RATE, method="POST", body=b'{"order": 42}', headers={**headers, "Content-Type": "application/json"}
            )
            self.parts["keepalive"] = KeepAliveClients(url, clients=KEEPALIVE_CLIENTS, think=0.1, headers=headers)
        self.base = self.parts["get"]

    def start(self) -> "_Loads":
        for part in self.parts.values():
            part.start()
        return self

    def stop(self) -> dict:
        return {name: part.stop() for name, part in self.parts.items()}

    def records(self) -> list:
        return [r for part in self.parts.values() for r in part.records]


def rolling_under_load(work: str, kind: str, kong_x: str, kong_y: str, rate: float, out=print, profile: str = "plain", gate_reads: str = "controller") -> dict:
    """One fresh 3+3 DB-less sandbox, a load (PROFILES) through HAProxy, then ``ours`` or ``naive``."""
    name = f"rolling-{profile}-{kind}"
    box = _new_box(work, name, 3, out)
    log_path = os.path.join(work, "logs", f"{name}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    result: dict = {
        "kind": kind,
        "profile": profile,
        "profile_label": PROFILES[profile]["label"],
        "from": kong_x,
        "to": kong_y,
        "rate": rate,
        "log": log_path,
        "playbook": "playbooks/rolling_upgrade.yml (kong_rolling_topology=beside)" if kind == "ours" else "bench/naive_rolling.yml (same hosts, serial 1)",
        "loadavg_before": loadavg(),
    }
    try:
        # ours reads the Y nodes at its gates from the controller (kong_status_gate_url) unless told otherwise
        box.up("dbless", kong_x, lb_retries=PROFILES[profile]["lb_retries"], status_gate_urls=kind == "ours" and gate_reads == "controller")
        url = f"http://127.0.0.1:{box.lb_port}{render.DEMO_PATH}"
        loads = _Loads(profile, url, rate).start()
        gen = loads.base
        try:
            time.sleep(SETTLE)
            runner = _run_ours if kind == "ours" else _run_naive
            rc, started, ended = runner(box, kong_y, log_path)
            time.sleep(SETTLE)
        finally:
            parts = loads.stop()
        summary = parts["get"]
        # every part's requests together: the failed count is the sum over the parts
        combined = summarize(loads.records(), None, summary["started_at"])
        result.update(
            rc=rc,
            playbook_seconds=round(ended - started, 1),
            load=_summary_fields(combined),
            parts={part: _summary_fields(s) | {k: s.get(k) for k in ("clients", "connections", "retried_after_closed_keepalive")} for part, s in parts.items()},
            outage=outage(gen.records),
            failure_timeline=failure_timeline(combined),
            playbook_window=[round(started - summary["started_at"], 1), round(ended - summary["started_at"], 1)],
        )
        tail_seconds = [s for s in summary["per_second"] if s["versions"]][-2:]
        result["ends_on_y"] = bool(tail_seconds) and all(set(s["versions"]) == {kong_y} for s in tail_seconds)
        if kind == "ours":
            journal = read_journal(box)
            result["journal_status"] = journal.get("status")
            result["steps"] = share_accuracy(gen.records, journal.get("steps") or [], kong_y)
            result["soak_seconds"] = 2  # the sandbox's kong_gate_soak_seconds (tests/sandbox/render.py)
        if rc != 0:
            result["error"] = f"playbook exit code {rc}; see {log_path}"
            result["log_tail"] = tail(log_path)
    except Exception as exc:  # noqa: BLE001 - a failed flow is a result, not the end of the bench
        result["error"] = short_error(exc)
    finally:
        teardown(box, result, work, f"rolling-{kind}")
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def overhead(work: str, nodes: int, serial: int, kong_x: str, kong_y: str, soak: int = 1, out=print, gate_reads: str = "controller") -> dict:
    """Ours on a fresh N+N DB-less sandbox without load, with short soaks: where the time goes."""
    steps = [10, 25, 50, 100]
    name = f"overhead-{nodes}-serial{serial}"
    box = _new_box(work, name, nodes, out)
    log_path = os.path.join(work, "logs", f"{name}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    result: dict = {
        "nodes": nodes,
        "drain_serial": serial,
        "batches": math.ceil(nodes / serial),
        "soak_seconds": soak,
        "steps": steps,
        "log": log_path,
        "forks": int(os.environ.get("ANSIBLE_FORKS", "5")),
        "gate_reads": gate_reads,
        "loadavg_before": loadavg(),
    }
    extra = [
        "-e",
        f"kong_gate_soak_seconds={soak}",
        "-e",
        "kong_gate_interval_seconds=1",
        "-e",
        f"kong_post_upgrade_watch={soak}",
        "-e",
        f"kong_drain_serial={serial}",
        "-e",
        f"kong_drain_gate_soak_seconds={soak}",
        "-e",
        json.dumps({"kong_traffic_steps": steps}),
    ]
    try:
        t0 = time.monotonic()
        box.up("dbless", kong_x, status_gate_urls=gate_reads == "controller")
        result["sandbox_up_seconds"] = round(time.monotonic() - t0, 1)
        cpu_before = _children_cpu()
        rc, started, ended = _run_ours(box, kong_y, log_path, extra)
        # CPU of ansible-playbook and every process it waited for (its workers and modules), not of
        # the Kong nodes it started (they daemonize): on 2 cores it bounds how fast nodes can go
        result["controller_cpu_seconds"] = round(_children_cpu() - cpu_before, 1)
        wall = ended - started
        # the soaks the run is configured to wait: one per traffic step, one gate per drain batch, the watch
        soaks = soak * (len(steps) + result["batches"] + 1)
        report = read_report(box)
        result.update(
            rc=rc,
            wall_seconds=round(wall, 1),
            configured_soak_seconds=soaks,
            configured_drain_seconds=0,
            overhead_seconds=round(wall - soaks, 1),
            overhead_per_node=round((wall - soaks) / nodes, 2),
            phases=phase_spans(report),
            drain_wait_seconds=task_seconds(report, "Drain "),
            journal_status=read_journal(box).get("status"),
        )
        if rc != 0:
            result["error"] = f"playbook exit code {rc}; see {log_path}"
            result["log_tail"] = tail(log_path)
    except Exception as exc:  # noqa: BLE001
        result["error"] = short_error(exc)
    finally:
        teardown(box, result, work, name)
    return result
