#!/usr/bin/env bash
# `make molecule`: build what is missing (base/host images, kong .debs, apt repository), check the
# packaged Kong on a systemd host (check_packaged.sh), run the molecule scenarios with
# `molecule test`, and remove every container and network they created, also on failure or
# interruption.
#   tests/molecule/run.sh [SCENARIO ...]      default: every molecule/*/molecule.yml
#   tests/molecule/run.sh --build-only        only build what is missing (make test runs it in the background)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

VENV="$REPO_ROOT/.venv"
export PATH="$VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="${ANSIBLE_COLLECTIONS_PATH:-$VENV/collections}"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="${ANSIBLE_COLLECTIONS_SCAN_SYS_PATH:-true}"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-false}" ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-1}" NO_COLOR="${NO_COLOR:-1}"
export PY_COLORS="${PY_COLORS:-0}"
export PYTHONDONTWRITEBYTECODE=1
# ansible-playbook keeps the AnsiballZ payloads it builds across runs (tests/tools/ansiballz_pyc): on the
# controller only, the hosts' Python runs the modules as on any host
export KONGOPS_ANSIBALLZ_PYC="${KONGOPS_ANSIBALLZ_PYC-$REPO_ROOT/.cache/ansiballz-pyc}"
export KONGOPS_ANSIBALLZ_SOURCES="$REPO_ROOT/plugins"
export PYTHONPATH="$REPO_ROOT/tests/tools/ansiballz_pyc${PYTHONPATH:+:$PYTHONPATH}"

cleanup() {
  local ids nets
  ids="$(docker ps -aq --filter label=kongops.molecule 2>/dev/null)"
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
  nets="$(docker network ls -q --filter name='^kongops-mol-' 2>/dev/null)"
  [ -n "$nets" ] && docker network rm $nets >/dev/null 2>&1
  return 0
}

# The containers and networks of one scenario (its label and the networks its molecule.yml names).
cleanup_scenario() {
  local s="$1" ids net
  ids="$(docker ps -aq --filter "label=kongops.molecule=$s" 2>/dev/null)"
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
  for net in $(grep -o 'kongops-mol-[a-z0-9-]*' "molecule/$s/molecule.yml" 2>/dev/null | sort -u); do
    docker network rm "$net" >/dev/null 2>&1
  done
  return 0
}

ensure_host_tools() {
  local missing="" pair
  for pair in /usr/sbin/debootstrap:debootstrap /usr/bin/dpkg-scanpackages:dpkg-dev /usr/bin/dpkg-deb:dpkg; do
    [ -e "${pair%%:*}" ] || missing="$missing ${pair##*:}"
  done
  [ -z "$missing" ] && return 0
  [ "$(id -u)" = 0 ] || die "missing host tools:$missing (apt-get install$missing)"
  log "installing:$missing"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null; } \
    || die "could not install$missing"
}

# The images and the kong packages, built when missing and exported as KEY=VALUE, one builder at a
# time: `make test` starts one in the background (--build-only) while its other stages run, and the
# molecule stage then waits for it and finds everything cached.
build_all() {
  local out
  mkdir -p "$MOLECULE_CACHE"
  exec 9>"$MOLECULE_CACHE/build.lock"
  flock 9
  out="$("$MOLECULE_TOOLS_DIR/build_images.sh")" || die "building the images failed"
  while IFS='=' read -r key value; do export "$key=$value"; done <<<"$out"
  out="$("$MOLECULE_TOOLS_DIR/build_debs.sh")" || die "building the kong packages failed"
  while IFS='=' read -r key value; do export "$key=$value"; done <<<"$out"
  flock -u 9
  exec 9>&-
}

main() {
  local started=$SECONDS scenarios=("$@") s rc=0 failed=() passed=() t0 out
  if [ "${1:-}" = "--build-only" ]; then
    docker info >/dev/null 2>&1 || die "no Docker Engine answers (docker info failed)"
    ensure_host_tools
    build_all
    log "images and packages ready after $((SECONDS - started)) s"
    return 0
  fi
  docker info >/dev/null 2>&1 || die "no Docker Engine answers (docker info failed)"
  [ -x "$VENV/bin/molecule" ] || die "$VENV/bin/molecule is missing: run 'make venv' first"
  [ -e "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/kongops/upgrade" ] || \
    die "the collection is not linked under $ANSIBLE_COLLECTIONS_PATH: run 'make venv' first"
  if [ ${#scenarios[@]} -eq 0 ]; then
    # longest first (measured alone: real_hosts ~255 s, rolling_hybrid ~255, dual_cluster_postgres ~230,
    # rolling_dbless ~180, in_place_postgres ~130), so that the two slots end close together;
    # scenarios not named here follow in alphabetical order
    local s_all=() known
    for s in molecule/*/molecule.yml; do s_all+=("$(basename "$(dirname "$s")")"); done
    for known in real_hosts rolling_hybrid dual_cluster_postgres rolling_dbless in_place_postgres; do
      [ -f "molecule/$known/molecule.yml" ] && scenarios+=("$known")
    done
    for s in "${s_all[@]}"; do
      [[ " ${scenarios[*]} " == *" $s "* ]] || scenarios+=("$s")
    done
  fi
  ensure_host_tools

  trap 'cleanup; exit 130' INT TERM
  trap cleanup EXIT
  cleanup

  build_all
  log "images and packages ready after $((SECONDS - started)) s"

  # The scenarios have their own containers (label kongops.molecule=<scenario>) and networks, so
  # MOLECULE_JOBS of them (default 2, one per core) run at once; each one's output is printed whole
  # when it ends. check_packaged (the packaged Kong on a systemd host, without the collection, about
  # 30 s) is the first job of the same pool: it waits on its container as the scenarios do.
  local jobs="${MOLECULE_JOBS:-2}" logs pids=() names=() i status
  logs="$(mktemp -d)"
  for s in "${scenarios[@]}"; do
    [ -f "molecule/$s/molecule.yml" ] || die "no scenario molecule/$s"
  done
  for s in check_packaged "${scenarios[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    ( t0=$SECONDS
      if [ "$s" = check_packaged ]; then
        log "check_packaged"
        if "$MOLECULE_TOOLS_DIR/check_packaged.sh" >"$logs/$s.log" 2>&1; then status=passed; else status=failed; fi
      else
        log "molecule test -s $s"
        if molecule --base-config "$REPO_ROOT/.config/molecule/config.yml" test -s "$s" >"$logs/$s.log" 2>&1; then status=passed; else status=failed; fi
      fi
      cleanup_scenario "$s"
      echo "$status $((SECONDS - t0))" >"$logs/$s.result" ) &
    pids+=($!)
    names+=("$s")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || true
    s="${names[$i]}"
    log "---- $s ----"
    cat "$logs/$s.log"
    read -r status t0 <"$logs/$s.result" 2>/dev/null || { status=failed; t0="?"; }
    if [ "$status" = passed ]; then
      passed+=("$s ($t0 s)")
    else
      rc=1
      failed+=("$s ($t0 s)")
      # where it failed, repeated at the end of the output (a CI log is often read from its tail)
      grep -n -E '^(fatal|failed): |^TASK \[|^E  |^FAILED |ERROR|Traceback' "$logs/$s.log" 2>/dev/null \
        | grep -B1 -E ':(fatal|failed): |:E  |:FAILED |ERROR|Traceback' | grep -v '^--$' | tail -n 40 >"$logs/$s.why"
    fi
  done

  log "passed: ${passed[*]:-none}"
  if [ ${#failed[@]} -gt 0 ]; then
    for s in "${names[@]}"; do
      [ -s "$logs/$s.why" ] || continue
      log "---- where $s failed (line numbers of its output above) ----"
      cat "$logs/$s.why" >&2
    done
    log "FAILED: ${failed[*]}"
  fi
  rm -rf "$logs"
  log "total $((SECONDS - started)) s"
  return $rc
}

main "$@"
