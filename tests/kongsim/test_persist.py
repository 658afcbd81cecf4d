"""Where a node without a database keeps its last configuration across a restart, per version
(kongsim/persist.py): the 3.x LMDB read back when no declarative_config is set, its validation tag
from 3.6 (another minor's LMDB is removed), the 2.x DB-less node that keeps nothing, and a data plane
upgraded in its prefix."""

from __future__ import annotations

import os

import requests
from kongsim_testlib import simple_config

EMPTY = "0" * 32
NOT_INITIALIZED = {"message": "no configuration available (configuration hash is not initialized)"}


def _hash(node) -> str:
    return requests.get(node.admin_url + "/status").json()["configuration_hash"]


def _load(node, url: str, fmt: str = "3.0") -> str:
    r = requests.post(node.admin_url + "/config", data=simple_config(url, fmt=fmt), headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    return _hash(node)


def test_dbless_lmdb_is_read_back_and_validated_by_minor_from_3_6(kong_node_factory, echo_upstream):
    """Kong/kong 3.9.3 kong/init.lua:918-927 (3.4.2 :789-799): no declarative_config and a configuration in
    LMDB -> "found persisted lmdb config, loading..."; lmdb_environment_path = dbless.lmdb
    (kong/templates/kong_defaults.lua). lmdb_validation_tag = "major.minor" from 3.6
    (kong/conf_loader/constants.lua:636-639 at 3.9.3, none at 3.5.0): Kong/lua-resty-lmdb
    src/ngx_lua_resty_lmdb_module.c (ngx_lua_resty_lmdb_validate, ngx_lua_resty_lmdb_init) removes an
    LMDB without the tag or with another one, with its warnings."""
    node = kong_node_factory("3.4.2", name="p", log_level="info")
    loaded = _load(node, echo_upstream.url)
    node.stop()
    assert os.path.isfile(os.path.join(node.prefix, "dbless.lmdb", "data.mdb"))
    node.start()
    assert _hash(node) == loaded and requests.get(node.status_url + "/status/ready").json() == {"message": "ready"}
    assert "found persisted lmdb config, loading..." in node.error_log()
    node.stop()
    # 3.5 in the same prefix: no validation tag yet, it reads what 3.4 kept
    node = kong_node_factory("3.5.0", name="p")
    assert _hash(node) == loaded
    node.stop()
    # 3.6 validates: the LMDB has no tag, it is removed and the node starts without a configuration
    node = kong_node_factory("3.6.1", name="p")
    log = node.error_log()
    assert "[warn]" in log and "LMDB validation tag does not exist" in log and "LMDB database is removed for tag validation failure" in log
    assert _hash(node) == EMPTY and requests.get(node.status_url + "/status/ready").json() == NOT_INITIALIZED
    loaded = _load(node, echo_upstream.url)
    node.stop()
    node.start()  # the same minor keeps it
    assert _hash(node) == loaded
    node.stop()
    node = kong_node_factory("3.7.1", name="p")
    assert 'LMDB tag "3.6" did not match configured tag "3.7"' in node.error_log()
    assert _hash(node) == EMPTY
    node.stop()


def test_dbless_2x_keeps_nothing_across_a_restart(kong_node_factory, echo_upstream):
    """A 2.x DB-less node holds its configuration in shared memory only (no LMDB before 3.0)."""
    node = kong_node_factory("2.8.5", name="old")
    _load(node, echo_upstream.url, fmt="2.1")
    node.stop()
    node.start()
    assert _hash(node) == EMPTY
    assert not os.path.exists(os.path.join(node.prefix, "dbless.lmdb"))
