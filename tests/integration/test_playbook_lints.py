"""Static checks of the playbooks and roles an AWX job runs: no prompt, every pause bounded, every
play in a phase tag, and every variable a role reads documented by `ansible-doc -t role`."""

from __future__ import annotations

import glob
import os
import re
import subprocess

import pytest
import yaml

from tests.sandbox.core import VENV_BIN

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _yaml_files(*tops: str) -> list[str]:
    found = []
    for top in tops:
        for d, _dirs, files in os.walk(os.path.join(REPO, top)):
            found += [os.path.join(d, f) for f in files if f.endswith((".yml", ".yaml"))]
    return sorted(found)


def _walk_tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from _walk_tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            if key in node:
                yield from _walk_tasks(node[key])


def test_no_prompt_anywhere_and_every_pause_has_a_timeout():
    offenders = []
    for path in _yaml_files("playbooks", "roles"):
        with open(path) as fh:
            data = yaml.safe_load(fh)
        for task in _walk_tasks(data):
            if "vars_prompt" in task:
                offenders.append(f"{path}: vars_prompt in play {task.get('name')!r}")
            for key in ("ansible.builtin.pause", "pause", "ansible.legacy.pause"):
                if key in task:
                    args = task[key] or {}
                    if not isinstance(args, dict) or not ({"seconds", "minutes"} & set(args)) or "prompt" in args:
                        offenders.append(f"{path}: task {task.get('name')!r} pauses without a timeout: {args}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(
    "playbook, phases",
    [
        ("rolling_upgrade.yml", {"freeze", "backup", "deploy", "shift", "drain", "thaw"}),
        ("in_place_upgrade.yml", {"freeze", "backup", "deploy", "migrate", "finish", "thaw"}),
    ],
)
def test_every_play_runs_in_a_phase_tag(playbook, phases):
    def plays_of(name: str) -> list[dict]:
        with open(os.path.join(REPO, "playbooks", name)) as fh:
            found = []
            for play in yaml.safe_load(fh):
                imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
                found += plays_of(imported) if imported else [play]
            return found

    def tags_of(play: dict) -> set:
        # a play is tagged as a whole, or each of its tasks (or blocks) carries its phase's tags: play-level
        # tags are inherited by every included task, so a play with several phases tags each one
        if play.get("tags"):
            return set(play["tags"])
        tasks = play.get("tasks", [])
        return set().union(*(set(t.get("tags", [])) for t in tasks)) if tasks and all(t.get("tags") for t in tasks) else set()

    plays = plays_of(playbook)
    untagged = [p["name"] for p in plays if not tags_of(p)]
    assert not untagged, f"plays of {playbook} without a tag: {untagged}"
    tags = {t for p in plays for t in tags_of(p)}
    assert phases <= tags, f"{playbook} lacks the phase tags {sorted(phases - tags)}"
    assert all(set(p["tags"]) == {"always"} for p in plays[:2]), "the validation and the plan must run in every phase"


# --------------------------------------------------------------------------- role documentation

_GROUPS = {"kong_x", "kong_y", "kong_lb", "kong_db", "kong_cp"}


_CONDITIONALS = {"when", "that", "until", "failed_when", "changed_when", "loop", "with_items"}
_NAME = re.compile(r"(?<![.\w])kong_[a-z0-9_]+")


_INCLUDES = {
    "ansible.builtin.include_role",
    "ansible.builtin.import_role",
    "ansible.builtin.include_tasks",
    "ansible.builtin.import_tasks",
    "include_role",
    "import_role",
    "include_tasks",
    "import_tasks",
}


def _facts_of_the_collections_plugins() -> set[str]:
    """Facts the collection's modules and action plugins return (``ansible_facts``): the run journal
    action's ``kong_journal`` and ``kong_abort``, the gate's ``kong_gate``."""
    names = set()
    for path in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py")) + glob.glob(os.path.join(REPO, "plugins", "action", "*.py")):
        with open(path) as fh:
            text = fh.read()
        names.update(re.findall(r'\b(?:ansible_facts=\{|facts = \{|facts\[)"(kong_\w+)"', text))
    return names


def _set_fact_names(task: dict) -> set[str]:
    """The names a task sets with set_fact."""
    names = set()
    for key in ("ansible.builtin.set_fact", "set_fact"):
        if isinstance(task.get(key), dict):
            names.update(task[key])
    return names


def _set_by_the_collection() -> set[str]:
    """Names the collection's own tasks give a value: facts, registered results, loop variables
    and the vars of included task files and roles, and the facts its plugins return."""
    names = _facts_of_the_collections_plugins()
    for path in _yaml_files("roles", "playbooks"):
        if "/roles/" in path and "/tasks/" not in path:
            continue
        with open(path) as fh:
            data = yaml.safe_load(fh)
        for task in _walk_tasks(data):
            if isinstance(task.get("register"), str):
                names.add(task["register"])
            names.update(_set_fact_names(task))
            if _INCLUDES & set(task) and isinstance(task.get("vars"), dict):
                names.update(task["vars"])
            if isinstance(task.get("loop_control"), dict) and task["loop_control"].get("loop_var"):
                names.add(task["loop_control"]["loop_var"])
    return names


def _read_by(node, key: str = "") -> set[str]:
    """Names read in templates ({{ }}) and in conditionals of a task file."""
    if isinstance(node, dict):
        return set().union(*(_read_by(v, k) for k, v in node.items()))
    if isinstance(node, list):
        return set().union(*(_read_by(v, key) for v in node))
    if not isinstance(node, str):
        return set()
    if key in _CONDITIONALS:
        return set(_NAME.findall(node))
    return set().union(*(_NAME.findall(expr) for expr in re.findall(r"{{(.*?)}}", node, re.S)))


@pytest.mark.parametrize(
    "role, must_list",
    [
        (
            "rolling_upgrade",
            (
                "kong_version_target",
                "kong_upgrade_confirm",
                "kong_traffic_steps",
                "kong_gate_soak_seconds",
                "kong_gate_max_error_rate",
                "kong_rolling_topology",
                "kong_drain_serial",
                "kong_lb_socket",
                "kong_smoke_key",
                "kong_admin_url",
                "kong_gate_node_metrics",
                "kong_lb_nginx_conf",
            ),
        ),
        (
            "upgrade_common",
            (
                "kong_gate_max_error_rate",
                "kong_smoke_key",
                "kong_conclude_admin_url",
                "kong_post_upgrade_watch",
            ),
        ),
        (
            "in_place_upgrade",
            (
                "kong_version_target",
                "kong_upgrade_confirm",
                "kong_inplace_hosts",
                "kong_admin_url",
                "kong_restore_database_mode",
                "kong_pg_password",
                "kong_smoke_path",
            ),
        ),
    ],
)
def test_role_documentation_lists_every_variable_the_role_reads(role, must_list):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".venv", "collections"))
    doc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-doc"), "-t", "role", f"kongops.upgrade.{role}"], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert doc.returncode == 0, doc.stderr
    text = re.sub(r"\x1b\[[0-9;]*m", "", doc.stdout)
    listed = set(re.findall(r"^ {3}(kong_\w+)", text, re.M))
    for name in must_list:
        assert name in listed, f"ansible-doc -t role kongops.upgrade.{role} does not list {name}"
    if role == "rolling_upgrade":
        assert re.search(r"kong_rolling_topology .*?choices: \[beside, replace\]", text, re.S)

    read = set()
    for path in _yaml_files(os.path.join("roles", role, "tasks")):
        with open(path) as fh:
            read |= _read_by(yaml.safe_load(fh))
    # the kong_node role's own variables (kong_node_*) are documented by that role, which these roles include
    with open(os.path.join(REPO, "roles", "kong_node", "meta", "argument_specs.yml")) as fh:
        kong_node_vars = set(yaml.safe_load(fh)["argument_specs"]["main"]["options"])
    undocumented = read - listed - kong_node_vars - _set_by_the_collection() - _GROUPS
    assert not undocumented, f"variables the {role} role reads that ansible-doc does not list: {sorted(undocumented)}"


def test_every_admin_api_call_passes_the_tls_and_token_settings():
    """A task that gives a module the Admin API's address also gives it the CA, certificate checking,
    client certificate and token: one that forgets them cannot verify an operator's TLS Admin API and
    warns or fails only on real hosts."""
    wanted = ("admin_token", "ca_path", "validate_certs", "client_cert", "client_key")
    offenders = []
    for path in _yaml_files("playbooks", "roles"):
        with open(path) as fh:
            data = yaml.safe_load(fh)
        for task in _walk_tasks(data):
            for key, args in task.items():
                if isinstance(key, str) and key.startswith("kongops.upgrade.") and isinstance(args, dict) and "admin_url" in args:
                    missing = [p for p in wanted if p not in args]
                    if missing:
                        offenders.append(f"{os.path.relpath(path, REPO)}: {task.get('name')!r} lacks {missing}")
    assert not offenders, "\n".join(offenders)


def _argument_specs(role: str) -> dict:
    with open(os.path.join(REPO, "roles", role, "meta", "argument_specs.yml")) as fh:
        return yaml.safe_load(fh)["argument_specs"]


_ROLES = ["preflight", "rolling_upgrade", "in_place_upgrade", "dual_cluster_upgrade", "kong_node", "upgrade_common"]


@pytest.mark.parametrize("role", _ROLES)
def test_role_defaults_hold_only_documented_inputs(role):
    """A role's defaults are its inputs: each is an option of one of the role's entry points (the
    `kong_*` inputs are marked for ansible-lint's var-naming[no-role-prefix] for this reason), and
    what a role works out for itself is a fact or registered result whose name starts with __."""
    with open(os.path.join(REPO, "roles", role, "defaults", "main.yml")) as fh:
        text = fh.read()
    defaults = yaml.safe_load(text) or {}
    specs = _argument_specs(role)
    documented = set().union(*(set(spec.get("options") or {}) for spec in specs.values()))
    assert not set(defaults) - documented, f"defaults of {role} that no entry point documents: {sorted(set(defaults) - documented)}"
    unmarked = [
        line.split(":")[0]
        for line in text.splitlines()
        if re.match(r"kong_\w+:", line) and not line.startswith(f"{role}_") and "noqa: var-naming[no-role-prefix]" not in line
    ]
    assert not unmarked, unmarked


def test_an_input_has_one_default_in_every_role_that_defaults_it():
    """An input that several roles read (kong_lb_socket: rolling_upgrade for its own checks, upgrade_common
    for the gate) has the same default in each of their defaults, and an entry point that documents a
    default documents the one its role's defaults hold: one role changed alone would make the same
    playbook behave differently depending on which role reads the variable."""
    by_name: dict[str, dict[str, object]] = {}
    wrong_doc = []
    for role in _ROLES:
        with open(os.path.join(REPO, "roles", role, "defaults", "main.yml")) as fh:
            defaults = yaml.safe_load(fh) or {}
        for name, value in defaults.items():
            by_name.setdefault(name, {})[role] = value
        for entry, spec in _argument_specs(role).items():
            for name, option in (spec.get("options") or {}).items():
                if name in defaults and "{{" not in str(defaults[name]) and option.get("default", defaults[name]) != defaults[name]:
                    wrong_doc.append(f"{role} {entry}: {name} documented {option['default']!r}, defaults hold {defaults[name]!r}")
    differing = {name: roles for name, roles in by_name.items() if len({repr(v) for v in roles.values()}) > 1}
    assert not differing, differing
    assert not wrong_doc, "\n".join(wrong_doc)
    shared = {name for name, roles in by_name.items() if len(roles) > 1}
    assert {"kong_lb_socket", "kong_work_dir", "kong_gate_max_error_rate"} <= shared, shared


_ROLE_INCLUDES = {key for key in _INCLUDES if key.endswith("_role")}


def _task_files_tasks(*tops: str):
    """(path, task) for every task of the playbooks and role task files under `tops`."""
    for path in _yaml_files(*tops):
        if "/tasks/" not in path and "/playbooks/" not in path:
            continue
        with open(path) as fh:
            data = yaml.safe_load(fh)
        for task in _walk_tasks(data):
            yield path, task


def test_the_strategies_task_files_hold_no_journal_writes():
    """The role task files read as the runbook's steps: what the run journal records around a phase is
    upgrade_common's phase_step and its table (__upgrade_common_phase_journal), around a node's steps its node_step;
    no strategy's task file includes upgrade_common's journal itself (preflight's start_run, which opens
    the journal, is the one file whose subject is the journal)."""
    writers = []
    for path, task in _task_files_tasks("roles"):
        rel = os.path.relpath(path, REPO)
        if rel.startswith("roles/upgrade_common/") or rel == "roles/preflight/tasks/start_run.yml":
            continue
        for key in _ROLE_INCLUDES & set(task):
            args = task[key]
            if (
                isinstance(args, dict)
                and args.get("name", "").endswith("upgrade_common")
                and args.get("tasks_from") in ("journal", "record_node", "record_nodes")
            ):
                writers.append(f"{rel}: {task.get('name')}")
        if "kongops.upgrade.kong_upgrade_run" in task:
            writers.append(f"{rel}: {task.get('name')}")
    assert not writers, "journal writes in the strategies' task files:\n" + "\n".join(writers)


def test_the_plugins_facts_are_read_as_facts_not_as_top_level_variables():
    """A fact the collection's plugins return (the run journal, the gate's verdict) is also a top-level
    variable only while Ansible's inject_facts_as_vars is on. Every read of one that no task sets with
    set_fact goes through ``ansible_facts`` so that the playbooks work with it off (the integration suites
    run them that way, ansible_run.ansible_env)."""
    set_by_set_fact = set()
    for _path, task in _task_files_tasks("roles", "playbooks"):
        set_by_set_fact.update(_set_fact_names(task))
    facts_only = sorted(_facts_of_the_collections_plugins() - set_by_set_fact)
    assert "kong_journal" in facts_only, facts_only
    # not as ansible_facts' key, nor as the module's name (kongops.upgrade.kong_gate)
    bare = re.compile(r"(?<!ansible_facts\.)(?<!kongops\.upgrade\.)\b(?:" + "|".join(facts_only) + r")\b")
    found = []
    for path in _yaml_files("roles", "playbooks"):
        if "/meta/" in path:
            continue
        with open(path) as fh:
            for number, line in enumerate(fh, start=1):
                if not line.lstrip().startswith("#") and bare.search(line):
                    found.append(f"{os.path.relpath(path, REPO)}:{number}: {line.strip()}")
    assert not found, "a plugin's fact read as a top-level variable:\n" + "\n".join(found)


def test_every_phase_record_names_an_entry_point_with_its_records():
    """Each record of __upgrade_common_phase_journal belongs to an entry point that exists and has an argument spec,
    and holds only what phase_step reads (a misspelt key would be a record never written)."""
    with open(os.path.join(REPO, "roles", "upgrade_common", "vars", "main.yml")) as fh:
        table = yaml.safe_load(fh)["__upgrade_common_phase_journal"]
    wrong = []
    for key, record in table.items():
        role, entry = key.split("/")
        if entry not in _argument_specs(role):
            wrong.append(f"{key}: no entry point {entry} of {role} with an argument spec")
        if not set(record) <= {"before", "after", "always", "check_mode"} or not {"before", "after"} & set(record):
            wrong.append(f"{key}: {sorted(record)}")
        if not set(record.get("check_mode", [])) <= {"before", "after"}:
            wrong.append(f"{key}: check_mode {record['check_mode']}")
    assert not wrong, "\n".join(wrong)


def test_every_entry_point_a_playbook_or_role_includes_has_an_argument_spec():
    """Each role task file that a playbook or another task file includes by `tasks_from` is an entry point:
    it has its own argument spec (shown by `ansible-doc -t role`), named without the file's extension so
    that Ansible finds and enforces it, and a caller that forgets a required variable or passes one of the
    wrong type is stopped at the include, naming the variable."""
    specs = {role: set(_argument_specs(role)) for role in os.listdir(os.path.join(REPO, "roles"))}
    missing = set()
    for path, task in _task_files_tasks("playbooks", "roles"):
        for key in _ROLE_INCLUDES & set(task):
            args = task[key]
            if isinstance(args, dict):
                if "{{" in args["name"]:
                    # upgrade_common's node_step and phase_step include the role and entry point their caller names
                    assert {k: args.get(k) for k in ("name", "tasks_from")} in (
                        {"name": "{{ node_step_role }}", "tasks_from": "{{ node_step_from }}"},
                        {"name": "{{ phase_step_role }}", "tasks_from": "{{ phase_step_from }}"},
                    ), args
                    continue
                role = args["name"].rsplit(".", 1)[-1]
                entry = args.get("tasks_from", "main")
                if entry in ("node_step", "phase_step"):
                    named = task.get("vars") or {}
                    inner = (str(named.get(f"{entry}_role", "")).rsplit(".", 1)[-1], str(named.get(f"{entry}_from", "")))
                    if inner[1] not in specs.get(inner[0], ()):
                        missing.add(f"{inner[0]} {inner[1]} (the steps of a {entry} in {os.path.relpath(path, REPO)})")
                if entry.endswith((".yml", ".yaml")):
                    # Ansible looks the spec up by the tasks_from string itself (ansible/playbook/role/__init__.py,
                    # _prepend_validation_task): "x.yml" never matches the entry point "x", so nothing is validated
                    missing.add(f"{role} {entry}: name the entry point without its extension ({os.path.relpath(path, REPO)})")
                elif entry not in specs[role]:
                    missing.add(f"{role} {entry} (included from {os.path.relpath(path, REPO)})")
    assert not missing, "entry points without an argument spec:\n" + "\n".join(sorted(missing))


@pytest.mark.parametrize(
    "role, entry, given, required",
    [
        ("upgrade_common", "record_node", "", "journal_node_state"),
        ("upgrade_common", "abort", "      vars:\n        abort_phase: shift\n", "abort_reason"),
    ],
)
def test_entry_point_specs_refuse_a_missing_required_variable(role, entry, given, required, tmp_path):
    """The entry points' specs are enforced where they are included: an include that leaves out a
    required variable fails before its first task, naming the variable."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.include_role:\n        name: kongops.upgrade.{role}\n        tasks_from: {entry}\n{given}"
    )
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    done = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert required in done.stdout and "missing required arguments" in done.stdout, done.stdout[-2000:]
