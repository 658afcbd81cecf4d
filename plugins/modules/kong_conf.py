# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kong_conf
short_description: Set the named settings of an existing kong.conf and keep everything else
version_added: 0.2.0
description:
  - Reads the node's C(kong.conf), sets only the settings given, renames or comments out the
    settings given, and keeps every other line and comment byte for byte. A missing file is
    created from the settings alone (a fresh host).
  - Values are written as Kong's configuration loader reads them back (Kong/kong 3.9.3
    C(kong/conf_loader/init.lua) lines 127-149, C(load_config)) - a C(#) is written C(\#) since
    Kong cuts a value at an unescaped C(#); a value with a newline, a trailing backslash
    (Penlight's line continuation) or surrounding white space is refused, naming the setting, and
    nothing is written.
  - A setting already holding the wanted value (as Kong reads it) is left alone, so a re-run
    reports no change.
  - With O(declarative_config_src), a DB-less node's declarative configuration is installed in the same
    call (a file on the controller, which the action plugin transfers), in one task and one module run where
    a copy would take two.
author:
  - kongops.upgrade contributors (@kongops)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.files
  - kongops.upgrade.attributes.actiongroup_none
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Values of O(secret_settings) are shown as C(********) in the diff.
  platform:
    platforms: posix
options:
  path:
    description:
      - The C(kong.conf) to edit. A missing file is created (mode C(0640)), and its directory
        (mode C(0755)) when that is missing too.
    type: path
    required: true
  settings:
    description:
      - Settings to set, name to value. Booleans are written C(on)/C(off), lists joined with C(, ).
    type: dict
    default: {}
  secret_settings:
    description:
      - Settings whose values are secrets (for example C(pg_password)); set like O(settings), never
        logged, masked in the diff.
    type: dict
    default: {}
  create_settings:
    description:
      - Settings written only when the file does not exist yet (a fresh host), under O(settings);
        an existing file keeps its own values of them.
    type: dict
    default: {}
    version_added: 0.1.0
  create_secret_settings:
    description:
      - Like O(create_settings), for secrets (never logged, masked in the diff).
    type: dict
    default: {}
    version_added: 0.1.0
  rename:
    description:
      - Old setting name to new name; every active line of the old name is renamed, its value and
        comment kept (for settings that the target version renamed).
    type: dict
    default: {}
  remove:
    description:
      - Settings whose active lines are commented out (for settings the target version removed).
    type: list
    elements: str
    default: []
  kong_version:
    description:
      - Version of the Kong that will read the file. Before 3.2.0 Kong copies the values into
        its prefix's C(.kong_env) without escaping C(#) (Kong/kong 3.2.0
        C(kong/cmd/utils/prefix_handler.lua) C(quote_hash)), so a value with C(#) is refused.
    type: str
  backup:
    description: Keep a timestamped copy of the file before changing it.
    type: bool
    default: true
  declarative_config_src:
    description:
      - A declarative configuration file on the controller, installed at O(declarative_config_dest) when
        its content differs (mode C(0640); an existing file keeps its owner). It holds credentials and is
        never shown, in the diff or elsewhere.
      - The action plugin checks it on the controller, transfers it to a temporary directory of the node
        (not in check mode), checks the copy against the controller's sha256 and removes it.
    type: path
    version_added: 0.2.0
  declarative_config_dest:
    description: Where the node reads its declarative configuration (kong.conf's C(declarative_config)).
    type: path
    version_added: 0.2.0
  declarative_config_sha256:
    description:
      - Set by the action plugin (the sha256 of O(declarative_config_src) on the controller); not to be given.
    type: str
    version_added: 0.2.0
"""

EXAMPLES = r"""
- name: Point the node at its database, keep the operator's lines
  kongops.upgrade.kong_conf:
    path: /etc/kong/kong.conf
    settings:
      database: postgres
      pg_host: db.internal
      pg_ssl: true
    secret_settings:
      pg_password: "{{ vault_kong_pg_password }}"
  diff: true
"""

RETURN = r"""
changes:
  description: What was changed, one entry per setting.
  returned: success
  type: list
  elements: dict
  sample: [{"setting": "pg_host", "action": "changed", "line": 12}, {"setting": "pg_ssl", "action": "added"}]
created:
  description: Whether the file did not exist before.
  returned: success
  type: bool
backup_file:
  description: The copy of the previous file.
  returned: changed and a backup was made
  type: str
  sample: /etc/kong/kong.conf.12345.2026-12-03@08:00:00~
custom_plugins:
  description:
    - The plugins that the resulting file's C(plugins) setting names besides C(bundled) and C(off)
      (custom plugins, which the node must have on its Lua path).
  returned: success
  type: list
  elements: str
  sample: [my-header]
path:
  description: The file edited.
  returned: success
  type: str
declarative_config_changed:
  description: Whether O(declarative_config_dest) was (or, in check mode, would be) replaced.
  returned: when O(declarative_config_src) is given
  type: bool
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kongops.upgrade.plugins.module_utils._files import atomic_write, sha256_file
from ansible_collections.kongops.upgrade.plugins.module_utils._kong_conf import (
    SETTING_RE,
    KongConfError,
    custom_plugins,
    edit,
    parse,
)

MASK = "********"
# Settings masked in the diff whatever the caller passed: the operator's file may hold secrets.
SECRET_NAME_RE = re.compile(r"password|secret|token|credential|session_conf")


def mask(text: str, secrets) -> str:
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = SETTING_RE.match(line.rstrip("\r\n"))
        key = m.group("key").lower() if m else ""
        if m and (key in secrets or SECRET_NAME_RE.search(key)):
            end = line[len(line.rstrip("\r\n")) :]
            lines[i] = f"{m.group('indent')}{m.group('key')}{m.group('sep')}{MASK}{end}"
    return "".join(lines)


def sha256_of(path: str) -> str | None:
    """The file's sha256, or None when it does not exist."""
    try:
        return sha256_file(path)
    except FileNotFoundError:
        return None


def install_declarative(module, result: dict) -> bool:
    """Put the transferred declarative configuration at its place when its content differs; in check
    mode only compare the destination with the controller's sha256. Returns whether it changed."""
    p = module.params
    dest, src, wanted = p["declarative_config_dest"], p["declarative_config_src"], p["declarative_config_sha256"]
    if not dest:
        module.fail_json(msg="declarative_config_dest: required with declarative_config_src (where the node reads it)", **result)
    if os.path.isdir(dest):
        module.fail_json(msg=f"declarative_config_dest: {dest} is a directory", **result)
    if module.check_mode:
        return wanted is None or sha256_of(dest) != wanted
    try:
        got = sha256_of(src)
        if got is None:
            module.fail_json(msg=f"declarative_config_src: {src} is not on the node (the transfer did not arrive)", **result)
        if wanted and got != wanted:
            module.fail_json(msg=f"declarative_config_src: the copy on the node reads {got}, the controller's file {wanted}; nothing was installed", **result)
        if sha256_of(dest) == got:
            return False
        with open(src, "rb") as fh:
            data = fh.read()
        atomic_write(dest, data, mode=0o640, prefix=".kong-declarative.")
    except OSError as exc:
        module.fail_json(msg=f"declarative_config_dest: cannot write {dest}: {exc.strerror or exc}", **result)
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            settings=dict(type="dict", default={}),
            secret_settings=dict(type="dict", default={}, no_log=True),
            create_settings=dict(type="dict", default={}),
            create_secret_settings=dict(type="dict", default={}, no_log=True),
            rename=dict(type="dict", default={}),
            remove=dict(type="list", elements="str", default=[]),
            backup=dict(type="bool", default=True),
            kong_version=dict(type="str"),
            declarative_config_src=dict(type="path"),
            declarative_config_dest=dict(type="path"),
            declarative_config_sha256=dict(type="str"),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"]
    for plain, secret in (
        ("settings", "secret_settings"),
        ("create_settings", "create_secret_settings"),
        ("settings", "create_secret_settings"),
        ("create_settings", "secret_settings"),
    ):
        overlap = sorted(set(p[plain]) & set(p[secret]))
        if overlap:
            module.fail_json(msg=f"{plain} and {secret} both name {', '.join(overlap)}: give each once")
    created = not os.path.exists(path)
    if os.path.isdir(path):
        module.fail_json(msg=f"path: {path} is a directory, not a kong.conf")
    before = ""
    if not created:
        try:
            with open(path, encoding="utf-8", newline="") as fh:
                before = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            module.fail_json(msg=f"cannot read {path}: {exc}")
    wanted = dict(p["create_settings"]) if created else {}
    wanted.update(p["create_secret_settings"] if created else {})
    wanted.update(p["settings"])
    wanted.update(p["secret_settings"])
    try:
        after, changes = edit(before, wanted, remove=p["remove"], rename=p["rename"], kong_version=p["kong_version"])
    except KongConfError as exc:
        module.fail_json(msg=str(exc), setting=exc.setting)
    secrets = set(k.lower() for k in list(p["secret_settings"]) + list(p["create_secret_settings"]))
    changed = after != before or created
    result = dict(changed=changed, changes=changes, created=created, path=path)
    if module._diff:
        result["diff"] = dict(before_header=path, after_header=path, before=mask(before, secrets), after=mask(after, secrets))
    if changed and not module.check_mode:
        if not created and p["backup"]:
            result["backup_file"] = module.backup_local(path)
        directory = os.path.dirname(path) or "."
        try:
            if created and not os.path.isdir(directory):
                os.makedirs(directory, mode=0o755)
                os.chmod(directory, 0o755)  # makedirs' mode goes through the umask
            # a new kong.conf may hold pg_password: 0640; an existing one keeps its mode and owner
            atomic_write(path, after, mode=0o640 if created else None, prefix=".kong.conf.")
        except OSError as exc:
            module.fail_json(msg=f"cannot write {path}: {exc}")
    if not module.check_mode and os.path.exists(path):
        file_args = module.load_file_common_arguments(p)
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    result["custom_plugins"] = custom_plugins(parse(after))
    if p["declarative_config_src"] or p["declarative_config_sha256"]:
        result["declarative_config_changed"] = install_declarative(module, result)
        result["changed"] = result["changed"] or result["declarative_config_changed"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
