# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""The run journal, run lock, abort flag and failure budget, kept on the controller in-process
(no module is sent anywhere). Documentation: plugins/modules/kong_upgrade_run.py."""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.kongops.upgrade.plugins.plugin_utils._run_state import (
    DEFAULT_TTL,
    RunState,
    RunStateError,
    describe,
)

STATES = ("opened", "recorded", "read", "aborted", "concluded")

ARGUMENT_SPEC = dict(
    state=dict(type="str", default="recorded", choices=list(STATES)),
    work_dir=dict(type="path", required=True),
    cluster=dict(type="str", required=True),
    run_id=dict(type="str", default=""),
    strategy=dict(type="str"),
    mode=dict(type="str", default=""),
    from_version=dict(type="str", default=""),
    to_version=dict(type="str"),
    path=dict(type="list", elements="str", default=[]),
    update=dict(type="dict", default={}),
    node=dict(type="str"),
    node_state=dict(type="str"),
    step=dict(type="dict"),
    phase=dict(type="str"),
    reason=dict(type="str"),
    needs_attention=dict(type="bool", default=False),
    max_failed_nodes=dict(type="int"),
    lock_ttl=dict(type="int", default=DEFAULT_TTL),
    force=dict(type="bool", default=False),
    journal=dict(type="dict"),
)
REQUIRED_IF = [
    ("state", "opened", ("strategy", "to_version")),
    ("state", "aborted", ("phase", "reason")),
]
REQUIRED_TOGETHER = [("node", "node_state")]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        validation = ArgumentSpecValidator(ARGUMENT_SPEC, required_if=REQUIRED_IF, required_together=REQUIRED_TOGETHER).validate(self._task.args)
        if validation.error_messages:
            result.update(failed=True, msg="kong_upgrade_run: " + "; ".join(validation.error_messages))
            return result
        p = validation.validated_parameters
        if p["lock_ttl"] < 1:
            result.update(
                failed=True,
                msg=f"kong_upgrade_run: lock_ttl must be at least 1 second (got {p['lock_ttl']}); "
                f"set kong_run_lock_ttl to how long a run may go without writing its journal",
            )
            return result
        check = bool(self._task.check_mode or self._play_context.check_mode)
        try:
            state = RunState(p["work_dir"], p["cluster"])
            out = self._dispatch(state, p, check)
        except RunStateError as exc:
            result.update(failed=True, msg=str(exc))
            if exc.holder:
                result["holder"] = exc.holder
            return result
        except OSError as exc:
            result.update(failed=True, msg=f"kong_upgrade_run: cannot write the run state in {state.dir}: {exc}")
            return result
        journal = out["journal"]
        facts = {"kong_journal": journal}
        if "abort" in out:
            facts["kong_abort"] = out["abort"]
            result["abort"] = out["abort"]
        for warning in out.get("warnings") or []:
            self._display.warning(warning)
        if out.get("taken_over"):
            gone = out["taken_over"]
            self._display.warning(f"took over the run lock of cluster {p['cluster']} from {describe(gone)} ({gone['why']})")
            result["taken_over"] = gone
        result.update(changed=out["changed"], journal=journal, path=state.journal_path, ansible_facts=facts)
        if p["state"] == "opened":
            result.update(resumed=out["resumed"], archived=out["archived"], lock=out["lock"])
        if p["max_failed_nodes"] is not None:
            result["budget"] = RunState.budget(journal, p["max_failed_nodes"])
        return result

    @staticmethod
    def _dispatch(state: RunState, p: dict, check: bool) -> dict:
        what = p["state"]
        if what == "opened":
            return state.open(
                p["strategy"],
                p["to_version"],
                run_id=p["run_id"],
                mode=p["mode"],
                from_version=p["from_version"],
                path=p["path"],
                ttl=p["lock_ttl"],
                force=p["force"],
                check=check,
            )
        if what == "read":
            journal = p["journal"] if (check and p["journal"] is not None) else state.read()
            return dict(journal=journal, changed=False)
        if what == "aborted":
            return state.abort(p["phase"], p["reason"], p["needs_attention"], base=p["journal"], check=check, ttl=p["lock_ttl"])
        if what == "concluded":
            return state.conclude(p["update"], base=p["journal"], check=check, ttl=p["lock_ttl"])
        return state.record(p["update"], node=p["node"], node_state=p["node_state"], step=p["step"], base=p["journal"], check=check, ttl=p["lock_ttl"])
