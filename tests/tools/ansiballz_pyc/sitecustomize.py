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

In ansible-playbook itself, the AnsiballZ payloads are kept across runs the same way. Ansible builds a
module's payload (it parses the module and every module_utils file it imports to find what to send)
once per run and keeps it in the run's own temporary directory, which goes with the run: a run of
the suites builds a dozen of them again, about a tenth of the controller's CPU in a rolling upgrade.
Here the run's ``ansiballz_cache`` is a link to a directory named by a digest of what a payload is
built from (Ansible's version, the interpreter, every .py file under ``KONGOPS_ANSIBALLZ_SOURCES`` - the
collection's plugins - by path, size and mtime, and the installed collections' directory): any
change to them starts an empty one. Ansible's own lock and rename keep parallel runs apart.

Set by ``tests.integration.ansible_run.ansible_env`` for the suites' runs and the sandbox's
local-connection hosts, and by ``tests/molecule/run.sh`` for molecule's controller (the containers'
Python runs the modules as any host does). ``KONGOPS_ANSIBALLZ_PYC`` is the cache directory; empty
turns both caches off, as ``make bench`` does so that its figures stay those of a plain controller
and plain hosts.
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


def _payload_dir(cache: str) -> str:
    import hashlib
    import sys

    from ansible.release import __version__

    digest = hashlib.sha1(("%s\0%s\0%s" % (__version__, sys.executable, sys.version)).encode())
    for top in filter(None, os.environ.get("KONGOPS_ANSIBALLZ_SOURCES", "").split(os.pathsep)):
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(n for n in files if n.endswith(".py")):
                st = os.stat(os.path.join(root, name))
                digest.update(("%s\0%d\0%d\0" % (os.path.join(root, name), st.st_size, st.st_mtime_ns)).encode())
    for path in sys.path:
        if os.path.isdir(os.path.join(path, "ansible_collections")):
            digest.update(("%s\0%d\0" % (path, os.stat(os.path.join(path, "ansible_collections")).st_mtime_ns)).encode())
    return os.path.join(cache, "ansiballz", digest.hexdigest())


def _link_payload_cache(constants) -> None:
    try:
        target = _payload_dir(_CACHE)
        os.makedirs(target, mode=0o700, exist_ok=True)
        os.symlink(target, os.path.join(constants.DEFAULT_LOCAL_TMP, "ansiballz_cache"))
    except (OSError, AttributeError, ImportError):
        pass  # Ansible builds the payloads in the run's directory, as without this cache


class _AfterAnsibleConstants:
    """Links the payload cache once ``ansible.constants`` (which makes the run's temporary directory) is loaded."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "ansible.constants":
            return None
        import importlib.machinery
        import sys

        sys.meta_path.remove(cls)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_link(module):
            exec_module(module)
            _link_payload_cache(module)

        spec.loader.exec_module = exec_then_link
        return spec


def _main() -> None:
    import sys

    if not _CACHE:
        return
    if hasattr(zipimport, "_compile_source"):
        _install(_CACHE)
    if os.path.basename((getattr(sys, "argv", None) or [""])[0]).startswith("ansible"):
        sys.meta_path.insert(0, _AfterAnsibleConstants)


_main()
