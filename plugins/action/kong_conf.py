# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""kong_conf: the module runs on the node. With declarative_config_src (a file on the controller) the
file is checked and hashed here, transferred to a temporary directory of the node, and the module
installs it beside kong.conf's edit and removes nothing but its own temporary copy: one module run
where a copy takes two (a stat, then the copy). In check mode nothing is transferred: the module
compares the node's file with the controller's sha256."""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase
from ansible_collections.kongops.upgrade.plugins.module_utils._files import sha256_file


class ActionModule(ActionBase):
    TRANSFERS_FILES = False  # the temporary directory is made only when a file goes over
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        src = args.get("declarative_config_src")
        if not src:
            args.pop("declarative_config_sha256", None)
            result.update(self._execute_module(module_name="kongops.upgrade.kong_conf", module_args=args, task_vars=task_vars))
            return result
        src = os.path.abspath(os.path.expanduser(str(src)))
        try:
            args["declarative_config_sha256"] = sha256_file(src)
        except OSError as exc:
            result.update(failed=True, msg=f"declarative_config_src: cannot read {src} on the controller: {exc.strerror or exc}")
            return result
        if self._play_context.check_mode:
            args["declarative_config_src"] = None
            result.update(self._execute_module(module_name="kongops.upgrade.kong_conf", module_args=args, task_vars=task_vars))
            return result
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        try:
            remote = self._connection._shell.join_path(tmpdir, "declarative_config")
            self._transfer_file(src, remote)
            self._fixup_perms2((tmpdir, remote), execute=False)
            args["declarative_config_src"] = remote
            result.update(self._execute_module(module_name="kongops.upgrade.kong_conf", module_args=args, task_vars=task_vars))
        finally:
            self._remove_tmp_path(tmpdir)
        return result
