#!/usr/bin/env bash
# `make test`: sanity and lint (side by side), then pytest and molecule side by side, stopping at the
# first stage that fails. Where a Docker Engine answers, molecule's images and kong packages build in
# the background from the start (tests/molecule/run.sh --build-only: debootstrap and docker builds,
# minutes from an empty image store, mostly waiting on downloads), and the molecule stage finds them
# ready.
# pytest's end-to-end files spend much of their time waiting (soaks, drains, Kong's timers), so the
# molecule stage runs beside them, one scenario at a time (MOLECULE_SLOTS_FILE) while pytest runs and
# two once it has ended; its output is printed after pytest's. A failing pytest stops it; every
# background job is stopped when the run is interrupted.
set -uo pipefail
cd "$(dirname "$0")/../.."
prebuild=""
lint=""
molecule=""
prebuild_log=".cache/molecule-prebuild.log"
molecule_log=".cache/molecule.log"
slots_file=".cache/molecule-slots"

# the background jobs run in sessions of their own (setsid): stopping one stops every process it started
stop_group() {
  [ -n "$1" ] || return 0
  kill -TERM -- "-$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}
stop_jobs() {
  stop_group "$lint"
  stop_group "$molecule"
  stop_group "$prebuild"
  lint="" molecule="" prebuild=""
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
if [ -n "$prebuild" ]; then
  echo 1 >"$slots_file"
  MOLECULE_SLOTS_FILE="$slots_file" setsid make --no-print-directory molecule >"$molecule_log" 2>&1 &
  molecule=$!
  echo "molecule: running beside pytest, one scenario at a time until pytest ends ($molecule_log)"
fi
make --no-print-directory pytest
pytest_rc=$?
if [ "$pytest_rc" -ne 0 ]; then
  [ -n "$molecule" ] && echo "molecule: stopped, pytest failed (what it had printed: $molecule_log)"
  exit "$pytest_rc"
fi
[ -n "$molecule" ] && echo 2 >"$slots_file"

if [ -n "$prebuild" ]; then
  if ! wait "$prebuild"; then
    # the molecule stage builds again itself and fails there with the reason
    echo "molecule: the background build failed; its log ends:"
    tail -n 20 "$prebuild_log"
  fi
  prebuild=""
fi
if [ -z "$molecule" ]; then
  make --no-print-directory molecule-if-docker
  exit $?
fi
wait "$molecule"
molecule_rc=$?
molecule=""
echo "---- make molecule ----"
cat "$molecule_log"
exit "$molecule_rc"
