"""The run finished: the journal on the controller says done, and no freeze lock is left on any host."""
import json
import os

import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
# get_hosts matches one name or glob (fnmatch), not an Ansible pattern such as "a:b".
testinfra_hosts = RUNNER.get_hosts("kong_x") + RUNNER.get_hosts("kong_cp")
WORK_DIR = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "kongops", "molecule-real-hosts")


def test_journal_says_done():
    with open(os.path.join(WORK_DIR, "journal.json"), encoding="utf-8") as fh:
        journal = json.load(fh)
    assert journal["status"] == "done", journal.get("status")
    assert journal["thawed"] is True
    assert not os.path.exists(os.path.join(WORK_DIR, "freeze.lock.json"))


def test_no_freeze_lock_left(host):
    assert not host.file(os.path.join(WORK_DIR, "freeze.lock.json")).exists
