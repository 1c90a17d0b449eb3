#!/usr/bin/env bash
# Build the systemd base images the lab and Molecule run on, with debootstrap and
# `docker import`: no registry is needed. An image that already exists is kept.
# Usage: scripts/build-images.sh [release ...]   (default: trixie bookworm)
set -euo pipefail

# DEBIAN_MIRROR: the archive to build from; unset, debootstrap's own default.
MIRROR="${DEBIAN_MIRROR:-}"
IMAGE_REPO="${IMAGE_REPO:-debian-systemd}"
# What a minimal Debian server has that Ansible (with become: sudo) and systemd need.
PACKAGES="systemd,systemd-sysv,dbus,sudo,python3,python3-apt,ca-certificates,iproute2,procps"

build_one() {
    local release="$1" image="${IMAGE_REPO}:$1" root
    if docker image inspect "$image" >/dev/null 2>&1; then
        echo "image $image: present, kept"
        return 0
    fi
    root="$(mktemp -d /var/tmp/rootfs-"$release".XXXXXX)"
    # build_one runs in its own background subshell: EXIT cleans up on any failure.
    trap 'rm -rf "$root" "$root.log"' EXIT
    echo "image $image: debootstrap $release from ${MIRROR:-the default mirror of debootstrap}"
    debootstrap --variant=minbase --include="$PACKAGES" "$release" "$root" ${MIRROR:+"$MIRROR"} \
        >"$root.log" 2>&1 || { tail -n 30 "$root.log"; return 1; }
    rm -f "$root.log"
    # systemd creates a fresh machine-id at first boot; an image must not carry one.
    : >"$root/etc/machine-id"
    rm -f "$root/var/lib/dbus/machine-id"
    # Units that cannot work in a container (no consoles, no kernel modules).
    for unit in getty@tty1.service console-getty.service systemd-modules-load.service \
                systemd-remount-fs.service; do
        ln -sf /dev/null "$root/etc/systemd/system/$unit"
    done
    # No package lists in the image: the first apt run on a host fetches current ones.
    # The lists directory gets an old date, or Ansible's apt cache_valid_time would
    # take the empty cache for a fresh one.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
    touch -d @0 "$root/var/lib/apt/lists"
    tar -C "$root" -c . | docker import \
        --change 'ENV container=docker' \
        --change 'CMD ["/sbin/init"]' \
        - "$image" >/dev/null
    echo "image $image: built"
}

command -v debootstrap >/dev/null || {
    echo "debootstrap missing: apt-get install debootstrap" >&2
    exit 1
}

pids=()
for release in "${@:-trixie bookworm}"; do
    for r in $release; do
        build_one "$r" & pids+=($!)
    done
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
exit $rc
