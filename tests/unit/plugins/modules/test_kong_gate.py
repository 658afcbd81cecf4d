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


def action_on_the_lb(args):
    """The action of a task delegated to the load balancer's host (its soak runs there as the module)."""
    task = mock.MagicMock()
    task.args = args
    task.async_val = 0
    task.check_mode = False
    task.delegate_to = "lb1"
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    return action_class()(task, connection, mock.MagicMock(check_mode=False), loader=None, templar=None, shared_loader_obj=None)


def test_the_action_runs_the_module_for_a_soak(controller_context):
    act = action_on_the_lb({"backend": "haproxy", "haproxy_backend": "kong", "soak_seconds": 4, "label": "step 10 %"})
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
    # the closing reading is the result's (a later gate's since), not the verdict's (the journal keeps verdicts)
    assert "closing" not in res["verdict"] and res["closing"]["after"]["y1"]["status"].startswith("DOWN")
    assert res["closing"]["stats"] == {} and isinstance(res["closing"]["stats_at"], float)
    rc, res = run(capsys, {"backend": "haproxy", "socket": lb.socket, "haproxy_backend": "nope", "servers": ["y1"]})
    assert rc == 1 and "no backend nope in HAProxy" in res["msg"] and res["backend"] == "nope"


class _StatusListener:
    """A node's status listener: /status/ready answers ``ready`` (200, or 503 with Kong's message, or any
    other status) and /metrics the prometheus plugin's per-status counters; counts requests in flight."""

    def __init__(self, ready=200, requests=0, errors=0, delay=0.0, gauge=None):
        import http.server
        import threading

        self.ready, self.requests, self.errors, self.delay = ready, requests, errors, delay
        self.paths = []
        # requests in flight, shared by the listeners of one test
        self.gauge = gauge if gauge is not None else {"now": 0, "most": 0}
        lock = self.gauge.setdefault("lock", threading.Lock())
        node = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with lock:
                    node.paths.append(self.path)
                    node.gauge["now"] += 1
                    node.gauge["most"] = max(node.gauge["most"], node.gauge["now"])
                try:
                    time.sleep(node.delay)
                    if self.path == "/status/ready":
                        code = node.ready
                        body = {200: {"message": "ready"}, 503: {"message": "no configuration available (empty configuration present)"}}.get(
                            code, {"message": "Not found"}
                        )
                        text = json.dumps(body)
                    elif self.path == "/metrics":
                        code = 200
                        text = (
                            f'kong_http_requests_total{{service="echo",route="echo",code="200",source="service",consumer=""}} {node.requests - node.errors}\n'
                            f'kong_http_requests_total{{service="echo",route="echo",code="502",source="service",consumer=""}} {node.errors}\n'
                        )
                    else:
                        code, text = 404, '{"message":"Not found"}'
                    data = text.encode()
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with lock:
                        node.gauge["now"] -= 1

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listeners():
    made = []

    def make(**kwargs):
        made.append(_StatusListener(**kwargs))
        return made[-1]

    yield make
    for node in made:
        node.close()


def test_the_action_reads_the_nodes_itself_around_a_wait_and_judges_them(controller_context, listeners):
    y1, y2 = listeners(requests=100), listeners(ready=503)
    res = action({"backend": "none", "soak_seconds": 0.1, "label": "step 10 %", "node_status_urls": {"y1": y1.url, "y2": y2.url}})
    # no module ran (action() refuses one): the wait and both readings were the controller's
    assert res["failed"] is True and res["msg"] == "gate failed at step 10 %: y2 not ready"
    assert res["verdict"]["not_ready"] == ["y2"] and res["nodes_after"]["y2"]["ready_http_status"] == 503
    assert res["nodes_after"]["y2"]["ready_reason"] == "no configuration available (empty configuration present)"
    assert res["nodes_after"]["y1"]["ready"] is True and res["nodes_after"]["y1"]["metrics"]["requests"] == 100
    assert y1.paths == ["/status/ready", "/metrics"] * 2  # before the wait and after it
    res = action({"backend": "none", "node_status_urls": {"y1": y1.url}, "node_metrics": False, "label": "watch"})
    assert not res.get("failed") and res["nodes_before"] == {} and "metrics" not in res["nodes_after"]["y1"]


def test_the_action_soaks_on_the_load_balancer_and_judges_each_nodes_own_counters(controller_context, listeners):
    y1 = listeners(requests=100)
    act = action_on_the_lb(
        {
            "backend": "haproxy",
            "haproxy_backend": "kong",
            "servers": ["y1"],
            "soak_seconds": 4,
            "label": "step 10 %",
            "fail_on_gate": False,
            "node_status_urls": {"y1": y1.url},
            "node_timeout": 3,
        }
    )
    lb = {"failed": False, "reasons": [], "label": "step 10 %", "requests": 20, "errors": 0, "error_rate": 0.0, "polls": []}

    closing = {"after": {"y1": {"weight": 10, "total_sessions": 20}}, "stats": {}, "stats_at": 1000.0}

    def soak_on_the_lb(**kwargs):
        y1.requests, y1.errors = 200, 50  # the node answered 50 of its 100 requests of the soak with a 5xx
        return {"changed": False, "verdict": lb, "closing": closing}

    act._execute_module = mock.MagicMock(side_effect=soak_on_the_lb)
    res = act.run(task_vars={})
    sent = act._execute_module.call_args.kwargs["module_args"]
    assert not [k for k in sent if k.startswith("node") or k == "nodes_before"], sent
    assert sent["fail_on_gate"] is False and sent["soak_seconds"] == 4
    assert not res.get("failed") and res["verdict"]["failed"] is True
    assert res["verdict"]["reasons"] == ["y1 answered 50 of 100 requests with a 5xx (50.0%) by its own /metrics > 1.0%"]
    assert res["verdict"]["nodes"]["y1"] == {"requests": 100, "errors": 50, "error_rate": 50.0, "restarted": False}
    assert res["closing"] == closing


def test_the_action_starts_from_the_last_gates_reading_and_reads_the_nodes_at_once(controller_context, listeners, monkeypatch):
    from ansible.module_utils import urls

    contexts = []
    make_context = urls.make_context
    monkeypatch.setattr(urls, "make_context", lambda **kw: contexts.append(kw) or make_context(**kw))
    gauge = {"now": 0, "most": 0}
    nodes = {f"y{i}": listeners(requests=10, delay=0.3, gauge=gauge) for i in range(1, 5)}
    before = {name: {"ready": True, "metrics": {"available": True, "requests": 10, "errors": 0}} for name in nodes}
    res = action({"node_status_urls": {name: node.url for name, node in nodes.items()}, "nodes_before": before})
    assert not res.get("failed") and res["nodes_before"] == before
    assert all(node.paths == ["/status/ready", "/metrics"] for node in nodes.values())
    # one thread per node: the four listeners were asked at the same time (each answers after 0.3 s)
    assert gauge["most"] == 4
    # one TLS context for the eight requests (each of its own costs about 50 ms of CPU)
    assert contexts == [{"cafile": None, "validate_certs": True}]


def test_a_node_the_controller_cannot_read_is_not_ready_and_says_why(controller_context, listeners):
    old = listeners(ready=404)
    closed = listeners()
    closed.close()
    res = action({"node_status_urls": {"old": old.url, "gone": closed.url}, "node_metrics": False, "node_timeout": 2, "fail_on_gate": False})
    after = res["nodes_after"]
    assert after["old"]["ready"] is False and "no /status/ready (Kong before 3.3" in after["old"]["ready_reason"]
    assert after["gone"]["ready"] is False and after["gone"]["ready_reason"].startswith("status listener unreachable: GET " + closed.url)
    assert res["verdict"]["not_ready"] == ["gone", "old"]


def test_bad_node_status_urls_are_refused_before_anything_is_read(controller_context):
    res = action({"node_status_urls": {"y1": "10.0.0.21:8100"}})
    assert res["failed"] is True and res["param"] == "node_status_urls"
    assert res["msg"].startswith("node_status_urls: y1's URL '10.0.0.21:8100' is not a URL")
    res = action({"node_status_urls": {"y1": "http://10.0.0.21:8100"}, "node_timeout": 0})
    assert res["failed"] is True and res["param"] == "node_timeout"


def test_the_status_listener_client_returns_every_answer_and_retries_only_a_refused_connection(listeners):
    from ansible_collections.kongops.upgrade.plugins.module_utils._kong_admin import KongAdminError, StatusListener

    node = listeners(ready=503)
    naps = []
    answer = StatusListener(node.url + "/", sleep=naps.append).raw("GET", "/status/ready")
    assert (answer.status_code, answer.url) == (503, node.url + "/status/ready") and answer.json()["message"].startswith("no configuration")
    assert StatusListener(node.url).raw("GET", "/nowhere").status_code == 404 and naps == []
    node.close()
    with pytest.raises(KongAdminError) as exc:
        StatusListener(node.url, sleep=naps.append).raw("GET", "/status/ready")
    assert naps == [0.3, 0.6] and str(exc.value).startswith(f"GET {node.url}/status/ready failed: ") and exc.value.url == node.url + "/status/ready"
