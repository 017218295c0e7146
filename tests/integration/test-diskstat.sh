#!/usr/bin/env bash
# scripts/diskstat: counts the block device's requests made by a real
# command (8 MiB of O_DIRECT writes), passes the command's exit status
# through, and refuses bad input with a message and a non-zero status.
. "$(dirname "$0")/../lib/daemon.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DS=$ROOT/scripts/diskstat
[ -x /usr/bin/python3 ] || skip "python3 is needed"
# Only a tmpdir on no block device (a tmpfs) skips; any other failure of
# the probe is left to fail the checks below.
if ! /usr/bin/python3 "$DS" --path "$T" -- true 2>"$T/probe.err" &&
   grep -q 'not on a block device' "$T/probe.err"; then
	skip "$T is not on a block device: $(cat "$T/probe.err")"
fi

/usr/bin/python3 "$DS" --json --path "$T" -- \
	dd if=/dev/zero of="$T/f" bs=1M count=8 oflag=direct,sync status=none >"$T/r.json"
check "8 MiB of direct writes are counted, with a service time" \
	/usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["writes"] >= 8, r
assert r["write_us"] and r["write_us"] > 0, r
assert r["inflight"] is not None and r["inflight"] > 0, r
' "$T/r.json"

/usr/bin/python3 "$DS" --path "$T" -- sh -c 'exit 3' 2>/dev/null
check "the command's exit status is diskstat's" test $? -eq 3

# bad WANT_RC STDERR_REGEX ARGS...
bad() {
	local want=$1 pat=$2 rc; shift 2
	timeout 10 /usr/bin/python3 "$DS" "$@" >"$T/bad.out" 2>"$T/bad.err"
	rc=$?
	[ "$rc" -eq "$want" ] && grep -Eq "$pat" "$T/bad.err" && ! grep -q Traceback "$T/bad.err"
}
check "no command: usage, status 2" bad 2 'no command' --path "$T"
check "only --: usage, status 2" bad 2 'no command' --path "$T" --
check "--dev and --path together: status 2" bad 2 'not allowed' --dev vda --path "$T" -- true
check "unknown device: status 1" bad 1 'no device' --dev no-such-disk -- true
check "missing path: status 1" bad 1 'No such file' --path "$T/missing" -- true
check "path on no block device: status 1" bad 1 'not on a block device' --path /proc -- true
check "missing command: status 1" bad 1 'No such file' --path "$T" -- "$T/no-such-cmd"
finish
