#!/usr/bin/env bash
# vdiskctl end to end: every command in text and --json against a running
# vdiskd, NAME and default-disk lookup in $RUNDIR, list, stats --watch,
# help, exit codes (0 ok, 1 the daemon said no, 2 usage or unreachable)
# and the messages for a missing socket, a dead one, a non-vdiskd one.
. "$(dirname "$0")/../lib/daemon.sh"
: "${VDISKCTL:?run through tests/run}"
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3 nbd module not installed (scripts/deps.sh)"

V() { "$VDISKCTL" "$@"; }
# run CMD...: sets $out (stdout), $err (stderr), $rc.
run() {
	out=$("$@" 2>"$T/stderr"); rc=$?
	err=$(cat "$T/stderr")
}
has() { grep -q -- "$1" <<<"$2"; }
json_get() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }
is_json_ok() { /usr/bin/python3 -c 'import json,sys; o=json.loads(sys.stdin.read()); sys.exit(0 if o["ok"] is True else 1)'; }
# The daemon's raw reply to one request, for comparing with --json.
raw_call() {
	/usr/bin/python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
f = s.makefile("rw"); f.readline()
f.write(sys.argv[2] + "\n"); f.flush()
print(f.readline(), end="")
PY
}

truncate -s 64M "$T/a.img"
vd_start -n disk "$T/a.img" || exit 1
wait_socket "$VD_CTL" || { echo "no control socket"; exit 1; }

# --- info ---
run V -s "$VD_CTL" info
check "info: exit 0" [ "$rc" -eq 0 ]
check "info: name" has "^name  *disk$" "$out"
check "info: image" has "^image  *$T/a.img$" "$out"
check "info: size, human and exact" has "^size  *64 MiB (67108864 bytes)$" "$out"
check "info: block sizes" has "^block size  *[0-9]* logical, [0-9]* physical$" "$out"
check "info: state" has "^state  *running$" "$out"
check "info: listen" has "^listen  *unix:$VD_SOCK$" "$out"
check "info: pid" has "^pid  *$VD_PID$" "$out"
run V -s "$VD_CTL" info --json
check "info --json: exit 0, one line" [ "$rc" -eq 0 ] && [ "$(wc -l <<<"$out")" -eq 1 ]
check "info --json: the daemon's reply unchanged" [ "$out" = "$(raw_call "$VD_CTL" '{"cmd":"info"}')" ]
run V --json -s "$VD_CTL" info
check "--json before the command works too" is_json_ok <<<"$out"

# --- NAME and the default disk in $RUNDIR ---
export RUNTIME_DIRECTORY=$T
run V disk info
check "NAME means \$RUNDIR/NAME.ctl" [ "$rc" -eq 0 ] && has "^name  *disk$" "$out"
run V info
check "no NAME: the only disk in \$RUNDIR" [ "$rc" -eq 0 ] && has "^name  *disk$" "$out"
run V nosuch info
check "unknown NAME: exit 2, says which socket" [ "$rc" -eq 2 ] && has "$T/nosuch.ctl" "$err"
run V "$VD_CTL" info
check "a NAME with a slash is a path" [ "$rc" -eq 0 ]

# --- stats ---
/usr/bin/python3 - "$VD_URI" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"x" * 65536, 0); h.pread(4096, 0); h.flush(); h.shutdown()
PY
run V -s "$VD_CTL" stats
check "stats: exit 0" [ "$rc" -eq 0 ]
check "stats: requests and bytes" has "^writes  *[1-9][0-9]*  *64 KiB$" "$out"
check "stats: reads" has "^reads  *[1-9]" "$out"
check "stats: latency table" has "^read  *[0-9.]* [mu]*s  *[0-9.]* [mu]*s$" "$out"
check "stats: queue" has "^inflight  *0$" "$out"
check "stats: state" has "^state  *running$" "$out"
run V -s "$VD_CTL" stats --json
check "stats --json: ok" is_json_ok <<<"$out"
check "stats --json: bytes_written" [ "$(json_get bytes_written <<<"$out")" -ge 65536 ]
for k in reads writes flushes trims zeroes bytes_read bytes_written errors inflight \
	 waiting pending iocbs_submitted io_submit_calls merged connections state \
	 uptime_s read_lat_p50_us read_lat_p99_us write_lat_p50_us write_lat_p99_us; do
	has "\"$k\":" "$out" || { echo "missing $k"; false; }
done
check "stats --json: every DESIGN.md key" [ $? -eq 0 ]
run V -s "$VD_CTL" stats --watch 0.2 --count 3
check "stats --watch --count 3: exit 0" [ "$rc" -eq 0 ]
check "stats --watch: three screens" [ "$(grep -c "IOPS" <<<"$out")" -eq 3 ]
check "stats --watch: rates and queue" has "^queue  *inflight 0" "$out" && has "^write  *[0-9]" "$out"
check "stats --watch: no screen clearing when not a terminal" [ "$(grep -c $'\033' <<<"$out")" -eq 0 ]
run V -s "$VD_CTL" stats --watch=0.1 --count 2 --json
check "stats --watch --json: one reply per line" [ "$(grep -c '^{"ok":true' <<<"$out")" -eq 2 ]
run V -s "$VD_CTL" stats --count 0
check "stats --count 0: usage error" [ "$rc" -eq 2 ]
run V -s "$VD_CTL" stats --watch 0
check "stats --watch 0: usage error" [ "$rc" -eq 2 ]

# --- pause, resume, flush, reopen ---
run V -s "$VD_CTL" reopen
check "reopen while running: exit 1" [ "$rc" -eq 1 ]
check "reopen while running: the daemon's message and EBUSY on stderr" \
	has "pause it first (EBUSY)" "$err"
run V -s "$VD_CTL" pause
check "pause: exit 0, says paused" [ "$rc" -eq 0 ] && [ "$out" = paused ]
run V -s "$VD_CTL" pause --timeout 2.5 --json
check "pause --timeout --json: ok, paused" is_json_ok <<<"$out" && [ "$(json_get state <<<"$out")" = paused ]
run V -s "$VD_CTL" pause --timeout soon
check "pause --timeout soon: usage error" [ "$rc" -eq 2 ]
cp "$T/a.img" "$T/copy.img"
run bash -c "cd '$T' && '$VDISKCTL' -s '$VD_CTL' reopen copy.img"
check "reopen a relative path while paused: exit 0" [ "$rc" -eq 0 ]
check "reopen: absolute path sent" has "^reopened $T/copy.img (raw, 64 MiB)$" "$out"
run V -s "$VD_CTL" reopen "$T/missing.img"
check "reopen a missing image: exit 1, old one kept" [ "$rc" -eq 1 ] && has "old image stays open" "$err"
run V -s "$VD_CTL" info --json
check "info: still the copy, still paused" [ "$(json_get image <<<"$out")" = "$T/copy.img" ] && \
	[ "$(json_get state <<<"$out")" = paused ]
run V -s "$VD_CTL" reopen --json
check "reopen (same image) --json" is_json_ok <<<"$out"
run V -s "$VD_CTL" resume
check "resume: exit 0, says running" [ "$rc" -eq 0 ] && [ "$out" = running ]
run V -s "$VD_CTL" flush
check "flush: exit 0" [ "$rc" -eq 0 ] && [ "$out" = flushed ]
run V -s "$VD_CTL" flush --json
check "flush --json" [ "$out" = '{"ok":true}' ]

# --- log-level ---
run V -s "$VD_CTL" log-level debug
check "log-level debug" [ "$rc" -eq 0 ] && [ "$out" = "log level debug (was info)" ]
run V -s "$VD_CTL" log-level
check "log-level shows it" [ "$out" = debug ]
run V -s "$VD_CTL" log-level info --json
check "log-level --json" [ "$(json_get previous <<<"$out")" = debug ]
run V -s "$VD_CTL" log-level loud
check "log-level loud: usage error" [ "$rc" -eq 2 ] && has "error, warn, info or debug" "$err"

# --- help and usage ---
run V --help
check "--help: exit 0, lists commands" [ "$rc" -eq 0 ] && has "reopen \[IMAGE\]" "$out"
for c in list info stats pause resume flush reopen shutdown log-level; do
	V "$c" --help >"$T/help" 2>&1 && has "^usage: vdiskctl.* $c" "$(cat "$T/help")" ||
		{ echo "no help for $c"; false; }
done
check "COMMAND --help for every command" [ $? -eq 0 ]
run V help pause
check "help pause mentions the timeout" has "timeout" "$out"
run V
check "no command: exit 2" [ "$rc" -eq 2 ] && has "no command" "$err"
run V -s "$VD_CTL" frob
check "unknown command: exit 2" [ "$rc" -eq 2 ]
run V -s "$VD_CTL" info extra
check "extra argument: exit 2" [ "$rc" -eq 2 ]
run V -s "$VD_CTL" info --bogus
check "unknown option: exit 2" [ "$rc" -eq 2 ]
run V -s
check "-s without a path: exit 2" [ "$rc" -eq 2 ]
run V --version
check "--version" [ "$rc" -eq 0 ] && has "^vdiskctl [0-9]" "$out"

# --- unreachable daemons: exit 2 and what to check ---
run V -s "$T/none.ctl" info
check "missing socket: exit 2" [ "$rc" -eq 2 ]
check "missing socket: says so and asks if vdiskd runs" has "no such socket; is vdiskd running" "$err"
/usr/bin/python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/dead.ctl"
run V -s "$T/dead.ctl" stats
check "socket with no daemon: exit 2" [ "$rc" -eq 2 ]
check "socket with no daemon: says the daemon is not running" has "not running" "$err"
run V -s "$T/a.img" info
check "not a socket: exit 2, says so" [ "$rc" -eq 2 ] && has "not a socket" "$err"
/usr/bin/python3 - "$T/other.sock" "$T/silent.sock" <<'PY' &
import socket, sys, threading, time
def serve(path, greeting):
    s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(8)
    while True:
        c, _ = s.accept()
        if greeting:
            c.sendall(greeting)
        threading.Timer(8, c.close).start()
threading.Thread(target=serve, args=(sys.argv[1], b"220 smtp.example ESMTP\r\n"), daemon=True).start()
threading.Thread(target=serve, args=(sys.argv[2], None), daemon=True).start()
time.sleep(60)
PY
PEERS=$!
VD_PIDS+=("$PEERS")
for i in $(seq 50); do [ -S "$T/silent.sock" ] && [ -S "$T/other.sock" ] && break; sleep 0.1; done
run V -s "$T/other.sock" info
check "non-vdiskd socket: exit 2" [ "$rc" -eq 2 ]
check "non-vdiskd socket: says it is not vdiskd" has "not a vdiskd control socket" "$err"
start=$SECONDS
run V -s "$T/silent.sock" info
check "silent socket: exit 2 after the greeting timeout" [ "$rc" -eq 2 ] && [ $((SECONDS - start)) -le 10 ]
check "silent socket: asks if it is a vdiskd socket" has "no greeting.*vdiskd control socket" "$err"
kill "$PEERS" 2>/dev/null
rm -f "$T/other.sock" "$T/silent.sock"

# --- list ---
run V list
check "list: exit 0" [ "$rc" -eq 0 ]
check "list: header" has "^NAME  *STATE  *SIZE" "$out"
check "list: the live disk" has "^disk  *running  *64 MiB  *raw  *rw  *0  *$T/copy.img$" "$out"
check "list: the dead socket is unreachable" has "^dead  *unreachable" "$out"
run V list --json
check "list --json: both disks" [ "$(/usr/bin/python3 -c 'import json,sys; o=json.load(sys.stdin); print(len(o["disks"]), sorted(d["state"] for d in o["disks"]))' <<<"$out")" = "2 ['running', 'unreachable']" ]
run V info
check "two sockets in \$RUNDIR and no NAME: exit 2, name one" [ "$rc" -eq 2 ] && has "name one" "$err"
rm -f "$T/dead.ctl"
run env RUNTIME_DIRECTORY="$T/empty" "$VDISKCTL" list
check "list with no run directory: empty, exit 0" [ "$rc" -eq 0 ] && [ "$(wc -l <<<"$out")" -eq 1 ]

# --- a second daemon on the same control socket fails clearly ---
"$VDISKD" -f -l "unix:$T/second.nbd" -c "$VD_CTL" -d ram 1M >/dev/null 2>"$T/second.log"
rc=$?
check "second daemon on a live control socket: fails" [ "$rc" -ne 0 ]
check "second daemon: says the socket is in use" grep -q "in use" "$T/second.log"
run V -s "$VD_CTL" info
check "the first daemon still answers" [ "$rc" -eq 0 ]

# --- shutdown ---
run V -s "$VD_CTL" shutdown
check "shutdown: exit 0" [ "$rc" -eq 0 ] && [ "$out" = "shutting down" ]
for i in $(seq 100); do kill -0 "$VD_PID" 2>/dev/null || break; sleep 0.1; done
wait "$VD_PID"
check "vdiskd exited 0 after shutdown" [ $? -eq 0 ]
check "its control socket is gone" [ ! -e "$VD_CTL" ]

# --- a daemon killed hard leaves a stale socket; the next one replaces it ---
vd_start -n disk "$T/a.img" || exit 1
kill -KILL "$VD_PID"; wait "$VD_PID" 2>/dev/null
check "killed daemon left its socket" [ -S "$VD_CTL" ]
run V -s "$VD_CTL" info
check "vdiskctl on the stale socket: exit 2, not running" [ "$rc" -eq 2 ] && has "not running" "$err"
vd_start -n disk "$T/a.img" || exit 1
wait_socket "$VD_CTL"
run V -s "$VD_CTL" info
check "a new daemon replaced the stale socket" [ "$rc" -eq 0 ] && has "^pid  *$VD_PID$" "$out"
vd_stop
check "SIGTERM: exit 0" [ "$VD_RC" -eq 0 ]
finish
