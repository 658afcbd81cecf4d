# -*- coding: utf-8 -*-
# Copyright: kongops.upgrade contributors
# Apache License 2.0 (see LICENSE)
# PRIVATE to the collection: not a public API.
"""Kong version strings: parsing and ordering."""

from __future__ import annotations

import re
from functools import total_ordering

# `kong version` prints the bare version, `3.9.3` (Kong/kong 3.9.3 kong/cmd/version.lua). Enterprise
# builds use four parts and reports quote `Kong Enterprise 3.7.1.2` (Kong/kong issue #13485); the
# Enterprise format is not in the open-source tree, so both prefixes are accepted.
_VERSION_RE = re.compile(r"^\s*(?:Kong(?: Enterprise)?\s+)?(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?\s*$")


class KongVersionError(ValueError):
    pass


@total_ordering
class KongVersion:
    def __init__(self, text: str):
        match = _VERSION_RE.match(str(text))
        if not match:
            raise KongVersionError(f"'{text}' is not a Kong version (expected X.Y.Z or X.Y.Z.W)")
        self.parts = tuple(int(p) for p in match.groups() if p is not None)
        self.enterprise = len(self.parts) == 4 or "Enterprise" in str(text)

    @property
    def major(self) -> int:
        return self.parts[0]

    @property
    def minor(self) -> int:
        return self.parts[1]

    @property
    def series(self) -> str:
        return f"{self.parts[0]}.{self.parts[1]}"

    def _key(self):
        return self.parts + (0,) * (4 - len(self.parts))

    def __eq__(self, other):
        return self._key() == _coerce(other)._key()

    def __lt__(self, other):
        return self._key() < _coerce(other)._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        return ".".join(str(p) for p in self.parts)

    __repr__ = __str__


def _coerce(value) -> KongVersion:
    return value if isinstance(value, KongVersion) else KongVersion(value)


def parse_version(text: str) -> KongVersion:
    return KongVersion(text)
