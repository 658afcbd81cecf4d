#!/usr/bin/env bash
# Build the offline molecule images when missing:
#   kongops/base:<hash>     Debian bookworm (debootstrap from this machine's apt source) + docker import
#   kongops/kong-host:<hash> kongops/lb-host:<hash> kongops/pg-host:<hash>   docker build FROM the base
#   kongops/kong-systemd-host:<hash>   the same, with systemd as PID 1 (molecule/real_hosts)
# Tags carry a hash of their build inputs, so an unchanged input reuses the cached image.
# Prints KEY=VALUE lines (KONGOPS_IMAGE_BASE, KONGOPS_IMAGE_KONG, KONGOPS_IMAGE_LB, KONGOPS_IMAGE_PG,
# KONGOPS_IMAGE_KONG_SYSTEMD).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGES_DIR="$MOLECULE_TOOLS_DIR/images"

build_base() {
  local packages hash tag mirror rootfs
  packages="$(grep -v '^\s*#' "$IMAGES_DIR/base/packages" | grep -v '^\s*$' | LC_ALL=C sort | paste -sd, -)"
  hash="$(content_hash "$DEBIAN_SUITE" "$IMAGES_DIR/base/packages" "$IMAGES_DIR/base/mkrootfs.sh")"
  tag="kongops/base:$hash"
  if image_exists "$tag"; then
    log "base image $tag cached"
    printf '%s\n' "$tag"; return 0
  fi
  command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
  mirror="$(debian_mirror)"
  rootfs="$MOLECULE_CACHE/rootfs-$hash"
  rm -rf "$rootfs"
  mkdir -p "$MOLECULE_CACHE"
  log "debootstrap $DEBIAN_SUITE (minbase + $(tr ',' ' ' <<<"$packages" | wc -w) packages) from this machine's apt source"
  if ! "$IMAGES_DIR/base/mkrootfs.sh" "$rootfs" "$mirror" "$DEBIAN_SUITE" "$packages" \
        > "$MOLECULE_CACHE/debootstrap.log" 2>&1; then
    tail -n 30 "$MOLECULE_CACHE/debootstrap.log" >&2
    [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    rm -rf "$rootfs"
    die "debootstrap failed (full log: $MOLECULE_CACHE/debootstrap.log)"
  fi
  log "importing $tag"
  tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/usr/bin/tini", "--", "sleep", "infinity"]' \
    - "$tag" >/dev/null
  rm -rf "$rootfs"
  printf '%s\n' "$tag"
}

build_layer() {
  local name="$1" base="$2" ctx="$IMAGES_DIR/$1" hash tag
  hash="$(content_hash "$base" $(find "$ctx" -type f))"
  tag="kongops/$name-host:$hash"
  if image_exists "$tag"; then
    log "$name image $tag cached"
  else
    log "building $tag"
    # Build steps reach the same Debian mirror as the host, through the host's network.
    if ! DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE=$base" -t "$tag" "$ctx" \
          > "$MOLECULE_CACHE/build-$name.log" 2>&1; then
      tail -n 30 "$MOLECULE_CACHE/build-$name.log" >&2
      die "docker build of $tag failed (full log: $MOLECULE_CACHE/build-$name.log)"
    fi
  fi
  printf '%s\n' "$tag"
}

# Remove the older builds of an image (other tags of the same kongops/* repository).
prune_old() {
  local tag="$1" old
  for old in $(docker image ls --format '{{.Repository}}:{{.Tag}}' "${tag%%:*}"); do
    [ "$old" = "$tag" ] || docker image rm "$old" >/dev/null 2>&1 || true
  done
}

main() {
  docker info >/dev/null 2>&1 || die "no Docker Engine answers (docker info failed)"
  local base kong lb pg kong_systemd tag pid
  base="$(build_base)"
  # The three layers build side by side (downloads and layer commits overlap).
  local dir name pids=() failed=0
  dir="$(mktemp -d)"
  for name in kong lb pg kong-systemd; do
    build_layer "$name" "$base" > "$dir/$name" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  kong="$(cat "$dir/kong")"; lb="$(cat "$dir/lb")"; pg="$(cat "$dir/pg")"
  kong_systemd="$(cat "$dir/kong-systemd")"
  rm -rf "$dir"
  [ "$failed" = 0 ] || die "building the host images failed"
  for tag in "$base" "$kong" "$lb" "$pg" "$kong_systemd"; do prune_old "$tag"; done
  printf 'KONGOPS_IMAGE_BASE=%s\nKONGOPS_IMAGE_KONG=%s\nKONGOPS_IMAGE_LB=%s\nKONGOPS_IMAGE_PG=%s\n' \
    "$base" "$kong" "$lb" "$pg"
  printf 'KONGOPS_IMAGE_KONG_SYSTEMD=%s\n' "$kong_systemd"
}

main "$@"
