#!/usr/bin/env bash
# Durability over NBD: a write acknowledged with FUA, and writes followed
# by an acknowledged FLUSH, survive kill -9 of the daemon; a new daemon on
# the same raw file reads them back.  (kill -9 keeps the page cache, so
# this shows the data reached the file before the reply, not the platter;
# with --cache none the writes bypass the cache anyway.)
. "$(dirname "$0")/../lib/daemon.sh"
need qemu-io

IMG=$T/disk.img
truncate -s 64M "$IMG"

qio() {
	local out
	out=$(qemu-io -f raw "$@" "$VD_URI" 2>&1)
	echo "$out"
	! grep -qiE 'fail|error|mismatch' <<<"$out"
}
crash() {
	kill -KILL "$VD_PID"
	wait "$VD_PID" 2>/dev/null
}

for cache in none writeback; do
	vd_start -n disk --cache "$cache" "$IMG" || exit 1
	check "$cache: FUA write of 1 MiB" qio -c 'write -f -P 0x5a 1M 1M'
	check "$cache: unaligned FUA write" qio -c 'write -f -P 0x6b 3000001 4097'
	crash
	vd_start -n disk --cache "$cache" "$IMG" || exit 1
	check "$cache: FUA data back after kill -9" \
		qio -c 'read -P 0x5a 1M 1M' -c 'read -P 0x6b 3000001 4097'
	check "$cache: writes then FLUSH" \
		qio -c 'write -P 0x7c 8M 2M' -c 'write -P 0x8d 20M 64k' -c 'flush'
	crash
	vd_start -n disk --cache "$cache" "$IMG" || exit 1
	check "$cache: flushed data back after kill -9" \
		qio -c 'read -P 0x7c 8M 2M' -c 'read -P 0x8d 20M 64k'
	vd_stop
	check "$cache: SIGTERM: exit 0" test "$VD_RC" -eq 0
done
check "the file holds the data (read without vdiskd)" \
	bash -c "cmp <(dd if='$IMG' bs=1M skip=8 count=2 status=none) <(head -c 2M /dev/zero | tr '\\0' '\\174')"
finish
