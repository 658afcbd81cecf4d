"""failure_reason: what a rescue says about the task that failed, a looped one included."""

from __future__ import annotations

from ansible_collections.kongops.upgrade.plugins.filter.failures import FilterModule, failure_reason


def test_a_looped_task_gives_its_failed_items_messages_once_each():
    result = {
        "msg": "One or more items failed",
        "results": [
            {"failed": False, "msg": "fine"},
            {"failed": True, "msg": "socket /run/haproxy/admin.sock does not exist"},
            {"failed": True, "msg": "socket /run/haproxy/admin.sock does not exist"},
            {"failed": True, "msg": "lb2: connection refused"},
            {"skipped": True},
        ],
    }
    assert failure_reason(result) == "socket /run/haproxy/admin.sock does not exist; lb2: connection refused"


def test_a_single_task_gives_its_message_and_nothing_gives_the_default():
    assert failure_reason({"msg": "gate failed at step 10 %"}) == "gate failed at step 10 %"
    assert failure_reason({"results": [{"failed": True}], "msg": "One or more items failed"}) == "One or more items failed"
    assert failure_reason({}, "the upgrade failed") == "the upgrade failed"
    assert failure_reason(None) == "see above"
    assert FilterModule().filters()["failure_reason"] is failure_reason
