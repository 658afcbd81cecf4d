"""Run playbooks through the real ansible-playbook, as operators do, and read the results.

``run_playbook`` uses the collection from this checkout (through the venv's
``ansible_collections`` symlink) and the ``json`` stdout callback, so tests can assert on
every task result as well as on the state of the real servers.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
COLLECTIONS = os.path.join(REPO, ".venv", "collections")
# the module runs' bytecode cache (tests/tools/ansiballz_pyc/sitecustomize.py)
ANSIBALLZ_PYC_SITE = os.path.join(REPO, "tests", "tools", "ansiballz_pyc")
ANSIBALLZ_PYC_CACHE = os.path.join(REPO, ".cache", "ansiballz-pyc")
# the suites' Ansible configuration (settings that have no environment variable)
TESTS_ANSIBLE_CFG = os.path.join(REPO, "tests", "ansible.cfg")


def ansible_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "true",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_PYTHON_INTERPRETER": os.path.join(VENV_BIN, "python"),
            "PATH": VENV_BIN + os.pathsep + env.get("PATH", ""),
            # an empty KONGOPS_ANSIBALLZ_PYC in the environment turns the cache off (make bench)
            "KONGOPS_ANSIBALLZ_PYC": env.get("KONGOPS_ANSIBALLZ_PYC", ANSIBALLZ_PYC_CACHE),
            "KONGOPS_ANSIBALLZ_SOURCES": os.path.join(REPO, "plugins"),
            "PYTHONPATH": os.pathsep.join(p for p in (ANSIBALLZ_PYC_SITE, env.get("PYTHONPATH", "")) if p),
            # facts only under ansible_facts, as operators who turn inject_facts_as_vars off run the playbooks:
            # a role that reads a fact as a top-level variable fails here (molecule runs Ansible's default)
            "ANSIBLE_INJECT_FACT_VARS": env.get("ANSIBLE_INJECT_FACT_VARS", "false"),
        }
    )
    # KONGOPS_ANSIBLE_CFG names another configuration; empty leaves Ansible's own lookup (make bench)
    config = env.get("KONGOPS_ANSIBLE_CFG", TESTS_ANSIBLE_CFG)
    if config:
        env["ANSIBLE_CONFIG"] = config
    env.update(extra or {})
    return env


@dataclass
class RunResult:
    rc: int
    stdout: str
    stderr: str
    data: dict = field(default_factory=dict)

    def results(self, task_name: str) -> list:
        """Per-host results of every task with this name, in play order."""
        found = []
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                if task["task"]["name"] == task_name:
                    found.extend(task["hosts"].values())
        return found

    def result(self, task_name: str, host: str | None = None) -> dict:
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                if task["task"]["name"] == task_name:
                    hosts = task["hosts"]
                    return hosts[host] if host else next(iter(hosts.values()))
        raise KeyError(f"no task named {task_name!r} ran; rc={self.rc}\n{self.stderr[-3000:]}")

    @property
    def stats(self) -> dict:
        return self.data.get("stats", {})


def run_playbook(
    playbook: str,
    inventory: str | None = None,
    extra_vars: dict | None = None,
    check: bool = False,
    diff: bool = False,
    env: dict | None = None,
    verbosity: int = 0,
    callback: str = "json",
    tags: str | None = None,
    timeout: int = 900,
) -> RunResult:
    """``playbook`` is a path or YAML text; ``inventory`` a path or inline text (default: localhost)."""
    tmp = tempfile.mkdtemp(prefix="kongops-play-")
    if "\n" in playbook or not os.path.exists(playbook):
        path = os.path.join(tmp, "playbook.yml")
        with open(path, "w") as fh:
            fh.write(playbook)
        playbook = path
    if inventory is None:
        inventory = "localhost ansible_connection=local\n"
    if "\n" in inventory or not os.path.exists(inventory):
        inv_path = os.path.join(tmp, "inventory.ini")
        with open(inv_path, "w") as fh:
            fh.write(inventory)
        inventory = inv_path
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, playbook]
    if extra_vars:
        vars_path = os.path.join(tmp, "extra_vars.json")
        with open(vars_path, "w") as fh:
            json.dump(extra_vars, fh)
        cmd += ["-e", "@" + vars_path]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if tags:
        cmd += ["--tags", tags]
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    run_env = ansible_env({"ANSIBLE_STDOUT_CALLBACK": callback, **(env or {})})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=timeout, check=False)
    data = {}
    if callback == "json":
        try:
            data = json.loads(proc.stdout[proc.stdout.index("{") :])
        except ValueError:
            data = {}
    return RunResult(proc.returncode, proc.stdout, proc.stderr, data)
