# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""kong_gate: a soak runs as the module on the target (the load balancer's host); a judgment that
needs no reading is made here on the controller. Either way one line per check is printed at -v."""

from __future__ import annotations

import copy

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.kongops.upgrade.plugins.module_utils._gates import (
    KONG_GATE_ARG_SPEC,
    GateParamError,
    check_params,
    judge,
    poll_line,
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
        local = args.get("lb_verdict") is not None or (args.get("backend", "none") in ("none", "nginx") and not float(args.get("soak_seconds") or 0))
        if not local:
            result.update(self._execute_module(module_name="kongops.upgrade.kong_gate", module_args=args, task_vars=task_vars))
        else:
            validation = ArgumentSpecValidator(copy.deepcopy(KONG_GATE_ARG_SPEC)).validate(args)
            if validation.error_messages:
                result.update(failed=True, msg="kong_gate: " + "; ".join(validation.error_messages))
                return result
            p = validation.validated_parameters
            try:
                check_params(p)
            except GateParamError as exc:
                result.update(failed=True, msg=str(exc), param=exc.param)
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
