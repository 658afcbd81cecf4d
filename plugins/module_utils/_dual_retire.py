# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Retiring X's database after a dual-cluster upgrade: the rules that decide whether it may be dropped."""

from __future__ import annotations

import datetime

RETENTION_VAR = "kong_dual_x_db_retention_days"
DROP_VAR = "kong_dual_drop_x_database"


def parse_utc(text: str) -> datetime.datetime:
    """A journal timestamp (2026-12-04T14:06:58.123456Z, or without the fraction) as an aware UTC datetime."""
    text = (text or "").strip()
    if text.endswith("Z"):
        text = text[:-1]
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            continue
    raise ValueError(f"not a journal timestamp: {text!r}")


def fmt_utc(ts: datetime.datetime) -> str:
    return ts.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def eligible_at(journal: dict, retention_days: float) -> datetime.datetime:
    """When X's database may be dropped: the run's ended_at plus the retention."""
    if not journal.get("ended_at"):
        raise ValueError("the journal records no ended_at: the run never concluded")
    return parse_utc(journal["ended_at"]) + datetime.timedelta(days=float(retention_days))


def run_problems(journal: dict) -> list:
    """Why the journal's run is not a dual-cluster run that concluded with every request on Y."""
    problems = []
    run = journal.get("run_id", "?")
    if journal.get("strategy") != "dual_cluster":
        problems.append(f"the run {run} is a {journal.get('strategy') or 'unknown'} run, not a dual-cluster upgrade (playbooks/dual_cluster_upgrade.yml)")
    elif journal.get("status") != "done":
        problems.append(
            f"the run {run} ended {journal.get('status') or 'without a status'}, not done: X (and its "
            "database) may still be the cluster that serves; conclude the dual-cluster upgrade first"
        )
    elif not journal.get("steps") or (journal["steps"][-1] or {}).get("share") != 100 or (journal["steps"][-1].get("gate") or {}).get("failed"):
        problems.append(f"the run {run} did not move every request to Y (its last traffic step is not 100 % with a passed gate)")
    if not journal.get("x_database"):
        problems.append(f"the run {run} records no x_database (it never cloned X's database)")
    return problems


def _server(host, port) -> str:
    return f"{host}:{int(port)}"


def database_problems(journal: dict, x: dict, y: dict) -> list:
    """X's database (the inventory's) must be the one the run recorded as X's, and must not be Y's, as the
    inventory names Y's (kong_y_pg_*) or as the run recorded it."""
    problems = []
    x_server = _server(x["host"], x["port"])
    recorded_x = journal.get("x_database") or {}
    if recorded_x and (recorded_x.get("server"), recorded_x.get("database")) != (x_server, x["database"]):
        problems.append(
            f"kong_pg_database: the inventory names {x['database']} on {x_server} as X's database, the "
            f"run {journal.get('run_id', '?')} recorded {recorded_x.get('database')} on "
            f"{recorded_x.get('server')}; point the kong_x hosts' kong_pg_* at the database the run kept"
        )
    recorded_y = journal.get("y_database") or {}
    candidates = [("kong_y_pg_database", _server(y["host"], y["port"]), y["database"])] if y.get("database") else []
    if recorded_y.get("database"):
        candidates.append(("the journal's y_database", recorded_y.get("server"), recorded_y.get("database")))
    for what, server, database in candidates:
        if (server, database) == (x_server, x["database"]):
            problems.append(f"{what}: {database} on {server} is the database Y serves from; X's database must be another one and Y's is never dropped")
    return problems


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
