"""Database restore safety (issue 27 item 6): the target is renamed aside, the verified copy renamed into
place, and the old copy dropped last; a failed rename leaves the original. A backup records the identity
of its cluster and a restore into another one is refused unless force."""

from __future__ import annotations

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils import _backup as bk
from psycopg2 import sql


def render(query) -> str:
    """SQL text of a psycopg2.sql composition without a connection (identifiers double-quoted)."""
    if isinstance(query, str):
        return query
    if isinstance(query, sql.Composed):
        return "".join(render(part) for part in query.seq)
    if isinstance(query, sql.Identifier):
        return ".".join('"' + s + '"' for s in query.strings)
    if isinstance(query, sql.SQL):
        return query.string
    return str(query)


class FakeServer:
    """The maintenance connection: databases by name; renames and drops as PostgreSQL does them."""

    def __init__(self, databases=("kong",), fail_on=None):
        self.databases = set(databases)
        self.log: list = []
        self.fail_on = fail_on  # substring of a statement that raises
        self.params = {"user": "kong", "host": "db", "port": 5432, "dbname": "postgres"}

    def query(self, query, args=None):
        text = render(query)
        self.log.append(text)
        if self.fail_on and self.fail_on in text:
            raise bk.KongDbError(f"query failed: {text}", query=text)
        words = text.replace('"', "").split()
        if text.startswith("ALTER DATABASE") and "RENAME TO" in text:
            old, new = words[2], words[5]
            assert old in self.databases and new not in self.databases, (old, new, self.databases)
            self.databases.discard(old)
            self.databases.add(new)
        elif text.startswith("DROP DATABASE IF EXISTS"):
            self.databases.discard(words[4])
        elif text.startswith("DROP DATABASE"):
            assert words[2] in self.databases
            self.databases.discard(words[2])
        elif text.startswith("CREATE DATABASE"):
            self.databases.add(words[2])
        elif "FROM pg_database WHERE datname" in text:
            return [[1]] if args[0] in self.databases else []
        elif "server_version_num" in text:
            return [["150000"]]
        elif "pg_terminate_backend" in text:
            return []
        return []

    def close(self):
        pass


class NoTools:
    def restore(self, *a, **kw):
        return []


@pytest.fixture
def job(monkeypatch):
    def make(server, force=False):
        j = bk.DatabaseRestore({"pg_database": "kong", "pg_user": "kong", "pg_host": "db", "pg_port": 5432}, {}, NoTools(), force=force)
        monkeypatch.setattr(j, "_state", lambda database: {"tables": {}, "schema_meta": None})
        monkeypatch.setattr(j, "_verify", lambda section, state, where: [])
        monkeypatch.setattr(j, "_db", lambda database: type("D", (), {"libpq_env": lambda self, **kw: {}})())
        return j

    return make


def test_swap_renames_the_target_aside_and_drops_it_last(job):
    server = FakeServer()
    job(server)._recreate(server, "dump", {}, "UTF8", exists=True)
    renames = [q for q in server.log if "RENAME" in q]
    drops = [i for i, q in enumerate(server.log) if q.startswith("DROP DATABASE") and "_kongops_old" in q]
    assert renames == ['ALTER DATABASE "kong" RENAME TO "kong_kongops_old"', 'ALTER DATABASE "kong_kongops_restore" RENAME TO "kong"']
    assert drops and drops[-1] > server.log.index(renames[-1]), server.log
    assert not any(q.startswith('DROP DATABASE "kong"') for q in server.log), "the target is never dropped by name"
    assert server.databases == {"kong"}


def test_failed_swap_puts_the_original_back(job):
    server = FakeServer(fail_on='ALTER DATABASE "kong_kongops_restore" RENAME')
    with pytest.raises(bk.KongDbError):
        job(server)._recreate(server, "dump", {}, "UTF8", exists=True)
    assert "kong" in server.databases and "kong_kongops_old" not in server.databases
    assert server.log[-2:] == ['ALTER DATABASE "kong_kongops_old" RENAME TO "kong"', 'DROP DATABASE IF EXISTS "kong_kongops_restore"'], server.log


def test_failed_rename_aside_leaves_the_target_untouched(job):
    server = FakeServer(fail_on='ALTER DATABASE "kong" RENAME')
    with pytest.raises(bk.KongDbError):
        job(server)._recreate(server, "dump", {}, "UTF8", exists=True)
    assert "kong" in server.databases and not any('DROP DATABASE "kong"' in q for q in server.log)


def test_failed_drop_of_the_old_copy_is_a_warning_not_a_failure(job):
    server = FakeServer(fail_on='DROP DATABASE "kong_kongops_old"')
    j = job(server)
    j._recreate(server, "dump", {}, "UTF8", exists=True)
    assert "kong" in server.databases and "kong_kongops_old" in server.databases
    assert any("kong_kongops_old" in w and "drop" in w for w in j.warnings)


def test_a_leftover_old_copy_is_never_dropped_blindly(job):
    server = FakeServer(databases=("kong", "kong_kongops_old"))
    with pytest.raises(bk.BackupError, match="kong_kongops_old"):
        job(server)._recreate(server, "dump", {}, "UTF8", exists=True)
    assert server.databases == {"kong", "kong_kongops_old"}
    assert not any(q.startswith("DROP DATABASE") and "kongops_old" in q for q in server.log)


# --- cluster identity --------------------------------------------------------------------------


def ident(**kw):
    base = {"name": None, "database": {"host": "db1", "port": 5432, "name": "kong", "system_identifier": "7001"}, "node_ids": ["a"]}
    base.update(kw)
    return base


def test_same_cluster_is_accepted():
    assert bk.identity_mismatches(ident(), ident(node_ids=["b"]), kinds=["database"]) == []


def test_same_server_under_another_host_name_is_accepted_by_system_identifier():
    other = ident(database={"host": "10.0.0.5", "port": 5432, "name": "kong", "system_identifier": "7001"})
    assert bk.identity_mismatches(ident(), other, kinds=["database"]) == []


@pytest.mark.parametrize(
    "target, needle",
    [
        (ident(database={"host": "db1", "port": 5432, "name": "kong_other", "system_identifier": "7001"}), "database name"),
        (ident(database={"host": "db1", "port": 5432, "name": "kong", "system_identifier": "8002"}), "PostgreSQL server"),
        (ident(database={"host": "db2", "port": 5433, "name": "kong", "system_identifier": None}), "db1:5432"),
        (ident(name="prod-eu"), None),
    ],
)
def test_another_cluster_is_named(target, needle):
    backup = ident(name="prod-us") if needle is None else ident()
    found = bk.identity_mismatches(backup, target, kinds=["database"])
    assert found, target
    if needle:
        assert any(needle in f for f in found), found
    else:
        assert any("prod-us" in f and "prod-eu" in f for f in found), found


def test_loopback_names_are_one_host():
    a = ident(database={"host": "localhost", "port": 5432, "name": "kong", "system_identifier": None})
    b = ident(database={"host": "127.0.0.1", "port": 5432, "name": "kong", "system_identifier": None})
    assert bk.identity_mismatches(a, b, kinds=["database"]) == []


def test_declarative_only_compares_the_cluster_name():
    """Kong regenerates node ids at every start except on data planes (Kong/kong 3.9.3 kong/pdk/node.lua),
    so node ids are recorded but not compared; the cluster name decides."""
    other_db = ident(database={"host": "x", "port": 1, "name": "y", "system_identifier": "9"}, node_ids=["z"])
    assert bk.identity_mismatches(ident(), other_db, kinds=["declarative"]) == []
    assert bk.identity_mismatches(ident(name="a"), ident(name="b"), kinds=["declarative"])


def test_a_backup_without_identity_is_accepted():
    assert bk.identity_mismatches({}, ident(), kinds=["database", "declarative"]) == []


def test_refusal_message_names_force():
    msg = bk.identity_refusal(["database name kong (backup) differs from kong_other (target)"])
    assert "force" in msg and "kong_other" in msg
