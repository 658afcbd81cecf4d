"""The suites' Ansible configuration (tests/ansible.cfg), which ansible_env() hands every run, and the
molecule scenarios' shared one (.config/molecule/config.yml)."""

from __future__ import annotations

import json
import os
import subprocess

from tests.integration.ansible_run import REPO, TESTS_ANSIBLE_CFG, VENV_BIN, ansible_env


def _changed(env: dict) -> dict:
    """The settings ansible-config reports changed from Ansible's defaults: name -> (origin, value)."""
    argv = [os.path.join(VENV_BIN, "ansible-config"), "dump", "--only-changed", "--format", "json"]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    return {item["name"]: (item["origin"], item["value"]) for item in json.loads(out) if "name" in item}


def test_the_suites_runs_read_tests_ansible_cfg(monkeypatch):
    monkeypatch.delenv("KONGOPS_ANSIBLE_CFG", raising=False)
    changed = _changed(ansible_env())
    assert changed["CONFIG_FILE"][1] == TESTS_ANSIBLE_CFG
    assert changed["DEFAULT_INTERNAL_POLL_INTERVAL"] == (TESTS_ANSIBLE_CFG, 0.005)


def test_an_empty_setting_leaves_ansibles_own_lookup_as_make_bench_runs(monkeypatch):
    monkeypatch.setenv("KONGOPS_ANSIBLE_CFG", "")
    monkeypatch.delenv("ANSIBLE_CONFIG", raising=False)
    env = ansible_env()
    assert "ANSIBLE_CONFIG" not in env
    assert "DEFAULT_INTERNAL_POLL_INTERVAL" not in _changed(env)


def test_every_molecule_scenario_runs_with_the_shared_base_config():
    """.config/molecule/config.yml, merged by molecule itself under each scenario's molecule.yml: the Docker
    driver and the same poll interval for every scenario, and no scenario carrying a second copy."""
    import glob

    import yaml
    from molecule.util import merge_dicts

    with open(os.path.join(REPO, ".config", "molecule", "config.yml")) as fh:
        base = yaml.safe_load(fh)
    scenarios = sorted(glob.glob(os.path.join(REPO, "molecule", "*", "molecule.yml")))
    assert scenarios
    for path in scenarios:
        with open(path) as fh:
            own = yaml.safe_load(fh)
        assert not {"driver", "dependency", "verifier", "scenario"} & set(own), path
        assert "config_options" not in own.get("provisioner", {}), path
        merged = merge_dicts(base, own)
        assert merged["driver"]["name"] == "docker" and merged["dependency"]["enabled"] is False
        assert merged["provisioner"]["config_options"]["defaults"]["internal_poll_interval"] == 0.005
        assert merged["platforms"] and merged["provisioner"]["inventory"], path
