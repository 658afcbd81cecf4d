"""The run finished: the journal on the controller says done, and no freeze lock is left on any host."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))

from kongops_verify import RUNNER, check_journal_done, work_dir  # noqa: E402

testinfra_hosts = RUNNER.get_hosts("kong_x")


def test_journal_says_done():
    check_journal_done()


def test_no_freeze_lock_left(host):
    assert not host.file(os.path.join(work_dir(), "freeze.lock.json")).exists
