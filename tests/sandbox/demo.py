"""`make demo`: a rolling upgrade of the sandbox under a steady load, and the report of what the clients saw."""

from __future__ import annotations

import datetime
import glob
import json
import os
import time

from tests.loadgen import LoadGenerator, share_between
from tests.sandbox import render
from tests.sandbox.core import Sandbox


def _epoch(text) -> float | None:
    """Epoch seconds from the journal's ISO times (``...Z``, ``...+00:00Z`` or naive UTC) or a number."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    value = str(text).strip()
    value = value.removesuffix("Z")
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def read_journal(work_dir: str) -> dict:
    """The newest run journal (``<work_dir>/<cluster>/journal*.json``) and any report JSON beside it."""
    found: dict = {}
    journals = sorted(glob.glob(os.path.join(work_dir, "*", "journal*.json")), key=os.path.getmtime)
    if journals:
        try:
            with open(journals[-1]) as fh:
                found["journal"] = json.load(fh)
            found["journal_path"] = journals[-1]
        except (OSError, ValueError):
            pass
    reports = sorted(glob.glob(os.path.join(work_dir, "**", "*report*.json"), recursive=True), key=os.path.getmtime)
    if reports:
        try:
            with open(reports[-1]) as fh:
                found["report"] = json.load(fh)
            found["report_path"] = reports[-1]
        except (OSError, ValueError):
            pass
    return found


def _clock(epoch: float | None, t0: float | None) -> str:
    if epoch is None:
        return "?"
    stamp = time.strftime("%H:%M:%S", time.localtime(epoch))
    return f"{stamp} (+{epoch - t0:5.1f} s)" if t0 is not None else stamp


def _segments(summary: dict, version: str) -> list[dict]:
    """Consecutive seconds grouped by the measured share of ``version`` (rounded to 5 points); seconds
    in which nothing succeeded stay in the running group and count as failed there."""
    segments: list[dict] = []
    for sec in summary["per_second"]:
        served = sum(sec["versions"].values())
        level = int(round(100.0 * sec["versions"].get(version, 0) / served / 5.0) * 5) if served else None
        if segments and (level is None or segments[-1]["level"] in (None, level)):
            seg = segments[-1]
            if seg["level"] is None:
                seg["level"] = level
        else:
            seg = {"level": level, "from": sec["second"], "requests": 0, "hits": 0, "failed": 0, "not_sent": 0}
            segments.append(seg)
        seg["to"] = sec["second"]
        seg["requests"] += sec["total"]
        seg["hits"] += sec["versions"].get(version, 0)
        seg["failed"] += sec["failed"]
        seg["not_sent"] += sec.get("not_sent", 0)
    return segments


def _gate_text(gate) -> str:
    """The gate verdict kept in a journal step (the gate_eval filter's dict)."""
    if not isinstance(gate, dict) or not gate:
        return "-"
    if gate.get("failed"):
        return "FAILED: " + ("; ".join(str(r) for r in gate.get("reasons") or []) or "see the journal")
    parts = ["passed"]
    if gate.get("requests") is not None:
        parts.append(f"{gate['requests']} requests at the LB")
    if gate.get("errors") is not None:
        parts.append(f"{gate['errors']} errors")
    nodes = gate.get("nodes") or {}
    if nodes:
        parts.append(
            f"Y nodes' own /metrics: {sum(n.get('requests', 0) for n in nodes.values())} requests, {sum(n.get('errors', 0) for n in nodes.values())} 5xx"
        )
    return ", ".join(parts)


def build_report(summary: dict, found: dict, kong_x: str, kong_y: str, rc: int | None = None, playbook_window: tuple[float, float] | None = None) -> str:
    t0 = summary.get("started_at")
    lines = [
        (f"=== Rolling upgrade Kong {kong_x} -> {kong_y} under load ({summary['target_rate']:.0f} req/s target, {summary.get('achieved_rate')} req/s sent) ===")
    ]
    if rc is not None:
        lines.append(f"playbook exit code: {rc}")
    if playbook_window:
        lines.append(f"playbook: {_clock(playbook_window[0], t0)} -> {_clock(playbook_window[1], t0)}, {playbook_window[1] - playbook_window[0]:.1f} s")
    journal = found.get("journal") or {}
    if journal:
        lines.append(
            f"run {journal.get('run_id', '?')}: status {journal.get('status', '?')}, "
            f"{_clock(_epoch(journal.get('started_at')), t0)} -> {_clock(_epoch(journal.get('ended_at')), t0)} "
            f"(journal {found.get('journal_path')})"
        )
        failure = journal.get("failure")
        if isinstance(failure, dict):
            lines.append(
                f"STOPPED in phase {failure.get('phase')}: {failure.get('reason')}" + (" (the fleet needs attention)" if failure.get("needs_attention") else "")
            )
        if isinstance(journal.get("nodes"), dict) and journal["nodes"]:
            lines.append("nodes: " + ", ".join(f"{n} {st}" for n, st in sorted(journal["nodes"].items())))
        phases = journal.get("phases") or {}
        timed = sorted(
            ((name, _epoch(p.get("at") or p.get("ended_at") or p.get("started_at"))) for name, p in phases.items() if isinstance(p, dict)),
            key=lambda x: x[1] or 0,
        )
        if timed:
            lines.append("phases:")
            for name, at in timed:
                lines.append(f"  {_clock(at, t0):<22} {name}")
    steps = [s for s in journal.get("steps", []) if isinstance(s, dict)]
    if steps:
        lines.append("traffic steps (target share of Y, measured over the step's soak from the client side):")
        lines.append(f"  {'started':<22} {'ended':<22} {'target':>6} {'measured':>9}  gate")
        for step in steps:
            start, end = _epoch(step.get("started_at")), _epoch(step.get("ended_at"))
            measured = share_between(summary, start + 1, end, kong_y) if start and end and end - start > 1 else None
            lines_gate = _gate_text(step.get("gate"))
            lines.append(
                f"  {_clock(start, t0):<22} {_clock(end, t0):<22} {str(step.get('share', '?')) + ' %':>6} "
                f"{(str(measured) + ' %') if measured is not None else '-':>9}  {lines_gate}"
            )
    else:
        lines.append("no traffic steps in a run journal; share of Y per second from the load data instead")
    lines.append(f"share of Kong {kong_y} over time (client side, per-second buckets grouped):")
    for seg in _segments(summary, kong_y):
        share = f"{100.0 * seg['hits'] / max(1, seg['requests'] - seg['failed']):5.1f} %" if seg["level"] is not None else "   -   "
        start_wall = t0 + seg["from"] if t0 is not None else None
        lines.append(
            f"  {_clock(start_wall, t0):<22} {seg['to'] - seg['from'] + 1:>4} s  Y {share}  "
            f"{seg['requests']:>6} requests  {seg['failed']} failed" + (f"  ({seg['not_sent']} not sent)" if seg["not_sent"] else "")
        )
    lines.append("requests served by each version:")
    for version, count in sorted(summary["versions"].items()):
        lines.append(f"  Kong {version:<10} {count:>7}")
    lines.append(f"requests: {summary['total']} sent, {summary['ok']} answered 2xx, {summary['failed']} failed")
    if summary.get("not_sent"):
        lines.append(
            f"LOAD NOT SUSTAINED: {summary['not_sent']} of {summary['due']} requests were not sent because "
            f"{summary['target_rate']:.0f} req/s outran this machine (backlog full); the run does not show "
            "the target load"
        )
    if summary["failed"]:
        for reason, count in sorted(summary["failures_by_reason"].items(), key=lambda x: -x[1]):
            lines.append(f"  {count:>6} x {reason}")
    lat = summary["latency_ms"]
    lines.append(f"latency ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}")
    lines.append(f"FAILED REQUESTS: {summary['failed']}")
    return "\n".join(lines)


def run_demo(kong_x: str, kong_y: str, rate: float = 200.0, sandbox: Sandbox | None = None, settle: float = 3.0, extra_args: list[str] | None = None) -> int:
    sb = sandbox or Sandbox()
    if sb.load():
        sb.out(f"demo: stopping the sandbox already in {sb.state_dir}")
        sb.down()
    sb.up("dbless", kong_x)
    url = f"http://127.0.0.1:{sb.lb_port}{render.DEMO_PATH}"
    sb.out(f"demo: load {rate:.0f} req/s on {url} (apikey {render.DEMO_KEY})")
    gen = LoadGenerator(url, rate=rate, headers={"apikey": render.DEMO_KEY}).start()
    rc = None
    window = None
    try:
        time.sleep(settle)
        began = time.time()
        rc = sb.upgrade("rolling", kong_y, extra_args=extra_args)
        window = (began, time.time())
        time.sleep(settle)
    finally:
        summary = gen.stop()
        load_path = os.path.join(sb.work_dir, "demo-load.json")
        os.makedirs(sb.work_dir, exist_ok=True)
        gen.dump(load_path)
    found = read_journal(sb.work_dir)
    report = build_report(summary, found, kong_x, kong_y, rc, window)
    report_path = os.path.join(sb.work_dir, "demo-report.txt")
    with open(report_path, "w") as fh:
        fh.write(report + "\n")
    sb.out("")
    sb.out(report)
    sb.out(f"(load records: {load_path}; this report: {report_path})")
    if found.get("report_path"):
        html_report = os.path.join(os.path.dirname(found["report_path"]), "report.html")
        if os.path.exists(html_report):
            sb.out(f"The run's report, with the traffic, latency and phase charts: {html_report}")
    sb.out("The sandbox is still up: `make sandbox-down` stops it; `python -m tests.sandbox status` shows it.")
    if rc:
        return rc
    if summary["failed"]:
        return 1
    return 3 if summary.get("not_sent") else 0
