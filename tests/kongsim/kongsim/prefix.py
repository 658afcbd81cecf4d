"""The part of Kong's kong/cmd/utils/prefix_handler.lua `prepare_prefix` every command shares.

`kong start`, `prepare`, `reload` and `kong migrations ...` (the latter with skip_write = true,
kong/cmd/migrations.lua:95 at 3.4.2-3.9.3, :96 at 2.8.5) call it before touching the database:

- a missing prefix is created after the info line `prefix directory <prefix> not found, trying
  to create it` (prefix_handler.lua:338 at 2.8.5, :443 at 3.4.2, :461 at 3.7.1, :498 at 3.9.3);
  kong/cmd/utils/log.lua prints info lines on stdout, without a timestamp at the default level;
- a prefix that is not a directory fails with `<prefix> is not a directory`;
- `logs` and `pids` are created;
- the open-files limit (`ulimit -n`, "unlimited" counts as 65536) below 4096 logs the warning
  `ulimit is currently set to "<n>". For better performance set it to at least "4096" using
  "ulimit -n"` on stderr (prefix_handler.lua:416-420 at 2.8.5, :647-651 at 3.4.2, :665-669 at
  3.7.1, :709-713 at 3.9.3).
"""

from __future__ import annotations

import os
import resource

ULIMIT_MIN = 4096


class PrefixError(Exception):
    """prepare_prefix returned nil, err: the CLI prints `Error: <err>`."""


def open_files_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 65536 if soft == resource.RLIM_INFINITY else int(soft)


def prepare(prefix: str, info, warn) -> None:
    """Create `prefix` (and logs/, pids/) as Kong does; `info`/`warn` are the CLI's log functions."""
    if not os.path.exists(prefix):
        info(f"prefix directory {prefix} not found, trying to create it")
        try:
            os.makedirs(prefix)
        except OSError as exc:
            # UNCONFIRMED: penlight's makepath returns LuaFileSystem's "<path>: <strerror>".
            raise PrefixError(f"{exc.filename or prefix}: {exc.strerror}") from None
    elif not os.path.isdir(prefix):
        raise PrefixError(f"{prefix} is not a directory")
    for sub in ("logs", "pids"):
        try:
            os.makedirs(os.path.join(prefix, sub), exist_ok=True)
        except OSError as exc:
            raise PrefixError(f"{exc.filename or prefix}: {exc.strerror}") from None
    limit = open_files_limit()
    if limit < ULIMIT_MIN:
        warn(f'ulimit is currently set to "{limit}". For better performance set it to at least "{ULIMIT_MIN}" using "ulimit -n"')
