# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE), a licence compatible with the GNU General Public License v3.0
# under which Ansible is distributed.
"""kong_backup: the module runs on the node; with controller_copy the declarative backup it wrote is
then copied to the controller in the same task, checked against the manifest's sha256, into a
directory of mode 0700 as a file of mode 0600 (written under a temporary name and renamed, so the file
never exists with the controller's umask). One task instead of a directory, a fetch and a chmod."""

from __future__ import annotations

import base64
import os
import stat
import tempfile

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.kongops.upgrade.plugins.module_utils._backup_common import sha256_bytes, sha256_file
from ansible_collections.kongops.upgrade.plugins.module_utils._files import atomic_write, private_dirs


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        copy_to = args.pop("controller_copy", None)
        result.update(self._execute_module(module_name="kongops.upgrade.kong_backup", module_args=args, task_vars=task_vars))
        if not copy_to or result.get("failed") or self._play_context.check_mode:
            return result
        source = (result.get("paths") or {}).get("declarative")
        if not source:
            return result
        copy_to = os.path.abspath(os.path.expanduser(str(copy_to)))
        try:
            data = self._remote_bytes(source, task_vars)
            expected = _manifest_sha256(result.get("manifest") or {}, source)
            got = sha256_bytes(data)
            if expected and got != expected:
                raise AnsibleError(f"the copy of {source} read {got}, the backup's manifest says {expected}")
            written = _write_private(copy_to, data, got)
        except (AnsibleError, OSError) as exc:
            result.update(
                failed=True,
                msg=f"the backup was taken and verified on the node ({source}), but copying it to the controller at {copy_to} failed: {exc}",
            )
            return result
        result.update(changed=bool(result.get("changed")) or written, controller_copy=copy_to)
        return result

    def _remote_bytes(self, path: str, task_vars) -> bytes:
        """The file as the node has it: through the connection where no become is asked (one transfer),
        through slurp with become (the connection's user may not read a file become wrote)."""
        if not self._play_context.become:
            with tempfile.TemporaryDirectory(prefix="kongops-backup-") as staging:
                local = os.path.join(staging, "declarative.yml")
                self._connection.fetch_file(path, local)
                with open(local, "rb") as fh:
                    return fh.read()
        slurped = self._execute_module(module_name="ansible.legacy.slurp", module_args={"src": path}, task_vars=task_vars)
        if slurped.get("failed"):
            raise AnsibleError(slurped.get("msg") or "slurp failed")
        return base64.b64decode(slurped["content"])


def _manifest_sha256(manifest: dict, path: str) -> str | None:
    name = os.path.basename(path)
    for entry in manifest.get("files") or []:
        if entry.get("kind") == "declarative" or entry.get("name") == name:
            return entry.get("sha256")
    return None


def _write_private(path: str, data: bytes, sha256: str) -> bool:
    """Directory 0700, file 0600, atomically (module_utils._files, the collection's one way to write a
    private file): the copy holds every credential of the configuration. Whether anything changed: a copy
    already there with the same content and mode is left as it is."""
    directory = os.path.dirname(path)
    private_dirs(directory)
    changed = False
    if stat.S_IMODE(os.stat(directory).st_mode) != 0o700:
        os.chmod(directory, 0o700)
        changed = True
    if os.path.isfile(path) and not os.path.islink(path) and stat.S_IMODE(os.stat(path).st_mode) == 0o600 and sha256_file(path) == sha256:
        return changed
    atomic_write(path, data, mode=0o600)
    return True
