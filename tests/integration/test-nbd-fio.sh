#!/usr/bin/env bash
# fio's nbd engine with verification: several jobs, each its own
# connection (multi-conn) and its own region, random writes at queue depth
# 16 verified by reading back; then a second fio run verifies again (the
# data outlived the connections that wrote it).
. "$(dirname "$0")/../lib/daemon.sh"
need fio
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio has no nbd engine"

vd_start -n disk -d ram 64M || exit 1
cd "$T" || exit 1	# fio writes its verify state files into the cwd

common=(--ioengine=nbd "--uri=$VD_URI" --numjobs=4 --size=16M --offset_increment=16M
	--iodepth=16 --verify=crc32c --verify_fatal=1 --group_reporting --minimal)
check "fio: 4 jobs, random 4k-64k writes, verified" \
	fio --name=w --rw=randwrite --bsrange=4k-64k "${common[@]}" \
	    --do_verify=1 --verify_backlog=256 --output="$T/fio-w.out"
check "fio: verify pass on new connections" \
	fio --name=w --rw=randwrite --bsrange=4k-64k "${common[@]}" \
	    --verify_only --output="$T/fio-v.out"
check "fio: sequential 1M writes with FUA-free flushes (fsync=8), verified" \
	fio --name=s --rw=write --bs=1M "${common[@]}" --fsync=8 \
	    --output="$T/fio-s.out"
check "fio: mixed random read/write, unaligned 512-byte blocks" \
	fio --name=m --rw=randrw --bs=512 --ioengine=nbd "--uri=$VD_URI" --numjobs=2 \
	    --size=2M --offset_increment=8M --iodepth=32 --io_size=8M --minimal \
	    --output="$T/fio-m.out"
cat "$T"/fio-*.out | cut -c1-200
check "no errors counted by the daemon" \
	bash -c "'$VDISKCTL' -s '$VD_CTL' stats --json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d[\"errors\"] != 0 or d[\"inflight\"] != 0)'"
vd_stop
check "SIGTERM: exit 0" test "$VD_RC" -eq 0
finish
