"""Safety rules of the playbooks that need no sandbox: real ansible-playbook runs against small
inventories of local hosts, with simulated Kong nodes (tests/kongsim) where a node must answer.

Each test names the defect it guards against (docs/reliability.md lists them)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.integration.ansible_run import run_playbook
from tests.services.haproxy import freeze_front_config

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "kongsim"))
from kongsim_testlib import KongNode, install_kong  # noqa: E402

IN_PLACE = os.path.join(REPO, "playbooks", "in_place_upgrade.yml")
ROLLING = os.path.join(REPO, "playbooks", "rolling_upgrade.yml")
ROLLBACK = os.path.join(REPO, "playbooks", "rollback.yml")
PY = os.path.join(REPO, ".venv", "bin", "python")
LOCAL = f"ansible_connection=local ansible_python_interpreter={PY}"
DECLARATIVE = "_format_version: '3.0'\nservices:\n- name: echo\n  url: http://127.0.0.1:9/\n"


@pytest.fixture(scope="module")
def kong_bins(tmp_path_factory):
    base = tmp_path_factory.mktemp("kong-installs")
    return {v: install_kong(v, str(base / v)) for v in ("3.8.1", "3.9.3")}


@pytest.fixture
def node(kong_bins, tmp_path):
    started = []

    def make(version: str, name: str) -> KongNode:
        kong = KongNode(kong_bins[version], str(tmp_path / "nodes"), name=name, declarative=DECLARATIVE)
        kong.start()
        started.append(kong)
        return kong

    yield make
    for kong in started:
        kong.stop()


def inventory(groups: dict, **all_vars) -> str:
    """INI text: `groups` maps a group to {host: {var: value}}; every host connects locally."""
    lines = [f"localhost {LOCAL}"]
    for group, hosts in groups.items():
        lines.append(f"[{group}]")
        for host, hostvars in hosts.items():
            conn = [] if "ansible_connection" in hostvars else [LOCAL]
            lines.append(" ".join([host] + conn + [f"{k}={v}" for k, v in hostvars.items()]))
    lines.append("[all:vars]")
    lines += [f"{k}={v}" for k, v in all_vars.items()]
    return "\n".join(lines) + "\n"


def base_vars(work_dir, **extra) -> dict:
    return {"kong_work_dir": str(work_dir), "kong_cluster_name": "c1", "kong_upgrade_confirm": True, "kong_version_target": "3.9.3", **extra}


def failure_messages(run) -> str:
    out = []
    for play in run.data.get("plays", []):
        for task in play.get("tasks", []):
            for res in task["hosts"].values():
                if res.get("failed"):
                    out.append(str(res.get("msg", "")))
                for item in res.get("results", []) or []:
                    if isinstance(item, dict) and item.get("failed"):
                        out.append(str(item.get("msg", "")))
    return "\n".join(out) or run.stdout[-3000:] + run.stderr[-3000:]


def task(run, name: str) -> dict | None:
    """The first result of the task called `name` (with or without its role's prefix), None if none ran."""
    for play in run.data.get("plays", []):
        for entry in play.get("tasks", []):
            if entry["task"]["name"] == name or entry["task"]["name"].endswith(" : " + name):
                return next(iter(entry["hosts"].values()))
    return None


def ran(run, name: str) -> bool:
    res = task(run, name)
    return res is not None and not res.get("skipped")


def finished_journal(work_dir) -> str:
    """An earlier run's finished journal: it must stay where it is when a run is refused."""
    path = os.path.join(str(work_dir), "c1", "journal.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump({"run_id": "earlier", "status": "done", "strategy": "rolling", "to": "3.8.1"}, fh)
    return path


# Item 9: inputs refused early, before the journal is opened or an earlier one archived.


def test_empty_kong_x_is_refused_by_name(tmp_path):
    journal = finished_journal(tmp_path)
    run = run_playbook(IN_PLACE, inventory=inventory({"kong_x": {}}), extra_vars=base_vars(tmp_path, kong_mode="traditional"))
    assert run.rc != 0
    msg = failure_messages(run)
    assert "kong_inplace_hosts" in msg and "'kong_x' has no hosts" in msg, msg
    assert "HostVarsVars" not in run.stdout + run.stderr
    assert os.listdir(os.path.dirname(journal)) == ["journal.json"]


def test_target_equal_to_current_is_refused_before_any_node_is_contacted(tmp_path):
    finished_journal(tmp_path)
    inv = inventory({"kong_x": {"x1": {"kong_admin_url": "http://127.0.0.1:9"}}}, kong_mode="traditional")
    run = run_playbook(IN_PLACE, inventory=inv, extra_vars=base_vars(tmp_path, kong_version_current="3.9.3"))
    assert run.rc != 0
    assert "already run" in failure_messages(run), failure_messages(run)
    assert not ran(run, "Observe the node")
    assert os.listdir(os.path.join(str(tmp_path), "c1")) == ["journal.json"]


def test_kong_conf_properties_the_path_stops_reading_are_refused_before_the_journal(tmp_path, kong_bins):
    """A 2.8 kong.conf grown over the years: 3.x reads client_max_body_size (a 2.8 alias) and
    nginx_optimizations no more, without a word, and bundles a plugin named as a custom one.
    Preflight names each, before anything changes."""
    # a custom plugin named as one 3.x bundles (opentelemetry, bundled from 3.0), installed as Kong requires
    plugin = tmp_path / "lua" / "kong" / "plugins" / "opentelemetry"
    plugin.mkdir(parents=True)
    for part in ("handler", "schema"):
        (plugin / f"{part}.lua").write_text("return {}\n")
    old = KongNode(
        install_kong("2.8.5", str(tmp_path / "k285")),
        str(tmp_path / "nodes"),
        name="x1",
        declarative=DECLARATIVE.replace("'3.0'", "'2.1'") + "  routes:\n  - name: users\n    paths: ['/users/\\d+']\n",
        client_max_body_size="10m",
        nginx_optimizations="on",
        plugins="bundled,  opentelemetry ",
        lua_package_path=f"{tmp_path}/lua/?.lua;;",
    )
    old.start()
    try:
        journal = finished_journal(tmp_path)
        inv = inventory({"kong_x": {"x1": {"kong_admin_url": old.admin_url, "kong_node_conf_path": old.conf_path}}}, kong_mode="traditional")
        run = run_playbook(IN_PLACE, inventory=inv, extra_vars=base_vars(tmp_path, kong_version_target="3.4.2"))
        assert run.rc != 0
        msg = failure_messages(run)
        # the default stops at high: the dropped alias; the removed property (medium) is counted
        assert "conf-deprecated-alias-dropped" in msg and "x1: client_max_body_size (set nginx_http_client_max_body_size" in msg
        assert "kong_breaking_fix=true" in msg and "kong_breaking_fail_on=none" in msg
        # the configuration read from x1's Admin API: a 2.x regex path that 3.x reads as a prefix without `~`
        assert "route-regex-path-tilde" in msg and "(route 'users') -> '~/users/\\d+'" in msg
        assert "custom-plugin-name-bundled" in msg and "custom plugin 'opentelemetry' (kong.conf `plugins`): bundled from 3.4" in msg
        assert "3 breaking change(s) at severity high" in msg and "2 finding(s) below high are in the plan too" in msg
        run = run_playbook(IN_PLACE, inventory=inv, extra_vars=base_vars(tmp_path, kong_version_target="3.4.2", kong_breaking_fail_on="medium"))
        msg = failure_messages(run)
        assert run.rc != 0 and "conf-setting-removed" in msg and "x1: nginx_optimizations" in msg
        assert not ran(run, "Start the run") and not ran(run, "Archive a finished journal")
        assert os.listdir(os.path.dirname(journal)) == ["journal.json"]
        # only the names left the node: no value of its kong.conf is in the output
        assert "10m" not in run.stdout + run.stderr
    finally:
        old.stop()


def test_target_equal_to_the_observed_version_is_refused_before_the_journal(tmp_path, node):
    journal = finished_journal(tmp_path)
    y = node("3.9.3", "y")
    inv = inventory({"kong_x": {"x1": {"kong_admin_url": y.admin_url}}}, kong_mode="traditional")
    run = run_playbook(IN_PLACE, inventory=inv, extra_vars=base_vars(tmp_path))
    assert run.rc != 0
    assert "already runs Kong 3.9.3" in failure_messages(run), failure_messages(run)
    assert not ran(run, "Start the run") and not ran(run, "Archive a finished journal")
    assert os.listdir(os.path.dirname(journal)) == ["journal.json"]


def test_same_host_in_kong_x_and_kong_y_is_refused_outside_the_replace_topology(tmp_path):
    finished_journal(tmp_path)
    inv = inventory({"kong_x": {"n1": {}}, "kong_y": {"n1": {}}, "kong_lb": {"lb": {}}}, kong_mode="dbless")
    run = run_playbook(ROLLING, inventory=inv, extra_vars=base_vars(tmp_path))
    assert run.rc != 0
    msg = failure_messages(run)
    assert "n1 also in kong_x" in msg and "kong_rolling_topology=replace" in msg, msg
    assert not ran(run, "Observe the node")
    assert os.listdir(os.path.join(str(tmp_path), "c1")) == ["journal.json"]


def test_kong_y_smaller_than_kong_x_is_refused_before_the_journal_is_archived(tmp_path, node):
    journal = finished_journal(tmp_path)
    x = node("3.8.1", "x")
    inv = inventory(
        {"kong_x": {"x1": {"kong_admin_url": x.admin_url}, "x2": {"kong_admin_url": x.admin_url}}, "kong_y": {"y1": {}}, "kong_lb": {"lb": {}}},
        kong_mode="dbless",
    )
    run = run_playbook(ROLLING, inventory=inv, extra_vars=base_vars(tmp_path))
    assert run.rc != 0
    assert "cannot carry the traffic of 2 kong_x node(s)" in failure_messages(run), failure_messages(run)
    assert os.listdir(os.path.dirname(journal)) == ["journal.json"], "the earlier journal was archived"
    with open(journal) as fh:
        assert json.load(fh)["run_id"] == "earlier"


def test_free_space_is_measured_on_the_node_the_backup_lands_on(tmp_path):
    finished_journal(tmp_path)
    inv = inventory({"kong_x": {"x1": {"kong_admin_url": "http://127.0.0.1:9"}}}, kong_mode="traditional")
    run = run_playbook(IN_PLACE, inventory=inv, extra_vars=base_vars(tmp_path, kong_backup_min_free_mb=10**12))
    assert run.rc != 0
    space = task(run, "Refuse when a backup location is short of space")
    assert [r["item"]["host"] for r in space["results"]] == ["x1", "controller"]
    assert all(r["failed"] for r in space["results"]), space
    msg = failure_messages(run)
    assert "\nx1: " + str(tmp_path) + " has " in msg and "kong_backup_min_free_mb" in msg, msg
    assert os.listdir(os.path.join(str(tmp_path), "c1")) == ["journal.json"]


# Item 2: each phase tagged on its own; `finish` (the point of no return) only in its own phase.


def listed_tasks(tmp_path, *args: str) -> str:
    import subprocess

    from tests.integration.ansible_run import VENV_BIN, ansible_env

    inv = tmp_path / "inventory.ini"
    inv.write_text(inventory({"kong_x": {"x1": {}, "x2": {}}}, kong_mode="traditional"))
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(inv), IN_PLACE, "--list-tasks", "-e", "kong_version_target=3.9.3", *args],
        capture_output=True,
        text=True,
        env=ansible_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_tags_migrate_runs_up_and_not_finish(tmp_path):
    out = listed_tasks(tmp_path, "--tags", "migrate")
    for name in ("Stop every X node", "Install Y", "Run kong migrations up", "Start and smoke-test Y", "Verify entity counts", "Watch the new version"):
        assert name in out, out
    assert "Run kong migrations finish" not in out, out


def test_tags_finish_runs_finish_and_not_the_downtime(tmp_path):
    out = listed_tasks(tmp_path, "--tags", "finish")
    assert "Run kong migrations finish" in out, out
    for name in ("Stop every X node", "Install Y", "Run kong migrations up", "Start and smoke-test Y"):
        assert name not in out, out


def test_skip_tags_finish_keeps_stop_install_migrate_start(tmp_path):
    out = listed_tasks(tmp_path, "--skip-tags", "finish")
    for name in ("Stage Y", "Stop every X node", "Install Y", "Run kong migrations up", "Start and smoke-test Y"):
        assert name in out, out
    assert "Run kong migrations finish" not in out, out


# Item 1: the finish gate and the restore guard need a URL per node that the gating host reaches.


def test_loopback_gate_url_of_a_remote_node_is_refused(tmp_path):
    finished_journal(tmp_path)
    remote = {"ansible_connection": "ssh", "ansible_host": "192.0.2.10", "kong_admin_url": "http://127.0.0.1:8001"}
    inv = inventory({"kong_x": {"x1": {"kong_admin_url": "http://127.0.0.1:8001"}, "x2": remote}}, kong_mode="traditional")
    run = run_playbook(IN_PLACE, inventory=inv, extra_vars=base_vars(tmp_path))
    assert run.rc != 0
    msg = failure_messages(run)
    assert "kong_admin_gate_url" in msg and "reaches x1 itself, not the node: x2" in msg, msg
    assert "x1 and x2 share the gate URL http://127.0.0.1:8001" in msg, msg
    assert not ran(run, "Observe the node")
    assert os.listdir(os.path.join(str(tmp_path), "c1")) == ["journal.json"]


def test_duplicate_gate_urls_are_refused_and_distinct_ones_pass(tmp_path):
    finished_journal(tmp_path)
    same = {"kong_admin_gate_url": "http://10.0.0.1:8001"}
    inv = inventory({"kong_x": {"x1": {}, "x2": same, "x3": same}}, kong_mode="traditional")
    run = run_playbook(IN_PLACE, inventory=inv, extra_vars=base_vars(tmp_path))
    assert run.rc != 0
    assert "x2 and x3 share the gate URL http://10.0.0.1:8001" in failure_messages(run), failure_messages(run)

    # distinct URLs, a remote node's loopback admin URL overridden by its gate URL, the controller's own nodes
    # on loopback: the gate check passes (the run then stops because nothing answers)
    remote = {"ansible_connection": "ssh", "ansible_host": "192.0.2.10", "kong_admin_gate_url": "http://192.0.2.10:8001"}
    inv = inventory(
        {"kong_x": {"x1": {"kong_admin_url": "http://127.0.0.1:9"}, "x2": {"kong_admin_url": "http://127.0.0.1:10"}, "x3": remote}}, kong_mode="traditional"
    )
    run = run_playbook(IN_PLACE, inventory=inv, extra_vars=base_vars(tmp_path))
    assert task(run, "Refuse gate URLs that do not single out each node").get("failed") is not True
    # the addresses PostgreSQL sees the nodes connect from, for the pg_stat_activity check before finish
    facts = task(run, "Work out how the first node of the group reaches each node")["ansible_facts"]
    assert facts["__kong_gate_db_clients"] == ["127.0.0.1", "127.0.0.1", "192.0.2.10"], facts
    assert facts["__kong_gate_urls"] == {"x1": "http://127.0.0.1:9", "x2": "http://127.0.0.1:10", "x3": "http://192.0.2.10:8001"}


def test_status_gate_urls_that_do_not_single_out_a_node_are_refused(tmp_path):
    """The gates read each node's kong_status_gate_url from the controller: a shared URL would let one node
    answer for two, a remote host's loopback URL would read the controller itself."""
    finished_journal(tmp_path)
    remote = {"ansible_connection": "ssh", "ansible_host": "192.0.2.11", "kong_admin_url": "http://192.0.2.11:8001"}
    same = {"kong_status_gate_url": "http://10.0.0.2:8100"}
    inv = inventory(
        {"kong_x": {"x1": {}}, "kong_y": {"y1": dict(remote, kong_status_gate_url="http://127.0.0.1:8100"), "y2": same, "y3": same}, "kong_lb": {"lb": {}}},
        kong_mode="dbless",
    )
    run = run_playbook(ROLLING, inventory=inv, extra_vars=base_vars(tmp_path))
    assert run.rc != 0
    msg = failure_messages(run)
    assert "kong_status_gate_url: the gates read every node's status listener from the controller" in msg, msg
    assert "y2 and y3 share http://10.0.0.2:8100" in msg and "reaches the controller itself, not the node: y1" in msg, msg
    assert not ran(run, "Observe the node")
    assert os.listdir(os.path.join(str(tmp_path), "c1")) == ["journal.json"]


# Item 7: freeze ownership. The conclusion verifies and thaws with the run's own run_id and never
# forces on abort; kong_freeze_force reaches the module; haproxy enforcement gets its socket and map.


def _freeze_play(work_dir, node_url: str, tasks: list, **extra_vars) -> str:
    import yaml

    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {
                "kong_work_dir": str(work_dir),
                "kong_cluster_name": "c1",
                "kong_admin_url": node_url,
                "kong_version_target": "3.9.3",
                "kong_strategy": "rolling",
                **extra_vars,
            },
            "tasks": [
                {
                    "name": "This run's journal",
                    "kongops.upgrade.kong_upgrade_run": {
                        "state": "opened",
                        "work_dir": str(work_dir),
                        "cluster": "c1",
                        "run_id": "mine",
                        "strategy": "rolling",
                        "from_version": "3.8.1",
                        "to_version": "3.9.3",
                    },
                }
            ]
            + tasks,
        }
    ]
    return yaml.safe_dump(play, sort_keys=False)


def _lock(work_dir) -> dict | None:
    path = os.path.join(str(work_dir), "c1", "freeze.lock.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def _other_runs_lock(work_dir, node_url: str):
    os.makedirs(os.path.join(str(work_dir), "c1"), exist_ok=True)
    run = run_playbook(
        _freeze_play(
            work_dir,
            node_url,
            [
                {
                    "name": "another run freezes",
                    "kongops.upgrade.kong_config_freeze": {
                        "state": "frozen",
                        "admin_url": node_url,
                        "run_id": "other",
                        "lock_path": os.path.join(str(work_dir), "c1", "freeze.lock.json"),
                    },
                }
            ],
        )
    )
    assert run.rc == 0, failure_messages(run)
    assert _lock(work_dir)["run_id"] == "other"


CONCLUDE = {"name": "Conclude", "ansible.builtin.include_role": {"name": "kongops.upgrade.upgrade_common", "tasks_from": "conclude"}}
FREEZE = {"name": "Freeze", "ansible.builtin.include_role": {"name": "kongops.upgrade.preflight", "tasks_from": "freeze.yml"}}


def test_an_aborted_run_leaves_another_runs_lock_alone(tmp_path, node):
    x = node("3.8.1", "x")
    _other_runs_lock(tmp_path, x.admin_url)
    abort = {
        "name": "The run failed on the lock",
        "ansible.builtin.set_fact": {"kong_abort": {"phase": "backup", "reason": "the cluster is frozen by run other", "needs_attention": False}},
    }
    run = run_playbook(_freeze_play(tmp_path, x.admin_url, [abort, CONCLUDE], kong_conclude_admin_url=x.admin_url))
    assert run.rc != 0 and "The upgrade stopped in phase backup" in failure_messages(run)
    assert _lock(tmp_path) is not None and _lock(tmp_path)["run_id"] == "other", "another run's lock was released"


def test_kong_freeze_force_takes_over_a_stale_lock(tmp_path, node):
    x = node("3.8.1", "x")
    _other_runs_lock(tmp_path, x.admin_url)
    refused = run_playbook(_freeze_play(tmp_path, x.admin_url, [FREEZE]))
    assert refused.rc != 0 and _lock(tmp_path)["run_id"] == "other"
    forced = run_playbook(_freeze_play(tmp_path, x.admin_url, [FREEZE], kong_freeze_force=True))
    assert forced.rc == 0, failure_messages(forced)
    assert _lock(tmp_path)["run_id"] == "mine"


def test_haproxy_enforcement_gets_its_socket_and_map(tmp_path, node, haproxy_factory):
    x = node("3.8.1", "x")
    os.makedirs(os.path.join(str(tmp_path), "c1"), exist_ok=True)
    freeze_map = tmp_path / "kong-freeze.map"
    freeze_map.write_text("")
    lb = haproxy_factory(freeze_front_config("c1", str(freeze_map), x.admin_url.split("//")[1]))
    settings = {
        "kong_freeze_enforce": "haproxy",
        "kong_freeze_enforce_file": str(freeze_map),
        "kong_freeze_haproxy_socket": lb.socket,
        "kong_conclude_admin_url": x.admin_url,
    }
    run = run_playbook(_freeze_play(tmp_path, x.admin_url, [FREEZE], **settings))
    assert run.rc == 0, failure_messages(run)
    assert "c1 {" in lb.command(f"show map {freeze_map}")
    run = run_playbook(_freeze_play(tmp_path, x.admin_url, [CONCLUDE], **settings))
    assert run.rc == 0, failure_messages(run)
    assert "c1" not in lb.command(f"show map {freeze_map}") and _lock(tmp_path) is None


# Item 4: whatever fails, the conclusion runs; pool and server names are checked before Y exists.


def _rolling_lb(haproxy_factory, servers: list):
    lines = "\n".join(f"    server {name} 127.0.0.1:{9 + i} weight 100" for i, name in enumerate(servers))
    return haproxy_factory(f"""
frontend kong_proxy_front
    bind 127.0.0.1:{{port:proxy}}
    default_backend kong_proxy
backend kong_proxy
{lines}
""")


def test_unknown_server_names_are_refused_before_the_journal(tmp_path, node, haproxy_factory):
    journal = finished_journal(tmp_path)
    x = node("3.8.1", "x")
    lb = _rolling_lb(haproxy_factory, ["x1", "kong-y1"])
    inv = inventory(
        {"kong_x": {"x1": {"kong_admin_url": x.admin_url}}, "kong_y": {"y1": {}}, "kong_lb": {"lb": {"kong_lb_socket": lb.socket}}}, kong_mode="dbless"
    )
    run = run_playbook(ROLLING, inventory=inv, extra_vars=base_vars(tmp_path))
    assert run.rc != 0
    msg = failure_messages(run)
    assert "pool kong_proxy has no server named y1" in msg and "kong_lb_server" in msg, msg
    assert os.listdir(os.path.dirname(journal)) == ["journal.json"]


def test_a_failing_rescue_still_closes_the_run(tmp_path, node, haproxy_factory):
    """The load balancer dies after the journal is opened: the shift fails, so does its rescue (which
    calls the load balancer again), and still the failure is journaled and the conclusion runs."""
    import threading
    import time

    x = node("3.8.1", "x")
    lb = _rolling_lb(haproxy_factory, ["x1", "y1"])
    inv = inventory(
        {
            "kong_x": {"x1": {"kong_admin_url": x.admin_url}},
            "kong_y": {"y1": {"kong_admin_url": x.admin_url}},
            "kong_lb": {"lb": {"kong_lb_socket": lb.socket}},
        },
        kong_mode="dbless",
    )
    path = os.path.join(str(tmp_path), "c1", "journal.json")

    def kill_lb_once_the_journal_is_open():
        deadline = time.time() + 300
        while time.time() < deadline and not os.path.exists(path):
            time.sleep(0.02)
        lb.stop()

    killer = threading.Thread(target=kill_lb_once_the_journal_is_open, daemon=True)
    killer.start()
    from tests.integration.ansible_run import VENV_BIN, ansible_env  # noqa: F401

    run = run_playbook(ROLLING, inventory=inv, extra_vars=base_vars(tmp_path), tags="shift,thaw")
    killer.join(5)
    assert run.rc != 0
    with open(path) as fh:
        journal = json.load(fh)
    assert journal["status"] == "failed", journal
    assert journal["failure"]["phase"] == "shift" and journal["failure"]["needs_attention"] is True, journal["failure"]
    assert "ended_at" in journal, "the conclusion did not run"
    assert "Configuration writes stay frozen" in failure_messages(run)


def test_gate_urls_of_nodes_left_out_by_limit_are_checked_too(tmp_path):
    import subprocess

    from tests.integration.ansible_run import VENV_BIN, ansible_env

    finished_journal(tmp_path)
    remote = {"ansible_connection": "ssh", "ansible_host": "192.0.2.10", "kong_admin_url": "http://127.0.0.1:8001"}
    inv = tmp_path / "inventory.ini"
    inv.write_text(inventory({"kong_x": {"x1": {"kong_admin_url": "http://127.0.0.1:8002"}, "x2": remote}}, kong_mode="traditional"))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(base_vars(tmp_path)))
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(inv), IN_PLACE, "--limit", "x1,localhost", "-e", f"@{extra}"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        check=False,
    )
    assert proc.returncode != 0
    assert "reaches x1 itself, not the node: x2" in proc.stdout, proc.stdout[-3000:]


def test_a_loopback_admin_url_of_a_remote_first_node_is_refused_before_the_journal(tmp_path):
    """The freeze, its verification and the thaw run on the controller with the first X node's (and the
    first Y node's) kong_admin_url: a loopback URL of a remote host would reach the controller itself."""
    remote = {"ansible_connection": "ssh", "ansible_host": "192.0.2.10"}
    inv = inventory(
        {
            "kong_x": {"x1": dict(remote, kong_admin_url="https://127.0.0.1:8444"), "x2": {}},
            "kong_y": {"y1": dict(remote, ansible_host="192.0.2.11"), "y2": {}},
            "kong_lb": {"lb1": {}},
        },
        kong_mode="dbless",
    )
    run = run_playbook(ROLLING, inventory=inv, extra_vars=base_vars(tmp_path))
    assert run.rc != 0
    msg = failure_messages(run)
    assert "kong_admin_url" in msg and "x1 (https://127.0.0.1:8444), y1 (http://127.0.0.1:8001) are loopback URLs of a remote host" in msg, msg
    assert not ran(run, "Observe the node")
    assert not os.path.exists(os.path.join(str(tmp_path), "c1"))

    # the controller's own first nodes may use loopback URLs; a remote first node with its address passes
    inv = inventory(
        {
            "kong_x": {"x1": {"kong_admin_url": "http://127.0.0.1:9"}},
            "kong_y": {"y1": dict(remote, kong_admin_url="http://192.0.2.11:8001")},
            "kong_lb": {"lb1": {}},
        },
        kong_mode="dbless",
    )
    run = run_playbook(ROLLING, inventory=inv, extra_vars=base_vars(tmp_path))
    checked = task(run, "Refuse an Admin API URL the controller cannot reach the first nodes at")
    assert checked is not None and checked.get("failed") is not True, failure_messages(run)
