#!/bin/sh
# Installs the Debian packages vdiskd needs to build (and, with --test, to
# run its tests and benchmarks) when they are missing.  Idempotent; needs
# root (or sudo) only when something is missing.
set -eu

build_pkgs="gcc make pkg-config libaio-dev libevent-dev uuid-dev libjansson-dev libgnutls28-dev librbd-dev librados-dev"
test_pkgs="qemu-utils libnbd-bin python3-libnbd nbdkit fio python3 systemd man-db groff-base iproute2 procps libvhdi-utils python3-libvhdi python3-fusepy fuse3 gnutls-bin ceph-mon ceph-osd ceph-common qemu-block-extra clang libclang-rt-14-dev libtsan2"

pkgs=$build_pkgs
case "${1:-}" in
--test) pkgs="$build_pkgs $test_pkgs" ;;
"") ;;
*) echo "usage: scripts/deps.sh [--test]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps.sh: missing packages:$missing (no apt-get here: install them by hand)" >&2
	exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
