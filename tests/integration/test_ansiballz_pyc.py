"""The suites' bytecode cache for module runs (tests/tools/ansiballz_pyc/sitecustomize.py)."""

from __future__ import annotations

import json
import marshal
import os
import stat
import subprocess
import sys
import zipfile

from tests.integration.ansible_run import ANSIBALLZ_PYC_SITE, ansible_env, run_playbook

PROBE = r"""
import json, sys, traceback
sys.path.insert(0, sys.argv[1])
import probe_mod
try:
    probe_mod.fail()
except RuntimeError:
    where = traceback.extract_tb(sys.exc_info()[2])[-1].filename
print(json.dumps({"value": probe_mod.VALUE, "where": where}))
"""


PING = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: Ping\n      ansible.builtin.ping:\n        data: pong\n"


def _zip(path: str, source: str) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("probe_mod.py", source)
    return path


def _probe(archive: str, cache: str) -> dict:
    env = dict(os.environ, KONGOPS_ANSIBALLZ_PYC=cache, PYTHONPATH=ANSIBALLZ_PYC_SITE)
    out = subprocess.run([sys.executable, "-c", PROBE, archive], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def test_a_source_is_compiled_once_and_named_by_the_zip_it_runs_from(tmp_path):
    cache = str(tmp_path / "cache")
    source = "VALUE = 1\n\ndef fail():\n    raise RuntimeError('x')\n"
    first = _probe(_zip(str(tmp_path / "one.zip"), source), cache)
    assert first == {"value": 1, "where": str(tmp_path / "one.zip" / "probe_mod.py")}
    (tag_dir,) = os.listdir(cache)
    assert stat.S_IMODE(os.stat(os.path.join(cache, tag_dir)).st_mode) == 0o700
    (entry,) = os.listdir(os.path.join(cache, tag_dir))

    # the second zip's import takes the cached code (swapped here for other code under the same key)
    # and names its own zip in the traceback, not the first one's
    other = compile("VALUE = 2\n\ndef fail():\n    raise RuntimeError('y')\n", "elsewhere.py", "exec", dont_inherit=True)
    with open(os.path.join(cache, tag_dir, entry), "wb") as fh:
        fh.write(marshal.dumps(other))
    second = _probe(_zip(str(tmp_path / "two.zip"), source), cache)
    assert second == {"value": 2, "where": str(tmp_path / "two.zip" / "probe_mod.py")}

    # a damaged entry is compiled again and replaced
    with open(os.path.join(cache, tag_dir, entry), "wb") as fh:
        fh.write(b"\x00not marshal")
    assert _probe(_zip(str(tmp_path / "three.zip"), source), cache)["value"] == 1
    assert _probe(_zip(str(tmp_path / "four.zip"), source), cache)["value"] == 1


def test_an_empty_setting_turns_it_off(tmp_path):
    cache = str(tmp_path / "cache")
    env = dict(os.environ, KONGOPS_ANSIBALLZ_PYC="", PYTHONPATH=ANSIBALLZ_PYC_SITE)
    archive = _zip(str(tmp_path / "one.zip"), "VALUE = 3\n\ndef fail():\n    raise RuntimeError('x')\n")
    out = subprocess.run([sys.executable, "-c", PROBE, archive], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout)["value"] == 3
    assert not os.path.exists(cache)


def test_module_runs_fill_the_cache_and_still_report_their_results(tmp_path):
    cache = str(tmp_path / "cache")
    env = {"KONGOPS_ANSIBALLZ_PYC": cache}
    assert ansible_env(env)["PYTHONPATH"].split(os.pathsep)[0] == ANSIBALLZ_PYC_SITE
    first = run_playbook(PING, env=env)
    assert first.rc == 0, first.stderr
    (tag_dir,) = [d for d in os.listdir(cache) if d != "ansiballz"]
    entries = sorted(os.listdir(os.path.join(cache, tag_dir)))
    assert len(entries) > 10  # the module and every module_utils file it imports
    second = run_playbook(PING, env=env)
    assert second.rc == 0, second.stderr
    assert second.result("Ping")["ping"] == "pong"
    assert sorted(os.listdir(os.path.join(cache, tag_dir))) == entries

    # the payload ansible-playbook built in the first run is the one the second run sent
    (payloads,) = os.listdir(os.path.join(cache, "ansiballz"))
    payload = os.path.join(cache, "ansiballz", payloads, "ansible.modules.ping-ZIP_DEFLATED-none")
    built = os.stat(payload).st_mtime_ns
    assert run_playbook(PING, env=env).rc == 0
    assert os.stat(payload).st_mtime_ns == built


def test_a_changed_plugin_file_starts_an_empty_payload_directory(tmp_path):
    cache, sources = str(tmp_path / "cache"), tmp_path / "plugins"
    sources.mkdir()
    (sources / "mod.py").write_text("x = 1\n")
    env = {"KONGOPS_ANSIBALLZ_PYC": cache, "KONGOPS_ANSIBALLZ_SOURCES": str(sources)}
    assert run_playbook(PING, env=env).rc == 0
    (sources / "mod.py").write_text("x = 22\n")
    assert run_playbook(PING, env=env).rc == 0
    assert len(os.listdir(os.path.join(cache, "ansiballz"))) == 2
