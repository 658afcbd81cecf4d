# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
# The work is done by the action plugin of the same name (plugins/action/kong_upgrade_run.py) on the
# controller; this file holds its documentation.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kong_upgrade_run
short_description: Keep the run journal, run lock, abort flag and failure budget of a Kong upgrade
version_added: 0.2.0
author: kongops.upgrade contributors (@kongops)
description:
  - Runs on the controller, in the C(ansible-playbook) process, and sends nothing to any host; every call
    reads, merges and writes C(<work_dir>/<cluster>/journal.json) in a few milliseconds.
  - The journal is written atomically (a temporary file in the same directory, fsync, rename), mode 0600,
    so a run cut off at any point leaves the previous journal or the new one, never a torn one.
  - O(state=opened) takes the cluster's run lock (C(<work_dir>/<cluster>/run.lock)) and opens the run, or resumes
    the unfinished run of the same upgrade (status C(running) or C(failed), same strategy and target version).
    A journal that cannot be resumed is kept as C(journal-<run_id>.json).
  - A second run on the same cluster is refused, naming the run that holds the lock (host, pid, user, run id,
    when it started and last wrote). The lock is stale, and taken over with a warning, when its process is
    gone (same controller) or when it has not been written for O(lock_ttl) seconds. O(force=true) takes a live
    lock over.
  - Every write refreshes the lock of this run and is refused while another live run holds it (for example
    one that took it over with O(force=true)). A write by a run without a lock (a rollback run on its own)
    takes none.
  - Returns the journal and sets it as the fact C(kong_journal); with C(delegate_to=localhost) and
    C(delegate_facts=true) the fact lands on C(localhost), where the collection's roles read it.
options:
  state:
    description:
      - V(opened) opens or resumes the run and takes the run lock.
      - V(recorded) merges O(update) into the journal (dictionaries merge key by key, lists are replaced),
        sets O(node) to O(node_state) and appends O(step) to C(steps).
      - V(read) returns the journal and changes nothing.
      - V(aborted) marks the run C(failed) with C(failure) (O(phase), O(reason), O(needs_attention), time) and
        sets the fact C(kong_abort).
      - V(concluded) merges O(update), sets C(ended_at) and releases the run lock.
    type: str
    choices: [opened, recorded, read, aborted, concluded]
    default: recorded
  work_dir:
    description: Directory on the controller that holds one sub-directory per cluster.
    type: path
    required: true
  cluster:
    description: Name of the cluster (a plain name); names the sub-directory of the journal and lock.
    type: str
    required: true
  run_id:
    description: Identifier of a new run; a UTC timestamp when empty. A resumed run keeps its own.
    type: str
    default: ""
  strategy:
    description: Strategy of the run (for example V(rolling) or V(in_place)). Required with O(state=opened).
    type: str
  mode:
    description: How the nodes run (C(kong_mode)), recorded in a new journal.
    type: str
    default: ""
  from_version:
    description: Version X, recorded in a new journal.
    type: str
    default: ""
  to_version:
    description: Version Y. Required with O(state=opened); a run resumes only a journal with the same target.
    type: str
  path:
    description: The upgrade path, recorded in a new journal.
    type: list
    elements: str
    default: []
  update:
    description: Keys to merge into the journal (O(state=recorded) and O(state=concluded)).
    type: dict
    default: {}
  node:
    description: A node whose state to record; V(failed) also adds it to C(failed_nodes).
    type: str
  node_state:
    description: The state of O(node), for example V(verified), V(drained), V(decommissioned) or V(failed).
    type: str
  step:
    description: One traffic step (share, times, weights, gate verdict) to append to C(steps).
    type: dict
  phase:
    description: The phase that stopped the run. Required with O(state=aborted).
    type: str
  reason:
    description: Why the run stopped. Required with O(state=aborted).
    type: str
  needs_attention:
    description: The fleet needs a person (configuration writes stay frozen).
    type: bool
    default: false
  max_failed_nodes:
    description: The failure budget; when given, C(budget) says whether C(failed_nodes) exceeds it.
    type: int
  lock_ttl:
    description: Seconds after its last write at which another run's lock counts as stale.
    type: int
    default: 7200
  force:
    description: Take over the run lock of another run that is still alive (O(state=opened)).
    type: bool
    default: false
  journal:
    description:
      - The journal as the play knows it (the C(kong_journal) fact). Used only in check mode, where nothing is
        written and each call builds on the previous call's result.
    type: dict
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Nothing is written; the returned journal is what a real run would write.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Runs on the controller whatever host the task targets; use C(run_once=true) with C(delegate_to=localhost)
    and C(delegate_facts=true) so the journal is written once and its fact lands on C(localhost).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - kongops.upgrade.attributes.actiongroup_none
"""

EXAMPLES = r"""
- name: Open or resume the run and take the cluster's run lock
  kongops.upgrade.kong_upgrade_run:
    state: opened
    work_dir: ~/.kongops
    cluster: prod-eu
    strategy: rolling
    mode: dbless
    from_version: 3.8.1
    to_version: 3.9.3
    path: [3.9.3]
  delegate_to: localhost
  delegate_facts: true
  run_once: true
  register: run

- name: Record a node
  kongops.upgrade.kong_upgrade_run:
    work_dir: ~/.kongops
    cluster: prod-eu
    node: "{{ inventory_hostname }}"
    node_state: failed
    max_failed_nodes: 1
  delegate_to: localhost
  delegate_facts: true
  run_once: true
  register: recorded

- name: Stop when the failure budget is spent
  ansible.builtin.fail:
    msg: "{{ recorded.budget.failed }} nodes failed"
  when: recorded.budget.spent

- name: Close the run and release the lock
  kongops.upgrade.kong_upgrade_run:
    state: concluded
    work_dir: ~/.kongops
    cluster: prod-eu
    update: {status: done}
  delegate_to: localhost
  delegate_facts: true
  run_once: true
"""

RETURN = r"""
journal:
  description: The journal after the call (what C(journal.json) holds).
  returned: success
  type: dict
  sample: {run_id: 20261203T080000Z, status: running, strategy: rolling, from: 3.8.1, to: 3.9.3,
           nodes: {x1: decommissioned}, steps: [], phases: {}}
path:
  description: Path of the journal.
  returned: success
  type: str
  sample: /home/ops/.kongops/prod-eu/journal.json
resumed:
  description: Whether O(state=opened) resumed an unfinished run.
  returned: O(state=opened)
  type: bool
  sample: false
archived:
  description: Where the previous, finished journal was kept; empty when there was none.
  returned: O(state=opened)
  type: str
  sample: /home/ops/.kongops/prod-eu/journal-20261202T101500Z.json
lock:
  description: The run lock this run holds.
  returned: O(state=opened)
  type: dict
  sample: {host: ctl1, pid: 4242, user: ops, run_id: 20261203T080000Z, started: "2026-12-03T08:00:00.000000Z",
           updated: "2026-12-03T08:00:00.000000Z", ttl: 7200}
taken_over:
  description: The stale or forced lock this run took over, with C(why).
  returned: when a lock was taken over
  type: dict
holder:
  description: The run that holds the lock, when this one was refused.
  returned: failure
  type: dict
abort:
  description: C(phase), C(reason) and C(needs_attention) of the stop (also the fact C(kong_abort)).
  returned: O(state=aborted)
  type: dict
budget:
  description: C(failed_nodes), C(failed) (their number), C(max_failed_nodes) and C(spent) (more failed than allowed).
  returned: when O(max_failed_nodes) is given
  type: dict
  sample: {failed_nodes: [x2], failed: 1, max_failed_nodes: 0, spent: true}
"""
