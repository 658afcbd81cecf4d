"""What the collection ships points at nothing it does not ship."""

from __future__ import annotations

import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = ("plugins", "roles", "playbooks", "meta")
# The development reference (FACTS.md, DESIGN.md) is not in the artifact; sections of it (`§`) neither.
_OUTSIDE = re.compile(r"FACTS(\.md)?\b|DESIGN(\.md)?\b|§|reference/kong/")


def _shipped_files():
    for top in SHIPPED:
        for root, _dirs, files in os.walk(os.path.join(REPO, top)):
            if "__pycache__" in root:
                continue
            for name in files:
                if name.endswith((".py", ".yml", ".yaml", ".j2", ".md", ".cfg", ".txt")):
                    yield os.path.join(root, name)


@pytest.mark.parametrize("path", sorted(_shipped_files()), ids=lambda p: os.path.relpath(p, REPO))
def test_no_pointer_outside_the_collection(path):
    with open(path, encoding="utf-8") as fh:
        hits = [f"{n}: {line.strip()}" for n, line in enumerate(fh, 1) if _OUTSIDE.search(line)]
    assert not hits, "cite Kong's source (Kong/kong, tag, file) or a docs.konghq.com page instead:\n" + "\n".join(hits)
