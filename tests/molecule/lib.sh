# Shared helpers for the molecule tooling (sourced, not executed).
# shellcheck shell=bash

MOLECULE_TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$MOLECULE_TOOLS_DIR/../.." && pwd)"
MOLECULE_CACHE="${KONGOPS_MOLECULE_CACHE:-$REPO_ROOT/.cache/molecule}"
KONG_APT_DIR="$MOLECULE_CACHE/kong-apt"
KONG_VERSIONS="${KONGOPS_KONG_VERSIONS:-2.8.5 3.4.2 3.5.0 3.6.1 3.7.1 3.8.1 3.9.3}"
# Kong Enterprise versions as Kong publishes them, {MAJOR}.{MINOR}.{PATCH}.{ENTERPRISE_PATCH}, "a
# sub-patch for Kong Gateway Enterprise based on Kong Gateway (OSS)" (Kong's documentation, "Kong
# Gateway Enterprise Version Support"), each simulated with the behaviour of the simulated OSS
# version of its MAJOR.MINOR (PACKAGE_VERSION:SIMULATED_VERSION). What Enterprise prints for its
# version (`kong version`, GET /, Server header) is UNCONFIRMED and not modelled: the simulated
# OSS version is shown.
KONG_EE_VERSIONS="${KONGOPS_KONG_EE_VERSIONS:-3.4.3.12:3.4.2 3.8.1.0:3.8.1}"
DEBIAN_SUITE=bookworm

log() { printf '[molecule-tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[molecule-tools] ERROR: %s\n' "$*" >&2; exit 1; }

# sha256 over the names and contents of the given files (sorted), plus any extra words.
content_hash() {
  local extra="$1"; shift
  {
    printf '%s\n' "$extra"
    local f
    for f in $(printf '%s\n' "$@" | LC_ALL=C sort); do
      printf '%s\n' "${f#"$REPO_ROOT"/}"
      sha256sum < "$f"
    done
  } | sha256sum | cut -c1-16
}

# The Debian mirror this machine's apt uses for $DEBIAN_SUITE, read from its configuration.
debian_mirror() {
  local uri=""
  if [ -n "${KONGOPS_DEBIAN_MIRROR:-}" ]; then
    printf '%s\n' "$KONGOPS_DEBIAN_MIRROR"; return 0
  fi
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri="$(awk -v suite="$DEBIAN_SUITE" '
      function flush() {
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && found == "")
          found = uris
        types = ""; suites = ""; uris = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      { key = $1; sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
        if (key == "Types") types = val
        else if (key == "Suites") suites = val
        else if (key == "URIs") { split(val, u, /[ \t]+/); uris = u[1] }
        else if (key == "Enabled") enabled = tolower(val) }
      END { flush(); print found }' "$f")"
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      uri="$(awk -v suite="$DEBIAN_SUITE" '
        $1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                      if ($(i + 1) == suite) { print $i; exit } }' "$f")"
      [ -n "$uri" ] && break
    done
  fi
  [ -n "$uri" ] || die "no 'deb' source for $DEBIAN_SUITE in /etc/apt/sources.list{,.d/*.sources,.d/*.list}; set KONGOPS_DEBIAN_MIRROR"
  printf '%s\n' "${uri%/}"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
