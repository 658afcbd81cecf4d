#!/usr/bin/env bash
# Install the Kong node simulator as Kong VERSION, like a package:
#   tests/kongsim/install.sh VERSION DEST [PYTHON]
# creates DEST/lib/kongsim-VERSION/kongsim (the simulator) and DEST/bin/kong.
set -euo pipefail

VERSIONS="2.8.5 3.4.2 3.5.0 3.6.1 3.7.1 3.8.1 3.9.3"

usage() {
  echo "usage: $0 VERSION DEST [PYTHON]" >&2
  echo "  VERSION: one of: ${VERSIONS}" >&2
}

if [ "$#" -lt 2 ] || [ "$#" -gt 3 ]; then
  usage
  exit 2
fi
version="$1"
dest="$2"
case " ${VERSIONS} " in
  *" ${version} "*) ;;
  *)
    echo "install.sh: unsupported Kong version '${version}' (supported: ${VERSIONS})" >&2
    exit 2
    ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
if [ "$#" -eq 3 ]; then
  python="$3"
else
  python="${repo}/.venv/bin/python"
fi
if [ "${python#/}" = "${python}" ] && command -v "${python}" >/dev/null 2>&1; then
  :
elif [ ! -x "${python}" ]; then
  echo "install.sh: python interpreter '${python}' not found; pass one as the third argument" >&2
  exit 2
fi

mkdir -p "${dest}/bin" "${dest}/lib"
dest="$(cd "${dest}" && pwd)"
lib="${dest}/lib/kongsim-${version}"
rm -rf "${lib}.tmp"
mkdir -p "${lib}.tmp"
cp -R "${here}/kongsim" "${lib}.tmp/kongsim"
find "${lib}.tmp" -name '__pycache__' -type d -prune -exec rm -rf {} +
# byte-compile once, like a package install: every `kong` call would otherwise recompile the
# package (PYTHONDONTWRITEBYTECODE is common in CI environments)
"${python}" -m compileall -q "${lib}.tmp" >/dev/null 2>&1 || true
rm -rf "${lib}"
mv "${lib}.tmp" "${lib}"

tmp="${dest}/bin/.kong.$$"
cat > "${tmp}" <<SCRIPT
#!/bin/sh
# Kong ${version} (simulated by kongsim)
KONGSIM_VERSION=${version}
PYTHONPATH="${lib}\${PYTHONPATH:+:\$PYTHONPATH}"
export KONGSIM_VERSION PYTHONPATH
exec "${python}" -m kongsim.cli "\$@"
SCRIPT
chmod 0755 "${tmp}"
mv "${tmp}" "${dest}/bin/kong"
