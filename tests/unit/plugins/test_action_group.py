"""The `kong` action group lists exactly the modules that take the Admin API options, and every module
documents its membership the same way (attributes.action_group through one doc fragment)."""

from __future__ import annotations

import importlib
import os

import pytest
import yaml
from ansible_collections.kongops.upgrade.plugins.module_utils._argspec import GROUPS
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import KONG_ADMIN_ARG_SPEC

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "plugins", "modules")) if f.endswith(".py"))


def group():
    with open(os.path.join(REPO, "meta", "runtime.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["action_groups"]["kong"]


def doc(name):
    mod = importlib.import_module(f"ansible_collections.kongops.upgrade.plugins.modules.{name}")
    return mod, yaml.safe_load(mod.DOCUMENTATION)


def spec_of(mod, monkeypatch):
    if hasattr(mod, "argument_spec"):
        return mod.argument_spec()
    if not hasattr(mod, "main"):
        # documentation of an action plugin that runs on the controller (no module code): its options
        return yaml.safe_load(mod.DOCUMENTATION).get("options") or {}
    captured = {}

    class Stop(Exception):
        pass

    def fake(*_a, **kw):
        captured.update(kw["argument_spec"])
        raise Stop

    monkeypatch.setattr(mod, "AnsibleModule", fake)
    with pytest.raises(Stop):
        mod.main()
    return captured


@pytest.mark.parametrize("name", MODULES)
def test_membership_follows_the_admin_api_options(name, monkeypatch):
    mod, d = doc(name)
    fragments = d.get("extends_documentation_fragment", [])
    spec = spec_of(mod, monkeypatch)
    takes_admin = set(KONG_ADMIN_ARG_SPEC) <= set(spec)
    member = name in group()
    assert member == takes_admin, f"{name}: in group {member}, takes the Admin API options {takes_admin}"
    assert ("kongops.upgrade.kong_admin" in fragments) == takes_admin
    wanted = "kongops.upgrade.attributes.actiongroup_kong" if member else "kongops.upgrade.attributes.actiongroup_none"
    assert wanted in fragments, f"{name} documents its membership with {wanted}"
    assert "action_group" not in (d.get("attributes") or {}), f"{name}: membership comes from the fragment only"
    assert "ansible.builtin.action_common_attributes.actiongroups" not in fragments


def test_group_lists_only_existing_modules():
    assert set(group()) <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_every_option_group_comes_with_its_doc_fragment(name, monkeypatch):
    """A module takes a shared option group (kong_argument_spec) exactly when it extends its fragment."""
    mod, d = doc(name)
    fragments = d.get("extends_documentation_fragment", [])
    spec = spec_of(mod, monkeypatch)
    for group, (options, fragment) in GROUPS.items():
        takes = set(options) <= set(spec)
        assert takes == (fragment in fragments), f"{name}: takes the {group} options {takes}, extends {fragment}"
