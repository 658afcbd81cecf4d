#!/usr/bin/env bash
# ansible-test needs the collection under .../ansible_collections/kongops/upgrade: copy the
# tracked and untracked-but-not-ignored files of the checkout there (a fresh directory per run)
# and run the sanity tests with the local Python 3.11.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="$repo/.venv/bin:$PATH"
work=$(mktemp -d "${TMPDIR:-/tmp}/kongops-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/kongops/upgrade"
mkdir -p "$dest"
cd "$repo"
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  [ -e "$f" ] && cp --parents -P "$f" "$dest/"
done
cd "$dest"
git init -q && git add -A >/dev/null
ansible-test sanity --local --python 3.11 --requirements --color no "$@" 2>&1 |
  grep -v '^Requirement already\|^Collecting\|^Using cached\|^Installing\|^Successfully\|^Looking in\|^\s*$\|Downloading\|━━\|^Processing /tmp\|Attempting uninstall\|Found existing installation\|Uninstalling\|^  Successfully'
