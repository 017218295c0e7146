# Shell helpers for integration tests: source this file.
#   vd_start [vdiskd args...]   starts vdiskd in the foreground on a private
#                               socket pair ($VD_SOCK, $VD_CTL), waits until
#                               the NBD socket answers, sets $VD_PID.
#   vd_stop                     SIGTERM, wait (bounded), then SIGKILL.
#   check DESC CMD...           runs CMD, counts pass/fail.
#   finish                      prints the tally, exits 0 only if all passed.
#   skip "why"                  exits 77 after saying why.
set -u
: "${VDISKD:?run through tests/run}" "${TESTS_TMP:?}"
T=$(mktemp -d "$TESTS_TMP/$(basename "$0" .sh).XXXXXX")
VD_PIDS=()
checks_passed=0 checks_failed=0

cleanup() {
	local p
	for p in "${VD_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
}
trap cleanup EXIT

skip() { echo "SKIP: $*"; exit 77; }
need() { command -v "$1" >/dev/null 2>&1 || skip "$1 not installed (scripts/deps.sh installs it)"; }

check() {
	local desc=$1; shift
	if "$@"; then
		checks_passed=$((checks_passed + 1)); echo "ok: $desc"
	else
		checks_failed=$((checks_failed + 1)); echo "NOT OK: $desc"
	fi
}

finish() {
	echo "$checks_passed checks passed, $checks_failed failed"
	[ "$checks_failed" -eq 0 ] && [ "$checks_passed" -gt 0 ]
	exit $?
}

# Waits (up to 10 s) until a unix socket accepts connections.
wait_socket() {
	local path=$1 i
	for i in $(seq 1 200); do
		if [ -S "$path" ] && /usr/bin/python3 - "$path" 2>/dev/null <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(1); s.connect(sys.argv[1])
PY
		then return 0; fi
		kill -0 "${VD_PID:-0}" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

vd_start() {
	VD_SOCK=$T/disk.nbd VD_CTL=$T/disk.ctl
	rm -f "$VD_SOCK" "$VD_CTL"
	"$VDISKD" -f -l "unix:$VD_SOCK" -c "$VD_CTL" "$@" >"$T/vdiskd.out" 2>>"$T/vdiskd.log" &
	VD_PID=$!
	VD_PIDS+=("$VD_PID")
	# READY comes after both sockets; wait for both, not just NBD.
	if ! wait_socket "$VD_SOCK" || ! wait_socket "$VD_CTL"; then
		echo "vdiskd did not start:"; cat "$T/vdiskd.log"
		return 1
	fi
	VD_URI="nbd+unix:///?socket=$VD_SOCK"
}

vd_stop() {
	local i
	kill -TERM "$VD_PID" 2>/dev/null || return 0
	for i in $(seq 1 100); do
		kill -0 "$VD_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$VD_PID" 2>/dev/null
	wait "$VD_PID"
	VD_RC=$?
}
