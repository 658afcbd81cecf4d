# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
name: upgrade_report
type: aggregate
short_description: Timeline and report of a Kong upgrade run
version_added: 0.1.0
author: kongops.upgrade contributors (@kongops)
description:
  - Records every task of the run (phase, node, start, end, result; the weights a traffic step
    set and each gate verdict with its measurements) and, at the end, reads the C(kong_upgrade)
    artifact the playbooks publish with C(set_stats) and the run journal it names (traffic steps
    with their gate measurements, nodes, downtime).
  - Writes C(report.json) and a self-contained C(report.html) (timeline table and an inline SVG
    plot of the traffic share by version and the errors per step; no internet access needed) to
    C(<report_dir>/reports/<run id>/), and prints a short summary with the report's path at the
    end of the play output.
  - Enable it with C(callbacks_enabled = kongops.upgrade.upgrade_report) in C(ansible.cfg) or
    E(ANSIBLE_CALLBACKS_ENABLED); it works beside any stdout callback, also under AWX.
  - The report is also written while the run goes on, at each phase (play) and each change of the
    run journal (every C(kongops.upgrade.kong_upgrade_run) task), so a run that fails early, or is
    killed, leaves a report of what it did up to then.
notes:
  - A run that opens no run journal (a C(--tags preflight) plan, C(backup.yml)) writes no report
    and prints no summary.
options:
  report_dir:
    description:
      - Directory under which C(reports/<run id>/) is written; by default the directory of the run
        journal (C(<kong_work_dir>/<kong_cluster_name>)).
    type: path
    env:
      - name: KONGOPS_REPORT_DIR
    ini:
      - section: kongops_upgrade_report
        key: report_dir
"""

import html
import json
import os
import time

from ansible.plugins.callback import CallbackBase
from ansible_collections.kongops.upgrade.plugins.module_utils._files import private_dirs


# Facts and includes are bookkeeping, not steps of the timeline; a gate verdict (the
# kong_gate fact of roles/upgrade_common/tasks/gate.yml) is.
QUIET_ACTIONS = ("ansible.builtin.set_fact", "set_fact", "ansible.builtin.include_tasks", "include_tasks", "ansible.builtin.include_role", "include_role")
GATE_FIELDS = ("requests", "errors", "error_rate", "failed", "reasons")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kongops.upgrade.upgrade_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.started = time.time()
        self.play = ""
        self.timeline = []
        self._open = {}
        self.journal_path = None  # the run journal, from the first kong_upgrade_run result

    def v2_playbook_on_play_start(self, play):
        self.play = play.get_name().strip()
        if self.journal_path:
            self._write(None, final=False)

    def v2_runner_on_start(self, host, task):
        self._open[(host.get_name(), task._uuid)] = time.time()

    def _record(self, result, outcome):
        host = result._host.get_name()
        task = result._task
        start = self._open.pop((host, task._uuid), time.time())
        res = result._result or {}
        if task.action.endswith("kong_upgrade_run") and isinstance(res.get("path"), str) and res.get("path"):
            self.journal_path = res["path"]
        verdict = (res.get("ansible_facts") or {}).get("kong_gate")
        label = verdict.get("label") if isinstance(verdict, dict) else None
        gate = {k: verdict.get(k) for k in GATE_FIELDS if k in verdict} if isinstance(verdict, dict) else None
        if task.action in QUIET_ACTIONS and not gate:
            return
        entry = dict(phase=self.play, task=task.get_name().strip(), node=host, start=round(start, 3), end=round(time.time(), 3), result=outcome)
        # lb_weight runs once per load balancer (a loop): the weights are in the items
        weights = [r.get("computed_weights") for r in [res] + list(res.get("results") or []) if isinstance(r, dict)]
        weights = [w for w in weights if isinstance(w, dict)]
        if weights:
            entry["weights"] = weights[0]
        if gate:
            last = self.timeline[-1] if self.timeline else {}
            if last.get("gate") == gate and last.get("node") == host:
                # the same verdict confirmed by a later check of the same gate
                last["end"] = entry["end"]
                return
            soak = next((e for e in reversed(self.timeline) if "gate" in e), {})
            if label and soak.get("gate_label") == label and soak.get("node") == host:
                # the same gate judged after its soak (the load balancer's verdict, then the judgment
                # with the nodes' own counters): one entry, from the soak's start to the judgment
                self.timeline.remove(soak)
                entry["start"] = soak["start"]
            entry["gate"] = gate
            if label:
                entry["gate_label"] = label
        self.timeline.append(entry)

    def v2_runner_on_ok(self, result):
        self._record(result, "changed" if result._result.get("changed") else "ok")
        if self.journal_path and result._task.action.endswith("kong_upgrade_run"):
            self._write(None, final=False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._open.pop((result._host.get_name(), result._task._uuid), None)

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        run = (getattr(stats, "custom", {}) or {}).get("_run", {}).get("kong_upgrade")
        if not run and not self.journal_path:
            return
        self._write(run, final=True)

    def _write(self, run, final: bool) -> None:
        """report.json and report.html of the run: ``run`` is the kong_upgrade artifact at the end of
        a run that published it; before that (or without it) the run journal stands for it."""
        journal = {}
        path = (run or {}).get("journal") or self.journal_path or ""
        try:
            with open(path) as fh:
                journal = json.load(fh)
        except (OSError, ValueError):
            journal = {}
        if not run and not journal.get("run_id"):
            # no journal on disk (check mode writes none) and no artifact: no run to report on yet
            return
        if not run:
            run = {
                "run_id": journal.get("run_id"),
                "strategy": journal.get("strategy"),
                "journal": path,
                "status": journal.get("status") if final else f"{journal.get('status', 'running')} (in progress)",
                "versions": {"before": journal.get("from"), "after": journal.get("to")},
            }
        report = dict(run=run, journal=journal, timeline=self.timeline, started=self.started, ended=time.time(), complete=final)
        out_dir = self.get_option("report_dir") or os.path.dirname(path) or "."
        out_dir = os.path.join(os.path.expanduser(out_dir), "reports", str(run.get("run_id") or "run"))
        try:
            # a run refused before it opened its journal creates the cluster's directory here, where the
            # journal, the freeze lock and the backups of later runs go
            private_dirs(out_dir)
            for name, text in (("report.json", json.dumps(report, indent=2, default=str)), ("report.html", render_html(report))):
                # written whole or not at all: a reader (or a kill) never meets half a report
                tmp = os.path.join(out_dir, f".{name}.tmp")
                with open(tmp, "w") as fh:
                    fh.write(text)
                os.replace(tmp, os.path.join(out_dir, name))
        except OSError as exc:
            if final:
                self._display.warning(f"upgrade_report: could not write the report to {out_dir}: {exc}")
            return
        if not final:
            return
        self._display.banner("KONG UPGRADE REPORT")
        steps = journal.get("steps") or []
        self._display.display(f"{run.get('strategy')} {(run.get('versions') or {}).get('before')} -> {journal.get('to', '')}: {run.get('status')}")
        choice = run.get("strategy_choice") or {}
        if choice.get("reason"):
            self._display.display(f"  strategy {choice.get('ran') or run.get('strategy')} (chosen by {choice.get('chosen_by', 'planner')}): {choice['reason']}")
        for step in steps:
            gate = step.get("gate") or {}
            self._display.display(
                f"  step {step.get('share')} %: {gate.get('requests', 0)} requests, "
                f"{gate.get('errors', 0)} errors, gate {'FAILED' if gate.get('failed') else 'passed'}"
            )
        if journal.get("downtime_seconds") is not None:
            self._display.display(f"  downtime: {_human(journal['downtime_seconds'])}")
        self._display.display(f"  report: {os.path.join(out_dir, 'report.html')}")


def _epoch(text):
    import datetime

    try:
        return datetime.datetime.fromisoformat(str(text).removesuffix("Z")).replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(epoch))


def _human(seconds) -> str:
    """Seconds as people read them: 0.4 s, 12.3 s, 2 min 05 s, 1 h 02 min."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return str(seconds)
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _phases(timeline: list) -> list:
    """(phase, first start, last end) in the order the phases began."""
    spans: dict = {}
    for entry in timeline:
        first, last = spans.get(entry["phase"], (entry["start"], entry["end"]))
        spans[entry["phase"]] = (min(first, entry["start"]), max(last, entry["end"]))
    return sorted(((name, a, b) for name, (a, b) in spans.items()), key=lambda item: item[1])


def _phase_chart(report: dict) -> str:
    """Inline SVG: one bar per phase over the run's time, its duration beside it; the downtime
    window of an in-place run shaded across the chart."""
    phases = _phases(report.get("timeline") or [])
    width, row, pad, label = 720, 22, 10, 300
    if not phases:
        return f'<svg id="phase-chart" width="{width}" height="40"><text x="10" y="24">no tasks recorded</text></svg>'
    t0 = min(a for _n, a, _b in phases)
    t1 = max(b for _n, _a, b in phases)
    span = max(t1 - t0, 1.0)
    height = pad * 2 + row * len(phases) + 16

    def x(t):
        return label + (t - t0) / span * (width - label - pad)

    parts = []
    journal = report.get("journal") or {}
    down_a, down_b = journal.get("downtime_started_at"), journal.get("downtime_ended_at")
    try:
        down_a, down_b = float(down_a), float(down_b)
    except (TypeError, ValueError):
        down_a = down_b = None
    if down_a is not None and down_b is not None and down_b >= down_a:
        parts.append(
            f'<rect class="downtime" x="{x(down_a):.1f}" y="{pad}" width="{max(x(down_b) - x(down_a), 2):.1f}" '
            f'height="{row * len(phases):.1f}" fill="#d33" opacity="0.15"><title>downtime '
            f"{_human(down_b - down_a)}</title></rect>"
        )
    for i, (name, a, b) in enumerate(phases):
        y = pad + i * row
        short = name if len(name) <= 46 else name[:45] + "…"
        parts.append(
            f'<text x="4" y="{y + 15}" font-size="11">{html.escape(short)}</text>'
            f'<rect class="phase" x="{x(a):.1f}" y="{y + 3}" width="{max(x(b) - x(a), 2):.1f}" height="{row - 6}" '
            f'fill="#889"><title>{html.escape(name)}: {_human(b - a)}</title></rect>'
            f'<text x="{min(x(b) + 4, width - 60):.1f}" y="{y + 15}" font-size="11">{_human(b - a)}</text>'
        )
    parts.append(
        f'<text x="{label}" y="{height - 4}" font-size="11">{_clock(t0)}</text>'
        f'<text x="{width - pad}" y="{height - 4}" font-size="11" text-anchor="end">{_clock(t1)} UTC '
        f"({_human(t1 - t0)})</text>"
    )
    return f'<svg id="phase-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{"".join(parts)}</svg>'


def _plot(journal: dict) -> str:
    """Inline SVG: share of Y (and of X) per step over time, errors per step as bars."""
    steps = [s for s in journal.get("steps") or [] if _epoch(s.get("started_at")) and _epoch(s.get("ended_at"))]
    width, height, pad = 720, 260, 40
    if not steps:
        return f'<svg id="share-plot" width="{width}" height="{height}"><text x="20" y="40">no traffic steps</text></svg>'
    t0 = _epoch(steps[0]["started_at"])
    t1 = max(_epoch(s["ended_at"]) for s in steps)
    span = max(t1 - t0, 1.0)
    max_err = max([(s.get("gate") or {}).get("errors", 0) for s in steps] + [1])

    def x(t):
        return pad + (t - t0) / span * (width - 2 * pad)

    def y(pct):
        return height - pad - pct / 100.0 * (height - 2 * pad)

    slowest = max([float((s.get("gate") or {}).get("response_ms") or 0) for s in steps] + [1.0])
    y_pts, x_pts, bars, lat_pts = [], [], [], []
    for s in steps:
        a, b = x(_epoch(s["started_at"])), x(_epoch(s["ended_at"]))
        share = float(s.get("share", 0))
        y_pts += [f"{a:.1f},{y(share):.1f}", f"{b:.1f},{y(share):.1f}"]
        x_pts += [f"{a:.1f},{y(100 - share):.1f}", f"{b:.1f},{y(100 - share):.1f}"]
        err = (s.get("gate") or {}).get("errors", 0)
        h = err / max_err * (height - 2 * pad) * 0.3
        bars.append(
            f'<rect class="errors" x="{a:.1f}" y="{height - pad - h:.1f}" width="{max(b - a, 2):.1f}" '
            f'height="{h:.1f}" fill="#d33" opacity="0.6"><title>{err} errors</title></rect>'
        )
        latency = (s.get("gate") or {}).get("response_ms")
        if latency is not None:
            # the slowest average response of the judged nodes, scaled to the slowest step
            level = float(latency) / slowest * 100.0
            lat_pts += [f"{a:.1f},{y(level):.1f}", f"{b:.1f},{y(level):.1f}"]
    return (
        f'<svg id="share-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#333"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#333"/>'
        f'<text x="4" y="{y(100) + 4:.0f}" font-size="11">100%</text><text x="10" y="{y(0) + 4:.0f}" font-size="11">0%</text>'
        + "".join(bars)
        # the response line first: the share lines, drawn over it, stay whole where they meet
        + (
            f'<polyline class="latency" fill="none" stroke="#a5a" stroke-width="2" points="{" ".join(lat_pts)}">'
            f"<title>slowest average response, up to {slowest:.0f} ms</title></polyline>"
            f'<text x="{pad + 360}" y="16" fill="#a5a" font-size="12">response (max {slowest:.0f} ms)</text>'
            if lat_pts
            else ""
        )
        + f'<polyline class="share-y" fill="none" stroke="#2a7" stroke-width="3" points="{" ".join(y_pts)}"/>'
        f'<polyline class="share-x" fill="none" stroke="#27c" stroke-width="3" stroke-dasharray="6,4" points="{" ".join(x_pts)}"/>'
        + f'<text x="{pad}" y="{height - pad + 16}" font-size="11">{_clock(t0)}</text>'
        f'<text x="{width - pad}" y="{height - pad + 16}" font-size="11" text-anchor="end">{_clock(t1)} UTC</text>'
        f'<text x="{pad}" y="16" fill="#2a7" font-size="12">Kong {html.escape(str(journal.get("to", "Y")))}</text>'
        f'<text x="{pad + 120}" y="16" fill="#27c" font-size="12">Kong {html.escape(str(journal.get("from", "X")))}</text>'
        f'<text x="{pad + 240}" y="16" fill="#d33" font-size="12">errors per step</text></svg>'
    )


def _step_seconds(step: dict):
    a, b = _epoch(step.get("shifted_at") or step.get("started_at")), _epoch(step.get("ended_at"))
    return (b - a) if a is not None and b is not None else None


def _rate(step: dict) -> str:
    seconds = _step_seconds(step)
    requests = (step.get("gate") or {}).get("requests")
    if not seconds or requests is None:
        return ""
    return f"{float(requests) / seconds:.0f}"


def _details(entry: dict) -> str:
    gate = entry.get("gate")
    if gate:
        verdict = "FAILED: " + "; ".join(map(str, gate.get("reasons") or [])) if gate.get("failed") else "passed"
        return f"gate {verdict} ({gate.get('requests', 0)} requests, {gate.get('errors', 0)} errors)"
    weights = entry.get("weights")
    return ", ".join(f"{name} {weight}" for name, weight in sorted(weights.items())) if weights else ""


def render_html(report: dict) -> str:
    journal, run = report.get("journal") or {}, report.get("run") or {}
    esc = html.escape
    rows = "".join(
        f"<tr class='{esc(e['result'])}'><td>{esc(e['phase'])}</td><td>{esc(e['node'])}</td><td>{esc(e['task'])}</td>"
        f"<td>{time.strftime('%H:%M:%S', time.gmtime(e['start']))}</td><td>{_human(e['end'] - e['start'])}</td>"
        f"<td>{esc(e['result'])}</td><td>{esc(_details(e))}</td></tr>"
        for e in report.get("timeline", [])
    )
    steps = "".join(
        f"<tr><td>{s.get('share')} %</td><td>{esc(str(s.get('started_at', '')))}</td>"
        f"<td>{_human(_step_seconds(s))}</td><td>{_rate(s)}</td>"
        f"<td>{(s.get('gate') or {}).get('requests', 0)}</td><td>{(s.get('gate') or {}).get('errors', 0)}</td>"
        f"<td>{esc(str((s.get('gate') or {}).get('response_ms', '')))}</td>"
        f"<td>{'FAILED: ' + esc('; '.join((s.get('gate') or {}).get('reasons', []))) if (s.get('gate') or {}).get('failed') else 'passed'}</td></tr>"
        for s in journal.get("steps") or []
    )
    nodes = "".join(f"<tr><td>{esc(k)}</td><td>{esc(str(v))}</td></tr>" for k, v in sorted((journal.get("nodes") or {}).items()))
    failure = journal.get("failure")
    downtime = f"; downtime {_human(journal['downtime_seconds'])}" if journal.get("downtime_seconds") is not None else ""
    partial = "" if report.get("complete", True) else " (the run was still going when this was written)"
    choice = run.get("strategy_choice") or {}
    strategy = (
        (f'<p id="strategy">Strategy {esc(str(choice.get("ran", "")))} (chosen by {esc(str(choice.get("chosen_by", "")))}): {esc(str(choice["reason"]))}</p>')
        if choice.get("reason")
        else ""
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Kong upgrade {esc(str(journal.get("run_id", "")))}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}} tr.failed{{background:#fdd}} tr.changed{{background:#ffd}}</style>
</head><body>
<h1>Kong {esc(str(journal.get("strategy", run.get("strategy", ""))))} upgrade {esc(str(journal.get("from", "")))} &rarr; {esc(str(journal.get("to", "")))}</h1>
<p id="status">Status: <b>{esc(str(journal.get("status", run.get("status", ""))))}</b>{partial}; run {esc(str(journal.get("run_id", "")))};
path {esc(" -> ".join(map(str, journal.get("path") or [])))}{downtime}</p>
{strategy}
{f'<p id="failure" style="color:#b00">Stopped in phase {esc(str(failure.get("phase")))}: {esc(str(failure.get("reason")))}</p>' if failure else ""}
<h2>Traffic share by version and errors</h2>
{_plot(journal)}
<h2>Phases</h2>
{_phase_chart(report)}
<h2>Steps and gates</h2>
<table><tr><th>share of Y</th><th>started</th><th>lasted</th><th>requests/s</th><th>requests</th><th>errors</th>
<th>slowest average response (ms)</th><th>gate</th></tr>{steps}</table>
<h2>Nodes</h2><table><tr><th>node</th><th>state</th></tr>{nodes}</table>
<h2>Timeline</h2>
<table id="timeline"><tr><th>phase</th><th>node</th><th>task</th><th>start (UTC)</th><th>took</th><th>result</th><th>weights / gate</th></tr>{rows}</table>
</body></html>
"""
