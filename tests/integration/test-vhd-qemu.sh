#!/usr/bin/env bash
# VHD interop with qemu's vpc format: images that qemu-img made and
# qemu-io filled (dynamic and fixed, several sizes, odd ones too) served by
# vdiskd read the same as qemu reads them (qemu-img compare); images that
# vdisk-img made and vdiskd wrote over NBD read back the same through
# qemu-img convert -f vpc.  Writes at odd offsets from qemu-io over NBD
# end as qemu's own on a copy.  Then libvhdi (vhdiinfo, pyvhdi) reads a chain
# vdiskd made, in whole 4 KiB pages (Debian's libvhdi misreads partial
# bitmap bytes).
. "$(dirname "$0")/../lib/daemon.sh"
need qemu-img
need qemu-io
VIMG=$(dirname "$VDISKD")/vdisk-img
PY=/usr/bin/python3
$PY -c 'import nbd' 2>/dev/null || skip "python3 nbd module (python3-libnbd) missing"

serve_compare() {	# IMAGE: vdiskd serves it; qemu-img compare says identical
	# Read-only: qemu-img opens the file too, and the image locks let
	# readers share it, not a reader and a writer.
	vd_start --read-only "$1" || return 1
	qemu-img compare -q -f vpc -F raw "$1" "$VD_URI"
	local rc=$?
	vd_stop
	return $rc
}

for sub in dynamic fixed; do
	for size in 1M 7M 33M 100000K 1031K; do
		img=$T/q-$sub-$size.vhd
		qemu-img create -q -f vpc -o subformat=$sub "$img" "$size" || exit 1
		# The size in the footer (qemu 7.2 reports a fixed image's
		# file size, footer included, as its virtual size).
		vsz=$("$VIMG" info --json "$img" | $PY -c 'import json,sys; print(json.load(sys.stdin)["size"])')
		qemu-io -f vpc -c "write -P 0x5a 0 64k" -c "write -P 0xa5 $((vsz / 2 / 512 * 512)) 4k" \
			-c "write -P 0x33 $((vsz - 1024)) 1k" "$img" >/dev/null || exit 1
		check "qemu $sub $size: vdiskd reads what qemu wrote" serve_compare "$img"
	done
done

# vdisk-img + writes over NBD, read back by qemu.
write_over_nbd() {	# IMAGE SEED
	vd_start "$1" || return 1
	$PY - "$VD_SOCK" "$2" "$T/expect-$(basename "$1").raw" <<'PY' || { vd_stop; return 1; }
import nbd, random, sys
h = nbd.NBD(); h.connect_unix(sys.argv[1])
size = h.get_size(); rnd = random.Random(int(sys.argv[2]))
model = bytearray(size)
for i in range(300):
    off = rnd.randrange(size // 512) * 512
    n = min(rnd.randrange(1, 256) * 512, size - off)
    data = rnd.randbytes(n)
    h.pwrite(data, off, nbd.CMD_FLAG_FUA if i % 17 == 0 else 0)
    model[off:off + n] = data
    if i % 50 == 0:
        h.flush()
h.flush(); h.shutdown()
open(sys.argv[3], "wb").write(model)
PY
	vd_stop
	[ "$VD_RC" = 0 ] || return 1
	qemu-img convert -f vpc -O raw "$1" "$T/conv.raw" &&
	cmp "$T/conv.raw" "$T/expect-$(basename "$1").raw"
}
"$VIMG" create "$T/v-dyn.vhd" 20M || exit 1
"$VIMG" create --block-size 512K "$T/v-dyn512k.vhd" 9M || exit 1
"$VIMG" create -t fixed "$T/v-fixed.vhd" 5M || exit 1
check "vdisk-img dynamic, written by vdiskd, read by qemu" write_over_nbd "$T/v-dyn.vhd" 1
check "vdisk-img dynamic 512K blocks, read by qemu" write_over_nbd "$T/v-dyn512k.vhd" 2
check "vdisk-img fixed, read by qemu" write_over_nbd "$T/v-fixed.vhd" 3
check "vdisk-img check: clean after vdiskd wrote" "$VIMG" check "$T/v-dyn.vhd"
check "qemu-img info agrees on the size" sh -c "qemu-img info --output=json '$T/v-dyn.vhd' | grep -q '\"virtual-size\": 20971520'"
# qemu writes into an image vdiskd allocated, vdiskd reads it back.
qemu-io -f vpc -c "write -P 0x77 3M 1M" "$T/v-dyn.vhd" >/dev/null
check "qemu writes into a vdiskd-grown image, vdiskd reads them" serve_compare "$T/v-dyn.vhd"

# Writes that are not whole sectors, from qemu-io over NBD (vdiskd
# advertises a minimum block size of 1, so qemu sends them as they are):
# the same commands given to qemu itself on a copy (-f vpc: qemu does its
# own read-modify-write) must leave the same image; on a differencing
# image (qemu's vpc has none), the same commands on a raw copy of the
# parent must read the same.
ODD=(-c "write -P 0x11 1 3" -c "write -P 0x22 511 2" -c "write -P 0x33 4095 4099"
     -c "write -z 513 1000" -c "write -P 0x44 $((2 * 1024 * 1024 - 7)) 14"
     -c "write -P 0x55 $((3 * 1024 * 1024 + 100)) 70000" -c "write -z 70001 3"
     -c "write -P 0x66 $((5 * 1024 * 1024 + 511)) 1")
odd_over_nbd() {	# IMAGE: qemu-io's odd writes through vdiskd
	vd_start "$1" || return 1
	qemu-io -f raw "${ODD[@]}" -c "read -P 0x11 1 3" -c "read -P 0x66 $((5 * 1024 * 1024 + 511)) 1" \
		"$VD_URI" >"$T/odd.out" 2>&1
	local rc=$?
	grep -q "Pattern verification failed\|error" "$T/odd.out" && rc=1
	vd_stop
	[ "$VD_RC" = 0 ] || return 1
	return $rc
}
qemu-img create -q -f vpc -o subformat=dynamic "$T/odd.vhd" 8M || exit 1
qemu-io -f vpc -c "write -P 0x5a 0 1M" -c "write -P 0xa5 3M 64k" "$T/odd.vhd" >/dev/null || exit 1
cp "$T/odd.vhd" "$T/odd-qemu.vhd"
qemu-io -f vpc "${ODD[@]}" "$T/odd-qemu.vhd" >/dev/null || exit 1
check "qemu-io odd-offset writes over NBD into a dynamic VHD" odd_over_nbd "$T/odd.vhd"
check "qemu-img compare: vdiskd's read-modify-writes equal qemu's own" \
	qemu-img compare -q -f vpc -F vpc "$T/odd.vhd" "$T/odd-qemu.vhd"
check "vdisk-img check: clean after odd writes" "$VIMG" check "$T/odd.vhd"
head -c 8M /dev/urandom >"$T/odd-base.raw"
cp "$T/odd-base.raw" "$T/odd-expect.raw"
qemu-io -f raw "${ODD[@]}" "$T/odd-expect.raw" >/dev/null || exit 1
"$VIMG" create -b "$T/odd-base.raw" "$T/odd-diff.vhd" || exit 1
check "qemu-io odd-offset writes over NBD into a differencing VHD" odd_over_nbd "$T/odd-diff.vhd"
diff_compare() {
	vd_start "$T/odd-diff.vhd" || return 1
	qemu-img compare -q -f raw -F raw "$VD_URI" "$T/odd-expect.raw"
	local rc=$?
	vd_stop
	return $rc
}
check "qemu-img compare: the differencing image reads the parent around the odd writes" diff_compare

# libvhdi reads a chain vdiskd made: base (dynamic) <- snapshot.
if command -v vhdiinfo >/dev/null && $PY -c 'import pyvhdi' 2>/dev/null; then
	"$VIMG" create "$T/c-base.vhd" 8M || exit 1
	vd_start "$T/c-base.vhd" || exit 1
	$PY - "$VD_SOCK" "$VD_CTL" "$VDISKCTL" "$T" <<'PY'
import nbd, subprocess, sys
h = nbd.NBD(); h.connect_unix(sys.argv[1])
h.pwrite(b"\x11" * 65536, 0)
h.pwrite(b"\x22" * 8192, 3 << 20)
subprocess.run([sys.argv[3], "-s", sys.argv[2], "snapshot", sys.argv[4] + "/c-top.vhd"], check=True)
h.pwrite(b"\x33" * 4096, 4096)
h.pwrite(b"\x44" * 4096, 6 << 20)
h.flush(); h.shutdown()
PY
	vd_stop
	check "vhdiinfo opens the snapshot" sh -c "vhdiinfo '$T/c-top.vhd' >/dev/null"
	check "pyvhdi reads the chain's data" $PY - "$T" <<'PY'
import pyvhdi, sys
t = sys.argv[1]
base = pyvhdi.file(); base.open(t + "/c-base.vhd")
top = pyvhdi.file(); top.open(t + "/c-top.vhd"); top.set_parent(base)
def rd(off, n):
    top.seek_offset(off, 0); return top.read_buffer(n)
ok = (rd(0, 4096) == b"\x11" * 4096 and rd(4096, 4096) == b"\x33" * 4096 and
      rd(8192, 57344) == b"\x11" * 57344 and rd(3 << 20, 8192) == b"\x22" * 8192 and
      rd(6 << 20, 4096) == b"\x44" * 4096 and rd(5 << 20, 4096) == bytes(4096))
sys.exit(0 if ok else 1)
PY
else
	echo "libvhdi not installed: chain read by libvhdi not checked"
fi
finish
