"""The collection as a user receives it: `ansible-galaxy collection build`, installed into an empty
path, and every module, role and plugin documented by `ansible-doc` from there (nothing it needs is
left out of the artifact, no document points outside it)."""

from __future__ import annotations

import glob
import os
import subprocess
import tarfile

import pytest

from tests.sandbox.core import VENV_BIN

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(argv, env, cwd=None):
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=600, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("artifact")
    # only the installed copy: neither the venv's link to the checkout nor the system's collections
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(base / "collections"), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_NOCOLOR="1", HOME=str(base))
    _run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", REPO, "--output-path", str(base)], env)
    (artifact,) = glob.glob(str(base / "kongops-upgrade-*.tar.gz"))
    _run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "--offline", "-p", str(base / "collections"), artifact], env)
    return base, artifact, env


def _names(directory: str, suffix: str) -> list[str]:
    return sorted(f[: -len(suffix)] for f in os.listdir(os.path.join(REPO, directory)) if f.endswith(suffix) and not f.startswith("_"))


def test_the_artifact_ships_no_test_or_developer_file(installed):
    _base, artifact, _env = installed
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    assert "MANIFEST.json" in names and "meta/runtime.yml" in names
    shipped_dirs = {n.split("/", 1)[0] for n in names}
    assert not shipped_dirs & {"tests", "molecule", "bench", ".venv", ".ci", ".git", ".config"}, sorted(shipped_dirs)


@pytest.mark.parametrize(
    "kind, directory, suffix",
    [
        ("module", "plugins/modules", ".py"),
        ("callback", "plugins/callback", ".py"),
        ("filter", "plugins/filter", ".yml"),
        ("role", "roles", ""),
    ],
)
def test_ansible_doc_documents_everything_from_the_installed_copy(installed, kind, directory, suffix):
    base, _artifact, env = installed
    names = sorted(os.listdir(os.path.join(REPO, directory))) if kind == "role" else _names(directory, suffix)
    assert names
    out = _run([os.path.join(VENV_BIN, "ansible-doc"), "-t", kind] + [f"kongops.upgrade.{n}" for n in names], env, cwd=str(base))
    for name in names:
        assert f"kongops.upgrade.{name}" in out, f"ansible-doc -t {kind} does not document kongops.upgrade.{name}"
    installed_at = os.path.join(str(base), "collections", "ansible_collections", "kongops", "upgrade")
    assert installed_at in out or kind == "role", "the documentation did not come from the installed copy"
    for outside in ("FACTS.md", "DESIGN.md", "shared/reference"):
        assert outside not in out, f"a {kind} document points at {outside}, which the collection does not ship"
