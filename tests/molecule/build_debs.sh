#!/usr/bin/env bash
# Package the Kong node simulator as Debian packages named `kong`, one per version
# (kong_<version>_amd64.deb: /usr/local/bin/kong, /usr/local/lib/kongsim-<version>,
# /usr/local/bin/kong-service), and index them as a flat apt repository that the molecule
# containers mount at /srv/kong-apt:  deb [trusted=yes] file:/srv/kong-apt ./
# Rebuilt only when the simulator or this packaging changes. Prints KONGOPS_KONG_APT_DIR=<dir>.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KONGSIM_DIR="$REPO_ROOT/tests/kongsim"
DEB_DIR="$MOLECULE_TOOLS_DIR/deb"
DEPENDS="python3 (>= 3.11), python3-aiohttp (>= 3.8), python3-yaml, python3-psycopg2"

inputs() {
  find "$KONGSIM_DIR/kongsim" -type f ! -path '*/__pycache__/*' ! -name '*.pyc'
  printf '%s\n' "$KONGSIM_DIR/install.sh"
  find "$DEB_DIR" -type f
  printf '%s\n' "$MOLECULE_TOOLS_DIR/build_debs.sh"
}

build_one() {
  local version="$1" work="$2" root stage
  root="$work/kong_$version"
  stage="$root/usr/local"
  mkdir -p "$stage" "$root/DEBIAN"
  "$KONGSIM_DIR/install.sh" "$version" "$stage" /usr/bin/python3
  # install.sh writes the absolute library path into bin/kong: make it the installed path.
  sed -i "s#$stage#/usr/local#g" "$stage/bin/kong"
  # Byte code compiled in the build directory names it: the package compiles at install time instead.
  find "$root" -name '__pycache__' -type d -prune -exec rm -rf {} +
  if grep -rlF "$work" "$root" >/dev/null; then
    die "the kong $version package still names the build directory: $(grep -rlF "$work" "$root" | head -3)"
  fi
  install -m 0755 "$DEB_DIR/kong-service" "$stage/bin/kong-service"
  sed "s#@LIB@#/usr/local/lib/kongsim-$version#g" "$DEB_DIR/postinst" > "$root/DEBIAN/postinst"
  sed "s#@LIB@#/usr/local/lib/kongsim-$version#g" "$DEB_DIR/prerm" > "$root/DEBIAN/prerm"
  chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm"
  cat > "$root/DEBIAN/control" <<CONTROL
Package: kong
Version: $version
Architecture: amd64
Maintainer: kongops maintainers <maintainers@kongops.invalid>
Depends: $DEPENDS
Section: net
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Description: Kong Gateway $version (kongops test simulator)
 The kongops.upgrade Kong node simulator installed as Kong $version: the kong
 command line at /usr/local/bin/kong and a service wrapper for hosts without
 systemd at /usr/local/bin/kong-service.
CONTROL
  dpkg-deb --root-owner-group -Zxz --build "$root" "$work/out/kong_${version}_amd64.deb" >/dev/null
}

write_release() {
  local dir="$1" f
  {
    printf 'Origin: kongops\nLabel: kongops kong test repository\nSuite: stable\nCodename: kongops\n'
    printf 'Date: %s\nArchitectures: amd64\nSHA256:\n' "$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
    for f in Packages Packages.gz; do
      printf ' %s %s %s\n' "$(sha256sum < "$dir/$f" | cut -d' ' -f1)" "$(stat -c %s "$dir/$f")" "$f"
    done
  } > "$dir/Release"
}

work=""

main() {
  command -v dpkg-deb >/dev/null || die "dpkg-deb is missing"
  command -v dpkg-scanpackages >/dev/null || die "dpkg-scanpackages is missing (apt-get install dpkg-dev)"
  local hash v
  hash="$(content_hash "$KONG_VERSIONS|$DEPENDS" $(inputs))"
  if [ -f "$KONG_APT_DIR/.inputs-hash" ] && [ "$(cat "$KONG_APT_DIR/.inputs-hash")" = "$hash" ]; then
    log "kong packages cached in $KONG_APT_DIR ($hash)"
  else
    log "building kong packages: $KONG_VERSIONS"
    mkdir -p "$MOLECULE_CACHE"
    work="$(mktemp -d "$MOLECULE_CACHE/debs.XXXXXX")"
    trap 'rm -rf "${work:-}"' EXIT
    mkdir -p "$work/out"
    for v in $KONG_VERSIONS; do build_one "$v" "$work"; done
    (cd "$work/out" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null > Packages)
    [ "$(grep -c '^Package: kong$' "$work/out/Packages")" -eq "$(wc -w <<<"$KONG_VERSIONS")" ] \
      || die "dpkg-scanpackages did not index every package"
    gzip -9n < "$work/out/Packages" > "$work/out/Packages.gz"
    write_release "$work/out"
    printf '%s\n' "$hash" > "$work/out/.inputs-hash"
    chmod -R a+rX "$work/out"
    rm -rf "$KONG_APT_DIR"
    mv "$work/out" "$KONG_APT_DIR"
  fi
  printf 'KONGOPS_KONG_APT_DIR=%s\n' "$KONG_APT_DIR"
}

main "$@"
