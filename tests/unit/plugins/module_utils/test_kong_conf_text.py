"""kong.conf editing: operator lines kept, values escaped as Kong's conf_loader reads them."""

from __future__ import annotations

import re

import pytest
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_conf import (
    KongConfError,
    conf_names,
    edit,
    format_value,
    parse,
    read_value,
)

OPERATOR = """\
# ------- operator's kong.conf, grown over years -------
prefix = /usr/local/kong   # where Kong keeps its pids
#pg_host = 127.0.0.1             # Host of the Postgres server.
pg_user = kong
plugins = bundled,my-header     # our custom plugin
lua_package_path = /opt/kong-plugins/?.lua;;
nginx_http_client_max_body_size = 64m

trusted_ips = 10.0.0.0/8
pg_host = old-db.internal
"""


def kong_reads(text: str) -> dict:
    """Kong's load_config: pl.config lines, then `\\s*(?<!\\\\)#.*$` removed and `\\#` -> `#`."""
    values = {}
    for line in text.splitlines():
        if re.match(r"^\s*[#;]", line) or not line.strip():
            continue
        key, _sep, value = line.partition("=")
        value = re.sub(r"\s*(?<!\\)#.*$", "", value.strip()).replace("\\#", "#")
        values[key.strip()] = value
    return values


def test_only_named_settings_change_every_other_line_kept():
    new, changes = edit(OPERATOR, {"pg_host": "db.internal", "pg_port": 5433, "pg_ssl": True})
    old_lines, new_lines = OPERATOR.splitlines(), new.splitlines()
    kept = [ln for ln in old_lines if not ln.startswith("pg_host")]
    for line in kept:
        assert line in new_lines
    assert "pg_host = db.internal" in new_lines
    assert "pg_host = old-db.internal" not in new_lines
    assert parse(new)["pg_port"] == "5433" and parse(new)["pg_ssl"] == "on"
    actions = {c["setting"]: c["action"] for c in changes}
    assert actions == {"pg_host": "changed", "pg_port": "added", "pg_ssl": "added"}


def test_value_with_comment_keeps_its_comment():
    new, _diff = edit(OPERATOR, {"prefix": "/var/lib/kong"})
    assert "prefix = /var/lib/kong   # where Kong keeps its pids" in new.splitlines()
    assert parse(new)["prefix"] == "/var/lib/kong"


def test_new_setting_goes_below_its_commented_template_line():
    text = "#pg_host = 127.0.0.1   # Host\n#pg_port = 5432\n"
    new, _diff = edit(text, {"pg_host": "db"})
    assert new.splitlines() == ["#pg_host = 127.0.0.1   # Host", "pg_host = db", "#pg_port = 5432"]


def test_unchanged_value_is_idempotent():
    new, changes = edit(OPERATOR, {"pg_user": "kong", "trusted_ips": "10.0.0.0/8"})
    assert new == OPERATOR and changes == []
    again, changes2 = edit(*edit(OPERATOR, {"pg_password": "a#b"})[:1], {"pg_password": "a#b"})
    assert changes2 == []


def test_hash_in_value_is_escaped_and_kong_reads_it_back():
    new, _diff = edit("", {"pg_password": "pa#ss word#1"})
    assert "pg_password = pa\\#ss word\\#1" in new
    assert kong_reads(new)["pg_password"] == "pa#ss word#1"
    assert read_value("pa\\#ss word\\#1  # a comment") == "pa#ss word#1"


def test_backslash_hash_literal_round_trips():
    new, _diff = edit("", {"x_value": "a\\#b"})
    assert kong_reads(new)["x_value"] == "a\\#b"


@pytest.mark.parametrize("value", ["one\nplugins = evil", "one\r\ntwo"])
def test_newline_is_refused_naming_the_setting(value):
    with pytest.raises(KongConfError, match="'pg_password' contains a newline") as exc:
        edit(OPERATOR, {"pg_password": value})
    assert exc.value.setting == "pg_password"


def test_trailing_backslash_and_surrounding_space_refused():
    with pytest.raises(KongConfError, match="backslash"):
        format_value("pg_password", "abc\\")
    with pytest.raises(KongConfError, match="white space"):
        format_value("pg_password", " abc")


def test_bad_key_refused():
    with pytest.raises(KongConfError, match="not a kong.conf setting name"):
        edit("", {"pg host": "x"})


def test_rename_and_remove_keep_values_and_comments():
    text = "old_name = 1  # why\nunused = 2\nkeep = 3\n"
    new, changes = edit(text, rename={"old_name": "new_name"}, remove=["unused"])
    assert new.splitlines()[0] == "new_name = 1  # why"
    assert new.splitlines()[1].startswith("# unused = 2")
    assert parse(new) == {"new_name": "1", "keep": "3"}
    assert [c["action"] for c in changes] == ["renamed", "removed"]


def test_last_occurrence_is_the_one_changed():
    text = "pg_host = a\npg_host = b\n"
    new, _diff = edit(text, {"pg_host": "c"})
    assert new == "pg_host = a\npg_host = c\n"
    assert parse(new)["pg_host"] == "c"


def test_fresh_file_from_settings():
    new, _diff = edit("", {"database": "off", "declarative_config": "/etc/kong/kong.yml"})
    assert parse(new) == {"database": "off", "declarative_config": "/etc/kong/kong.yml"}
    assert new.endswith("\n")


def test_lists_joined():
    new, _diff = edit("", {"plugins": ["bundled", "my-header"]})
    assert parse(new)["plugins"] == "bundled, my-header"


def test_hash_refused_for_kong_before_3_2():
    with pytest.raises(KongConfError, match=r"'pg_password' contains '#': Kong 2.8.5 copies"):
        edit("", {"pg_password": "a#b"}, kong_version="2.8.5")
    assert "a\\#b" in edit("", {"pg_password": "a#b"}, kong_version="3.2.0")[0]
    assert edit("", {"pg_password": "ab"}, kong_version="2.8.5")[0] == "# Settings set by kongops.upgrade\npg_password = ab\n"


def test_conf_names_gives_names_never_values(tmp_path):
    conf = tmp_path / "kong.conf"
    conf.write_text(
        "# database = postgres\n"
        "database = postgres\n"
        "pg_password = s3cret-value  # the password\n"
        "PG_Host = db.internal\n"
        "plugins = bundled, my-auth ,off,  # the custom ones\n"
        "  admin_listen = 127.0.0.1:8001\n"
    )
    out = conf_names(str(conf))
    assert out == {
        "path": str(conf),
        "readable": True,
        "reason": None,
        "properties": ["admin_listen", "database", "pg_host", "pg_password", "plugins"],
        "custom_plugins": ["my-auth"],
    }
    assert "s3cret" not in repr(out) and "db.internal" not in repr(out)


def test_conf_names_of_a_file_that_cannot_be_read(tmp_path):
    out = conf_names(str(tmp_path / "missing.conf"))
    assert out["readable"] is False and out["properties"] == [] and out["custom_plugins"] == []
    assert "missing.conf" in out["reason"]
