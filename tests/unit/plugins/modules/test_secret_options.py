"""Every module option that carries a secret is no_log: the argument spec of each module in
plugins/modules (and of the controller-side action plugins) is read as AnsibleModule receives it,
suboptions included, and every option whose name says it holds a password, token, secret, credential,
key or a map that carries one (an environment, request headers) must set ``no_log=True``.

The rule is by name, word by word (``pg_admin_password`` has the word ``password``); the few options
whose name matches but whose value is not a secret are listed in NOT_SECRET with the reason, and the
list may not go stale."""

from __future__ import annotations

import glob
import importlib
import os
from unittest import mock

import pytest

MODULES_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "modules")
PACKAGE = "ansible_collections.kongops.upgrade.plugins"

# Words of an option's name (split on "_") that mark it as carrying a secret.
SECRET_WORDS = {
    "password",
    "passwd",
    "passphrase",
    "pass",
    "token",
    "secret",
    "secrets",
    "credential",
    "credentials",
    "apikey",
    "key",
    "env",
    "headers",
    "auth",
    "authorization",
    "cookie",
}

# module -> option -> (its type, why it is not a secret); each must exist with that type.
_CLIENT_KEY = (
    "path",
    "the path of the client certificate's key file; the key itself is read by the TLS library and never passes through the module's arguments",
)
NOT_SECRET = {
    "kong_backup": {"client_key": _CLIENT_KEY},
    "kong_config_freeze": {"client_key": _CLIENT_KEY, "haproxy_map_key": ("str", "the key column of the HAProxy map entry (a host name)")},
    "kong_migrations": {"client_key": _CLIENT_KEY},
    "kong_node_info": {"client_key": _CLIENT_KEY},
    "kong_proxy_check": {"client_key": _CLIENT_KEY},
    "kong_restore": {"client_key": _CLIENT_KEY},
    "kong_service": {
        "client_key": _CLIENT_KEY,
        "unit_env_file": ("path", "the path of the systemd EnvironmentFile the module writes 0600; its content comes from the no_log kong_env"),
    },
    "kong_upgrade_check": {"client_key": _CLIENT_KEY},
}


class _Captured(Exception):
    pass


def _module_spec(name: str) -> dict:
    """The argument_spec main() hands to AnsibleModule."""
    mod = importlib.import_module(f"{PACKAGE}.modules.{name}")
    got = {}

    def capture(*_args, **kwargs):
        got.update(kwargs)
        raise _Captured()

    with mock.patch.object(mod, "AnsibleModule", side_effect=capture), pytest.raises(_Captured):
        mod.main()
    return got["argument_spec"]


def _action_spec(name: str, attr: str) -> dict:
    """An action plugin's spec; importing an action marks the process as the controller, undone after."""
    from ansible.module_utils import _internal

    was = _internal.is_controller
    _internal.is_controller = True
    try:
        return getattr(importlib.import_module(f"{PACKAGE}.action.{name}"), attr)
    finally:
        _internal.is_controller = was


def _options(spec: dict, prefix: str = ""):
    for name, option in spec.items():
        yield prefix + name, name, option
        yield from _options(option.get("options") or {}, prefix + name + ".")


def _names_a_secret(name: str) -> bool:
    return bool(SECRET_WORDS & set(name.lower().split("_")))


MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(MODULES_DIR, "*.py")) if not os.path.basename(p).startswith("_"))
# kong_upgrade_run and kong_gate are action plugins (kong_gate's module shares its spec).
DOC_ONLY = {"kong_upgrade_run"}
ACTION_SPECS = {"kong_upgrade_run": "ARGUMENT_SPEC"}


def _spec(name: str) -> dict:
    return _action_spec(name, ACTION_SPECS[name]) if name in DOC_ONLY else _module_spec(name)


def test_the_rule_reads_names_word_by_word():
    assert _names_a_secret("pg_admin_password") and _names_a_secret("admin_token") and _names_a_secret("kong_env")
    assert _names_a_secret("client_key") and _names_a_secret("headers") and _names_a_secret("secret_settings")
    assert not _names_a_secret("keepalive") and not _names_a_secret("kinds") and not _names_a_secret("passive")


@pytest.mark.parametrize("name", MODULES)
def test_every_option_that_carries_a_secret_is_no_log(name):
    allowed = NOT_SECRET.get(name, {})
    offenders, seen = [], set()
    for path, leaf, option in _options(_spec(name)):
        if not _names_a_secret(leaf):
            continue
        if path in allowed:
            seen.add(path)
            kind, reason = allowed[path]
            assert option.get("type", "str") == kind, f"{name}: {path} is listed as a {kind} ({reason})"
            continue
        if option.get("no_log") is not True:
            offenders.append(f"{path} (type {option.get('type', 'str')}, no_log={option.get('no_log')})")
    assert not offenders, f"{name}: options that carry a secret without no_log=True: {offenders}"
    assert seen == set(allowed), f"{name}: NOT_SECRET lists options the module does not have: {set(allowed) - seen}"


def test_the_secret_options_the_collection_promises_are_covered():
    """The options the documentation names as secrets exist and are no_log (so that a rename would not
    quietly take one out of the rule above)."""
    promised = {
        "kong_backup": ["admin_token", "pg_password", "kong_env"],
        "kong_restore": ["admin_token", "pg_password", "pg_admin_password", "kong_env"],
        "kong_migrations": ["pg_password", "kong_env", "admin_token"],
        "kong_migrations_info": ["pg_password", "kong_env"],
        "kong_conf": ["secret_settings", "create_secret_settings"],
        "kong_service": ["admin_token", "kong_env"],
        "kong_proxy_check": ["headers"],
        "kong_config_freeze": ["admin_token"],
        "kong_node_info": ["admin_token"],
        "kong_upgrade_check": ["admin_token"],
    }
    for name, options in promised.items():
        spec = {path: option for path, _leaf, option in _options(_spec(name))}
        for option in options:
            assert spec[option].get("no_log") is True, f"{name}: {option}"
