#!/usr/bin/env bash
# Damaged and hostile VHD images: vdiskd refuses to start (exit 1) with a
# message naming the file and what is wrong, and never crashes;
# vdisk-img check says damaged (exit 1).  A raw image that happens to end
# in "conectix" stays raw.
. "$(dirname "$0")/../lib/daemon.sh"
VIMG=$(dirname "$VDISKD")/vdisk-img
PY=/usr/bin/python3

# patch FILE OFFSET HEX [header|footer|footer0]: write bytes, then fix the
# checksum of the structure named (header: the dynamic header at 512).
patch() {
	$PY - "$@" <<'PY'
import sys, os
path, off, hexs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fix = sys.argv[4] if len(sys.argv) > 4 else ""
fd = os.open(path, os.O_RDWR)
os.pwrite(fd, bytes.fromhex(hexs), off)
size = os.fstat(fd).st_size
def refix(start, length, csum_at):
    b = bytearray(os.pread(fd, length, start)); b[csum_at:csum_at + 4] = b"\0" * 4
    os.pwrite(fd, ((~sum(b)) & 0xffffffff).to_bytes(4, "big"), start + csum_at)
if fix == "header": refix(512, 1024, 36)
if fix in ("footer", "footer0"):
    refix(size - 512, 512, 64)
    if fix == "footer0": refix(0, 512, 64)
os.close(fd)
PY
}

# refused IMAGE WORD: vdiskd exits 1 and says IMAGE and WORD.
refused() {
	local img=$1 word=$2 rc
	timeout 20 "$VDISKD" -f -l "unix:$T/x.nbd" -c "$T/x.ctl" "$img" >"$T/out" 2>"$T/err"
	rc=$?
	if [ $rc != 1 ]; then echo "exit $rc"; cat "$T/err"; return 1; fi
	grep -q -- "$(basename "$img")" "$T/err" && grep -qi -- "$word" "$T/err" ||
		{ echo "message lacks '$word':"; cat "$T/err"; return 1; }
	head -3 "$T/err"
}
damaged() { ! "$VIMG" check "$1" >"$T/check.out" 2>&1 || { cat "$T/check.out"; return 1; }; }

new() { rm -f "$T/$1"; "$VIMG" create "$T/$1" 8M >/dev/null || exit 1; echo "$T/$1"; }
child() { rm -f "$T/$1"; "$VIMG" create -b "$2" "$T/$1" >/dev/null || exit 1; echo "$T/$1"; }

# Truncated: the BAT is cut off.
i=$(new trunc.vhd); truncate -s 1000 "$i"
check "truncated: refused" refused "$i" "footer\|header\|BAT"
check "truncated: check says damaged" damaged "$i"
i=$(new trunc2.vhd); truncate -s 1800 "$i"
check "truncated in the BAT: refused" refused "$i" "BAT\|footer"
# Bad checksum in both footers.
i=$(new csum.vhd); patch "$i" $(( $(stat -c %s "$i") - 448 )) 00000000; patch "$i" 64 00000000
check "bad footer checksum: refused" refused "$i" "checksum"
check "bad footer checksum: check" damaged "$i"
# Bad header checksum.
i=$(new hcsum.vhd); patch "$i" $((512 + 36)) 12345678
check "bad header checksum: refused" refused "$i" "checksum"
# Block size not a power of two (checksum fixed, so the field is to blame).
i=$(new bs.vhd); patch "$i" $((512 + 32)) 00300000 header
check "block size not a power of two: refused" refused "$i" "block size"
check "block size: check" damaged "$i"
# max_table_entries too small for the size.
i=$(new mte.vhd); patch "$i" $((512 + 28)) 00000001 header
check "max_table_entries too small: refused" refused "$i" "table entries"
# A BAT entry past the end of the file.
i=$(new batend.vhd); patch "$i" 1536 00100000
check "BAT entry past the end: refused" refused "$i" "BAT\|entry"
check "BAT past the end: check" damaged "$i"
# Two BAT entries on the same block: write one block through qemu-free
# means, then copy its entry.
i=$(new overlap.vhd)
vd_start "$i" || exit 1
$PY -c "import nbd,sys; h=nbd.NBD(); h.connect_unix(sys.argv[1]); h.pwrite(b'x'*4096, 0); h.flush(); h.shutdown()" "$VD_SOCK"
vd_stop
e=$($PY -c "import sys;print(open(sys.argv[1],'rb').read()[1536:1540].hex())" "$i")
patch "$i" 1540 "$e"
check "overlapping blocks: refused" refused "$i" "overlap"
check "overlapping blocks: check" damaged "$i"
# A BAT entry inside the metadata.
i=$(new batmeta.vhd); patch "$i" 1536 00000001
check "BAT entry in the metadata: refused" refused "$i" "BAT\|entry"

# Chains.
truncate -s 8M "$T/base.raw"
i=$(child miss-child.vhd "$T/base.raw"); mv "$T/base.raw" "$T/base.gone"
check "missing parent: refused" refused "$i" "parent"
check "missing parent: check" damaged "$i"
mv "$T/base.gone" "$T/base.raw"
a=$(new ua.vhd); c=$(child uc.vhd "$a"); rm "$a"; "$VIMG" create "$a" 8M
check "parent UUID mismatch: refused" refused "$c" "UUID"
check "parent UUID mismatch: check" damaged "$c"
# A loop: B's parent is A, then A is replaced by a child of B, and B's
# parent UUID is patched to the new A's.
a=$(new la.vhd); b=$(child lb.vhd "$a"); rm "$a"
"$VIMG" create -b "$b" "$T/la2.vhd" && mv "$T/la2.vhd" "$a"
u=$($PY -c "import sys;d=open(sys.argv[1],'rb').read();print(d[-512+68:-512+84].hex())" "$a")
patch "$b" $((512 + 40)) "$u" header
check "parent loop: refused" refused "$b" "loop"
check "parent loop: check" damaged "$b"
# Too deep: 33 images.
prev=$T/base.raw
for n in $(seq 1 33); do "$VIMG" create -b "$prev" "$T/deep$n.vhd" || exit 1; prev=$T/deep$n.vhd; done
check "chain of 33: refused" refused "$prev" "too deep"
check "chain of 32 opens" sh -c "timeout 10 '$VIMG' check '$T/deep31.vhd' >/dev/null"

# A raw image ending in a stray cookie stays raw.
truncate -s 1M "$T/stray.raw"
printf 'conectix' | dd of="$T/stray.raw" bs=1 seek=$((1048576 - 512)) conv=notrunc 2>/dev/null
vd_start "$T/stray.raw" || exit 1
check "stray conectix: served as raw" sh -c "'$VDISKCTL' -s '$VD_CTL' info | grep -q 'driver  *raw'"
vd_stop
finish
