"""_backup: private atomic files, manifests and checksums, retention, free space, canonical YAML,
kong.conf, Admin API export, pg_dump/pg_restore argv and environment, tarballs (fakes only)."""

from __future__ import annotations

import json
import os
import stat
from types import SimpleNamespace

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils import _backup as bk
from ansible_collections.kongops.upgrade.plugins.module_utils import _kong_conf as kc
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import (
    KongAdminClient,
    KongAdminError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import KongDb, KongDbError
from ansible_collections.kongops.upgrade.plugins.module_utils._versions import (
    parse_version,
)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def make_run(dest, run_id, created, payload=b"data"):
    staged = bk.StagedRun(str(dest), run_id).open()
    entry = bk.write_private(staged.path("declarative.yml"), payload)
    manifest = {"format": 1, "run_id": run_id, "created": created, "kinds": ["declarative"], "files": [dict(entry, name="declarative.yml", kind="declarative")]}
    return staged.commit(manifest)


# --- private files ----------------------------------------------------------------------------


def test_write_private_is_0600_and_leaves_no_partial(tmp_path):
    path = str(tmp_path / "f")
    entry = bk.write_private(path, b"hello")
    with open(path, "rb") as fh:
        assert mode_of(path) == 0o600 and fh.read() == b"hello"
    assert entry == {"size": 5, "sha256": bk.sha256_bytes(b"hello")}
    assert os.listdir(tmp_path) == ["f"]


def test_write_private_failed_verification_leaves_nothing(tmp_path):
    def verify(tmp):
        assert os.path.exists(tmp)
        raise bk.BackupError("bad")

    with pytest.raises(bk.BackupError):
        bk.write_private(str(tmp_path / "f"), b"x", verify)
    assert os.listdir(tmp_path) == []


def test_staged_run_appears_only_on_commit(tmp_path):
    staged = bk.StagedRun(str(tmp_path), "r1").open()
    assert mode_of(staged.staging) == 0o700 and not os.path.exists(tmp_path / "r1")
    bk.write_private(staged.path("a"), b"1")
    final = staged.commit({"format": 1, "files": []})
    assert final == str(tmp_path / "r1") and sorted(os.listdir(final)) == ["a", "manifest.json"]
    assert mode_of(os.path.join(final, "manifest.json")) == 0o600
    assert os.listdir(tmp_path) == ["r1"]


def test_staged_run_abort_removes_everything(tmp_path):
    staged = bk.StagedRun(str(tmp_path), "r1").open()
    bk.write_private(staged.path("a"), b"1")
    staged.abort()
    assert os.listdir(tmp_path) == []


def test_prepare_dest_creates_0700_and_refuses_a_file(tmp_path):
    dest = tmp_path / "b" / "c"
    bk.prepare_dest(str(dest))
    assert mode_of(dest) == 0o700
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(bk.BackupError, match="is not a directory"):
        bk.prepare_dest(str(afile))


def test_prepare_dest_in_check_mode_creates_nothing(tmp_path):
    bk.prepare_dest(str(tmp_path / "new"), check_mode=True)
    assert not os.path.exists(tmp_path / "new")


@pytest.mark.parametrize("run_id", ["", "../x", "a/b", ".hidden", "-x", "x.partial", "a" * 200])
def test_bad_run_ids(run_id):
    with pytest.raises(bk.BackupError, match="run_id"):
        bk.check_run_id(run_id)


def test_good_run_id():
    bk.check_run_id("20250101T120000Z")
    bk.check_run_id("upgrade-3.8.1_to_3.9.3")


# --- free space -------------------------------------------------------------------------------


def test_free_space_refused_with_numbers(tmp_path):
    def fake(path):
        return SimpleNamespace(f_bavail=10, f_frsize=1024)

    assert bk.ensure_free_space(str(tmp_path), 10 * 1024, statvfs=fake) == 10 * 1024
    with pytest.raises(bk.BackupError, match="not enough free space") as exc:
        bk.ensure_free_space(str(tmp_path / "not" / "yet"), 1 << 20, statvfs=fake)
    assert exc.value.context == {"needed_bytes": 1 << 20, "available_bytes": 10 * 1024}


def test_destination_full_recognises_enospc_and_a_tool_saying_so_and_nothing_else(tmp_path):
    def fake(path):
        return SimpleNamespace(f_bavail=1, f_frsize=4096)

    err = bk.BackupError(
        "pg_dump of database kong failed (rc=1): pg_dump: error: could not write to file",
        rc=1,
        stderr="pg_dump: error: could not write to output file: No space left on device",
    )
    full = bk.destination_full(str(tmp_path), err, statvfs=fake)
    assert "filled up while the backup was written (pg_dump of database kong failed" in str(full) and "4.0 KiB free there now" in str(full)
    assert full.context == err.context
    assert bk.destination_full(str(tmp_path), OSError(28, "No space left on device"), statvfs=fake) is not None
    assert bk.destination_full(str(tmp_path), OSError(13, "Permission denied"), statvfs=fake) is None
    assert bk.destination_full(str(tmp_path), bk.BackupError("pg_dump failed (rc=1): connection refused"), statvfs=fake) is None


# --- manifests and checksums ----------------------------------------------------------------


def test_verify_files_accepts_intact_and_refuses_flipped_truncated_missing(tmp_path):
    final = make_run(tmp_path, "r1", "2025-01-01T00:00:00Z", b"0123456789")
    manifest = bk.load_manifest(final)
    assert [e["name"] for e in bk.verify_files(final, manifest, ["declarative"])] == ["declarative.yml"]
    path = os.path.join(final, "declarative.yml")
    os.chmod(path, 0o600)
    with open(path, "r+b") as fh:
        fh.seek(3)
        fh.write(b"X")
    with pytest.raises(bk.BackupError, match="sha256"):
        bk.verify_files(final, manifest, ["declarative"])
    with open(path, "wb") as fh:
        fh.write(b"01234")
    with pytest.raises(bk.BackupError, match="truncated"):
        bk.verify_files(final, manifest, ["declarative"])
    os.unlink(path)
    with pytest.raises(bk.BackupError, match="missing"):
        bk.verify_files(final, manifest, ["declarative"])


def test_verify_files_refuses_a_kind_not_in_the_backup(tmp_path):
    final = make_run(tmp_path, "r1", "2025-01-01T00:00:00Z")
    with pytest.raises(bk.BackupError, match="no 'database' part"):
        bk.verify_files(final, bk.load_manifest(final), ["database"])


def test_verify_files_refuses_path_escapes(tmp_path):
    manifest = {"format": 1, "kinds": ["declarative"], "files": [{"name": "../x", "kind": "declarative"}]}
    with pytest.raises(bk.BackupError, match="unsafe"):
        bk.verify_files(str(tmp_path), manifest, ["declarative"])


def test_load_manifest_errors(tmp_path):
    with pytest.raises(bk.BackupError, match="does not exist"):
        bk.load_manifest(str(tmp_path))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(bk.BackupError, match="corrupted"):
        bk.load_manifest(str(tmp_path))
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(bk.BackupError, match="not a kongops.upgrade backup manifest"):
        bk.load_manifest(str(tmp_path / "manifest.json"))


# --- retention ------------------------------------------------------------------------------


def test_retention_keeps_newest_by_manifest_time_and_ignores_foreign_dirs(tmp_path):
    runs = [
        make_run(tmp_path, name, created)
        for name, created in [
            ("zzz-oldest", "2025-01-01T00:00:00Z"),
            ("b", "2025-01-02T00:00:00Z"),
            ("a", "2025-01-03T00:00:00Z"),
            ("current", "2025-01-04T00:00:00Z"),
        ]
    ]
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "keep.txt").write_text("x")
    assert bk.apply_retention(str(tmp_path), 2, current=runs[-1], check_mode=True) == runs[:2]
    assert len(bk.list_runs(str(tmp_path))) == 4
    assert bk.apply_retention(str(tmp_path), 2, current=runs[-1]) == runs[:2]
    assert sorted(os.listdir(tmp_path)) == ["a", "current", "unrelated"]
    assert bk.apply_retention(str(tmp_path), 0) == []


def test_retention_never_removes_the_current_run(tmp_path):
    current = make_run(tmp_path, "now", "2020-01-01T00:00:00Z")
    make_run(tmp_path, "later-clock", "2030-01-01T00:00:00Z")
    assert bk.apply_retention(str(tmp_path), 1, current=current) == [str(tmp_path / "later-clock")]
    assert os.listdir(tmp_path) == ["now"]


# --- declarative --------------------------------------------------------------------------

NESTED = """_format_version: "3.0"
services:
- name: s1
  url: http://x
  routes:
  - name: r1
    paths: [/a]
  plugins:
  - name: key-auth
consumers:
- username: u
  keyauth_credentials:
  - key: k
plugins:
- name: prometheus
  config: {per_consumer: false}
"""


def test_entity_counts_include_nested_entities():
    counts = bk.entity_counts(bk.parse_declarative(NESTED))
    assert counts == {"services": 1, "routes": 1, "plugins": 2, "consumers": 1, "keyauth_credentials": 1}


def test_canonical_yaml_is_independent_of_order():
    a = {"_format_version": "3.0", "services": [{"id": "b", "name": "y"}, {"name": "x", "id": "a"}]}
    b = {"services": [{"id": "a", "name": "x"}, {"id": "b", "name": "y"}], "_format_version": "3.0"}
    text = bk.canonical_yaml(a)
    assert text == bk.canonical_yaml(b)
    assert "_format_version: '3.0'" in text
    assert bk.parse_declarative(text)["services"][0]["id"] == "a"


def test_parse_declarative_errors():
    with pytest.raises(bk.BackupError, match="does not parse"):
        bk.parse_declarative("a: [", "x")
    with pytest.raises(bk.BackupError, match="no _format_version"):
        bk.parse_declarative("services: []", "x")


def test_kong_text_hash_is_md5_of_the_text():
    assert bk.kong_text_hash("") == "d41d8cd98f00b204e9800998ecf8427e"


class FakeAdmin:
    """Pages from a dict; the entity walk is the client's own."""

    walk_entities = KongAdminClient.walk_entities

    def __init__(self, collections):
        self.collections, self.calls = collections, []

    def paged(self, path):
        self.calls.append(path)
        if path not in self.collections:
            raise KongAdminError(f"GET {path} returned HTTP 404", status=404)
        return [dict(e) for e in self.collections[path]]


def test_export_via_admin_uses_kong_paths_and_flattens_foreign_keys():
    admin = FakeAdmin(
        {
            "/services": [{"id": "s1", "name": "svc", "ws_id": "w"}],
            "/routes": [{"id": "r1", "service": {"id": "s1"}, "ws_id": "w"}],
            "/consumers": [{"id": "c1", "username": "u"}],
            "/key-auths": [{"id": "k1", "consumer": {"id": "c1"}, "key": "secret"}],
            "/upstreams": [{"id": "u1", "name": "up"}],
            "/upstreams/u1/targets": [{"id": "t1", "upstream": {"id": "u1"}, "target": "a:80"}],
            "/plugins": [{"id": "p1", "name": "key-auth", "route": None, "service": {"id": "s1"}}],
            "/certificates": [],
            "/snis": [],
        }
    )
    doc, counts, skipped = bk.export_via_admin(admin, parse_version("3.9.3"))
    assert skipped == ["ca_certificates"]
    assert doc["_format_version"] == "3.0" and doc["_transform"] is False
    assert doc["routes"] == [{"id": "r1", "service": "s1"}]
    assert doc["targets"] == [{"id": "t1", "upstream": "u1", "target": "a:80"}]
    assert doc["plugins"][0]["service"] == "s1" and doc["plugins"][0]["route"] is None
    assert counts["keyauth_credentials"] == 1 and counts["targets"] == 1 and "certificates" not in doc
    assert "/keyauth_credentials" not in admin.calls and "/targets" not in admin.calls
    assert bk.export_via_admin(admin, parse_version("2.8.5"))[0]["_format_version"] == "2.1"


def test_export_via_admin_passes_other_errors_on():
    class Broken(FakeAdmin):
        def paged(self, path):
            raise KongAdminError("GET / returned HTTP 401", status=401)

    with pytest.raises(KongAdminError):
        bk.export_via_admin(Broken({}), parse_version("3.9.3"))


def test_compare_entities_ignores_timestamps_and_reports_extras():
    backup = bk.entity_index({"services": [{"id": "a", "name": "x", "updated_at": 1}]})
    current = bk.entity_index({"services": [{"id": "a", "name": "x", "updated_at": 2}, {"id": "b", "name": "y"}]})
    assert bk.compare_entities(backup, current) == ([], ["services/b"])
    changed = bk.entity_index({"services": [{"id": "a", "name": "renamed"}]})
    assert bk.compare_entities(backup, changed) == (["services/a"], [])
    assert bk.entity_index({"services": [{"name": "no id"}]}) is None
    assert bk.entity_index({"parameters": [{"key": "cluster_id", "value": "x"}]}) == {"parameters": {"cluster_id": {"key": "cluster_id", "value": "x"}}}


# --- kong.conf ------------------------------------------------------------------------------


def test_kong_conf_comments_escapes_and_env_precedence(tmp_path):
    conf = tmp_path / "kong.conf"
    conf.write_text(
        "# comment\npg_host = db.internal   # trailing\npg_port = 6432\npg_password = pa\\#ss\npg_database = kong\ndeclarative_config = /etc/kong/kong.yml\n"
    )
    values = kc.read_kong_conf(str(conf))
    assert values["pg_host"] == "db.internal" and values["pg_password"] == "pa#ss"
    params = {
        "kong_conf": str(conf),
        "kong_env": {"KONG_PG_DATABASE": "other"},
        "pg_host": "127.0.0.1",
        "pg_port": 5432,
        "pg_user": "kong",
        "pg_password": None,
        "pg_database": "kong",
        "pg_schema": None,
    }
    out = kc.pg_params_from_kong_conf(params)
    assert (out["pg_host"], out["pg_port"], out["pg_password"], out["pg_database"]) == ("db.internal", 6432, "pa#ss", "other")
    assert kc.kong_setting("declarative_config", str(conf), {}) == "/etc/kong/kong.yml"
    with pytest.raises(kc.KongConfError, match="cannot read kong_conf"):
        kc.read_kong_conf(str(tmp_path / "missing.conf"))


# --- pg_dump / pg_restore ---------------------------------------------------------------------


class FakeRun:
    def __init__(self, answers=None):
        self.calls, self.answers = [], answers or {}

    def __call__(self, argv, environ_update=None):
        self.calls.append((list(argv), dict(environ_update or {})))
        for key, answer in self.answers.items():
            if key in argv:
                return answer
        return 0, "", ""


TOC = """;
; Archive created at 2025-01-01 00:00:00 UTC
215; 1259 16390 TABLE public services kong
216; 1259 16391 TABLE public schema_meta kong
3345; 0 16390 TABLE DATA public services kong
3346; 0 16391 TABLE DATA public schema_meta kong
3100; 2606 16400 CONSTRAINT public services services_pkey kong
"""


def test_pg_dump_password_only_in_environment():
    db = KongDb(pg_host="db", pg_port=5433, pg_user="kong", pg_password="s3cr3t-pw", pg_database="kong")
    run = FakeRun()
    tools = bk.PgTools(run, "/usr/bin/pg_dump", "/usr/bin/pg_restore")
    tools.dump("/b/database.dump.partial", db.libpq_env(), snapshot="00000003-1", schema="kong")
    argv, env = run.calls[0]
    assert argv == [
        "/usr/bin/pg_dump",
        "--format=custom",
        "--no-password",
        "--file",
        "/b/database.dump.partial",
        "--snapshot",
        "00000003-1",
        "--schema",
        "kong",
    ]
    assert "s3cr3t-pw" not in " ".join(argv)
    assert env["PGPASSWORD"] == "s3cr3t-pw" and env["PGHOST"] == "db" and env["PGPORT"] == "5433"


def test_pg_restore_argv_and_toc():
    run = FakeRun({"--list": (0, TOC, "")})
    tools = bk.PgTools(run)
    toc = tools.toc("/b/database.dump")
    assert ("public", "services") in toc["TABLE"] and ("public", "schema_meta") in toc["TABLE DATA"]
    bk.verify_dump_toc(toc, "public", ["services", "schema_meta"])
    with pytest.raises(bk.BackupError, match="TABLE public.routes"):
        bk.verify_dump_toc(toc, "public", ["routes"])
    tools.restore("/b/database.dump", {"PGPASSWORD": "x"}, "kong_tmp", clean=True)
    assert run.calls[-1][0] == [
        "pg_restore",
        "--no-password",
        "--no-owner",
        "--exit-on-error",
        "--single-transaction",
        "--dbname",
        "kong_tmp",
        "--clean",
        "--if-exists",
        "/b/database.dump",
    ]


def test_pg_tool_failure_carries_rc_and_stderr():
    run = FakeRun({"--format=custom": (1, "", ('pg_dump: error: connection to server failed: FATAL:  password authentication failed for user "kong"\n'))})
    with pytest.raises(bk.BackupError, match="password authentication failed") as exc:
        bk.PgTools(run).dump("/x", {})
    assert exc.value.context["rc"] == 1 and "FATAL" in exc.value.context["stderr"]


# --- files ----------------------------------------------------------------------------------


def test_tarball_roundtrip_and_restore_is_idempotent(tmp_path):
    src = tmp_path / "etc" / "kong"
    (src / "ssl").mkdir(parents=True)
    (src / "kong.conf").write_text("pg_host = db\n")
    os.chmod(src / "kong.conf", 0o640)
    (src / "ssl" / "a.key").write_bytes(b"KEY")
    os.symlink(src / "kong.conf", tmp_path / "link.conf")
    paths = bk.collect_files([str(src), str(tmp_path / "link.conf")])
    assert paths == [str(src / "kong.conf"), str(src / "ssl" / "a.key"), str(tmp_path / "link.conf")]
    tar = str(tmp_path / "files.tar.gz")
    members = bk.write_tarball(tar, paths)
    bk.verify_tarball(tar, members)
    assert members[0]["mode"] == "0640" and members[2]["size"] == len("pg_host = db\n")

    root = tmp_path / "restore"
    changed = bk.restore_files(tar, members, str(root))
    assert len(changed) == 3
    restored = root / str(src / "kong.conf").lstrip("/")
    assert restored.read_text() == "pg_host = db\n" and mode_of(restored) == 0o640
    assert bk.restore_files(tar, members, str(root)) == []
    restored.write_text("changed\n")
    assert bk.restore_files(tar, members, str(root), check_mode=True) == [str(restored)]
    assert restored.read_text() == "changed\n"
    assert bk.restore_files(tar, members, str(root)) == [str(restored)]
    assert restored.read_text() == "pg_host = db\n"


def test_collect_files_names_a_missing_path(tmp_path):
    with pytest.raises(bk.BackupError, match="files: .*nope does not exist"):
        bk.collect_files([str(tmp_path / "nope")])


# --- DB-less restore --------------------------------------------------------------------------


class FakeDbless:
    def __init__(self, current_hash, config_text):
        self.hash, self.config_text, self.posts = current_hash, config_text, []

    def status(self):
        return {"configuration_hash": self.hash}

    def post_config(self, text, check_hash=True):
        self.posts.append((text, check_hash))
        if check_hash and bk.kong_text_hash(text) == self.hash:
            return 304
        self.hash, self.config_text = bk.kong_text_hash(text), text
        return 201

    def get_config(self):
        return self.config_text


def test_restore_dbless_304_is_unchanged_and_201_restores_the_hash():
    text = NESTED
    section = {"entity_counts": bk.entity_counts(bk.parse_declarative(text)), "hash_exact": True, "configuration_hash": bk.kong_text_hash(text)}
    node = FakeDbless(bk.kong_text_hash(text), text)
    result = bk.restore_dbless(node, text, section, check_mode=False, sleep=lambda s: None)
    assert result["changed"] is False and result["status"] == 304

    node = FakeDbless("0" * 32, '_format_version: "3.0"\n')
    assert bk.restore_dbless(node, text, section, check_mode=True)["changed"] is True
    assert node.posts == []
    result = bk.restore_dbless(node, text, section, check_mode=False, sleep=lambda s: None)
    assert result["changed"] is True and result["status"] == 201
    assert result["configuration_hash_after"] == section["configuration_hash"]


def test_restore_dbless_fails_when_the_node_lists_other_counts():
    text = NESTED
    section = {"entity_counts": {"services": 5}}

    class Lossy(FakeDbless):
        def get_config(self):
            return '_format_version: "3.0"\nservices: []\n'

    with pytest.raises(bk.BackupError, match="services 0 \\(backup 5\\)"):
        bk.restore_dbless(Lossy("0" * 32, ""), text, section, check_mode=False, sleep=lambda s: None)


def test_answering_nodes_counts_any_http_answer():
    class Client:
        def __init__(self, url):
            self.url = url

        def raw(self, method, path):
            if "down" in self.url:
                raise KongAdminError("connection refused")
            return SimpleNamespace(status_code=401)

    assert bk.answering_nodes(["http://up:8001", "http://down:8001"], Client) == ["http://up:8001"]


def test_public_url_strips_credentials():
    assert bk.public_url("https://user:pw@kong:8444/x") == "https://kong:8444/x"
    assert bk.public_url("http://kong:8001") == "http://kong:8001"


@pytest.mark.parametrize(
    "exc, expected",
    [
        (bk.BackupError("sha256 mismatch", path="/b/kong.dump", expected="ab"), {"msg": "sha256 mismatch", "path": "/b/kong.dump", "expected": "ab"}),
        (
            KongAdminError("GET /services failed", status=401, body="no key"),
            {"msg": "Kong Admin API error: GET /services failed", "status_code": 401, "body": "no key"},
        ),
        (KongDbError("relation missing", query="SELECT 1"), {"msg": "PostgreSQL error: relation missing", "query": "SELECT 1"}),
        (PermissionError(13, "Permission denied"), {"msg": "cannot restore: [Errno 13] Permission denied"}),
    ],
)
def test_failure_result_names_the_system_that_failed(exc, expected):
    assert bk.failure_result(exc, "restore") == expected


def test_failure_result_of_a_kong_command_carries_its_output_and_an_unknown_error_its_traceback():
    from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import KongCliError

    cli = bk.failure_result(KongCliError("'kong config parse' failed (rc=1)", cmd=["kong"], rc=1, stderr="bad"), "x")
    assert cli == {"msg": "kong command failed: 'kong config parse' failed (rc=1)", "cmd": ["kong"], "rc": 1, "stdout": "", "stderr": "bad"}
    unknown: dict = {}
    try:
        raise KeyError("files")
    except KeyError as exc:  # as in the modules' main(): mapped while the error is being handled
        unknown = bk.failure_result(exc, "x")
    assert unknown["msg"] == "unexpected error: KeyError: 'files'" and "Traceback" in unknown["exception"]


def test_snapshot_end_on_a_connection_the_server_cut_closes_without_raising():
    """PostgreSQL restarted during the backup: ending the snapshot must not replace the error that
    stopped the backup (pg_dump's) with psycopg2's 'server closed the connection unexpectedly'."""
    import psycopg2

    from ansible_collections.kongops.upgrade.plugins.module_utils._backup_database import SnapshotDb

    closed = []

    class CutConnection:
        closed = 0

        def rollback(self):
            raise psycopg2.OperationalError("server closed the connection unexpectedly")

        def close(self):
            closed.append(True)

    db = SnapshotDb(pg_host="127.0.0.1", pg_port=5432, pg_user="kong", pg_password="x", pg_database="kong")
    db._conn = CutConnection()
    db.end()
    assert closed == [True]
