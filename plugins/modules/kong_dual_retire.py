# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kong_dual_retire
short_description: Drop cluster X's database once a dual-cluster upgrade's retention period has passed
version_added: 0.1.0
description:
  - After a dual-cluster upgrade (playbooks/dual_cluster_upgrade.yml) concluded C(done) with every request on
    cluster Y, X's database is kept as the instant rollback. This module drops it, on the controller, once
    O(retention_days) have passed since the run's C(ended_at) (read from the run's journal, O(journal)).
  - "Refuses, naming the date when the drop becomes possible, when the retention has not passed; when the run
    did not end C(done) on Y; when X's database is Y's (O(y_pg_host), O(y_pg_port), O(y_pg_database) or the
    journal's C(y_database)); when PostgreSQL shows a Kong session (C(application_name) C(kong)) on X's
    database; or when the backup the run recorded is not a verified backup of X's database as it is now
    (every file's size and sha256, C(pg_restore --list), every table's row count and content digest)."
  - That backup, taken with writes frozen and equal table by table to X's database at the time of the drop, is
    the final backup; the result names it (RV(backup)).
  - The drop is recorded beside the journal (RV(record)); a second run finds the database gone and changes
    nothing. With O(drop) off, or in check mode, every check runs and the result says what would be dropped.
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - kongops.upgrade.kong_pg
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.actiongroup_none
attributes:
  check_mode:
    support: full
    details: Every check runs; nothing is dropped and no record is written.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  journal:
    description:
      - The dual-cluster run's journal (C(<kong_work_dir>/<cluster>/journal.json) or an archived
        C(journal-<run_id>.json)).
    type: path
    required: true
  retention_days:
    description:
      - Days X's database is kept after the run's C(ended_at); C(0) allows the drop at once.
    type: float
    required: true
  drop:
    description:
      - Drop the database when every check passes. Off, the module only reports.
    type: bool
    default: false
  pg_admin_user:
    description:
      - Role that drops the database (its owner or a superuser); O(pg_user) when empty.
    type: str
  pg_admin_password:
    description:
      - Password of O(pg_admin_user); O(pg_password) when empty.
    type: str
  pg_maintenance_database:
    description:
      - Database the dropping session connects to.
    type: str
    default: postgres
  pg_restore_bin:
    description:
      - C(pg_restore) used to list the backup's dump.
    type: str
    default: pg_restore
  y_pg_host:
    description:
      - Host of Y's database (C(kong_y_pg_host)).
    type: str
    default: ""
  y_pg_port:
    description:
      - Port of Y's database.
    type: int
    default: 0
  y_pg_database:
    description:
      - Y's database.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Drop X's database 14 days after the dual-cluster upgrade
  kongops.upgrade.kong_dual_retire:
    journal: "{{ kong_work_dir }}/{{ kong_cluster_name }}/journal.json"
    retention_days: 14
    drop: true
    pg_host: db1
    pg_database: kong
    pg_admin_user: postgres
    pg_admin_password: "{{ vault_pg_superuser_password }}"
    y_pg_host: db1
    y_pg_database: kong_3_7_1
"""

RETURN = r"""
database:
  description: X's database, C(postgresql://user@host:port/name) (no password).
  returned: always
  type: str
eligible_at:
  description: When the drop became or becomes possible (UTC).
  returned: when the journal could be read
  type: str
backup:
  description: The final verified backup of X's database (its run directory).
  returned: when verified
  type: str
dropped:
  description: Whether this run dropped the database.
  returned: always
  type: bool
record:
  description: The retire record written beside the journal.
  returned: always
  type: str
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kongops.upgrade.plugins.module_utils import _dual_retire as dr
from ansible_collections.kongops.upgrade.plugins.module_utils._argspec import kong_argument_spec
from ansible_collections.kongops.upgrade.plugins.module_utils._backup import PgTools
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_common import BackupError, write_private
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_database import compare_tables, database_state
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_manifest import load_manifest, verify_files
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import KongDb, KongDbError
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_migrations import kong_sessions

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by KongDb
    sql = None

# a node that has just exited leaves its session until PostgreSQL notices the closed connection
SESSION_GRACE_S = 5.0


def argument_spec() -> dict:
    return kong_argument_spec(
        pg=True,
        journal={"type": "path", "required": True},
        retention_days={"type": "float", "required": True},
        drop={"type": "bool", "default": False},
        pg_admin_user={"type": "str"},
        pg_admin_password={"type": "str", "no_log": True},
        pg_maintenance_database={"type": "str", "default": "postgres"},
        pg_restore_bin={"type": "str", "default": "pg_restore"},
        y_pg_host={"type": "str", "default": ""},
        y_pg_port={"type": "int", "default": 0},
        y_pg_database={"type": "str", "default": ""},
    )


def fail(module, msg, **result):
    module.fail_json(msg=msg, **result)


def verify_backup(module, journal: dict, x_db: KongDb, result: dict) -> None:
    """The journal's backup: every file checked, the dump listed, and equal table by table to X's database now."""
    p = module.params
    src = (journal.get("backup") or {}).get("manifest") or ""
    if not src:
        fail(
            module,
            f"the run {journal.get('run_id')} records no backup of X's database: take one (playbooks/backup.yml) before its database is dropped",
            **result,
        )
    run_dir = os.path.dirname(src) if os.path.basename(src) == "manifest.json" else src
    manifest = load_manifest(src)
    verify_files(run_dir, manifest, ["database"])
    section = manifest.get("database") or {}
    tools = PgTools(module.run_command, "pg_dump", p["pg_restore_bin"])
    tools.toc(os.path.join(run_dir, section.get("file") or "database.dump"))
    state = database_state(x_db)
    differing, extra = compare_tables(section.get("tables") or {}, state["tables"])
    if differing or extra or state["schema_meta"] != section.get("schema_meta"):
        fail(
            module,
            f"X's database {x_db.database} differs from the backup {run_dir} (tables "
            f"{', '.join(differing + extra) or 'schema_meta'}): it was written since, so that backup is not "
            "its final state. Take a backup of it (playbooks/backup.yml) and find out who writes to it "
            "before dropping it",
            **result,
        )
    result["backup"] = run_dir


def run(module: AnsibleModule) -> dict:
    p = module.params
    x = {"host": p["pg_host"], "port": p["pg_port"], "database": p["pg_database"]}
    y = {"host": p["y_pg_host"] or x["host"], "port": p["y_pg_port"] or x["port"], "database": p["y_pg_database"]}
    result = {"changed": False, "dropped": False, "record": "", "database": ""}
    if p["retention_days"] < 0:
        fail(module, f"retention_days ({dr.RETENTION_VAR}) is {p['retention_days']:g}: give 0 or more days", **result)
    try:
        with open(p["journal"]) as fh:
            journal = json.load(fh)
    except (OSError, ValueError) as exc:
        fail(module, f"cannot read the dual-cluster run's journal {p['journal']}: {exc}", **result)
    record = os.path.join(os.path.dirname(p["journal"]), f"x-database-retired-{journal.get('run_id', 'unknown')}.json")
    result["record"] = record
    x_db = KongDb.from_params(p)
    result["database"] = x_db.describe()
    admin = KongDb.from_params(
        dict(p, pg_database=p["pg_maintenance_database"], pg_user=p["pg_admin_user"] or p["pg_user"], pg_password=p["pg_admin_password"] or p["pg_password"])
    )
    try:
        problems = dr.run_problems(journal) + dr.database_problems(journal, x, y)
        if problems:
            fail(module, "refusing to drop X's database: " + " ".join(problems), **result)
        when = dr.eligible_at(journal, p["retention_days"])
        result["eligible_at"] = dr.fmt_utc(when)
        if not admin.query("SELECT 1 FROM pg_database WHERE datname = %s", (x["database"],)):
            result["msg"] = f"X's database {x['database']} does not exist on {x['host']}:{x['port']}: nothing to drop" + (
                f" (dropped as {record} records)" if os.path.exists(record) else ""
            )
            return result
        now = dr.utc_now()
        if now < when:
            fail(
                module,
                f"{dr.RETENTION_VAR}={p['retention_days']:g}: X's database {x['database']} is kept until "
                f"{dr.fmt_utc(when)} (the run {journal.get('run_id')} ended done at "
                f"{dr.fmt_utc(dr.parse_utc(journal['ended_at']))}); it can be dropped from then on, or "
                f"with a shorter {dr.RETENTION_VAR}",
                **result,
            )
        deadline = time.monotonic() + SESSION_GRACE_S
        while True:
            sessions = kong_sessions(x_db)
            if not sessions or time.monotonic() >= deadline:
                break
            time.sleep(0.25)
        if sessions:
            fail(
                module,
                f"PostgreSQL shows Kong sessions (application_name 'kong') on X's database {x['database']} "
                "from "
                + ", ".join(f"{addr or 'a local socket'} ({count})" for addr, count in sessions)
                + ": a Kong node still uses it. Stop it (kong_dual_decommission_x) before dropping the "
                "database",
                sessions=[{"client": a or "local socket", "count": c} for a, c in sessions],
                **result,
            )
        verify_backup(module, journal, x_db, result)
        x_db.close()
        if not p["drop"]:
            result["msg"] = f"X's database {x['database']} could be dropped (final verified backup {result['backup']}); set {dr.DROP_VAR}=true to drop it"
            return result
        result["changed"] = True
        if module.check_mode:
            result["msg"] = f"check mode: would drop X's database {x['database']} (final backup {result['backup']})"
            return result
        admin.query(sql.SQL("DROP DATABASE {}").format(sql.Identifier(x["database"])))
        result["dropped"] = True
        entry = {
            "run_id": journal.get("run_id"),
            "database": x["database"],
            "server": f"{x['host']}:{x['port']}",
            "dropped_at": dr.utc_now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "final_backup": result["backup"],
            "retention_days": p["retention_days"],
            "eligible_at": result["eligible_at"],
        }
        write_private(record, (json.dumps(entry, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        result["msg"] = f"dropped X's database {x['database']}; its final backup is {result['backup']}"
        return result
    except (BackupError, KongDbError, ValueError) as exc:
        fail(module, f"refusing to drop X's database: {exc}", **result)
    finally:
        x_db.close()
        admin.close()
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if module.params.get("pg_password"):
        module.no_log_values.add(module.params["pg_password"])
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
