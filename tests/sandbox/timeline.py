"""Read a sandbox run's journal and the ``kongops.upgrade.upgrade_report`` callback's task timeline.

Shared by the end-to-end tests and ``make bench``: the in-place downtime the clients saw is judged
against the phases it is made of (stop, migrations, start), each measured from the timeline."""

from __future__ import annotations

import glob
import json
import os

# Task names of the kong_node and in_place_upgrade roles, as the upgrade_report timeline shows them.
IN_PLACE_PHASE_TASKS = {
    "stop": ("Quit Kong gracefully",),
    "migrations_up": ("Kong migrations up",),
    "migrations_finish": ("Kong migrations finish",),
    "start": ("Start Kong", "Wait until Kong answers ready"),
}
IN_PLACE_WINDOW_PLAY = "Stop X"


def read_journal(work_dir: str) -> dict:
    try:
        with open(os.path.join(work_dir, "sandbox", "journal.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def read_report(work_dir: str) -> dict:
    """report.json of the newest run (empty when the callback did not write one)."""
    found = sorted(glob.glob(os.path.join(work_dir, "sandbox", "reports", "*", "report.json")), key=os.path.getmtime)
    if not found:
        return {}
    try:
        with open(found[-1]) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def task_name(entry: dict) -> str:
    """A timeline task's own name, without the ``namespace.collection.role : `` the callback puts before it."""
    return entry["task"].split(" : ", 1)[-1]


def _span(report: dict, prefixes: tuple, after: float | None = None) -> tuple[float | None, float | None]:
    hits = [
        e
        for e in report.get("timeline", [])
        if task_name(e).startswith(prefixes) and e["phase"].startswith(IN_PLACE_WINDOW_PLAY) and (after is None or e["start"] >= after)
    ]
    if not hits:
        return None, None
    return min(e["start"] for e in hits), max(e["end"] for e in hits)


def in_place_phases(report: dict) -> dict:
    """Wall seconds of each in-place phase (first start to last end over the nodes), their sum
    ``stop_migrations_start``, and ``first_stop``/``last_ready`` as epoch seconds."""
    phases: dict = {}
    stop_start, _ = _span(report, IN_PLACE_PHASE_TASKS["stop"])
    for key, prefixes in IN_PLACE_PHASE_TASKS.items():
        start, end = _span(report, prefixes, after=stop_start if key == "start" else None)
        phases[key] = round(end - start, 2) if start is not None else None
    phases["migrations"] = round(sum(v for v in (phases["migrations_up"], phases["migrations_finish"]) if v), 2)
    phases["stop_migrations_start"] = round(sum(phases[k] or 0 for k in ("stop", "migrations", "start")), 2)
    _, last_ready = _span(report, IN_PLACE_PHASE_TASKS["start"], after=stop_start)
    phases["first_stop"], phases["last_ready"] = stop_start, last_ready
    return phases
