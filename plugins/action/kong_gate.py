# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""kong_gate: a soak runs as the module on the target (the load balancer's host); a judgment that
needs no reading is made here on the controller. With node_status_urls the whole gate is this one
action: the nodes' status listeners are read here (all at once) before and after the soak and judged
with it. Either way one line per check is printed at -v."""

from __future__ import annotations

import copy

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.kongops.upgrade.plugins.module_utils._gates import (
    KONG_GATE_ARG_SPEC,
    NODE_READ_OPTIONS,
    GateParamError,
    check_params,
    judge,
    poll_line,
    read_nodes,
    soak,
    summary,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        direct = bool(args.get("node_status_urls"))
        local = not direct and (
            args.get("lb_verdict") is not None or (args.get("backend", "none") in ("none", "nginx") and not float(args.get("soak_seconds") or 0))
        )
        if direct:
            result.update(self._gate_with_node_reads(args, task_vars))
        elif not local:
            module_args = {k: v for k, v in args.items() if k not in NODE_READ_OPTIONS}
            result.update(self._execute_module(module_name="kongops.upgrade.kong_gate", module_args=module_args, task_vars=task_vars))
        else:
            p, refused = _validated(args)
            if refused:
                result.update(refused)
                return result
            verdict = judge(p["lb_verdict"] or {}, p)
            result.update(changed=False, verdict=verdict, ansible_facts={"kong_gate": verdict}, msg=summary(verdict))
            if verdict["failed"] and p["fail_on_gate"]:
                result.update(failed=True, msg=f"gate failed at {p['label']}: " + "; ".join(verdict["reasons"]))
        verdict = result.get("verdict") or {}
        label = verdict.get("label") or args.get("label") or "gate"
        host = self._task.delegate_to or (task_vars or {}).get("inventory_hostname", "")
        if not local:
            # the soak's checks, as the module on the load balancer's host made them
            for index, poll in enumerate(verdict.get("polls") or [], start=1):
                self._display.v(poll_line(label, index, poll), host=host)
        if verdict and local and args.get("lb_verdict") is not None:
            # the judgment of a step: one line at every verbosity (progress, and "passed" when healthy)
            self._display.display(f"[{host}] {summary(verdict)}")
        elif verdict:
            self._display.v(summary(verdict), host=host)
        return result

    def _gate_with_node_reads(self, args: dict, task_vars) -> dict:
        """The whole gate in one task: the nodes read here before the soak (unless nodes_before already
        holds a reading of exactly these nodes), the soak (the module on the load balancer's host, or a
        wait here where there are no per-server counters), the nodes read again, one verdict."""
        p, refused = _validated(args)
        if refused:
            return refused
        names = sorted(p["node_status_urls"])
        given = p["nodes_before"] or {}
        if sorted(given) == names or not p["node_metrics"]:
            before = given
        else:
            before = read_nodes(p)
        closing = None
        if p["lb_verdict"] is not None:
            lb = p["lb_verdict"]
        elif p["backend"] == "haproxy":
            module_args = {k: v for k, v in args.items() if k not in NODE_READ_OPTIONS + ("nodes_before", "nodes_after")}
            module_args["fail_on_gate"] = False
            soaked = self._execute_module(module_name="kongops.upgrade.kong_gate", module_args=module_args, task_vars=task_vars)
            if soaked.get("failed"):
                return soaked
            lb = soaked.get("verdict") or {}
            closing = soaked.get("closing")
        else:
            lb = soak(None, dict(p, soak_seconds=0.0) if self._play_context.check_mode else p)
        after = read_nodes(p)
        verdict = judge(lb, dict(p, nodes_before=before, nodes_after=after))
        out = dict(changed=False, verdict=verdict, nodes_before=before, nodes_after=after, ansible_facts={"kong_gate": verdict}, msg=summary(verdict))
        if closing is not None:
            out["closing"] = closing
        if verdict["failed"] and p["fail_on_gate"]:
            out.update(failed=True, msg=f"gate failed at {p['label']}: " + "; ".join(verdict["reasons"]))
        return out


def _validated(args: dict) -> tuple:
    """(the parameters, None), or (None, the failed result naming the parameter) for bad input."""
    validation = ArgumentSpecValidator(copy.deepcopy(KONG_GATE_ARG_SPEC)).validate(args)
    if validation.error_messages:
        return None, dict(failed=True, msg="kong_gate: " + "; ".join(validation.error_messages))
    p = validation.validated_parameters
    try:
        check_params(p)
    except GateParamError as exc:
        return None, dict(failed=True, msg=str(exc), param=exc.param)
    return p, None
