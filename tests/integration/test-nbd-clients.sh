#!/usr/bin/env bash
# vdiskd's NBD server driven by real clients: qemu-img convert/compare both
# ways, qemu-io patterns (aligned, unaligned, zeroes, discard, FUA),
# nbdinfo --json/--map/--list, nbdcopy (several connections).
. "$(dirname "$0")/../lib/daemon.sh"
need qemu-img
need qemu-io
need nbdinfo
need nbdcopy

# A 16 MiB source: random data with a hole in the middle.
SRC=$T/src.img
head -c 16M /dev/urandom >"$SRC"
dd if=/dev/zero of="$SRC" bs=1M seek=6 count=4 conv=notrunc status=none
fallocate -p -o 6MiB -l 4MiB "$SRC" 2>/dev/null || true

vd_start -n disk -d ram 64M || exit 1
URI=$VD_URI
NAMED="nbd+unix:///disk?socket=$VD_SOCK"

check "qemu-img convert to nbd" \
	qemu-img convert -n -f raw -O raw "$SRC" "$URI"
check "qemu-img compare with the source (rest of the disk reads zero)" \
	qemu-img compare -f raw -F raw "$SRC" "$URI"
check "qemu-img convert from nbd" \
	qemu-img convert -f raw -O raw "$NAMED" "$T/out.img"
check "round trip: first 16 MiB equal" cmp -n 16777216 "$SRC" "$T/out.img"
check "round trip: the rest is zero" \
	cmp -i 16777216:0 -n 50331648 "$T/out.img" /dev/zero
check "qemu-img convert -W -m 8 (out of order, 8 coroutines)" \
	qemu-img convert -n -W -m 8 -f raw -O raw "$SRC" "$URI"
check "qemu-img compare after it" qemu-img compare -f raw -F raw "$SRC" "$URI"

qio() {
	local out
	out=$(qemu-io -f raw "$@" "$URI" 2>&1)
	echo "$out"
	! grep -qiE 'fail|error|mismatch' <<<"$out"
}
check "qemu-io: aligned write/read pattern" \
	qio -c 'write -P 0xab 0 1M' -c 'read -P 0xab 0 1M'
check "qemu-io: unaligned write/read pattern" \
	qio -c 'write -P 0xcd 1000 3000' -c 'read -P 0xcd 1000 3000' \
	    -c 'read -P 0xab 0 1000' -c 'read -P 0xab 4000 96'
check "qemu-io: FUA write" qio -c 'write -f -P 0x11 2M 64k' -c 'read -P 0x11 2M 64k'
check "qemu-io: write zeroes" qio -c 'write -z 2M 64k' -c 'read -P 0 2M 64k'
check "qemu-io: discard then write" \
	qio -c 'discard 3M 1M' -c 'write -P 0x22 3M 4k' -c 'read -P 0x22 3M 4k'
check "qemu-io: flush" qio -c 'write -P 0x33 4M 1M' -c 'flush' -c 'read -P 0x33 4M 1M'
check "qemu-io: read at the very end" qio -c 'write -P 0x44 67108352 512' \
	-c 'read -P 0x44 67108352 512' -c 'write -z 67108352 512' -c 'read -P 0 67108352 512'
check "qemu-io: read past the end fails" \
	bash -c "qemu-io -f raw -c 'read 67108352 1024' '$URI' 2>&1 | grep -qi 'error\|invalid\|out of range'"

json=$(nbdinfo --json "$URI")
pyjson() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin)['exports'][0]; sys.exit(0 if ($1) else 1)" <<<"$json"; }
check "nbdinfo --json: size 64 MiB" pyjson "d['export-size'] == 67108864"
check "nbdinfo --json: export name" pyjson "d['export-name'] == 'disk'"
check "nbdinfo --json: multi-conn, flush, fua, trim, zero, fast zero, cache, df" \
	pyjson "all(d[k] for k in ('can_multi_conn','can_flush','can_fua','can_trim','can_zero','can_fast_zero','can_cache','can_df'))"
check "nbdinfo --json: block sizes 1 / 4096 / 32 MiB" \
	pyjson "(d['block_size_minimum'], d['block_size_preferred'], d['block_size_maximum']) == (1, 4096, 33554432)"
check "nbdinfo --json: base:allocation" pyjson "'base:allocation' in d['contexts']"
check "nbdinfo --list names the disk" bash -c "nbdinfo --list '$URI' | grep -q 'export=\"disk\"\|disk'"

# The ram disk is sparse: a fresh disk maps as one hole, data shows up.
map=$(nbdinfo --map "$URI")
echo "$map"
check "nbdinfo --map: written data shows as data" grep -qE '^ +0 .*data' <<<"$map"
check "nbdinfo --map: the untouched area after 16 MiB is a hole" \
	grep -qE '^ +16777216 .*hole,zero' <<<"$map"
check "nbdinfo --map --totals adds up to the disk" \
	bash -c "nbdinfo --map --totals '$URI' | awk '{s+=\$1} END {exit !(s==67108864)}'"

check "nbdcopy from a file to nbd (multi-conn)" nbdcopy "$SRC" "$URI"
check "nbdcopy from nbd to a file" nbdcopy "$URI" "$T/out2.img"
check "nbdcopy round trip" cmp -n 16777216 "$SRC" "$T/out2.img"
check "nbdcopy with 8 connections and 64 requests each" \
	nbdcopy --connections=8 --requests=64 --request-size=65536 "$SRC" "$URI"
check "qemu-img compare after nbdcopy" qemu-img compare -f raw -F raw "$SRC" "$URI"

vd_stop
check "SIGTERM: exit 0" test "$VD_RC" -eq 0
finish
