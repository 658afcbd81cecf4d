#!/usr/bin/env bash
# Package the Kong node simulator as Kong's Debian packages do, one package per version, all of
# one name, so that installing another version replaces the files of the one installed:
#   kong_<version>_amd64.deb                     Kong (OSS), every version of KONG_VERSIONS
#   kong-enterprise-edition_<version>_amd64.deb  Kong Enterprise, every version of KONG_EE_VERSIONS
# at Kong's paths (Kong/kong build/package/nfpm.yaml at 3.9.3):
#   /usr/local/bin/kong                        the kong command line
#   /usr/local/openresty/nginx/sbin/nginx      the nginx binary the unit runs (kongsim/nginx.py)
#   /usr/local/share/lua/5.1/kongsim           the simulator (where Kong's Lua tree lives)
#   /usr/local/kong                            the default prefix
#   /etc/kong/kong.conf.default                the defaults the simulator knows, all commented out
#   /lib/systemd/system/kong.service           Kong's unit, as Kong ships it (deb/kong.service)
# and Kong's post-install script (deb/postinst: the `kong` user and group).
# The packages form a flat apt repository that the molecule containers mount at /srv/kong-apt:
#   deb [trusted=yes] file:/srv/kong-apt ./
# Rebuilt only when the simulator or this packaging changes. Prints KONGOPS_KONG_APT_DIR=<dir>.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KONGSIM_DIR="$REPO_ROOT/tests/kongsim"
DEB_DIR="$MOLECULE_TOOLS_DIR/deb"
DEPENDS="python3 (>= 3.11), python3-aiohttp (>= 3.8), python3-yaml, python3-psycopg2, openssl"

inputs() {
  find "$KONGSIM_DIR/kongsim" -type f ! -path '*/__pycache__/*' ! -name '*.pyc'
  find "$DEB_DIR" -type f
  printf '%s\n' "$MOLECULE_TOOLS_DIR/build_debs.sh" "$MOLECULE_TOOLS_DIR/lib.sh"
}

launcher() {  # launcher WHAT VERSION SIMVERSION EDITION MODULE DEST
  sed -e "s#@WHAT@#$1#" -e "s#@VERSION@#$2#" -e "s#@SIMVERSION@#$3#" -e "s#@EDITION@#$4#" \
      -e "s#@MODULE@#$5#" "$DEB_DIR/launcher" > "$6"
  chmod 0755 "$6"
}

conf_default() {  # conf_default SIMVERSION DEST
  PYTHONPATH="$KONGSIM_DIR" python3 - "$1" > "$2" <<'PY'
import sys
from kongsim import conf
version = sys.argv[1]
print(f"# kong.conf.default of the Kong {version} simulator: the settings it reads, with their")
print("# defaults, commented out as in Kong's own file (kong.conf.default of Kong/kong at the tag).")
print("# Copy it to /etc/kong/kong.conf and uncomment what you change.")
print()
for key, value in sorted(conf.defaults(version).items()):
    value = conf._fmt(value) if value is not None else ""
    print(f"#{key} = {value}".rstrip())
PY
}

build_one() {  # build_one PACKAGE VERSION SIMVERSION EDITION WORK
  local pkg="$1" version="$2" simver="$3" edition="$4" work="$5" root lua
  root="$work/${pkg}_$version"
  lua="$root/usr/local/share/lua/5.1"
  mkdir -p "$root/DEBIAN" "$root/usr/local/bin" "$root/usr/local/openresty/nginx/sbin" "$lua" \
           "$root/usr/local/kong/include" "$root/etc/kong" "$root/lib/systemd/system"
  cp -R "$KONGSIM_DIR/kongsim" "$lua/kongsim"
  find "$root" -name '__pycache__' -type d -prune -exec rm -rf {} +
  launcher "the kong command line" "$version" "$simver" "$edition" kongsim.cli "$root/usr/local/bin/kong"
  launcher "the nginx binary" "$version" "$simver" "$edition" kongsim.nginx \
    "$root/usr/local/openresty/nginx/sbin/nginx"
  conf_default "$simver" "$root/etc/kong/kong.conf.default"
  if [ "${simver%%.*}" = 2 ]; then
    grep -v '^User=root$' "$DEB_DIR/kong.service" > "$root/lib/systemd/system/kong.service"
  else
    cp "$DEB_DIR/kong.service" "$root/lib/systemd/system/kong.service"
  fi
  chmod 0644 "$root/lib/systemd/system/kong.service" "$root/etc/kong/kong.conf.default"
  install -m 0755 "$DEB_DIR/postinst" "$root/DEBIAN/postinst"
  install -m 0755 "$DEB_DIR/prerm" "$root/DEBIAN/prerm"
  printf '/etc/kong/kong.conf.default\n' > "$root/DEBIAN/conffiles"
  if grep -rlF "$work" "$root" >/dev/null; then
    die "the $pkg $version package names the build directory: $(grep -rlF "$work" "$root" | head -3)"
  fi
  local relations="" desc="Kong Gateway"
  if [ "$pkg" = kong-enterprise-edition ]; then
    # One Kong per host: the Enterprise package takes the place of the OSS one.
    relations=$'Provides: kong\nConflicts: kong\nReplaces: kong\n'
    desc="Kong Gateway Enterprise"
  fi
  {
    printf 'Package: %s\nVersion: %s\nArchitecture: amd64\n' "$pkg" "$version"
    printf 'Maintainer: kongops maintainers <maintainers@kongops.invalid>\nDepends: %s\n' "$DEPENDS"
    printf '%s' "$relations"
    printf 'Section: net\nPriority: optional\nInstalled-Size: %s\n' "$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
    printf 'Description: %s %s (kongops test simulator)\n' "$desc" "$version"
    printf ' The kongops.upgrade Kong node simulator installed at the paths of Kong %s\n' "$version"
    printf ' (behaviour of Kong %s): /usr/local/bin/kong, the kong.service systemd unit,\n' "$simver"
    printf ' /etc/kong/kong.conf.default and the kong system user.\n'
  } > "$root/DEBIAN/control"
  dpkg-deb --root-owner-group -Zxz --build "$root" "$work/out/${pkg}_${version}_amd64.deb" >/dev/null
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
  local hash v pair
  hash="$(content_hash "$KONG_VERSIONS|$KONG_EE_VERSIONS|$DEPENDS" $(inputs))"
  if [ -f "$KONG_APT_DIR/.inputs-hash" ] && [ "$(cat "$KONG_APT_DIR/.inputs-hash")" = "$hash" ]; then
    log "kong packages cached in $KONG_APT_DIR ($hash)"
  else
    log "building kong packages: $KONG_VERSIONS; kong-enterprise-edition: $KONG_EE_VERSIONS"
    mkdir -p "$MOLECULE_CACHE"
    work="$(mktemp -d "$MOLECULE_CACHE/debs.XXXXXX")"
    trap 'rm -rf "${work:-}"' EXIT
    mkdir -p "$work/out"
    for v in $KONG_VERSIONS; do build_one kong "$v" "$v" "" "$work"; done
    for pair in $KONG_EE_VERSIONS; do
      build_one kong-enterprise-edition "${pair%%:*}" "${pair##*:}" enterprise "$work"
    done
    (cd "$work/out" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null > Packages)
    [ "$(grep -c '^Package: kong$' "$work/out/Packages")" -eq "$(wc -w <<<"$KONG_VERSIONS")" ] \
      && [ "$(grep -c '^Package: kong-enterprise-edition$' "$work/out/Packages")" -eq "$(wc -w <<<"$KONG_EE_VERSIONS")" ] \
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
