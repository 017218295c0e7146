#!/usr/bin/env bash
# A throw-away one-node Ceph cluster for the tests and the benchmark: one
# ceph-mon and one ceph-osd (no ceph-mgr), everything under DIR, on
# private ports of 127.0.0.1, no authentication, pools of size 1.
#
#   ceph-cluster.sh start DIR [memstore|bluestore]   writes DIR/ceph.conf
#   ceph-cluster.sh stop DIR                          kills the daemons
#   ceph-cluster.sh osd-stop DIR [KILL|TERM]          stop the OSD only
#   ceph-cluster.sh osd-start DIR                     start it again
#
# memstore (the default) keeps the objects in the OSD's memory: fast, but
# gone when the OSD dies.  bluestore puts them on a sparse file
# (DIR/osd0/block) and keeps them across an OSD kill: the OSD-restart
# test uses it.  After start the pool "rbd" exists and serves RBD.
# Clients use: CEPH_CONF=DIR/ceph.conf (rbd, ceph, vdiskd --ceph-conf).
# Exit 77 (with the reason) when the cluster cannot start on this machine.
set -eu

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || {
	echo "usage: ceph-cluster.sh start|stop|osd-stop|osd-start DIR [memstore|bluestore]" >&2
	exit 2
}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/ceph.conf
export CEPH_CONF=$conf

ceph_q() { timeout 30 ceph --connect-timeout 10 "$@"; }

skip() { echo "SKIP: ceph cluster: $*"; exit 77; }

pidof_file() { [ -f "$1" ] && cat "$1" 2>/dev/null || true; }

wait_gone() {	# pid, seconds
	local i=0
	while kill -0 "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt $(($2 * 10)) ] && return 1
		sleep 0.1
	done
}

free_port_base() {	# a base port with BASE..BASE+99 free, from a range by pid
	local base p used
	used=$(ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
	for _ in $(seq 50); do
		base=$(( 20000 + (RANDOM % 400) * 100 ))
		p=$(echo "$used" | awk -v b="$base" '$1 >= b && $1 < b + 100' | head -n1)
		[ -z "$p" ] && { echo "$base"; return; }
	done
	echo 29000
}

osd_start() {
	ceph-osd -i 0 >>"$dir/log/osd-start.log" 2>&1 ||
		{ tail -n 20 "$dir/log/osd.0.log" >&2 2>/dev/null; return 1; }
	# Up and in, as the monitor sees it.
	for _ in $(seq 300); do
		if ceph_q osd dump 2>/dev/null | grep -q '^osd\.0 up'; then
			return 0
		fi
		sleep 0.1
	done
	echo "ceph-cluster: osd.0 did not come up" >&2
	return 1
}

osd_stop() {	# signal
	local pid
	pid=$(pidof_file "$dir/run/osd.0.pid")
	[ -n "$pid" ] || return 0
	kill -"${1:-TERM}" "$pid" 2>/dev/null || true
	wait_gone "$pid" 20 || kill -KILL "$pid" 2>/dev/null || true
	wait_gone "$pid" 5 || true
}

case $cmd in
start)
	store=${3:-memstore}
	for b in ceph-mon ceph-osd ceph monmaptool ceph-authtool rbd; do
		command -v "$b" >/dev/null || skip "$b is not installed (scripts/deps.sh --test)"
	done
	mkdir -p "$dir/run" "$dir/log" "$dir/mon.a" "$dir/osd0"
	base=$(free_port_base)
	fsid=$(cat /proc/sys/kernel/random/uuid)
	cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$base
public addr = 127.0.0.1
ms bind ipv6 = false
ms bind port min = $((base + 10))
ms bind port max = $((base + 99))
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
keyring = $dir/keyring
run dir = $dir/run
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
mon cluster log file = $dir/log/cluster.log
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.1
mon osd down out interval = 0
osd objectstore = $store
memstore device bytes = 2147483648
# memstore's default keeps an object as one bufferlist that every small
# write splits further, and the PG log grows to 10000 entries a PG: a
# 4k random-write load slowed down run after run (fio rbd engine, five
# 5 s runs back to back: 8810 -> 4320 IOPS, OSD RSS +1 GiB).  Pages of
# 64 KiB and a short PG log keep it flat (16-18k IOPS, RSS flat).
memstore page set = true
osd min pg log entries = 100
osd max pg log entries = 500
osd pg log dups tracked = 500
osd pg log trim min = 50
bluestore block create = true
bluestore block size = 8589934592
bluestore fsck on mount = false
bluestore cache autotune = false
bluestore cache size = 134217728
osd memory target = 939524096
osd op num threads per shard = 1
osd op num shards = 2
# A client killed with SIGKILL loses its watch (and the image's lock)
# this long after; the default 30 s would slow the tests down.
osd client watch timeout = 8

[mon]
admin socket = $dir/run/\$name.asok
mon data = $dir/mon.\$id

[osd]
admin socket = $dir/run/\$name.asok
osd data = $dir/osd\$id
EOF
	ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. \
		--cap mon 'allow *' >/dev/null
	monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$base]" \
		"$dir/monmap" >/dev/null
	ceph-mon --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" \
		>"$dir/log/mon-mkfs.log" 2>&1 ||
		skip "ceph-mon --mkfs failed: $(tail -n1 "$dir/log/mon-mkfs.log")"
	ceph-mon -i a >"$dir/log/mon-start.log" 2>&1 ||
		skip "ceph-mon did not start: $(tail -n1 "$dir/log/mon-start.log")"
	ceph_q -s >/dev/null 2>&1 || skip "the monitor does not answer (see $dir/log)"
	uuid=$(cat /proc/sys/kernel/random/uuid)
	id=$(ceph_q osd new "$uuid")
	[ "$id" = 0 ] || skip "ceph osd new gave id '$id'"
	ceph-osd -i 0 --mkfs --osd-uuid "$uuid" >"$dir/log/osd-mkfs.log" 2>&1 ||
		skip "ceph-osd --mkfs failed: $(tail -n1 "$dir/log/osd-mkfs.log")"
	osd_start || skip "ceph-osd did not start (see $dir/log/osd.0.log)"
	ceph_q osd pool create rbd 8 8 >/dev/null 2>&1
	ceph_q osd pool application enable rbd rbd >/dev/null 2>&1
	# Until a PG is active an RBD create would hang: wait for it.
	for _ in $(seq 300); do
		if timeout 10 rbd create --size 1M rbd/.probe 2>/dev/null; then
			rbd rm rbd/.probe >/dev/null 2>&1 || true
			echo "$store" >"$dir/store"
			exit 0
		fi
		sleep 0.2
	done
	skip "pool rbd did not become usable (see $dir/log)"
	;;
stop)
	for n in osd.0 mon.a; do
		pid=$(pidof_file "$dir/run/$n.pid")
		[ -n "$pid" ] || continue
		kill -TERM "$pid" 2>/dev/null || true
	done
	for n in osd.0 mon.a; do
		pid=$(pidof_file "$dir/run/$n.pid")
		[ -n "$pid" ] || continue
		wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
		rm -f "$dir/run/$n.pid"
	done
	# The OSD's data is big (a bluestore file, or nothing): drop it.
	rm -rf "$dir/osd0" "$dir/mon.a"
	;;
osd-stop)
	osd_stop "${3:-TERM}"
	;;
osd-start)
	osd_start
	;;
*)
	echo "ceph-cluster.sh: unknown command '$cmd'" >&2
	exit 2
	;;
esac
