# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
module: lb_weight
short_description: Shift traffic between Kong nodes and drain them on HAProxy or nginx
version_added: 0.1.0
description:
  - Sets the weights and states of the servers behind a load balancer, so that traffic moves between
    groups of Kong nodes in steps (for example 10 % to the new version) and a node can be drained
    before it stops.
  - Weights are absolute (0-256) or a percentage of a server's initial weight; or, given groups of servers
    and a share per group, the module computes integer weights whose expected split is within one
    percentage point of the share, whatever the group sizes.
  - Returns the previous weights and states in RV(before); passing them back as O(restore) puts every
    server back exactly as it was.
  - B(HAProxy) is driven through its runtime API (C(set server ... weight|state)). Runtime changes are
    lost when HAProxy reloads or restarts unless O(persist) writes them to the server-state file or
    the configuration.
  - HAProxy applies each runtime command at once, so the module sends what adds capacity first (weights
    raised, then servers made ready) and what takes it away last (weights lowered, then servers drained or
    put in maintenance). Between two commands the backend always serves with every server that served
    before the change or every server that serves after it, never with none.
  - B(nginx) has no runtime API for upstreams in its open-source edition; the module rewrites the
    upstream include file O(upstream_file), checks it with C(nginx -t) (putting the previous file back
    if the check fails) and reloads nginx gracefully. The change survives reloads because it is the
    configuration.
  - On any error nothing is left changed; a failure half-way through restores what was already applied.
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - kongops.upgrade.haproxy_runtime
  - kongops.upgrade.nginx_upstream
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.actiongroup_none
attributes:
  check_mode:
    support: partial
    details:
      - HAProxy is read and the change is predicted exactly; nothing is sent to the runtime API or written.
      - nginx is not asked to validate the predicted file (C(nginx -t) needs the file in place), and there
        is nothing to wait for.
      - O(wait_drained) does not wait in check mode.
  diff_mode:
    support: full
    details:
      - The diff shows weight and state per server, plus the text of every file the change writes
        (O(upstream_file), O(state_file) or O(config_file)).
  platform:
    platforms: posix
options:
  backend:
    description:
      - The load balancer in front of the Kong nodes.
    type: str
    required: true
    choices: [haproxy, nginx]
  haproxy_backend:
    description:
      - The HAProxy C(backend) (or C(listen)) section whose servers are managed.
      - Required when O(backend=haproxy).
    type: str
  persist:
    description:
      - How HAProxy keeps runtime changes across a reload or restart.
      - V(none) changes the running process only. A reload or restart brings back the weights of the
        configuration and every server C(ready) (or C(disabled) per the configuration).
      - V(state_file) writes every backend's C(show servers state) to O(state_file) after the change. HAProxy
        loads it on reload or restart only if its configuration has C(server-state-file) naming that file and
        C(load-server-state-from-file global) (or C(local)) in C(defaults) or the backend, and only for servers
        whose configured weight did not change meanwhile.
      - V(config) rewrites the C(server) lines of O(haproxy_backend) in O(config_file) (C(weight N), and
        C(disabled) for C(maint)). The configured weight becomes the initial weight after a reload, so later
        percentages refer to it. C(drain) cannot be written to a configuration; such servers come back
        C(ready) after a reload (a warning says so). The edited file is checked with C(haproxy -c) when the
        C(haproxy) binary is found.
      - Used when O(backend=haproxy).
    type: str
    choices: [none, state_file, config]
    default: none
  state_file:
    description:
      - The server-state file HAProxy loads, as named by C(server-state-file) in its configuration.
      - Required when O(persist=state_file).
    type: path
  config_file:
    description:
      - The HAProxy configuration file holding the C(server) lines of O(haproxy_backend).
      - Required when O(persist=config).
    type: path
  weights:
    description:
      - Weight per server, a dict of server name to weight. A weight is an integer from 0 to 256, or a percentage of the
        server's initial weight such as V(50%) (rounded down and capped at 256, as HAProxy does).
      - Weight 0 takes a server out of rotation while it stays C(ready); on nginx it is written as C(down).
      - Cannot be combined with O(share) or O(restore).
    type: dict
  groups:
    description:
      - Server groups for O(share), a dict of group name to a list of server names, for example the servers of
        C(kong_x) and C(kong_y).
        A server belongs to one group at most.
      - Servers outside every group keep their weight (a warning says when they distort the split).
    type: dict
  share:
    description:
      - Percentage of the traffic per group, a dict of group name to a number from 0 to 100, for example
        10 for group C(kong_y).
      - Groups left out share the rest equally; when every group is named the shares must add up to 100.
      - Every server of a group gets the same weight. V(0) puts a group fully out of rotation (weight 0), V(100)
        puts all traffic on it.
      - Weights go up to 256 per server; the module fails when no such weights reach the split within one
        percentage point (for example 1 % for one server against seven). The weights used are in
        RV(computed_weights), the split they give in RV(expected_share).
      - Servers that are down, drained or in maintenance take no traffic, which changes the observed split.
      - Requires O(groups). Cannot be combined with O(weights) or O(restore).
    type: dict
  state:
    description:
      - Administrative state to give the servers in O(servers).
      - V(ready) takes traffic. V(drain) takes no new traffic (HAProxy still sends sessions bound by
        persistence) while established sessions finish. V(maint) takes no traffic at all.
      - On nginx both V(drain) and V(maint) are written as C(down); requests in flight finish in the old
        workers after the graceful reload.
      - Cannot be combined with O(restore).
    type: str
    choices: [ready, drain, maint]
  servers:
    description:
      - The servers O(state) applies to, and the servers O(wait_drained) waits for.
      - Required with O(state).
    type: list
    elements: str
  wait_drained:
    description:
      - After the change, wait until the servers hold no sessions any more.
      - With HAProxy, waits until the current sessions (C(scur)) and queued requests of O(servers) reach 0; without
        O(servers), of every server that ends with weight 0 or not C(ready).
      - With nginx, which keeps no per-server count, waits until the workers that ran before the reload have finished
        their requests and exited (Linux C(/proc)).
      - Fails after O(drain_timeout) seconds, naming what is still open. The change stays applied; the
        result still has RV(before) for a rollback.
    type: bool
    default: false
  drain_timeout:
    description:
      - Seconds O(wait_drained) waits at most.
    type: int
    default: 300
  poll_interval:
    description:
      - Seconds between two checks of O(wait_drained).
    type: float
    default: 1.0
  restore:
    description:
      - The RV(before) of an earlier run, a dict of server name to a dict with C(weight) and C(state). Every server
        named gets exactly that weight and state; other keys are ignored.
      - Cannot be combined with O(weights), O(share) or O(state).
    type: dict
notes:
  - Without O(weights), O(share), O(state) and O(restore) the module only reads, and waits when O(wait_drained)
    is set.
  - The HAProxy socket needs C(level admin). Reading works on C(level user) sockets.
  - Options of the other load balancer are ignored.
  - Runs that change the same files at once (the nginx upstream file, HAProxy's O(state_file) or O(config_file)),
    such as the hosts of one batch each changing its own server, take turns; each holds a lock on the file's
    directory from its read to the end of its change (not during O(wait_drained)) and waits up to 60 seconds
    for the others.
seealso:
  - name: HAProxy management guide, runtime API
    description: The C(set server), C(show servers state) and C(show stat) commands the module uses.
    link: https://docs.haproxy.org/2.6/management.html#9.3
  - name: nginx upstream module
    description: The C(server) directive parameters C(weight) and C(down).
    link: https://nginx.org/en/docs/http/ngx_http_upstream_module.html#server
"""

EXAMPLES = r"""
- name: Send 10 % of the traffic to the new Kong nodes
  kongops.upgrade.lb_weight:
    backend: haproxy
    socket: /run/haproxy/admin.sock
    haproxy_backend: kong_proxy
    persist: state_file
    state_file: /var/lib/haproxy/server-state
    groups:
      kong_x: "{{ groups['kong_x'] }}"
      kong_y: "{{ groups['kong_y'] }}"
    share:
      kong_y: 10
  register: step

- name: Put every request back on the old nodes, exactly as before the step
  kongops.upgrade.lb_weight:
    backend: haproxy
    socket: /run/haproxy/admin.sock
    haproxy_backend: kong_proxy
    restore: "{{ step.before }}"

- name: Drain one node and wait until its sessions finished
  kongops.upgrade.lb_weight:
    backend: haproxy
    socket: 10.0.0.2:9999
    haproxy_backend: kong_proxy
    state: drain
    servers: ["{{ inventory_hostname }}"]
    wait_drained: true
    drain_timeout: 120
  delegate_to: "{{ groups['kong_lb'][0] }}"

- name: Set absolute and relative weights
  kongops.upgrade.lb_weight:
    backend: haproxy
    haproxy_backend: kong_proxy
    weights:
      kong1: 0
      kong2: "50%"

- name: Half the traffic to kong_y on nginx (upstream kong in /etc/nginx/conf.d/kong-upstream.conf)
  kongops.upgrade.lb_weight:
    backend: nginx
    upstream_file: /etc/nginx/conf.d/kong-upstream.conf
    upstream_name: kong
    groups:
      kong_x: [kong1, kong2, kong3]
      kong_y: [kong4, kong5]
    share:
      kong_y: 50
"""

RETURN = r"""
before:
  description:
    - Every server of the backend or upstream before the change. Pass it as O(restore) to go back.
    - RV(before.sessions) is V(null) on nginx.
  returned: success
  type: dict
  sample:
    kong1: {weight: 100, initial_weight: 100, state: ready, sessions: 3, health: up, status: "UP",
            queued: 0, address: "10.0.0.1:8000"}
  contains:
    weight:
      description: Current weight (HAProxy's user weight), 0-256.
      type: int
    initial_weight:
      description: The configured weight (nginx, the weight before the module first changed the line).
      type: int
    state:
      description: Administrative state, V(ready), V(drain) or V(maint).
      type: str
    sessions:
      description: Current sessions on the server (HAProxy C(scur)); V(null) on nginx.
      type: int
    health:
      description: HAProxy only. Operational state from health checks, V(up), V(down), V(starting) or V(stopping).
      type: str
    status:
      description: HAProxy only. The status column of C(show stat), for example C(UP), C(UP 1/3), C(DRAIN),
        C(MAINT (via be/srv)) or C(no check).
      type: str
    queued:
      description: HAProxy only. Requests queued for the server.
      type: int
    address:
      description: Address and port of the server.
      type: str
    down:
      description: nginx only. Whether the line carries C(down).
      type: bool
after:
  description:
    - Every server after the change, read back from the load balancer (in check mode, the prediction).
  returned: success
  type: dict
  sample:
    kong1: {weight: 9, initial_weight: 100, state: ready, sessions: 2, health: up, status: "UP",
            queued: 0, address: "10.0.0.1:8000"}
sessions:
  description: Current sessions per server after the change (and after the drain wait); V(null) per server on nginx.
  returned: success
  type: dict
  sample: {kong1: 0, kong4: 2}
changed_servers:
  description: The servers whose weight or state changed (in check mode, would change).
  returned: success
  type: list
  elements: str
  sample: [kong4, kong5]
computed_weights:
  description: The weight per server computed for O(share).
  returned: when O(share) is set
  type: dict
  sample: {kong1: 9, kong2: 9, kong3: 9, kong4: 1, kong5: 1, kong6: 1}
expected_share:
  description: The percentage of traffic per group that RV(computed_weights) gives when every server is up and ready.
  returned: when O(share) is set
  type: dict
  sample: {kong_x: 90.0, kong_y: 10.0}
files:
  description: Files the change wrote (in check mode, would write), the upstream file or the persisted HAProxy state.
  returned: success
  type: list
  elements: str
  sample: [/var/lib/haproxy/server-state]
stats:
  description: HAProxy only. Counters per server from C(show stat), for traffic gates.
  returned: when O(backend=haproxy)
  type: dict
  sample: {kong4: {total_sessions: 1200, http_5xx: 0, connection_errors: 0, response_errors: 0, check_failures: 0}}
  contains:
    total_sessions:
      description: Sessions since HAProxy started (C(stot)).
      type: int
    http_5xx:
      description: HTTP 5xx responses (C(hrsp_5xx)).
      type: int
    connection_errors:
      description: Failed connections to the server (C(econ)).
      type: int
    response_errors:
      description: Aborted or invalid responses (C(eresp)).
      type: int
    check_failures:
      description: Failed health checks (C(chkfail)).
      type: int
    response_time_ms:
      description: Average response time of the last 1024 requests in milliseconds (C(rtime)).
      type: int
stats_at:
  description:
    - HAProxy only. When RV(stats) was read, in seconds since the epoch by the load balancer host's clock. With
      RV(after) and RV(stats) it is a reading a soak can start from (M(kongops.upgrade.kong_gate)'s O(kongops.upgrade.kong_gate#module:since)).
  returned: when O(backend=haproxy)
  type: float
  sample: 1767268800.125
drained:
  description: Whether the drain wait ended with nothing open.
  returned: when O(wait_drained) is set and not in check mode
  type: bool
  sample: true
drain_seconds:
  description: Seconds the drain wait took.
  returned: when O(wait_drained) is set and not in check mode
  type: float
  sample: 4.2
still_open:
  description: What still held sessions when O(drain_timeout) ran out (only in the failure result).
  returned: when the drain wait timed out
  type: dict
  sample: {kong1: "2 sessions, 0 queued"}
"""

import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kongops.upgrade.plugins.module_utils._haproxy_runtime import (
    HAPROXY_RUNTIME_ARG_SPEC,
    HaproxyBackend,
    HaproxyRuntime,
    HaproxyRuntimeError,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._lb import (
    LbLockTimeout,
    exclusive,
    DrainTimeout,
    LbParamError,
    changed_servers,
    out_of_rotation,
    parse_weight,
    plan,
    predict,
    share_targets,
    share_warnings,
    wait_drained,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._nginx import (
    NGINX_ARG_SPEC,
    NginxError,
    NginxUpstream,
)

SBIN = ["/usr/sbin", "/usr/local/sbin", "/sbin"]

# seconds a run waits for another to finish its change of the same files (one read, write and reload each)
LOCK_TIMEOUT = 60.0


def argument_spec() -> dict:
    spec = {
        "backend": {"type": "str", "required": True, "choices": ["haproxy", "nginx"]},
        "haproxy_backend": {"type": "str"},
        "persist": {"type": "str", "default": "none", "choices": ["none", "state_file", "config"]},
        "state_file": {"type": "path"},
        "config_file": {"type": "path"},
        "weights": {"type": "dict"},
        "groups": {"type": "dict"},
        "share": {"type": "dict"},
        "state": {"type": "str", "choices": ["ready", "drain", "maint"]},
        "servers": {"type": "list", "elements": "str"},
        "wait_drained": {"type": "bool", "default": False},
        "drain_timeout": {"type": "int", "default": 300},
        "poll_interval": {"type": "float", "default": 1.0},
        "restore": {"type": "dict"},
    }
    spec.update({k: dict(v) for k, v in HAPROXY_RUNTIME_ARG_SPEC.items()})
    spec.update({k: dict(v) for k, v in NGINX_ARG_SPEC.items()})
    return spec


def make_backend(module):
    p = module.params
    if p["backend"] == "haproxy":
        haproxy_bin = module.get_bin_path("haproxy", opt_dirs=SBIN) if p["persist"] == "config" else None
        return HaproxyBackend(
            HaproxyRuntime.from_params(p),
            p["haproxy_backend"],
            p["persist"],
            p["state_file"],
            p["config_file"],
            run_command=module.run_command,
            haproxy_bin=haproxy_bin,
        )
    return NginxUpstream.from_params(module.run_command, p)


def resolve_nginx(module, lb) -> None:
    """run_command fails the module itself on a missing binary: find it before any file changes."""
    found = module.get_bin_path(lb.nginx_bin, opt_dirs=SBIN)
    if not found:
        raise NginxError(
            f"nginx_bin: {lb.nginx_bin} was not found (looked in PATH and {', '.join(SBIN)}); set nginx_bin to the nginx binary", param="nginx_bin"
        )
    lb.nginx_bin = found


def check_params(p: dict) -> None:
    if p["backend"] == "haproxy" and not p["haproxy_backend"]:
        raise LbParamError("haproxy_backend: name the HAProxy backend whose servers to manage", "haproxy_backend")
    if p["backend"] == "nginx" and not p["upstream_file"]:
        raise LbParamError("upstream_file: name the nginx upstream include file to manage", "upstream_file")
    if p["drain_timeout"] < 0:
        raise LbParamError(f"drain_timeout: must be 0 or more seconds, got {p['drain_timeout']}", "drain_timeout")
    if p["poll_interval"] <= 0:
        raise LbParamError(f"poll_interval: must be more than 0 seconds, got {p['poll_interval']}", "poll_interval")
    if p["timeout"] <= 0:
        raise LbParamError(f"timeout: must be more than 0 seconds, got {p['timeout']}", "timeout")
    # what can be judged without the load balancer is judged before it is contacted
    for server, value in (p["weights"] or {}).items():
        parse_weight(value, 0, server)
    if p["share"] is not None:
        share_targets(p["groups"] or {}, p["share"])


def managed(servers: dict) -> dict:
    return {n: {"weight": s["weight"], "state": s["state"]} for n, s in sorted(servers.items())}


def sessions_of(servers: dict) -> dict:
    return {n: s["sessions"] for n, s in servers.items()}


def drain(module, lb, desired: dict, result: dict) -> None:
    """Wait until the servers taken out of rotation hold no sessions; fail naming what is open."""
    p = module.params
    targets = p["servers"] or out_of_rotation(desired)
    if lb.kind == "nginx" and not p["reload"]:
        lb.warnings.append("wait_drained: reload=false, nginx still runs the previous weights; nothing to wait for")
        return
    busy = sorted(n for n in targets if desired[n]["weight"] > 0 and desired[n]["state"] == "ready")
    if busy and lb.kind == "haproxy":
        lb.warnings.append(f"wait_drained: still in rotation, their sessions may never reach zero: {', '.join(busy)}")
    if lb.kind == "nginx":
        resolve_nginx(module, lb)
    try:
        waited = wait_drained(lambda: lb.drain_probe(targets), p["drain_timeout"], p["poll_interval"])
    except DrainTimeout as exc:
        after = lb.read()
        result.update(after=after, sessions=sessions_of(after), still_open=exc.still_open, drained=False, drain_seconds=round(exc.waited, 2))
        for warning in lb.warnings:
            module.warn(warning)
        module.fail_json(msg=f"wait_drained: {exc}. The change stays applied (see after); pass before as restore to undo it, or raise drain_timeout", **result)
    result.update(drained=True, drain_seconds=round(waited, 2), after=lb.read())


def run(module, lb, result: dict) -> None:
    p = module.params
    # from the read to the end of the change: the files are the pool's, the change may be one server's
    with exclusive(lb.lock_dirs(), LOCK_TIMEOUT):
        current = lb.read()
        desired, computed, expected = plan(
            current, weights=p["weights"], groups=p["groups"], share=p["share"], state=p["state"], servers=p["servers"], restore=p["restore"]
        )
        if computed is not None:
            result.update(computed_weights=computed, expected_share=expected)
            lb.warnings.extend(share_warnings(current, desired, p["groups"]))
        changes = changed_servers(current, desired)
        files = lb.prepare(current, desired)
        changed = bool(changes or files)
        after = predict(current, desired)
        if changed and not module.check_mode:
            if lb.kind == "nginx":
                resolve_nginx(module, lb)
            lb.apply(current, desired, files)
            after = lb.read()
    result.update(changed=changed, before=current, after=after, changed_servers=changes, files=[f["path"] for f in files])
    if module._diff:
        result["diff"] = [{"before": managed(current), "after": managed(after)}] + [
            {"before_header": f["path"], "after_header": f["path"], "before": f["before"], "after": f["after"]} for f in files
        ]
    if p["wait_drained"] and not module.check_mode:
        drain(module, lb, desired, result)
    result["sessions"] = sessions_of(result["after"])
    if lb.kind == "haproxy":
        result["stats"] = lb.stats()
        result["stats_at"] = time.time()


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[
            ("backend", "haproxy", ("haproxy_backend",)),
            ("backend", "nginx", ("upstream_file",)),
            ("persist", "state_file", ("state_file",)),
            ("persist", "config", ("config_file",)),
        ],
        required_by={"state": ("servers",)},
        required_together=[("groups", "share")],
        mutually_exclusive=[("weights", "share"), ("restore", "weights"), ("restore", "share"), ("restore", "state")],
    )
    p = module.params
    if p["backend"] == "nginx":
        p["persist"] = "none"
    result = {"changed": False}
    lb = None
    try:
        check_params(p)
        lb = make_backend(module)
        run(module, lb, result)
    except LbParamError as exc:
        module.fail_json(msg=str(exc), param=exc.param, **result)
    except LbLockTimeout as exc:
        module.fail_json(msg=str(exc), **result)
    except HaproxyRuntimeError as exc:
        context = {"backend": p["haproxy_backend"], **exc.context()}
        module.fail_json(msg=str(exc), **{**result, **context})
    except NginxError as exc:
        module.fail_json(msg=str(exc), **{**result, **exc.context()})
    except OSError as exc:
        module.fail_json(msg=f"{exc.filename or 'file access'}: {exc.strerror or exc}; nothing was left changed", **result)
    except Exception as exc:  # noqa: BLE001 - last resort: report with the traceback, never crash
        module.fail_json(msg=f"unexpected error: {exc}", exception=traceback.format_exc(), **result)
    for warning in lb.warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
