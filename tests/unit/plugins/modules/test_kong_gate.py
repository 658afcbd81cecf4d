"""kong_gate: the module against a real HAProxy (a down server in rotation stops the soak), and the
action's judgment on the controller."""

from __future__ import annotations

import json
import time
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.kongops.upgrade.plugins.modules import kong_gate


@pytest.fixture
def controller_context():
    """The action runs in the controller; importing it marks the whole process as one, which changes how
    modules tested later in the same session report warnings. Keep the mark to this test."""
    from ansible.module_utils import _internal

    was = _internal.is_controller
    _internal.is_controller = True
    yield
    _internal.is_controller = was


def action_class():
    from ansible_collections.kongops.upgrade.plugins.action.kong_gate import ActionModule

    return ActionModule


def run(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        kong_gate.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def action(args, check=False):
    task = mock.MagicMock()
    task.args = args
    task.async_val = 0
    task.check_mode = check
    task.delegate_to = None
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    act = action_class()(task, connection, mock.MagicMock(check_mode=check), loader=None, templar=None, shared_loader_obj=None)
    act._execute_module = mock.MagicMock(side_effect=AssertionError("no module may run"))
    return act.run(task_vars={"inventory_hostname": "localhost"})


def test_bad_input_names_the_parameter(capsys):
    rc, res = run(capsys, {"backend": "haproxy", "servers": ["y1"]})
    assert rc == 1 and res["param"] == "haproxy_backend" and "haproxy_backend" in res["msg"]
    rc, res = run(capsys, {"interval_seconds": 0})
    assert rc == 1 and res["param"] == "interval_seconds"


def test_a_soak_without_counters_waits_and_passes(capsys):
    started = time.monotonic()
    rc, res = run(capsys, {"soak_seconds": 0.3, "label": "watch"})
    assert rc == 0 and time.monotonic() - started >= 0.3
    assert res["verdict"]["failed"] is False and res["ansible_facts"]["kong_gate"] == res["verdict"]
    assert res["changed"] is False and "FAILED" not in res["msg"]


def test_the_action_judges_on_the_controller_without_a_module(controller_context):
    res = action(
        {
            "lb_verdict": {"failed": False, "reasons": [], "requests": 500, "errors": 0, "error_rate": 0.0},
            "nodes_after": {"y1": {"ready": True}, "y2": {"ready": True}},
            "label": "step 50 %",
        }
    )
    assert not res.get("failed") and res["ansible_facts"]["kong_gate"]["requests"] == 500
    assert res["msg"] == "step 50 %: 500 requests, 0 errors (0.0 %), passed"
    res = action({"lb_verdict": {"failed": False, "reasons": []}, "nodes_after": {"y1": {"ready": False}}, "label": "step 50 %"})
    assert res["failed"] is True and res["msg"] == "gate failed at step 50 %: y1 not ready"
    res = action({"lb_verdict": {"failed": False, "reasons": []}, "nodes_after": {"y1": {"ready": False}}, "fail_on_gate": False})
    assert not res.get("failed") and res["ansible_facts"]["kong_gate"]["failed"] is True
    res = action({"lb_verdict": {}, "max_error_rate": "lots"})
    assert res["failed"] is True and "max_error_rate" in res["msg"]


def test_the_action_runs_the_module_for_a_soak(controller_context):
    task = mock.MagicMock()
    task.args = {"backend": "haproxy", "haproxy_backend": "kong", "soak_seconds": 4, "label": "step 10 %"}
    task.async_val = 0
    task.check_mode = False
    task.delegate_to = "lb1"
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    act = action_class()(task, connection, mock.MagicMock(check_mode=False), loader=None, templar=None, shared_loader_obj=None)
    verdict = {
        "failed": False,
        "reasons": [],
        "label": "step 10 %",
        "requests": 20,
        "errors": 0,
        "error_rate": 0.0,
        "polls": [
            {"at": 2.0, "requests": 10, "errors": 0, "error_rate": 0.0, "failed": False, "reasons": []},
            {"at": 4.0, "requests": 20, "errors": 0, "error_rate": 0.0, "failed": False, "reasons": []},
        ],
    }
    act._execute_module = mock.MagicMock(return_value={"changed": False, "verdict": verdict, "ansible_facts": {"kong_gate": verdict}})
    with mock.patch.object(act._display, "v") as say:
        res = act.run(task_vars={})
    assert act._execute_module.call_args.kwargs["module_name"] == "kongops.upgrade.kong_gate"
    assert res["verdict"] == verdict
    lines = [c.args[0] for c in say.call_args_list]
    assert lines == [
        "step 10 %: check 1 at 2.0 s: 10 requests, 0 errors (0.0 %), holding",
        "step 10 %: check 2 at 4.0 s: 20 requests, 0 errors (0.0 %), holding",
        "step 10 %: 20 requests, 0 errors (0.0 %), passed",
    ]
    assert not any("FAILED" in line for line in lines)


HAPROXY = """
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
backend kong
    server y1 127.0.0.1:{port:y1} weight 10 check inter 200ms fall 1 rise 1
    server y2 127.0.0.1:{port:y2} weight 0
"""


def test_a_soak_on_a_real_haproxy_fails_a_down_server_in_rotation_early(capsys, haproxy_factory):
    lb = haproxy_factory(HAPROXY)  # nothing listens on y1's port: its health check takes it DOWN
    deadline = time.monotonic() + 10
    while True:
        rc, res = run(
            capsys, {"backend": "haproxy", "socket": lb.socket, "haproxy_backend": "kong", "servers": ["y1", "y2"], "label": "step 10 %", "fail_on_gate": False}
        )
        if res["verdict"]["failed"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rc == 0 and res["verdict"]["reasons"] == ["y1 is DOWN while in rotation"]
    started = time.monotonic()
    rc, res = run(
        capsys,
        {
            "backend": "haproxy",
            "socket": lb.socket,
            "haproxy_backend": "kong",
            "servers": ["y1", "y2"],
            "soak_seconds": 30,
            "interval_seconds": 0.5,
            "label": "step 10 %",
        },
    )
    assert rc == 1 and time.monotonic() - started < 5, "the soak stops at the first crossed gate"
    assert res["msg"] == "gate failed at step 10 %: y1 is DOWN while in rotation"
    assert res["verdict"]["servers"]["y1"]["status"].startswith("DOWN") and len(res["verdict"]["polls"]) == 1
    rc, res = run(capsys, {"backend": "haproxy", "socket": lb.socket, "haproxy_backend": "nope", "servers": ["y1"]})
    assert rc == 1 and "no backend nope in HAProxy" in res["msg"] and res["backend"] == "nope"
