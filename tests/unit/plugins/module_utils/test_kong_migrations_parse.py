"""Parsers of `kong migrations` output, fed with the texts FACTS.md quotes (sections 1.2 and 8.2)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_migrations import (
    MigrationsParseError,
    MigrationsState,
    db_error_hint,
    next_command,
    parse_list,
    parse_run_output,
    parse_status_json,
    plan,
    predict_after,
    satisfied,
    schema_meta_differences,
    state_differences,
)

# FACTS 1.2, exact, including the space after "first." and the trailing blank lines.
NEEDS_BOOTSTRAP = (
    "Database needs bootstrapping or is older than Kong 1.0.\n"
    "\n"
    "To start a new installation from scratch, run 'kong migrations bootstrap'.\n"
    "\n"
    "To migrate from a version older than 1.0, migrated to Kong 1.5.0 first. \n"
    "If you still have 'apis' entities, you can convert them to Routes and Services\n"
    "using the 'kong migrations migrate-apis' command in Kong 1.5.0.\n"
    "\n"
)

# FACTS 1.2: the text Kong's own spec asserts for exit code 5.
KONG_SPEC_NEW = (
    "Executed migrations:\ncore: 000_base\n\nNew migrations available:\n"
    "with-migrations: 000_base_with_migrations, 001_14_to_15\n\nRun 'kong migrations up' to proceed"
)

CORE_393 = (
    "000_base, 003_100_to_110, 004_110_to_120, 005_120_to_130, 006_130_to_140, 007_140_to_150, "
    "008_150_to_200, 009_200_to_210, 010_210_to_211, 011_212_to_213, 012_213_to_220, 013_220_to_230, "
    "014_230_to_270, 015_270_to_280, 016_280_to_300, 017_300_to_310, 018_310_to_320, 019_320_to_330, "
    "020_330_to_340, 021_340_to_350, 022_350_to_360, 023_360_to_370, 024_380_to_390"
)

# FACTS 1.2: 3.9.3 fully migrated with plugins=bundled; the `...` shorthand of the core line is
# written out (FACTS: "Kong prints the full list").
EXECUTED_393 = f"""Executed migrations:
                 core: {CORE_393}
                  acl: 000_base_acl, 002_130_to_140, 003_200_to_210, 004_212_to_213
                 acme: 000_base_acme, 001_280_to_300, 002_320_to_330, 003_350_to_360
             ai-proxy: 001_360_to_370
           basic-auth: 000_base_basic_auth, 002_130_to_140, 003_200_to_210
        bot-detection: 001_200_to_210
            hmac-auth: 000_base_hmac_auth, 002_130_to_140, 003_200_to_210
             http-log: 001_280_to_300
       ip-restriction: 001_200_to_210
                  jwt: 000_base_jwt, 002_130_to_140, 003_200_to_210
             key-auth: 000_base_key_auth, 002_130_to_140, 003_200_to_210, 004_320_to_330
               oauth2: 000_base_oauth2, 003_130_to_140, 004_200_to_210, 005_210_to_211, 006_320_to_330, 007_320_to_330
        opentelemetry: 001_331_to_332
        post-function: 001_280_to_300
         pre-function: 001_280_to_300
        rate-limiting: 000_base_rate_limiting, 003_10_to_112, 004_200_to_210, 005_320_to_330, 006_350_to_360
response-ratelimiting: 000_base_response_rate_limiting, 001_350_to_360
              session: 000_base_session, 001_add_ttl_index, 002_320_to_330
"""

# FACTS 1.2: `kong migrations up`, 3.4.2 DB, 3.7.1 binary.
UP_342_TO_371 = """migrating core on database 'kong'...
core migrated up to: 021_340_to_350 (executed)
core migrated up to: 022_350_to_360 (executed)
core migrated up to: 023_360_to_370 (executed)
migrating acme on database 'kong'...
acme migrated up to: 003_350_to_360 (pending)
migrating ai-proxy on database 'kong'...
ai-proxy migrated up to: 001_360_to_370 (pending)
migrating opentelemetry on database 'kong'...
opentelemetry migrated up to: 001_331_to_332 (pending)
migrating rate-limiting on database 'kong'...
rate-limiting migrated up to: 006_350_to_360 (pending)
migrating response-ratelimiting on database 'kong'...
response-ratelimiting migrated up to: 001_350_to_360 (pending)
8 migrations processed
3 executed
5 pending

Database has pending migrations; run 'kong migrations finish' when ready
"""

# FACTS 8.2: `kong migrations up` with 3.6.1 on a 3.5.0 DB.
UP_350_TO_361 = """migrating core on database 'kong'...
core migrated up to: 022_350_to_360 (executed)
migrating acme on database 'kong'...
acme migrated up to: 003_350_to_360 (executed)
migrating opentelemetry on database 'kong'...
opentelemetry migrated up to: 001_331_to_332 (pending)
migrating rate-limiting on database 'kong'...
rate-limiting migrated up to: 006_350_to_360 (executed)
migrating response-ratelimiting on database 'kong'...
response-ratelimiting migrated up to: 001_350_to_360 (executed)
5 migrations processed
4 executed
1 pending

Database has pending migrations; run 'kong migrations finish' when ready
"""

# FACTS 1.2 `status` example (reconstructed there), one line.
STATUS_JSON = (
    '{"needs_bootstrap":false,'
    '"executed_migrations":[{"subsystem":"core","namespace":"kong.db.migrations.core",'
    '"migrations":["000_base","003_100_to_110"]}],'
    '"pending_migrations":[{"subsystem":"acme","namespace":"kong.plugins.acme.migrations",'
    '"migrations":["003_350_to_360"]}]}'
)

# FACTS 2.3: the 2.8.5 -> 3.4.2 delta; `*` ones are pending after `up`.
NEW_285_TO_342 = {
    "core": [
        "016_280_to_300",
        "017_300_to_310",
        "018_310_to_320",
        "019_320_to_330",
        "020_330_to_340",
    ],
    "acme": ["001_280_to_300", "002_320_to_330"],
    "http-log": ["001_280_to_300"],
    "key-auth": ["004_320_to_330"],
    "oauth2": ["006_320_to_330", "007_320_to_330"],
    "post-function": ["001_280_to_300"],
    "pre-function": ["001_280_to_300"],
    "rate-limiting": ["005_320_to_330"],
    "session": ["002_320_to_330"],
}
PENDING_285_TO_342 = {
    "core": ["016_280_to_300"],
    "http-log": ["001_280_to_300"],
    "post-function": ["001_280_to_300"],
    "pre-function": ["001_280_to_300"],
}


def kong_block(header: str, blocks: dict) -> str:
    """A block in Kong's format: `%<W>s: %s` with W the longest subsystem name of the block."""
    width = max(len(sub) for sub in blocks)
    return header + "\n" + "".join(f"{sub:>{width}}: {', '.join(names)}\n" for sub, names in blocks.items())


def test_needs_bootstrap_exit_3():
    state = parse_list(3, NEEDS_BOOTSTRAP)
    assert state.needs_bootstrap and state.status == "needs_bootstrap"
    assert state.executed == {} and state.new == {}


def test_kong_spec_text_exit_5():
    state = parse_list(5, KONG_SPEC_NEW)
    assert state.status == "new"
    assert state.executed == {"core": ["000_base"]}
    assert state.new == {"with-migrations": ["000_base_with_migrations", "001_14_to_15"]}
    assert state.pending == {}


# Kong/kong kong/cmd/migrations.lua:95 (3.9.3) runs prefix_handler.prepare_prefix before the
# database is read; a missing prefix is created after an info line on stdout
# (kong/cmd/utils/prefix_handler.lua:498 at 3.9.3, :338 at 2.8.5), so the first `kong migrations
# list` on a host prints it ahead of the blocks or of the needs-bootstrap text.
PREFIX_LINE = "prefix directory /usr/local/kong not found, trying to create it\n"


@pytest.mark.parametrize(
    "rc,text,status",
    [
        (0, PREFIX_LINE + EXECUTED_393, "current"),
        (5, PREFIX_LINE + KONG_SPEC_NEW, "new"),
        (3, PREFIX_LINE + NEEDS_BOOTSTRAP, "needs_bootstrap"),
    ],
)
def test_list_after_kongs_prefix_creation_line(rc, text, status):
    state = parse_list(rc, text)
    assert state.status == status
    if status == "current":
        assert state.executed == parse_list(0, EXECUTED_393).executed


def test_prefix_line_only_counts_before_the_blocks():
    """The line is Kong's preamble; inside a block it is no migration line."""
    with pytest.raises(MigrationsParseError, match="cannot parse migrations line"):
        parse_list(0, "Executed migrations:\n" + PREFIX_LINE + "core: 000_base\n")


def test_right_aligned_block_of_393_exit_0():
    state = parse_list(0, EXECUTED_393)
    assert state.status == "current"
    assert list(state.executed)[:3] == ["core", "acl", "acme"]
    assert len(state.executed) == 18
    assert state.executed["core"][-1] == "024_380_to_390" and len(state.executed["core"]) == 23
    assert state.executed["response-ratelimiting"] == [
        "000_base_response_rate_limiting",
        "001_350_to_360",
    ]
    assert state.as_dict()["counts"]["executed"] == sum(len(v) for v in state.executed.values())


def test_pending_only_exit_4():
    text = (
        kong_block("Executed migrations:", {"core": ["000_base", "015_270_to_280"]})
        + "\n"
        + kong_block("Pending migrations:", PENDING_285_TO_342)
        + "\n"
        + "Run 'kong migrations finish' when ready\n"
    )
    state = parse_list(4, text)
    assert state.status == "pending"
    assert state.pending == PENDING_285_TO_342


def test_pending_and_new_exit_4_with_warning_on_stderr():
    stdout = (
        kong_block("Executed migrations:", {"core": ["000_base"]})
        + "\n"
        + kong_block("Pending migrations:", {"core": ["016_280_to_300"]})
        + "\n"
        + kong_block("New migrations available:", {"core": ["021_340_to_350"]})
        + "\n"
        + "\nRun 'kong migrations finish' when ready to complete pending migrations (postgres database "
        "will be incompatible with the previous Kong version)\n"
    )
    stderr = "2024/01/01 00:00:00 [warn] Database has pending migrations from a previous upgrade, and new migrations from this upgrade (version 3.7.1)\n"
    state = parse_list(4, stdout, stderr)
    assert state.status == "pending_and_new"
    assert state.pending == {"core": ["016_280_to_300"]} and state.new == {"core": ["021_340_to_350"]}


def test_285_to_342_new_block_exit_5():
    executed = {"core": ["000_base", "015_270_to_280"], "acl": ["000_base_acl"]}
    text = (
        kong_block("Executed migrations:", executed)
        + "\n"
        + kong_block("New migrations available:", NEW_285_TO_342)
        + "\n"
        + "Run 'kong migrations up' to proceed\n"
    )
    state = parse_list(5, text)
    assert state.new == NEW_285_TO_342
    assert sum(len(v) for v in state.new.values()) == 15


def test_dbless_list_empty_exit_0():
    assert parse_list(0, "").status == "current"


@pytest.mark.parametrize(
    "rc,text,needle",
    [
        (0, KONG_SPEC_NEW, "exited 0 but its text says 'new'"),
        (5, EXECUTED_393, "exited 5 but its text says 'current'"),
        (3, EXECUTED_393, "without Kong's 'Database needs bootstrapping' text"),
        (0, NEEDS_BOOTSTRAP, "printed the needs-bootstrap text but exited 0"),
        (2, "", "exited 2"),
        (0, "Executed migrations:\n   core 000_base\n", "cannot parse migrations line"),
        (0, "something else\n", "unexpected line"),
        (
            4,
            "Executed migrations:\ncore: a\n\nExecuted migrations:\ncore: a\n",
            "twice",
        ),
    ],
)
def test_unparseable_or_contradicting_output_is_an_error(rc, text, needle):
    with pytest.raises(MigrationsParseError) as exc:
        parse_list(rc, text)
    assert needle in str(exc.value)
    assert exc.value.context()["rc"] == rc


def test_run_output_up_342_to_371():
    out = parse_run_output(UP_342_TO_371)
    assert out["count"] == 8 and out["processed"] == 8
    states = {(sub, e["name"]): e["state"] for sub, entries in out["migrated"].items() for e in entries}
    assert [k for k, v in states.items() if v == "pending"] == [
        ("acme", "003_350_to_360"),
        ("ai-proxy", "001_360_to_370"),
        ("opentelemetry", "001_331_to_332"),
        ("rate-limiting", "006_350_to_360"),
        ("response-ratelimiting", "001_350_to_360"),
    ]
    assert not out["lock_aborted"]


def test_run_output_up_350_to_361():
    out = parse_run_output(UP_350_TO_361)
    assert out["count"] == 5
    assert out["migrated"]["opentelemetry"] == [{"name": "001_331_to_332", "state": "pending"}]
    assert out["migrated"]["acme"] == [{"name": "003_350_to_360", "state": "executed"}]


@pytest.mark.parametrize(
    "stdout",
    [
        "aborted: another node is performing database changes\n",
        "Database already bootstrapped\n",
        "Database is already up-to-date\n",
        "No pending migrations to finish\n",
    ],
)
def test_run_output_that_ran_nothing(stdout):
    out = parse_run_output(stdout)
    assert out["count"] == 0 and not out["bootstrapped"]
    assert out["lock_aborted"] is stdout.startswith("aborted")


def test_run_output_bootstrap():
    out = parse_run_output(
        "Bootstrapping database...\nmigrating core on database 'kong'...\n"
        "core migrated up to: 000_base (executed)\n1 migration processed\n1 executed\n"
        "Database is up-to-date\n"
    )
    assert out["bootstrapped"] and out["count"] == 1 and out["processed"] == 1


def test_status_json():
    state = parse_status_json(STATUS_JSON)
    assert state.executed == {"core": ["000_base", "003_100_to_110"]}
    assert state.pending == {"acme": ["003_350_to_360"]}
    assert state.new == {} and not state.needs_bootstrap


def test_status_json_needs_bootstrap_and_garbage():
    assert parse_status_json('{"needs_bootstrap":true}\n').needs_bootstrap
    with pytest.raises(MigrationsParseError):
        parse_status_json("Error: something\n")
    with pytest.raises(MigrationsParseError):
        parse_status_json("{not json\n")


def test_state_differences():
    a = MigrationsState(executed={"core": ["000_base"]}, pending={"acme": ["003_350_to_360"]})
    assert state_differences(a, parse_status_json(STATUS_JSON)) == ["executed core: ['000_base'] vs ['000_base', '003_100_to_110']"]
    assert state_differences(a, MigrationsState(needs_bootstrap=True)) == ["needs_bootstrap: False vs True"]


def test_a_database_that_needs_bootstrapping_agrees_with_the_status_listing_every_migration_as_new():
    """`list` exits 3 and lists nothing; `status` dumps new_migrations with every migration of the binary
    (Kong/kong 3.9.3 kong/cmd/migrations.lua lines 105-108 and 156-177): the same state, not a disagreement."""
    listed = parse_list(3, NEEDS_BOOTSTRAP)
    new = [{"subsystem": "core", "namespace": "kong.db.migrations.core", "migrations": ["000_base", "003_100_to_110"]}]
    status = parse_status_json(json.dumps({"needs_bootstrap": True, "new_migrations": new}) + "\n")
    assert listed.needs_bootstrap and status.needs_bootstrap and status.new == {"core": ["000_base", "003_100_to_110"]}
    assert state_differences(listed, status) == []


def test_schema_meta_agreement_rules():
    listed = MigrationsState(
        executed={"core": ["000_base"]},
        pending={"core": ["016_280_to_300"]},
        new={"core": ["017_300_to_310"]},
    )
    rows = {
        "core": {
            "executed": ["000_base", "999_from_a_newer_binary"],
            "pending": ["016_280_to_300"],
        },
        "unloaded-plugin": {"executed": ["000_x"], "pending": []},
    }
    assert schema_meta_differences(listed, rows) == []
    rows["core"]["executed"].append("017_300_to_310")
    assert schema_meta_differences(listed, rows) == ["core: listed as new but recorded in schema_meta: 017_300_to_310"]
    assert "does not exist" in schema_meta_differences(listed, None)[0]
    assert "needs bootstrapping" in schema_meta_differences(MigrationsState(needs_bootstrap=True), rows)[0]
    assert schema_meta_differences(MigrationsState(needs_bootstrap=True), None) == []
    missing = schema_meta_differences(listed, {"core": {"executed": [], "pending": []}})
    assert missing == [
        "core: listed as executed but not in schema_meta.executed: 000_base",
        "core: listed as pending but not in schema_meta.pending: 016_280_to_300",
    ]


def test_db_error_hints_on_kongs_error_lines():
    assert "unreachable" in db_error_hint("[PostgreSQL error] failed to retrieve PostgreSQL server_version_num: connection refused")
    assert "credentials" in db_error_hint(
        '[PostgreSQL error] failed to retrieve PostgreSQL server_version_num: FATAL: password authentication failed for user "kong"'
    )
    assert db_error_hint("something else entirely") is None


NB = MigrationsState(needs_bootstrap=True)
CURRENT = MigrationsState(executed={"core": ["000_base"]})
NEW = MigrationsState(executed={"core": ["000_base"]}, new=NEW_285_TO_342)
PENDING = MigrationsState(executed={"core": ["000_base"]}, pending=PENDING_285_TO_342)
BOTH = MigrationsState(
    executed={"core": ["000_base"]},
    pending={"core": ["016_280_to_300"]},
    new={"core": ["021_340_to_350"]},
)


@pytest.mark.parametrize(
    "desired,state,expected",
    [
        ("bootstrapped", NB, "bootstrap"),
        ("bootstrapped", NEW, None),
        ("bootstrapped", CURRENT, None),
        ("up", NEW, "up"),
        ("up", PENDING, None),
        ("up", CURRENT, None),
        ("finished", PENDING, "finish"),
        ("finished", BOTH, "finish"),
        ("finished", NEW, None),
        ("finished", CURRENT, None),
        ("current", NEW, "up"),
        ("current", PENDING, "finish"),
        ("current", BOTH, "finish"),
        ("current", CURRENT, None),
        ("list", NB, None),
        ("list", BOTH, None),
    ],
)
def test_next_command(desired, state, expected):
    assert next_command(desired, state) == expected
    assert satisfied(desired, state) is (expected is None)


@pytest.mark.parametrize("desired", ["up", "finished", "current"])
def test_states_other_than_bootstrapped_refuse_an_unbootstrapped_database(desired):
    with pytest.raises(Exception) as exc:
        next_command(desired, NB)
    assert "needs bootstrapping" in str(exc.value) and "state=bootstrapped" in str(exc.value)


def test_up_with_pending_from_an_earlier_upgrade_needs_force():
    with pytest.raises(Exception) as exc:
        next_command("up", BOTH)
    assert "state=finished first" in str(exc.value) and "force=true" in str(exc.value)
    assert "core: 016_280_to_300" in str(exc.value)
    assert next_command("up", BOTH, force=True) == "up"


def test_plans_and_predictions():
    assert plan("up", NEW) == [{"command": "up", "migrations": NEW_285_TO_342}]
    assert predict_after("up", NEW) is None
    assert plan("finished", PENDING) == [{"command": "finish", "migrations": PENDING_285_TO_342}]
    finished = predict_after("finished", PENDING)
    assert finished.status == "current" and finished.executed["http-log"] == ["001_280_to_300"]
    steps = plan("current", BOTH)
    assert [s["command"] for s in steps] == ["finish", "up", "finish"]
    assert steps[2]["migrations"] is None
    after = predict_after("current", BOTH)
    assert after.executed == {"core": ["000_base", "016_280_to_300", "021_340_to_350"]} and after.status == "current"
    assert plan("bootstrapped", NB) == [{"command": "bootstrap", "migrations": None}]
    assert predict_after("bootstrapped", NB) is None
    assert plan("up", PENDING) == [] and predict_after("up", PENDING) is PENDING
    assert plan("list", BOTH) == []
