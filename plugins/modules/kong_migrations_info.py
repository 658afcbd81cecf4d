# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kong_migrations_info
short_description: Read the migrations state of a Kong database
version_added: 0.1.0
description:
  - Runs on a Kong node and reads the state of Kong's database migrations as the installed C(kong) binary
    sees it, with the node's C(kong.conf). Nothing is changed.
  - Reads C(kong migrations list) (exit code and the executed, pending and new names per subsystem); on Kong
    3.0 and later also C(kong migrations status) (JSON) as a cross-check; and, when O(schema_meta_check)
    is on, the C(schema_meta) table read with psycopg2. Views that disagree are re-read (another node may
    be migrating) and then reported as an error naming both.
  - Replaces O(kongops.upgrade.kong_migrations#module:state=list), which is deprecated.
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - kongops.upgrade.kong_cli
  - kongops.upgrade.kong_pg
  - ansible.builtin.action_common_attributes
  - kongops.upgrade.attributes.info_module
  - kongops.upgrade.attributes.actiongroup_none
options:
  db_timeout:
    description:
      - Passed as C(--db-timeout) (seconds) to the C(kong migrations) commands that read the state.
        Kong 2.8 to 3.6 default to 60; from 3.7 Kong uses C(pg_timeout) from C(kong.conf) unless this is set.
    type: int
  lock_timeout:
    description:
      - How long (seconds) to wait for another node's migrations, while Kong's migration lock is held, before
        reading the state. Kong's default is 60.
    type: int
  schema_meta_check:
    description:
      - Cross-check the state with the C(schema_meta) table read through the O(pg_host), O(pg_port),
        O(pg_user), O(pg_password), O(pg_database) and O(pg_schema) options.
      - Defaults to V(true) when O(pg_password) is set, V(false) otherwise.
    type: bool
notes:
  - The database password reaches C(kong) only through the environment (O(kong_env), for example
    C(KONG_PG_PASSWORD)), never on the command line.
seealso:
  - module: kongops.upgrade.kong_migrations
  - module: kongops.upgrade.kong_node_info
requirements:
  - the C(kong) CLI on the host that runs the module
"""

EXAMPLES = r"""
- name: Read the migrations state
  kongops.upgrade.kong_migrations_info:
    kong_conf: /etc/kong/kong.conf
    kong_env:
      KONG_PG_PASSWORD: "{{ kong_pg_password }}"
  register: migrations

- name: Fail early when the database is not fully migrated
  ansible.builtin.assert:
    that: migrations.status == 'current'
"""

RETURN = r"""
status:
  description:
    - The database's migrations status.
    - One of V(needs_bootstrap), V(current), V(pending), V(new), V(pending_and_new).
  returned: success
  type: str
  sample: pending
migrations:
  description: The state as the local C(kong) binary sees the database.
  returned: success
  type: dict
  contains:
    status:
      description: V(needs_bootstrap), V(current), V(pending), V(new) or V(pending_and_new).
      type: str
      returned: success
      sample: new
    needs_bootstrap:
      description: Whether C(schema_meta) is missing.
      type: bool
      returned: success
      sample: false
    executed:
      description: Executed migration names per subsystem, in Kong's order.
      type: dict
      returned: success
      sample: {"core": ["000_base", "003_100_to_110"]}
    pending:
      description: Migrations that ran C(up) and wait for C(finish), per subsystem.
      type: dict
      returned: success
      sample: {"core": ["016_280_to_300"]}
    new:
      description: Migrations that have not run at all, per subsystem.
      type: dict
      returned: success
      sample: {"acme": ["001_280_to_300"]}
    counts:
      description: Number of executed, pending and new migrations.
      type: dict
      returned: success
      sample: {"executed": 40, "pending": 0, "new": 15}
commands:
  description: Every C(kong) command the module ran, in order, with its exit code and output.
  returned: always
  type: list
  elements: dict
  sample: [{"cmd": ["kong", "migrations", "list", "-c", "/etc/kong/kong.conf"], "rc": 5,
            "stdout": "Executed migrations:\n...", "stderr": ""}]
schema_meta_checked:
  description: Whether C(schema_meta) was read and agreed with C(kong migrations list).
  returned: success
  type: bool
  sample: true
status_checked:
  description: Whether C(kong migrations status) (Kong 3.0+) was read and agreed with C(kong migrations list).
  returned: success
  type: bool
  sample: true
entity_counts:
  description:
    - Rows per Kong entity table, read through the C(pg_*) options (only tables that exist); null when
      O(schema_meta_check) is off.
  returned: success
  type: dict
  sample: {"services": 3, "routes": 5, "plugins": 2, "consumers": 1}
msg:
  description: What was found, in one sentence.
  returned: always
  type: str
  sample: the database is 'pending'
"""

import functools

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_cli import KongCli
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_db import (
    HAS_PSYCOPG2,
    PSYCOPG2_IMPORT_ERROR,
    KongDb,
)
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_migrations import (
    KongMigrations,
    KongMigrationsError,
    check_migrations_params,
    find_kong,
    kong_not_found,
    migrations_argument_spec,
    read_state,
    uses_schema_meta,
)


def argument_spec() -> dict:
    return migrations_argument_spec()


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    problem = check_migrations_params(p)
    if problem:
        module.fail_json(msg=problem)
    use_db = uses_schema_meta(p)
    if use_db and not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2") + " (needed by schema_meta_check)", exception=PSYCOPG2_IMPORT_ERROR)
    kong_path = find_kong(p["kong_bin"], module.get_bin_path)
    if kong_path is None:
        module.fail_json(msg=kong_not_found(p["kong_bin"]))
    cli = KongCli(functools.partial(module.run_command, handle_exceptions=False), kong_path, p["kong_conf"], p["kong_prefix"], p["kong_env"])
    db = KongDb.from_params(p) if use_db else None
    runner = KongMigrations(cli, db=db, db_timeout=p["db_timeout"], lock_timeout=p["lock_timeout"])
    try:
        result = read_state(runner, db)
    except KongMigrationsError as exc:
        context = exc.context()
        context.pop("commands", None)
        module.fail_json(msg=str(exc), commands=runner.commands, **context)
    finally:
        if db is not None:
            db.close()
    for text in result.pop("warnings"):
        module.warn(text)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
