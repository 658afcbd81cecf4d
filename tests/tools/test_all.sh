#!/usr/bin/env bash
# `make test`: sanity and lint (side by side), pytest and molecule, in that order, stopping at the
# first stage that fails. Where a Docker Engine answers, molecule's images and kong packages build in
# the background meanwhile (tests/molecule/run.sh --build-only: debootstrap and docker builds, minutes from an empty
# image store, mostly waiting on downloads), and the molecule stage finds them ready; the build is
# stopped when an earlier stage fails or the run is interrupted.
set -uo pipefail
cd "$(dirname "$0")/../.."
prebuild=""
lint=""
prebuild_log=".cache/molecule-prebuild.log"

# the background jobs run in sessions of their own (setsid): stopping one stops every process it started
stop_group() {
  [ -n "$1" ] || return 0
  kill -TERM -- "-$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}
stop_jobs() {
  stop_group "$lint"
  stop_group "$prebuild"
  lint="" prebuild=""
}
trap stop_jobs EXIT
trap 'stop_jobs; exit 130' INT TERM

if docker info >/dev/null 2>&1; then
  mkdir -p .cache
  setsid tests/molecule/run.sh --build-only >"$prebuild_log" 2>&1 &
  prebuild=$!
  echo "molecule: building the images and kong packages in the background ($prebuild_log)"
fi

# sanity and lint read the same files and change nothing: lint runs beside sanity (its output printed
# after sanity's), and either failing stops the run before pytest
make --no-print-directory venv || exit $?
mkdir -p .cache
lint_log=".cache/lint.log"
setsid make --no-print-directory lint >"$lint_log" 2>&1 &
lint=$!
make --no-print-directory sanity
sanity_rc=$?
wait "$lint"
lint_rc=$?
lint=""
echo "---- make lint ----"
cat "$lint_log"
[ "$sanity_rc" -eq 0 ] || exit "$sanity_rc"
[ "$lint_rc" -eq 0 ] || exit "$lint_rc"
make --no-print-directory pytest || exit $?

if [ -n "$prebuild" ]; then
  if ! wait "$prebuild"; then
    # the molecule stage builds again in the foreground and fails there with the reason
    echo "molecule: the background build failed; its log ends:"
    tail -n 20 "$prebuild_log"
  fi
  prebuild=""
fi
make --no-print-directory molecule-if-docker
