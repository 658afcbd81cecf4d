#!/usr/bin/env bash
# Make the Debian root filesystem of kongops/base:  mkrootfs.sh ROOTFS MIRROR SUITE PACKAGES(comma-separated)
set -euo pipefail
rootfs="$1" mirror="$2" suite="$3" packages="$4"

mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
# dpkg without fsync, as in Debian's official container images.
printf 'force-unsafe-io\n' > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-unsafe-io"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror"

rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\nAcquire::Languages "none";\n' \
  > "$rootfs/etc/apt/apt.conf.d/90kongops"
# No service starts from package scripts: the containers have no init system.
printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
: > "$rootfs/etc/machine-id"
