#!/usr/bin/env bash
# Lynis hardening index of a converged mail host, side by side with a stock Debian
# container of the same image with the same packages installed (Debian's defaults).
#
#   scripts/lynis-compare.sh [CONTAINER]    default: mailbundle-lab-mx1 (make lab)
#
# Installs Debian's lynis package in both, runs `lynis audit system --quick`, prints
# the two hardening indexes and removes the stock container. Lab use only.
set -euo pipefail

MX="${1:-mailbundle-lab-mx1}"
STOCK="mailbundle-lynis-stock"
IMAGE="$(docker inspect -f '{{.Config.Image}}' "$MX")"

cleanup() { docker rm -f "$STOCK" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup

docker run -d --name "$STOCK" --hostname stock \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    "$IMAGE" >/dev/null
docker exec "$STOCK" systemctl is-system-running --wait >/dev/null || true

packages="$(docker exec "$MX" dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" {print $2}' | tr '\n' ' ')"
echo "stock container: installing the mail host's $(wc -w <<<"$packages") packages with Debian's defaults"
docker exec -e DEBIAN_FRONTEND=noninteractive "$STOCK" sh -c \
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages lynis >/dev/null"
docker exec -e DEBIAN_FRONTEND=noninteractive "$MX" sh -c \
    "apt-get install -y -qq --no-install-recommends lynis >/dev/null"

index() {
    docker exec "$1" lynis audit system --quick --no-colors >/dev/null 2>&1 || true
    docker exec "$1" sh -c "sed -n 's/^hardening_index=//p' /var/log/lynis-report.dat"
}
version="$(docker exec "$MX" lynis show version)"
printf 'lynis %s, image %s\n' "$version" "$IMAGE"
printf '%-40s %s\n' "stock Debian, same packages" "$(index "$STOCK")"
printf '%-40s %s\n' "converged mail host ($MX)" "$(index "$MX")"
