#!/usr/bin/env bash
# ansible-test needs the collection under .../ansible_collections/kongops/upgrade: copy the
# tracked and untracked-but-not-ignored files of the checkout there (a fresh directory per run)
# and run the sanity tests with the local Python 3.11. The copy holds what the collection ships
# (galaxy.yml build_ignore) plus its unit tests; the test infrastructure that never ships (the
# Kong simulator, the sandbox, integration suites, molecule, bench) is checked by ruff instead.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="$repo/.venv/bin:$PATH"
work=$(mktemp -d "${TMPDIR:-/tmp}/kongops-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/kongops/upgrade"
mkdir -p "$dest"
cd "$repo"
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  case "$f" in
    tests/kongsim/*|tests/sandbox/*|tests/services/*|tests/integration/*|tests/tools/*|tests/molecule/*|\
    tests/loadgen.py|tests/conftest.py|tests/__init__.py|molecule/*|bench/*|.ci/*) continue ;;
  esac
  [ -e "$f" ] && cp --parents -P "$f" "$dest/"
done
cd "$dest"
git init -q && git add -A >/dev/null
ansible-test sanity --local --python 3.11 --requirements --color no "$@" 2>&1 |
  grep -v '^Requirement already\|^Collecting\|^Using cached\|^Installing\|^Successfully\|^Looking in\|^\s*$\|Downloading\|━━\|^Processing /tmp\|Attempting uninstall\|Found existing installation\|Uninstalling\|^  Successfully'
