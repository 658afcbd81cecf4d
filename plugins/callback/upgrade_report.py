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
author: kongops maintainers (@kongops)
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
notes:
  - A run that publishes no C(kong_upgrade) artifact (a C(--tags preflight) plan, C(backup.yml))
    writes no report and prints no summary.
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


# Facts and includes are bookkeeping, not steps of the timeline; a gate verdict (the
# kong_gate fact of roles/rolling_upgrade/tasks/gate.yml) is.
QUIET_ACTIONS = ("ansible.builtin.set_fact", "set_fact", "ansible.builtin.include_tasks", "include_tasks",
                 "ansible.builtin.include_role", "include_role")
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

    def v2_playbook_on_play_start(self, play):
        self.play = play.get_name().strip()

    def v2_runner_on_start(self, host, task):
        self._open[(host.get_name(), task._uuid)] = time.time()

    def _record(self, result, outcome):
        host = result._host.get_name()
        task = result._task
        start = self._open.pop((host, task._uuid), time.time())
        res = result._result or {}
        gate = (res.get("ansible_facts") or {}).get("kong_gate")
        gate = {k: gate.get(k) for k in GATE_FIELDS if k in gate} if isinstance(gate, dict) else None
        if task.action in QUIET_ACTIONS and not gate:
            return
        entry = dict(phase=self.play, task=task.get_name().strip(), node=host, start=round(start, 3),
                     end=round(time.time(), 3), result=outcome)
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
            entry["gate"] = gate
        self.timeline.append(entry)

    def v2_runner_on_ok(self, result):
        self._record(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._open.pop((result._host.get_name(), result._task._uuid), None)

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        run = (getattr(stats, "custom", {}) or {}).get("_run", {}).get("kong_upgrade")
        if not run:
            return
        journal = {}
        try:
            with open(run.get("journal", "")) as fh:
                journal = json.load(fh)
        except (OSError, ValueError):
            journal = {}
        report = dict(run=run, journal=journal, timeline=self.timeline, started=self.started, ended=time.time())
        out_dir = self.get_option("report_dir") or os.path.dirname(run.get("journal") or "") or "."
        out_dir = os.path.join(os.path.expanduser(out_dir), "reports", str(run.get("run_id", "run")))
        try:
            os.makedirs(out_dir, exist_ok=True)
            with open(os.path.join(out_dir, "report.json"), "w") as fh:
                json.dump(report, fh, indent=2, default=str)
            with open(os.path.join(out_dir, "report.html"), "w") as fh:
                fh.write(render_html(report))
        except OSError as exc:
            self._display.warning(f"upgrade_report: could not write the report to {out_dir}: {exc}")
            return
        self._display.banner("KONG UPGRADE REPORT")
        steps = journal.get("steps") or []
        self._display.display(f"{run.get('strategy')} {run.get('versions', {}).get('before')} -> "
                              f"{journal.get('to', '')}: {run.get('status')}")
        for step in steps:
            gate = step.get("gate") or {}
            self._display.display(f"  step {step.get('share')} %: {gate.get('requests', 0)} requests, "
                                  f"{gate.get('errors', 0)} errors, gate {'FAILED' if gate.get('failed') else 'passed'}")
        if journal.get("downtime_seconds") is not None:
            self._display.display(f"  downtime: {journal['downtime_seconds']} s")
        self._display.display(f"  report: {os.path.join(out_dir, 'report.html')}")


def _epoch(text):
    import datetime

    try:
        return datetime.datetime.fromisoformat(str(text).removesuffix("Z")).replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(epoch))


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

    y_pts, x_pts, bars = [], [], []
    for s in steps:
        a, b = x(_epoch(s["started_at"])), x(_epoch(s["ended_at"]))
        share = float(s.get("share", 0))
        y_pts += [f"{a:.1f},{y(share):.1f}", f"{b:.1f},{y(share):.1f}"]
        x_pts += [f"{a:.1f},{y(100 - share):.1f}", f"{b:.1f},{y(100 - share):.1f}"]
        err = (s.get("gate") or {}).get("errors", 0)
        h = err / max_err * (height - 2 * pad) * 0.3
        bars.append(f'<rect class="errors" x="{a:.1f}" y="{height - pad - h:.1f}" width="{max(b - a, 2):.1f}" '
                    f'height="{h:.1f}" fill="#d33" opacity="0.6"><title>{err} errors</title></rect>')
    return (f'<svg id="share-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#333"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#333"/>'
            f'<text x="4" y="{y(100) + 4:.0f}" font-size="11">100%</text><text x="10" y="{y(0) + 4:.0f}" font-size="11">0%</text>'
            + "".join(bars)
            + f'<polyline class="share-y" fill="none" stroke="#2a7" stroke-width="3" points="{" ".join(y_pts)}"/>'
            f'<polyline class="share-x" fill="none" stroke="#27c" stroke-width="3" stroke-dasharray="6,4" points="{" ".join(x_pts)}"/>'
            f'<text x="{pad}" y="{height - pad + 16}" font-size="11">{_clock(t0)}</text>'
            f'<text x="{width - pad}" y="{height - pad + 16}" font-size="11" text-anchor="end">{_clock(t1)} UTC</text>'
            f'<text x="{pad}" y="16" fill="#2a7" font-size="12">Kong {html.escape(str(journal.get("to", "Y")))}</text>'
            f'<text x="{pad + 120}" y="16" fill="#27c" font-size="12">Kong {html.escape(str(journal.get("from", "X")))}</text>'
            f'<text x="{pad + 240}" y="16" fill="#d33" font-size="12">errors per step</text></svg>')


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
        f"<td>{time.strftime('%H:%M:%S', time.gmtime(e['start']))}</td><td>{e['end'] - e['start']:.2f} s</td>"
        f"<td>{esc(e['result'])}</td><td>{esc(_details(e))}</td></tr>" for e in report.get("timeline", []))
    steps = "".join(
        f"<tr><td>{s.get('share')} %</td><td>{esc(str(s.get('started_at', '')))}</td>"
        f"<td>{(s.get('gate') or {}).get('requests', 0)}</td><td>{(s.get('gate') or {}).get('errors', 0)}</td>"
        f"<td>{'FAILED: ' + esc('; '.join((s.get('gate') or {}).get('reasons', []))) if (s.get('gate') or {}).get('failed') else 'passed'}</td></tr>"
        for s in journal.get("steps") or [])
    nodes = "".join(f"<tr><td>{esc(k)}</td><td>{esc(str(v))}</td></tr>" for k, v in sorted((journal.get("nodes") or {}).items()))
    failure = journal.get("failure")
    downtime = f"; downtime {journal['downtime_seconds']} s" if journal.get("downtime_seconds") is not None else ""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Kong upgrade {esc(str(journal.get('run_id', '')))}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}} tr.failed{{background:#fdd}} tr.changed{{background:#ffd}}</style>
</head><body>
<h1>Kong {esc(str(journal.get('strategy', run.get('strategy', ''))))} upgrade {esc(str(journal.get('from', '')))} &rarr; {esc(str(journal.get('to', '')))}</h1>
<p id="status">Status: <b>{esc(str(journal.get('status', run.get('status', ''))))}</b>; run {esc(str(journal.get('run_id', '')))};
path {esc(' -> '.join(map(str, journal.get('path') or [])))}{downtime}</p>
{f'<p id="failure" style="color:#b00">Stopped in phase {esc(str(failure.get("phase")))}: {esc(str(failure.get("reason")))}</p>' if failure else ''}
<h2>Traffic share by version and errors</h2>
{_plot(journal)}
<h2>Steps and gates</h2>
<table><tr><th>share of Y</th><th>started</th><th>requests</th><th>errors</th><th>gate</th></tr>{steps}</table>
<h2>Nodes</h2><table><tr><th>node</th><th>state</th></tr>{nodes}</table>
<h2>Timeline</h2>
<table id="timeline"><tr><th>phase</th><th>node</th><th>task</th><th>start (UTC)</th><th>took</th><th>result</th><th>weights / gate</th></tr>{rows}</table>
</body></html>
"""
