"""Install a Debian package when its binary is missing (tests need the real servers)."""

from __future__ import annotations

import os
import shutil
import subprocess


def ensure_binary(path: str, package: str) -> str:
    if os.path.exists(path):
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"{path} is missing: install the Debian package '{package}'")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "-q", package], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", package], env=env, check=True, stdout=subprocess.DEVNULL)
    if not os.path.exists(path):
        raise RuntimeError(f"installing '{package}' did not provide {path}")
    return path
