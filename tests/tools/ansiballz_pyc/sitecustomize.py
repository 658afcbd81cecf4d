"""Bytecode cache for the module runs of the test suites (on PYTHONPATH through ``ansible_env``).

An Ansible module runs as a fresh Python process that imports the module and its module_utils
from the AnsiballZ zip the controller sent. Python's ``zipimport`` writes no bytecode, so every
module run compiles ``ansible.module_utils.basic`` and the rest again: about a tenth of a CPU
second per module run, a quarter of what the run costs on the sandbox's hosts, and the suites make
thousands of them on a machine whose two cores they keep busy. This cache compiles each source
once: the code object is kept under the sha1 of the source (and the interpreter's cache tag and
optimisation level), and a later import of the same source loads it and gives it the path it is
imported from now (``_imp._fix_co_filename``, as importlib does for .pyc files), so tracebacks
name the zip the module ran from as before. Nothing a module does changes: the same source gives
the same code. A read or write that fails compiles as Python would.

Set by ``tests.integration.ansible_run.ansible_env`` for the sandbox's local-connection hosts
(``KONGOPS_ANSIBALLZ_PYC``: the cache directory; empty turns it off, as ``make bench`` does so that
its figures stay those of a host without such a cache).
"""

import os
import zipimport

_CACHE = os.environ.get("KONGOPS_ANSIBALLZ_PYC", "")


def _install(cache: str) -> None:
    import _imp
    import marshal
    import sys

    compile_source = zipimport._compile_source
    tag_dir = os.path.join(cache, "%s-O%d" % (sys.implementation.cache_tag, sys.flags.optimize))

    def compile_cached(pathname, source):
        import hashlib

        path = os.path.join(tag_dir, hashlib.sha1(source).hexdigest())
        try:
            with open(path, "rb") as fh:
                code = marshal.loads(fh.read())
        except (OSError, ValueError, EOFError, TypeError):
            code = compile_source(pathname, source)
            try:
                os.makedirs(tag_dir, mode=0o700, exist_ok=True)
                tmp = "%s.%d.tmp" % (path, os.getpid())
                with open(tmp, "wb") as fh:
                    fh.write(marshal.dumps(code))
                os.replace(tmp, path)
            except OSError:
                pass
            return code
        _imp._fix_co_filename(code, pathname)
        return code

    zipimport._compile_source = compile_cached


if _CACHE and hasattr(zipimport, "_compile_source"):
    _install(_CACHE)
