"""kong_migrations main() driven with a fake `kong` CLI that prints Kong's texts (FACTS.md section 1)."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
from ansible.module_utils import basic
from ansible_collections.kongops.upgrade.tests.unit.conftest import run_module
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    KongAdminError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_migrations import (
    KongMigrations,
)
from ansible_collections.kongops.upgrade.plugins.modules import kong_migrations, kong_migrations_info

# (subsystem, name, has_teardown) known to a binary; a small slice of FACTS 2.2/2.3.
V285 = (
    ("core", "000_base", False),
    ("core", "015_270_to_280", False),
    ("acme", "000_base_acme", False),
)
V342 = V285 + (
    ("core", "016_280_to_300", True),
    ("core", "017_300_to_310", False),
    ("acme", "001_280_to_300", False),
    ("http-log", "001_280_to_300", True),
)
V371 = V342 + (("core", "021_340_to_350", False), ("acme", "003_350_to_360", True))
SECRET = "s3cret-pg-password"
KONG = "/usr/local/bin/kong"


class FakeKong:
    """A database plus a `kong` binary of one version, answering like Kong's CLI."""

    def __init__(self, version="3.4.2", known=V342, rows=None):
        self.version, self.known = version, known
        self.rows = rows  # None = no schema_meta table; else {sub: {"executed": [...], "pending": [...]}}
        self.calls: list = []
        self.db_error = None
        self.lock_busy = 0  # how many mutating commands see the lock held by another node
        self.other_node = None  # callable run when the lock is "held by another node"
        self.up_sees_pending_error = False
        self.garbage_list = False

    def bootstrap_to(self, known):
        self.rows = {}
        for sub, name, _teardown in known:
            self.rows.setdefault(sub, {"executed": [], "pending": []})["executed"].append(name)
        return self

    def classify(self):
        executed, pending, new = {}, {}, {}
        for sub, name, _teardown in self.known:
            row = (self.rows or {}).get(sub, {"executed": [], "pending": []})
            target = executed if name in row["executed"] else pending if name in row["pending"] else new
            target.setdefault(sub, []).append(name)
        return executed, pending, new

    @staticmethod
    def block(header, blocks):
        width = max(len(s) for s in blocks)
        return header + "\n" + "".join(f"{s:>{width}}: {', '.join(n)}\n" for s, n in blocks.items())

    def list_(self):
        if self.garbage_list:
            return 0, "Executed migrations:\n?? garbage\n", ""
        if self.rows is None:
            return (
                3,
                ("Database needs bootstrapping or is older than Kong 1.0.\n\nTo start a new installation from scratch, run 'kong migrations bootstrap'.\n\n"),
                "",
            )
        executed, pending, new = self.classify()
        out = self.block("Executed migrations:", executed) if executed else ""
        if pending:
            out += "\n" + self.block("Pending migrations:", pending)
        if new:
            out += "\n" + self.block("New migrations available:", new)
        if pending:
            return 4, out + "\nRun 'kong migrations finish' when ready\n", ""
        if new:
            return 5, out + "\nRun 'kong migrations up' to proceed\n", ""
        return 0, out, ""

    def status(self):
        if self.rows is None:
            return 0, '{"needs_bootstrap":true}\n', ""
        executed, pending, new = self.classify()
        data = {"needs_bootstrap": False}
        for key, blocks in (
            ("executed_migrations", executed),
            ("pending_migrations", pending),
            ("new_migrations", new),
        ):
            if blocks:
                data[key] = [{"subsystem": s, "namespace": "x", "migrations": n} for s, n in blocks.items()]
        return 0, json.dumps(data) + "\n", ""

    def apply_up(self):
        lines, count, pend = [], 0, 0
        for sub, name, teardown in self.known:
            row = self.rows.setdefault(sub, {"executed": [], "pending": []})
            if name in row["executed"] or name in row["pending"]:
                continue
            (row["pending"] if teardown else row["executed"]).append(name)
            lines.append(f"migrating {sub} on database 'kong'...")
            lines.append(f"{sub} migrated up to: {name} ({'pending' if teardown else 'executed'})")
            count += 1
            pend += teardown
        if not count:
            return "Database is already up-to-date\n"
        text = "\n".join(lines) + f"\n{count} migrations processed\n{count - pend} executed\n"
        if pend:
            text += f"{pend} pending\n\nDatabase has pending migrations; run 'kong migrations finish' when ready\n"
        return text

    def apply_finish(self):
        lines = []
        for sub, name, _teardown in self.known:
            row = (self.rows or {}).get(sub)
            if row and name in row["pending"]:
                row["pending"].remove(name)
                row["executed"].append(name)
                lines.append(f"{sub} migrated up to: {name} (executed)")
        text = "\n".join(lines) + (f"\n{len(lines)} migrations processed\n" if lines else "")
        return text + "No pending migrations to finish\n"

    def __call__(self, argv, environ_update=None, handle_exceptions=True, **kwargs):
        self.calls.append({"argv": list(argv), "env": dict(environ_update or {})})
        if argv[1] == "version":
            return 0, self.version + "\n", ""
        sub = argv[2]
        if self.db_error and sub != "status":
            return (
                1,
                "",
                f"Error: {self.db_error}\n\n  Run with --v (verbose) or --vv (debug) for more details\n",
            )
        if sub == "list":
            return self.list_()
        if sub == "status":
            if self.version.startswith("2."):
                return 1, "", "No such command for migrations: status\n"
            return self.status()
        if sub in ("up", "finish", "bootstrap") and self.lock_busy:
            self.lock_busy -= 1
            if self.other_node:
                self.other_node(self)
            if sub == "up" and self.up_sees_pending_error:
                return (
                    1,
                    "",
                    "Error: Database has pending migrations; run 'kong migrations finish'\n",
                )
            return 0, "aborted: another node is performing database changes\n", ""
        if sub == "bootstrap":
            if self.rows is not None:
                return 0, "Database already bootstrapped\n", ""
            self.bootstrap_to(self.known)
            return (
                0,
                "Bootstrapping database...\ncore migrated up to: 000_base (executed)\nDatabase is up-to-date\n",
                "",
            )
        if sub == "up":
            pending = self.classify()[1]
            if pending and "-f" not in argv:
                return (
                    1,
                    "",
                    "Error: Database has pending migrations; run 'kong migrations finish'\n",
                )
            return 0, self.apply_up(), ""
        if sub == "finish":
            return 0, self.apply_finish(), ""
        return 1, "", f"No such command for migrations: {sub}\n"

    def subcommands(self):
        return [c["argv"][2] for c in self.calls if c["argv"][1] == "migrations"]


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(KongMigrations, "POLL_INTERVAL", 0.0)


@pytest.fixture
def kong(monkeypatch):
    fake = FakeKong().bootstrap_to(V285)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: fake(argv, **kw))
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **kw: KONG)
    return fake


def run_raw(capsys, args):
    return run_module(kong_migrations.main, capsys, args, {"kong_env": {"KONG_PG_PASSWORD": SECRET}})


def run(capsys, args):
    rc, result, _out = run_raw(capsys, args)
    return rc, result


def test_list_reports_new_migrations_and_changes_nothing(kong, capsys):
    rc, result = run(capsys, {"state": "list"})
    assert rc == 0 and result["changed"] is False
    assert result["status"] == "new" and result["before"]["new"] == {
        "core": ["016_280_to_300", "017_300_to_310"],
        "acme": ["001_280_to_300"],
        "http-log": ["001_280_to_300"],
    }
    assert result["status_checked"] is True and result["kong_version"] is None
    assert kong.subcommands() == ["list", "status"]
    assert [c["argv"][1] for c in kong.calls] == ["migrations", "migrations"]


def run_info(capsys, args, check_mode=False):
    defaults = {"kong_env": {"KONG_PG_PASSWORD": SECRET}, "_ansible_check_mode": check_mode}
    return run_module(kong_migrations_info.main, capsys, args, defaults)[:2]


@pytest.mark.parametrize("check_mode", [False, True])
def test_info_reads_the_state_and_runs_only_reads(kong, capsys, check_mode):
    rc, result = run_info(capsys, {"kong_conf": None}, check_mode=check_mode)
    assert rc == 0 and result["changed"] is False, result
    assert result["status"] == "new" and result["migrations"]["new"] == {
        "core": ["016_280_to_300", "017_300_to_310"],
        "acme": ["001_280_to_300"],
        "http-log": ["001_280_to_300"],
    }
    assert result["migrations"]["executed"]["core"] == ["000_base", "015_270_to_280"]
    assert result["status_checked"] is True and result["msg"] == "the database is 'new'"
    assert kong.subcommands() == ["list", "status"]
    assert SECRET not in json.dumps(result)
    assert "deprecations" not in result


def test_info_pending_after_up(kong, capsys):
    run(capsys, {"state": "up"})
    rc, result = run_info(capsys, {})
    assert rc == 0 and result["status"] == "pending"
    assert result["migrations"]["pending"] == {"core": ["016_280_to_300"], "http-log": ["001_280_to_300"]}


def test_info_takes_no_state_and_no_admin_options(kong, capsys):
    for extra in ({"state": "list"}, {"admin_url": "http://127.0.0.1:8001"}):
        rc, result = run_info(capsys, extra)
        assert rc == 1 and "Unsupported parameters" in result["msg"], result
    assert kong.calls == []


def test_info_bad_timeout_names_the_option(kong, capsys):
    rc, result = run_info(capsys, {"db_timeout": 0})
    assert rc == 1 and "db_timeout must be a positive number" in result["msg"]
    assert kong.calls == []


def test_list_state_still_works_and_is_deprecated(kong, capsys):
    rc, result = run(capsys, {"state": "list"})
    assert rc == 0 and result["changed"] is False and result["status"] == "new"
    [dep] = result["deprecations"]
    assert "kongops.upgrade.kong_migrations_info" in dep["event"]["msg"]
    assert dep["version"] == "2.0.0" and dep["deprecator"]["resolved_name"] == "kongops.upgrade"


def test_other_states_are_not_deprecated(kong, capsys):
    rc, result = run(capsys, {"state": "up"})
    assert rc == 0 and "deprecations" not in result


def test_unknown_state_names_the_states_and_the_info_module(kong, capsys):
    rc, result = run(capsys, {"state": "info"})
    assert rc == 1
    assert "value of state must be one of: bootstrapped, up, finished, current, got: info" in result["msg"]
    assert "kong_migrations_info" in result["msg"]
    assert kong.calls == []


def test_up_runs_new_migrations_then_is_idempotent(kong, capsys):
    rc, result = run(capsys, {"state": "up"})
    assert rc == 0 and result["changed"] is True
    assert result["ran"] == ["up"] and result["status"] == "pending"
    assert result["after"]["pending"] == {
        "core": ["016_280_to_300"],
        "http-log": ["001_280_to_300"],
    }
    assert result["migrated"]["core"] == [
        {"name": "016_280_to_300", "state": "pending"},
        {"name": "017_300_to_310", "state": "executed"},
    ]
    assert kong.rows["core"]["pending"] == ["016_280_to_300"]
    assert any(c["cmd"][:3] == [KONG, "migrations", "up"] for c in result["commands"])
    kong.calls.clear()
    rc, again = run(capsys, {"state": "up"})
    assert rc == 0 and again["changed"] is False
    assert "up" not in kong.subcommands()
    assert "already up" in again["msg"] and "016_280_to_300" in again["msg"] and "state=finished" in again["msg"]


def test_check_mode_up_lists_names_and_runs_nothing(kong, capsys):
    before = json.dumps(kong.rows, sort_keys=True)
    rc, result = run(capsys, {"state": "up", "_ansible_check_mode": True, "_ansible_diff": True})
    assert rc == 0 and result["changed"] is True
    assert result["plan"] == [{"command": "up", "migrations": result["before"]["new"]}]
    assert result["after"] is None and "diff" not in result
    assert set(kong.subcommands()) == {"list", "status"}
    assert json.dumps(kong.rows, sort_keys=True) == before


def test_check_mode_current_predicts_exactly(kong, capsys):
    rc, result = run(capsys, {"state": "current", "_ansible_check_mode": True, "_ansible_diff": True})
    assert rc == 0 and result["changed"] is True
    assert [s["command"] for s in result["plan"]] == ["up", "finish"]
    assert result["after"]["status"] == "current" and result["after"]["counts"]["executed"] == len(V342)
    assert result["diff"]["after"] == {"status": "current", "pending": {}, "new": {}}
    assert "up" not in kong.subcommands() and "finish" not in kong.subcommands()


def test_finished_then_current_are_unchanged(kong, capsys):
    run(capsys, {"state": "up"})
    rc, result = run(capsys, {"state": "finished"})
    assert rc == 0 and result["changed"] is True and result["ran"] == ["finish"]
    assert result["before"]["status"] == "pending" and result["status"] == "current"
    assert kong.rows["http-log"] == {"executed": ["001_280_to_300"], "pending": []}
    for state in ("finished", "current", "up", "bootstrapped"):
        kong.calls.clear()
        rc, again = run(capsys, {"state": state})
        assert rc == 0 and again["changed"] is False, state
        assert set(kong.subcommands()) == {"list", "status"}, state


def test_current_runs_up_and_finish(kong, capsys):
    rc, result = run(capsys, {"state": "current"})
    assert rc == 0 and result["changed"] is True and result["ran"] == ["up", "finish"]
    assert result["after"]["status"] == "current" and result["after"]["counts"]["executed"] == len(V342)


def test_bootstrapped_on_empty_database(kong, capsys):
    kong.rows = None
    rc, result = run(capsys, {"state": "bootstrapped"})
    assert rc == 0 and result["changed"] is True and result["before"]["status"] == "needs_bootstrap"
    assert result["status"] == "current"
    rc, again = run(capsys, {"state": "bootstrapped"})
    assert again["changed"] is False


def test_up_on_unbootstrapped_database_fails_without_running(kong, capsys):
    kong.rows = None
    rc, result = run(capsys, {"state": "up"})
    assert rc == 1 and result["failed"] is True
    assert "needs bootstrapping" in result["msg"] and "state=bootstrapped" in result["msg"]
    assert "up" not in kong.subcommands()


def test_up_with_pending_from_earlier_upgrade_fails_unless_force(kong, capsys):
    run(capsys, {"state": "up"})
    kong.known = V371
    kong.calls.clear()
    rc, result = run(capsys, {"state": "up"})
    assert rc == 1 and "state=finished first" in result["msg"] and "force=true" in result["msg"]
    assert "up" not in kong.subcommands()
    rc, result = run(capsys, {"state": "up", "force": True})
    assert rc == 0 and result["changed"] is True
    up = [c["argv"] for c in kong.calls if c["argv"][1:3] == ["migrations", "up"]]
    assert up and "-f" in up[-1]


def test_passthrough_options_and_password_only_in_environment(kong, capsys):
    rc, _result, out = run_raw(
        capsys,
        {"state": "up", "db_timeout": 30, "lock_timeout": 90, "kong_prefix": "/tmp/p"},
    )
    assert rc == 0
    up = next(c for c in kong.calls if c["argv"][1:3] == ["migrations", "up"])
    assert up["argv"] == [
        KONG,
        "migrations",
        "up",
        "--db-timeout",
        "30",
        "--lock-timeout",
        "90",
        "-p",
        "/tmp/p",
    ]
    assert up["env"]["KONG_PG_PASSWORD"] == SECRET
    assert all(SECRET not in " ".join(c["argv"]) for c in kong.calls)
    assert SECRET not in out


def test_lock_aborted_rereads_and_reports_the_other_nodes_work(kong, capsys):
    kong.lock_busy = 1
    kong.other_node = lambda fake: fake.apply_up()
    rc, result = run(capsys, {"state": "up"})
    assert rc == 0 and result["changed"] is False
    assert result["lock_aborted"] is True and result["status"] == "pending"
    assert result["ran"] == [] and result["msg"] == (
        "another node held Kong's migration lock and ran the migrations at the same time; the database is now 'pending'"
    )


def test_up_refused_because_other_node_just_recorded_pending(kong, capsys):
    kong.lock_busy = 1
    kong.up_sees_pending_error = True
    kong.other_node = lambda fake: fake.apply_up()
    rc, result = run(capsys, {"state": "up"})
    assert rc == 0 and result["changed"] is False and result["concurrent"] is True
    assert result["status"] == "pending"


class FakeAdmin:
    versions: ClassVar[dict] = {}

    def __init__(self, admin_url, **kwargs):
        self.url = admin_url

    def node(self):
        version = self.versions[self.url]
        if version is None:
            raise KongAdminError(f"GET {self.url}/ failed: ConnectionError: refused", url=self.url)
        if isinstance(version, int):
            raise KongAdminError(f"GET {self.url}/ returned HTTP {version}", status=version, url=self.url)
        return {"version": version}


@pytest.fixture
def admin(monkeypatch):
    monkeypatch.setattr(kong_migrations, "KongAdminClient", FakeAdmin)
    FakeAdmin.versions = {}
    return FakeAdmin


def test_finish_refused_while_a_listed_node_runs_an_older_version(kong, admin, capsys):
    run(capsys, {"state": "up"})
    admin.versions = {
        "http://a:8001": "3.4.2",
        "http://b:8001": "2.8.5",
        "http://c:8001": None,
    }
    kong.calls.clear()
    rc, result = run(capsys, {"state": "finished", "finish_gate_nodes": list(admin.versions)})
    assert rc == 1 and "refusing 'kong migrations finish'" in result["msg"]
    assert "http://b:8001 (runs 2.8.5, older than 3.4.2)" in result["msg"] and "http://c:8001" in result["msg"]
    assert "http://a:8001" not in result["msg"]
    verdicts = {n["url"]: n["verdict"] for n in result["finish_gate"]["nodes"]}
    assert verdicts == {
        "http://a:8001": "ok",
        "http://b:8001": "older",
        "http://c:8001": "unreachable",
    }
    assert "finish" not in kong.subcommands()


def test_finish_gate_passes_with_absent_nodes_and_current_versions(kong, admin, capsys):
    run(capsys, {"state": "up"})
    admin.versions = {
        "http://a:8001": "3.4.2",
        "http://c:8001": None,
        "http://d:8001": "3.4.2.1",
    }
    rc, result = run(
        capsys,
        {
            "state": "finished",
            "finish_gate_nodes": list(admin.versions),
            "finish_gate_unreachable": "absent",
        },
    )
    assert result["kong_version"] == "3.4.2"
    assert rc == 0 and result["changed"] is True and result["finish_gate"]["passed"] is True
    assert [n["verdict"] for n in result["finish_gate"]["nodes"]] == [
        "ok",
        "absent",
        "ok",
    ]


def test_finish_gate_http_error_is_never_absent_and_check_mode_applies_it(kong, admin, capsys):
    run(capsys, {"state": "up"})
    admin.versions = {"http://a:8001": 401}
    rc, result = run(
        capsys,
        {
            "state": "current",
            "finish_gate_nodes": ["http://a:8001"],
            "finish_gate_unreachable": "absent",
            "_ansible_check_mode": True,
        },
    )
    assert rc == 1 and "HTTP 401" in result["msg"]


def test_finish_gate_checked_before_up_when_current_may_need_finish(kong, admin, capsys):
    admin.versions = {"http://b:8001": "2.8.5"}
    rc, result = run(capsys, {"state": "current", "finish_gate_nodes": ["http://b:8001"]})
    assert rc == 1 and "runs 2.8.5" in result["msg"] and "up" not in kong.subcommands()
    assert kong.rows["core"]["pending"] == []


def test_finish_gate_version_option(kong, admin, capsys):
    run(capsys, {"state": "up"})
    admin.versions = {"http://a:8001": "3.4.2"}
    rc, result = run(
        capsys,
        {
            "state": "finished",
            "finish_gate_nodes": ["http://a:8001"],
            "finish_gate_version": "3.5.0",
        },
    )
    assert rc == 1 and "older than 3.5.0" in result["msg"]


def test_database_unreachable_gives_kongs_error_line_and_a_hint(kong, capsys):
    kong.db_error = "[PostgreSQL error] failed to retrieve PostgreSQL server_version_num: connection refused"
    rc, result = run(capsys, {"state": "up"})
    assert rc == 1
    assert kong.db_error in result["msg"] and "unreachable" in result["msg"]
    assert result["rc"] == 1 and result["cmd"][:3] == [KONG, "migrations", "list"]


def test_wrong_credentials(kong, capsys):
    kong.db_error = '[PostgreSQL error] failed to retrieve PostgreSQL server_version_num: FATAL: password authentication failed for user "kong"'
    rc, result, out = run_raw(capsys, {"state": "list"})
    assert rc == 1 and "password authentication failed" in result["msg"] and "KONG_PG_PASSWORD" in result["msg"]
    assert SECRET not in out


def test_unparseable_output(kong, capsys):
    kong.garbage_list = True
    rc, result = run(capsys, {"state": "list"})
    assert rc == 1 and "cannot parse migrations line" in result["msg"]
    assert "stdout" in result


def test_kong_binary_missing(kong, monkeypatch, capsys):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **kw: None)
    rc, result = run(capsys, {"state": "list"})
    assert rc == 1 and "kong_bin" in result["msg"] and "not found" in result["msg"]
    assert kong.calls == []


@pytest.mark.parametrize(
    "args,needle",
    [
        ({"state": "up", "lock_timeout": 0}, "lock_timeout must be a positive"),
        (
            {"state": "up", "kong_conf": "/nonexistent/kong.conf"},
            "kong_conf: /nonexistent/kong.conf does not exist",
        ),
        ({"state": "finished", "finish_gate_version": "latest"}, "finish_gate_version"),
        (
            {"state": "finished", "finish_gate_nodes": ["kong1:8001"]},
            "finish_gate_nodes: 'kong1:8001'",
        ),
        ({"state": "upgraded"}, "value of state must be one of"),
    ],
)
def test_bad_input_names_the_parameter_and_changes_nothing(kong, capsys, args, needle):
    rc, result = run(capsys, args)
    assert rc == 1 and needle in result["msg"]
    assert kong.calls == []


class FakeDb:
    def __init__(self, rows):
        self.rows = rows

    def schema_meta(self):
        return self.rows

    def table_exists(self, name):
        return True

    def query(self, sql, args=None):
        return [(0,)]

    def describe(self):
        return "postgresql://kong@127.0.0.1:5432/other"

    def entity_counts(self):
        return {"services": 2}

    def close(self):
        pass


def test_schema_meta_disagreement_names_both_views(kong, monkeypatch, capsys):
    wrong = FakeKong().bootstrap_to(V342).rows
    monkeypatch.setattr(kong_migrations.KongDb, "from_params", classmethod(lambda cls, p: FakeDb(wrong)))
    rc, result, out = run_raw(capsys, {"state": "up", "pg_password": SECRET})
    assert rc == 1 and "disagree" in result["msg"]
    assert "kong migrations list" in result["msg"] and "postgresql://kong@127.0.0.1:5432/other" in result["msg"]
    assert "listed as new but recorded in schema_meta" in result["msg"]
    assert "up" not in kong.subcommands() and SECRET not in out


def test_schema_meta_agreement_is_reported(kong, monkeypatch, capsys):
    monkeypatch.setattr(
        kong_migrations.KongDb,
        "from_params",
        classmethod(lambda cls, p: FakeDb(kong.rows)),
    )
    rc, result = run(capsys, {"state": "list", "pg_password": SECRET})
    assert rc == 0 and result["schema_meta_checked"] is True
    assert result["entity_counts"] == {"services": 2}
    rc, result = run(capsys, {"state": "list"})
    assert result["schema_meta_checked"] is False


def test_285_binary_has_no_status_command(monkeypatch, capsys):
    fake = FakeKong(version="2.8.5", known=V285).bootstrap_to(V285)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: fake(argv, **kw))
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **kw: KONG)
    rc, result = run(capsys, {"state": "list"})
    assert rc == 0 and result["status"] == "current" and result["status_checked"] is False
    assert fake.subcommands() == ["list", "status"]
    # module warnings are process-wide in ansible-core: judge only what this run could have said
    assert not [w for w in result.get("warnings", []) if "status" in str(w)]


@pytest.mark.parametrize("module_run", ["migrations", "info"])
def test_negative_database_bound_names_the_option(kong, capsys, module_run):
    args = {"pg_lock_timeout": -1}
    if module_run == "migrations":
        rc, result = run(capsys, dict(args, state="up"))
    else:
        rc, result = run_info(capsys, args)
    assert rc == 1 and "pg_lock_timeout must be 0 (no limit) or a positive number" in result["msg"]
    assert kong.calls == []
