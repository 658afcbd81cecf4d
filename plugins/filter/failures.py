# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""The reason a failed task gives, for the messages the roles' rescues write: a looped task fails
with Ansible's "One or more items failed", which names nothing; its failed items' own messages do."""

from __future__ import annotations

_LOOP_FAILED = "One or more items failed"


def failure_reason(result, default: str = "see above") -> str:
    """The message of a failed task result (``ansible_failed_result``): its failed items' messages
    (each once, in order) when it ran a loop, else its own ``msg``, else ``default``."""
    if not isinstance(result, dict):
        return default
    messages = []
    for item in result.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            msg = str(item.get("msg") or "").strip()
            if msg and msg not in messages:
                messages.append(msg)
    if messages:
        return "; ".join(messages)
    msg = str(result.get("msg") or "").strip()
    return msg or default


class FilterModule:
    def filters(self):
        return {"failure_reason": failure_reason}
