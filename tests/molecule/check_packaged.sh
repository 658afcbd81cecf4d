#!/usr/bin/env bash
# The packaged Kong on a systemd host, without the collection: boots kongops/kong-systemd-host the
# way molecule/real_hosts runs it (unprivileged, /sys/fs/cgroup read-only, tmpfs on /run and
# /run/lock, systemd as PID 1), then checks that
#   - `systemctl is-system-running` reaches running (or degraded),
#   - the kong package installs at Kong's paths with the `kong` user and Kong's unit,
#   - `systemctl start kong` runs the packaged simulator (the unit's MainPID serves the Admin API),
#     `systemctl reload kong` and `systemctl stop kong` work as Kong's unit lines say,
#   - installing another version replaces the files of the first (one version at a time), and
#     kong-enterprise-edition takes the place of kong.
#   tests/molecule/check_packaged.sh     (needs KONGOPS_IMAGE_KONG_SYSTEMD and KONGOPS_KONG_APT_DIR,
#                                          as run.sh exports them)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${KONGOPS_IMAGE_KONG_SYSTEMD:?run build_images.sh first}" "${KONGOPS_KONG_APT_DIR:?run build_debs.sh first}"
name="kongops-check-packaged-$$"
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT

fail() { docker exec "$name" journalctl -u kong --no-pager -n 30 >&2 || true; die "check_packaged: $*"; }
in_c() { docker exec "$name" sh -c "$1"; }

docker run -d --name "$name" --label kongops.molecule=check_packaged \
  --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
  -v "$KONGOPS_KONG_APT_DIR:/srv/kong-apt:ro" "$KONGOPS_IMAGE_KONG_SYSTEMD" >/dev/null

state=""
for _ in $(seq 1 120); do  # systemd's bus appears a moment after the container starts
  state="$(timeout 60 docker exec "$name" systemctl is-system-running --wait 2>/dev/null || true)"
  case "$state" in running|degraded|maintenance|stopping) break ;; esac
  sleep 0.5
done
case "$state" in running|degraded) ;; *) die "check_packaged: systemctl is-system-running: '$state'" ;; esac
[ "$(in_c 'cat /proc/1/comm')" = systemd ] || die "check_packaged: PID 1 is not systemd"

in_c 'echo "deb [trusted=yes] file:/srv/kong-apt ./" > /etc/apt/sources.list.d/kong.list
      apt-get update -q -o Dir::Etc::sourcelist=sources.list.d/kong.list -o Dir::Etc::sourceparts=- >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q kong=3.8.1 >/dev/null' || die "installing kong=3.8.1"
in_c 'id kong >/dev/null && test -f /etc/kong/kong.conf.default && test -d /usr/local/kong &&
      test -f /usr/local/share/lua/5.1/kongsim/cli.py && test -x /usr/local/openresty/nginx/sbin/nginx &&
      grep -qx "ExecStart=/usr/local/openresty/nginx/sbin/nginx -p /usr/local/kong -c nginx.conf" /lib/systemd/system/kong.service &&
      [ "$(stat -c %U /usr/local/kong)" = kong ]' || die "the kong package is not laid out at Kong's paths"

in_c 'printf "# operator\ndatabase = off\nadmin_listen = 127.0.0.1:8001\nproxy_listen = 127.0.0.1:8000\n" > /etc/kong/kong.conf
      systemctl start kong' || fail "systemctl start kong"
admin() { in_c 'for i in $(seq 1 50); do v="$(curl -sf http://127.0.0.1:8001/ | python3 -c "import json,sys; print(json.load(sys.stdin)[\"version\"])" 2>/dev/null)" && { echo "$v"; exit 0; }; sleep 0.2; done; exit 1'; }
[ "$(admin)" = 3.8.1 ] || fail "kong.service does not serve Kong 3.8.1"
main_pid="$(in_c 'systemctl show -p MainPID --value kong')"
[ "$(in_c 'cat /usr/local/kong/pids/nginx.pid')" = "$main_pid" ] || fail "the unit's MainPID is not the node"
in_c 'systemctl reload kong && systemctl is-active -q kong' || fail "systemctl reload kong"
in_c 'systemctl stop kong; ! systemctl is-active -q kong && ! pgrep -f "[k]ongsim.server" >/dev/null' || fail "systemctl stop kong"

in_c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q kong=3.9.3 >/dev/null' || die "upgrading to kong=3.9.3"
[ "$(in_c 'dpkg-query -W -f "\${Version}" kong')" = 3.9.3 ] || die "kong is not 3.9.3 after the upgrade"
[ "$(in_c 'grep -h ^KONGSIM_VERSION= /usr/local/bin/kong /usr/local/openresty/nginx/sbin/nginx | sort -u')" = KONGSIM_VERSION=3.9.3 ] \
  || die "the upgrade left 3.8.1's files"
in_c 'systemctl start kong' || fail "systemctl start kong (3.9.3)"
[ "$(admin)" = 3.9.3 ] || fail "kong.service does not serve Kong 3.9.3 after the upgrade"
in_c 'systemctl stop kong'

in_c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q kong-enterprise-edition=3.8.1.0 >/dev/null' \
  || die "installing kong-enterprise-edition"
in_c '! dpkg-query -W -f "\${Status}" kong 2>/dev/null | grep -q "ok installed" &&
      grep -qx KONGSIM_EDITION=enterprise /usr/local/bin/kong' || die "kong-enterprise-edition did not replace kong"
log "check_packaged: systemd $state; kong 3.8.1 -> 3.9.3 and kong-enterprise-edition under kong.service: OK"
