#!/usr/bin/env bash
# vdiskd start-up: bad input fails cleanly; good input gets READY=1 and a
# clean exit on SIGTERM/SIGINT.
#
# Bad input: each case runs `vdiskd -f` (bounded by timeout) and must exit
# with the documented status -- 1 for an image or value the daemon cannot
# use, 2 for command-line usage errors (unknown option, missing or extra
# IMAGE, missing option value) -- with a message on stderr, nothing on
# stdout, no signal death (status < 128) and no hang.
#
# "Unreadable image": the tests run as root, whom chmod 000 does not stop.
# Two stand-ins: a unix socket file as IMAGE (open fails with ENXIO), and,
# when setpriv(1) is there, a chmod 000 file opened by vdiskd running as
# nobody (a genuine EACCES).  Special files (a FIFO, /dev/null) must be
# refused too, and a FIFO must not hang the daemon in open() (read-only,
# open(O_RDONLY) of a FIFO blocks until a writer comes: the daemon must
# not wait for one).
. "$(dirname "$0")/../lib/daemon.sh"

[ -x "$VDISKD" ] || skip "$VDISKD is not built"
[ -x /usr/bin/python3 ] || skip "python3 is needed for the notify socket"
chmod 0711 "$T"		# nobody may traverse to $T/pub (setpriv case)

# bad WANT_RC STDERR_REGEX ARGS... -- runs vdiskd with private sockets.
bad() {
	local want=$1 pat=$2 rc; shift 2
	rm -f "$T/bad.nbd" "$T/bad.ctl"
	timeout -k 2 10 "$VDISKD" -f -l "unix:$T/bad.nbd" -c "$T/bad.ctl" "$@" \
		>"$T/bad.out" 2>"$T/bad.err" </dev/null
	rc=$?
	bad_report "$want" "$pat" "$rc"
}

# bad_report WANT REGEX RC -- judges the last run ($T/bad.out, $T/bad.err).
bad_report() {
	local want=$1 pat=$2 rc=$3 ok=0
	echo "    exit $rc, stderr: $(head -c 300 "$T/bad.err" | tr '\n' '|')"
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "    hung: killed by timeout"; ok=1
	elif [ "$rc" -ge 128 ]; then
		echo "    died of signal $((rc - 128))"; ok=1
	elif [ "$rc" -ne "$want" ]; then
		echo "    want exit $want"; ok=1
	fi
	if [ ! -s "$T/bad.err" ]; then
		echo "    no message on stderr"; ok=1
	elif ! grep -Eqi -- "$pat" "$T/bad.err"; then
		echo "    stderr does not match /$pat/"; ok=1
	fi
	if [ -s "$T/bad.out" ]; then
		echo "    stdout not empty: $(head -c 200 "$T/bad.out")"; ok=1
	fi
	return $ok
}

# ---- bad images ----
mkdir "$T/dir.img"
: >"$T/empty.img"
mkfifo "$T/fifo.img"
/usr/bin/python3 - "$T/sock.img" <<'PY'
import socket, sys
socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).bind(sys.argv[1])
PY
truncate -s 1M "$T/small.img"

check "missing image: exit 1" bad 1 'nope\.img|no such file' -n t "$T/nope.img"
check "missing image, -d raw: exit 1" bad 1 'nope\.img|no such file' -n t -d raw "$T/nope.img"
# Said once, where the decision is made, not once per layer.
once() {
	bad 1 'nope\.img' -n t "$T/nope.img" || return 1
	local n
	n=$(grep -c 'nope\.img' "$T/bad.err")
	[ "$n" -eq 1 ] || { echo "    the missing image is reported $n times"; return 1; }
}
check "missing image: reported once" once
check "unix socket as image (cannot be opened): exit 1" bad 1 'sock\.img|no such device|not a' \
	-n t "$T/sock.img"
check "directory as image: exit 1" bad 1 'dir\.img|directory' -n t "$T/dir.img"
check "directory as image, -d raw: exit 1" bad 1 'dir\.img|directory' -n t -d raw "$T/dir.img"
check "zero-size image: exit 1" bad 1 'empty\.img|size|empty|zero' -n t "$T/empty.img"
check "FIFO as image: exit 1, no hang" bad 1 'fifo\.img|not a|regular|size' -n t "$T/fifo.img"
check "FIFO as image, read-only: exit 1, no hang" bad 1 'fifo\.img|not a|regular|size' \
	-n t -r "$T/fifo.img"
check "character device (/dev/null) as image: exit 1" bad 1 'null|not a|regular|size' \
	-n t /dev/null

if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
	mkdir -m 1777 "$T/pub"
	truncate -s 1M "$T/pub/locked.img"
	chmod 000 "$T/pub/locked.img"
	noperm() {
		rm -f "$T/pub/bad.nbd" "$T/pub/bad.ctl"
		timeout -k 2 10 setpriv --reuid=65534 --regid=65534 --clear-groups \
			"$VDISKD" -f -l "unix:$T/pub/bad.nbd" -c "$T/pub/bad.ctl" -n t "$@" \
			>"$T/bad.out" 2>"$T/bad.err" </dev/null
		bad_report 1 'locked\.img|permission denied' $?
	}
	check "unreadable image (chmod 000, run as nobody): exit 1" noperm "$T/pub/locked.img"
	check "unreadable image, read-only (chmod 000, run as nobody): exit 1" noperm -r \
		"$T/pub/locked.img"
elif [ "$(id -u)" -ne 0 ]; then
	truncate -s 1M "$T/locked.img"
	chmod 000 "$T/locked.img"
	check "unreadable image (chmod 000): exit 1" bad 1 'locked\.img|permission denied' \
		-n t "$T/locked.img"
else
	echo "note: setpriv missing: the chmod 000 case is left out (root reads anything)"
fi

# ---- drivers and ram sizes ----
check "unknown driver: exit 1" bad 1 'bogus' -n t -d bogus "$T/small.img"
for size in 0 -1 1Q 99999999999999999999 18446744073709551616 16777216T 1P 1GG G -0 0x10; do
	check "ram size '$size': exit 1" bad 1 'size|ram' -n t -d ram -- "$size"
done

# ---- options ----
check "unknown long option: exit 2" bad 2 'unknown|unrecognized|bogus' --bogus "$T/small.img"
check "unknown short option: exit 2" bad 2 'unknown|invalid|-Z' -Z "$T/small.img"
check "missing IMAGE: exit 2" bad 2 'IMAGE|usage|missing' -n t
check "two IMAGEs: exit 2" bad 2 'IMAGE|usage|one' -n t "$T/small.img" "$T/small.img"
check "empty IMAGE: exit 2" bad 2 'IMAGE|empty' -n t ""
check "--queue-depth without a value: exit 2" bad 2 'queue-depth|value|argument' \
	-n t "$T/small.img" --queue-depth
for qd in 0 -5 abc 4097 99999999999999999999 "" 12x; do
	check "--queue-depth '$qd': exit 1" bad 1 'queue-depth' -n t --queue-depth "$qd" \
		"$T/small.img"
done
check "--cache bogus: exit 1" bad 1 'cache' -n t --cache bogus "$T/small.img"
check "--cache '': exit 1" bad 1 'cache' -n t --cache "" "$T/small.img"
for sc in bogus "" Free "follow,free"; do
	check "--submit-cpu '$sc': exit 1" bad 1 'submit-cpu.*follow or free' -n t \
		--submit-cpu "$sc" "$T/small.img"
done
check "--submit-cpu without a value: exit 2" bad 2 'submit-cpu|argument' \
	-n t "$T/small.img" --submit-cpu
check "bad disk name: exit 1" bad 1 'name' -n '../x' "$T/small.img"

# ---- happy paths ----
NOTIFY_PY='
import socket, sys, time
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + path[1:] if path.startswith("@") else path)
open(log + ".bound", "w").close()
s.settimeout(0.5)
end = time.time() + 60
with open(log, "a", buffering=1) as f:
    while time.time() < end:
        try:
            msg = s.recv(4096)
        except socket.timeout:
            continue
        for line in msg.decode(errors="replace").splitlines():
            f.write(line + "\n")
'

# serve DESC SIGNAL NOTIFY_ADDR ARGS... -- starts vdiskd with NOTIFY_SOCKET,
# waits for READY=1, checks it serves, stops it with SIGNAL.
serve() {
	local desc=$1 sig=$2 addr=$3 i lpid t0 t1 rc; shift 3
	local log=$T/notify.$RANDOM.log
	rm -f "$T/h.nbd" "$T/h.ctl"
	/usr/bin/python3 -c "$NOTIFY_PY" "$addr" "$log" &
	lpid=$!
	VD_PIDS+=("$lpid")
	for i in $(seq 1 100); do [ -e "$log.bound" ] && break; sleep 0.05; done
	[ -e "$log.bound" ] || { check "$desc: notify listener" false; return; }

	t0=$(date +%s%N)
	NOTIFY_SOCKET=$addr "$VDISKD" -f -l "unix:$T/h.nbd" -c "$T/h.ctl" "$@" \
		>"$T/h.out" 2>"$T/h.err" </dev/null &
	VD_PID=$!
	VD_PIDS+=("$VD_PID")
	for i in $(seq 1 200); do
		grep -qx 'READY=1' "$log" 2>/dev/null && break
		kill -0 "$VD_PID" 2>/dev/null || break
		sleep 0.05
	done
	t1=$(date +%s%N)
	check "$desc: READY=1 on NOTIFY_SOCKET=$addr ($(( (t1 - t0) / 1000000 )) ms)" \
		grep -qx 'READY=1' "$log"
	check "$desc: still running after READY" kill -0 "$VD_PID"
	check "$desc: NBD socket accepts at READY" wait_socket "$T/h.nbd"
	check "$desc: control socket is mode 0600" \
		test "$(stat -c %a "$T/h.ctl" 2>/dev/null)" = 600

	t0=$(date +%s%N)
	kill "-$sig" "$VD_PID" 2>/dev/null
	for i in $(seq 1 100); do
		kill -0 "$VD_PID" 2>/dev/null || break
		sleep 0.05
	done
	t1=$(date +%s%N)
	if kill -0 "$VD_PID" 2>/dev/null; then
		kill -KILL "$VD_PID" 2>/dev/null
		echo "    still running 5 s after SIG$sig: killed"
	fi
	wait "$VD_PID"
	rc=$?
	check "$desc: SIG$sig -> exit 0 in $(( (t1 - t0) / 1000000 )) ms (got $rc)" test "$rc" -eq 0
	sleep 0.1
	check "$desc: STOPPING=1 on NOTIFY_SOCKET" grep -qx 'STOPPING=1' "$log"
	check "$desc: nothing on stdout" test ! -s "$T/h.out"
	if [ "$rc" -ne 0 ] || [ -s "$T/h.out" ]; then
		echo "    stderr:"; sed 's/^/    | /' "$T/h.err" | tail -n 20
		echo "    stdout:"; sed 's/^/    | /' "$T/h.out" | tail -n 5
	fi
	kill "$lpid" 2>/dev/null
	wait "$lpid" 2>/dev/null
}

truncate -s 64M "$T/disk.raw"
serve "ram 64M" TERM "$T/notify1.sock" -d ram 64M
serve "raw file" TERM "$T/notify2.sock" "$T/disk.raw"
serve "raw file, --cache writeback, abstract notify socket" INT "@vdiskd-test-$$-$RANDOM" \
	--cache writeback "$T/disk.raw"
serve "raw file, read-only, --queue-depth 1" TERM "$T/notify3.sock" -r --queue-depth 1 \
	"$T/disk.raw"

# Defaults from $RUNTIME_DIRECTORY: the sockets land there.
mkdir -p "$T/run"
RUNTIME_DIRECTORY=$T/run "$VDISKD" -f -n rundisk -d ram 16M >"$T/r.out" 2>"$T/r.err" </dev/null &
VD_PID=$!
VD_PIDS+=("$VD_PID")
wait_socket "$T/run/rundisk.nbd"
check "default sockets in \$RUNTIME_DIRECTORY (rundisk.nbd, rundisk.ctl)" \
	test -S "$T/run/rundisk.nbd" -a -S "$T/run/rundisk.ctl"
vd_stop
check "\$RUNTIME_DIRECTORY daemon: SIGTERM -> exit 0 (got $VD_RC)" test "$VD_RC" -eq 0

finish
