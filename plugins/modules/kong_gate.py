# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
module: kong_gate
short_description: Soak a traffic step and judge its health gates, with the evidence
version_added: 0.2.0
description:
  - Watches the load balancer for a soak window (O(soak_seconds)) and says whether the Kong nodes it judges
    (O(servers)) held the gates, returning the verdict with the figures that decided it.
  - With O(backend=haproxy) the module reads the backend's per-server counters through the runtime API at the
    start, then every O(interval_seconds); each check compares the latest reading with the first and the soak
    stops at the first crossed gate. Errors are 5xx answers plus connection and response errors; a server in
    rotation (weight above 0) that is not up fails the gate, as does a server whose average response time is
    above O(max_response_ms). O(min_requests) is judged once, over the whole soak.
  - With O(backend=nginx) or O(backend=none) there are no per-server counters; the module waits O(soak_seconds)
    and the verdict comes from the nodes alone.
  - O(nodes_before) and O(nodes_after) (results of M(kongops.upgrade.kong_node_info) per node, read before and
    after the soak) add each node's readiness and its own 5xx rate (O(kongops.upgrade.kong_node_info#module:metrics=true))
    to the verdict. A counter lower than before means the node restarted; its current value is then the soak's.
    Nodes without per-status counters are listed, not failed.
  - O(lb_verdict) passes the load-balancer verdict of an earlier soak instead of reading the load balancer, so the
    nodes read after the soak are judged together with it.
  - Healthy checks print nothing at the default verbosity; with C(-v) the action prints one line per check.
    The verdict is also the fact C(kong_gate).
  - Without a soak and without a load balancer to read, the action judges on the controller and sends no module.
  - With O(node_status_urls) the whole gate is one task; the action reads every node's status listener on the
    controller, all at once (one thread per node), before the soak (unless O(nodes_before) already holds a reading of
    exactly those nodes) and after it, and judges them with the load balancer's verdict (RV(nodes_before),
    RV(nodes_after)). The soak itself still runs on the task's host (the load balancer's), or waits on the controller
    where there are no per-server counters.
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - kongops.upgrade.haproxy_runtime
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.actiongroup_none
attributes:
  check_mode:
    support: full
    details:
      - Nothing changes in any mode. In check mode the load balancer is read and judged once, without waiting.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  backend:
    description:
      - The load balancer to read. V(haproxy) reads O(haproxy_backend) through the runtime API (O(socket)).
      - V(nginx) and V(none) have no per-server counters; the soak only waits.
    type: str
    choices: [haproxy, nginx, none]
    default: none
  haproxy_backend:
    description: The HAProxy C(backend) (or C(listen)) section whose servers are read. Required when O(backend=haproxy).
    type: str
    default: ""
  servers:
    description: The load-balancer servers to judge (for example the kong_y servers); others are not judged.
    type: list
    elements: str
    default: []
  soak_seconds:
    description: How long to watch, in seconds. V(0) judges one reading at once.
    type: float
    default: 0.0
  interval_seconds:
    description: Seconds between two checks of the load balancer during the soak.
    type: float
    default: 5.0
  max_error_rate:
    description: Highest error rate allowed, in percent, over the servers and per node.
    type: float
    default: 1.0
  max_response_ms:
    description: Highest average response time of a server, in milliseconds.
    type: int
    default: 2000
  min_requests:
    description: Fewest requests the servers must answer during the soak for it to count as proven.
    type: int
    default: 0
  lb_verdict:
    description:
      - The RV(verdict) of an earlier soak; the load balancer is then not read and O(soak_seconds) is ignored.
    type: dict
  since:
    description:
      - The registered result of the M(kongops.upgrade.lb_weight) call that set the step's weights, on the same
        load balancer (O(backend=haproxy)). Its reading (RV(kongops.upgrade.lb_weight#module:after) with
        RV(kongops.upgrade.lb_weight#module:stats)) is the soak's first, and O(soak_seconds) count from its
        RV(kongops.upgrade.lb_weight#module:stats_at); the traffic is watched from the moment the weights were set,
        and the time between that task and this one is part of the soak, not added to it.
      - A result without C(after), C(stats) or a numeric C(stats_at) (another backend, check mode) is refused.
      - Ignored with O(lb_verdict).
    type: dict
  nodes_before:
    description: Node name to its M(kongops.upgrade.kong_node_info) result before the soak (its C(metrics) are used).
    type: dict
    default: {}
  nodes_after:
    description:
      - Node name to its M(kongops.upgrade.kong_node_info) result after the soak. A node that is not C(ready) fails
        the gate; with C(metrics) its own error rate since O(nodes_before) is judged.
    type: dict
  label:
    description: Names the gate (for example V(step 25 %)) in the messages.
    type: str
    default: gate
  fail_on_gate:
    description: Fail the task when a gate is crossed. With V(false) the verdict is returned as a success.
    type: bool
    default: true
  node_status_urls:
    description:
      - Node name to its status listener (Kong's C(status_listen)) as the controller reaches it, for example
        V(http://10.0.0.21:8100). Each is read with C(GET /status/ready) (Kong 3.3 and later; a node that answers
        anything but 200 is not ready, with Kong's message) and, with O(node_metrics), C(GET /metrics).
      - Read by the action on the controller (with Ansible's own HTTP client); never sent to the host.
      - Replaces O(nodes_after) (and O(nodes_before) when that does not cover exactly these nodes).
    type: dict
    default: {}
  node_metrics:
    description: With O(node_status_urls), also read each node's own request counters (Kong's prometheus plugin).
    type: bool
    default: true
  node_validate_certs:
    description: With O(node_status_urls), verify the TLS certificates of status listeners served over HTTPS.
    type: bool
    default: true
  node_ca_path:
    description: With O(node_status_urls), the CA bundle for status listeners over HTTPS (unset, the system's CAs).
    type: path
  node_timeout:
    description: With O(node_status_urls), seconds to wait for one node's answer.
    type: int
    default: 5
seealso:
  - module: kongops.upgrade.lb_weight
  - module: kongops.upgrade.kong_node_info
"""

EXAMPLES = r"""
- name: Soak the step on the load balancer
  kongops.upgrade.kong_gate:
    backend: haproxy
    socket: /run/haproxy/admin.sock
    haproxy_backend: kong
    servers: [y1, y2, y3]
    soak_seconds: 60
    interval_seconds: 5
    max_error_rate: 1.0
    label: step 25 %
    fail_on_gate: false
  delegate_to: lb1
  register: soak

- name: Judge the step with each new node's readiness and own counters
  kongops.upgrade.kong_gate:
    lb_verdict: "{{ soak.verdict }}"
    nodes_before: "{{ before_by_node }}"
    nodes_after: "{{ after_by_node }}"
    label: step 25 %
- name: A gate behind nginx in one task, the nodes read from the controller
  kongops.upgrade.kong_gate:
    backend: nginx
    soak_seconds: 60
    label: step 25 %
    node_status_urls:
      y1: http://10.0.0.21:8100
      y2: http://10.0.0.22:8100
      y3: http://10.0.0.23:8100
"""

RETURN = r"""
verdict:
  description: The verdict (also the fact C(kong_gate)).
  returned: always
  type: dict
  contains:
    failed:
      description: Whether a gate was crossed.
      type: bool
    reasons:
      description: One sentence per crossed gate.
      type: list
      elements: str
    requests:
      description: Requests the judged servers answered during the soak (load-balancer sessions).
      type: int
    errors:
      description: 5xx answers plus connection and response errors of those servers during the soak.
      type: int
    error_rate:
      description: Errors per request, in percent.
      type: float
    response_ms:
      description: The slowest average response time among the judged servers (HAProxy's C(rtime)), 0 when unknown.
      type: float
    servers:
      description: Per server C(requests), C(errors), C(status) and C(health).
      type: dict
    not_in_lb:
      description: Judged names the load balancer does not have (left to the node gates).
      type: list
      elements: str
    polls:
      description: One entry per check (C(at) seconds into the soak, C(requests), C(errors), C(error_rate), C(failed), C(reasons)).
      type: list
      elements: dict
    soaked_seconds:
      description: How long the soak lasted.
      type: float
    lb_counters:
      description: Whether the load balancer's counters were read.
      type: bool
    not_ready:
      description: Nodes that were not ready after the soak.
      type: list
      elements: str
    nodes:
      description: Per node C(requests), C(errors), C(error_rate), C(restarted), from its own counters.
      type: dict
    nodes_without_metrics:
      description: Nodes without per-status counters (not judged by them).
      type: list
      elements: str
  sample: {failed: false, reasons: [], requests: 1200, errors: 0, error_rate: 0.0, label: step 25 %,
           polls: [{at: 2.0, requests: 410, errors: 0, error_rate: 0.0, failed: false, reasons: []}]}
closing:
  description:
    - The soak's last reading of the load balancer (C(after), C(stats), C(stats_at)), in the shape O(since) takes; a later
      gate on the same load balancer passes it as O(since) to watch from where this soak stopped.
  returned: when the load balancer's counters were read (O(backend=haproxy), no O(lb_verdict))
  type: dict
nodes_before:
  description: With O(node_status_urls), node name to its reading before the soak (C(ready), C(ready_reason), C(metrics)).
  returned: when O(node_status_urls) is set
  type: dict
nodes_after:
  description:
    - With O(node_status_urls), node name to its reading after the soak, in the shape of
      M(kongops.upgrade.kong_node_info)'s result (C(ready), C(ready_reason), C(ready_source), C(ready_http_status), C(metrics), C(url)).
    - The next gate can pass it as O(nodes_before).
  returned: when O(node_status_urls) is set
  type: dict
"""

import copy

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kongops.upgrade.plugins.module_utils._gates import (
    KONG_GATE_ARG_SPEC,
    GateParamError,
    check_params,
    judge,
    make_reader,
    soak,
    summary,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._haproxy_runtime import HaproxyRuntimeError


def main():
    module = AnsibleModule(argument_spec=copy.deepcopy(KONG_GATE_ARG_SPEC), supports_check_mode=True)
    p = module.params
    try:
        check_params(p)
        if p["lb_verdict"] is not None:
            lb = p["lb_verdict"]
        else:
            watch = dict(p, soak_seconds=0.0) if module.check_mode else p
            lb = soak(make_reader(p), watch)
    except GateParamError as exc:
        module.fail_json(msg=str(exc), param=exc.param)
    except HaproxyRuntimeError as exc:
        module.fail_json(msg=f"{p['label']}: reading the load balancer failed: {exc}", **{"backend": p["haproxy_backend"], **exc.context()})
    # the soak's last reading is the result's, not the verdict's (the journal keeps verdicts)
    closing = lb.pop("closing", None)
    verdict = judge(lb, p)
    result = dict(changed=False, verdict=verdict, ansible_facts={"kong_gate": verdict})
    if closing is not None:
        result["closing"] = closing
    if verdict["failed"] and p["fail_on_gate"]:
        module.fail_json(msg=f"gate failed at {p['label']}: " + "; ".join(verdict["reasons"]), **result)
    result["msg"] = summary(verdict)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
