"""The dates and rules that decide whether X's database may be dropped after a dual-cluster upgrade."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.kongops.upgrade.plugins.module_utils import _dual_retire as dr

UTC = datetime.timezone.utc
DONE = {
    "run_id": "r1",
    "strategy": "dual_cluster",
    "status": "done",
    "ended_at": "2026-12-04T10:00:00.123456Z",
    "steps": [{"share": 50, "gate": {"failed": False}}, {"share": 100, "gate": {"failed": False}}],
    "x_database": {"server": "db:5432", "database": "kong"},
    "y_database": {"server": "db:5432", "database": "kong_3_7_1"},
}
X = {"host": "db", "port": 5432, "database": "kong"}
Y = {"host": "db", "port": 5432, "database": "kong_3_7_1"}


def test_eligible_at_adds_the_retention_to_ended_at():
    assert dr.eligible_at(DONE, 14) == datetime.datetime(2026, 12, 18, 10, 0, 0, 123456, tzinfo=UTC)
    assert dr.eligible_at(DONE, 0) == dr.parse_utc(DONE["ended_at"])
    assert dr.eligible_at(DONE, 0.5) == datetime.datetime(2026, 12, 4, 22, 0, 0, 123456, tzinfo=UTC)
    assert dr.fmt_utc(dr.eligible_at(DONE, 1)) == "2026-12-05 10:00:00 UTC"


def test_timestamps_without_fraction_and_bad_ones():
    assert dr.parse_utc("2026-01-02T03:04:05Z") == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(ValueError):
        dr.parse_utc("yesterday")
    with pytest.raises(ValueError, match="never concluded"):
        dr.eligible_at(dict(DONE, ended_at=None), 1)


def test_only_a_done_dual_cluster_run_on_y_qualifies():
    assert dr.run_problems(DONE) == []
    assert "not done" in dr.run_problems(dict(DONE, status="rolled_back"))[0]
    assert "not a dual-cluster" in dr.run_problems(dict(DONE, strategy="in_place"))[0]
    assert "100 %" in dr.run_problems(dict(DONE, steps=[{"share": 50, "gate": {"failed": False}}]))[0]
    assert "x_database" in dr.run_problems({k: v for k, v in DONE.items() if k != "x_database"})[0]


def test_x_database_must_be_the_recorded_one_and_never_y():
    assert dr.database_problems(DONE, X, Y) == []
    said = dr.database_problems(DONE, X, dict(Y, database="kong"))
    assert said and "kong_y_pg_database: kong on db:5432 is the database Y serves from" in said[0]
    said = dr.database_problems(dict(DONE, y_database={"server": "db:5432", "database": "kong"}), X, Y)
    assert "the journal's y_database" in said[0]
    # another server with the same name is another database
    assert dr.database_problems(DONE, X, dict(Y, host="db2", database="kong")) == []
    said = dr.database_problems(DONE, dict(X, database="other"), Y)
    assert "kong_pg_database: the inventory names other on db:5432" in said[0]
