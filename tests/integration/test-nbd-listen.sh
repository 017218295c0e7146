#!/usr/bin/env bash
# NBD listeners: TCP on IPv4 and IPv6 (port 0 reported back), a stale unix
# socket replaced, a live one or a regular file refused, bad addresses
# refused, socket files removed at exit.
. "$(dirname "$0")/../lib/daemon.sh"
need nbdinfo

listens=(-l tcp:127.0.0.1:0)
have_v6=0
if /usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null; then
	have_v6=1
	listens+=(-l "tcp:[::1]:0")
fi
vd_start -n disk "${listens[@]}" -d ram 16M || exit 1
info=$("$VDISKCTL" -s "$VD_CTL" info --json)
echo "$info"
addr() { /usr/bin/python3 -c "import json,sys; print([a for a in json.load(sys.stdin)['listen'] if a.startswith('$1')][0])" <<<"$info"; }
v4=$(addr tcp:127.0.0.1:)
check "port 0 is reported as the bound port" test "${v4#tcp:127.0.0.1:}" != 0
check "nbdinfo over TCP/IPv4" nbdinfo --size "nbd://127.0.0.1:${v4#tcp:127.0.0.1:}/disk"
if [ $have_v6 = 1 ]; then
	v6=$(addr "tcp:[::1]:")
	check "nbdinfo over TCP/IPv6" nbdinfo --size "nbd://[::1]:${v6#tcp:\[::1\]:}/disk"
fi
check "unix socket still served" nbdinfo --size "$VD_URI"

# Another daemon on the same unix path: refused while the first lives.
"$VDISKD" -f -n other -c "$T/other.ctl" -l "unix:$VD_SOCK" -d ram 16M 2>"$T/other.log"
check "a second daemon on a live unix socket fails" test $? -ne 0
cat "$T/other.log"
check "... saying another process listens there" grep -qi "another process" "$T/other.log"
check "... and the first still serves" nbdinfo --size "$VD_URI"
vd_stop
check "SIGTERM: exit 0" test "$VD_RC" -eq 0
check "the unix socket file is removed at exit" test ! -e "$VD_SOCK"

# A stale socket file (its process is gone) is replaced.
/usr/bin/python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$VD_SOCK"
check "stale socket file exists" test -S "$VD_SOCK"
vd_start -n disk -d ram 16M
check "a stale unix socket is replaced" nbdinfo --size "$VD_URI"
vd_stop

# A regular file in the way is never removed.
echo keep >"$T/file.nbd"
"$VDISKD" -f -n f -c "$T/f.ctl" -l "unix:$T/file.nbd" -d ram 16M 2>"$T/f.log"
check "a regular file at the socket path: refused" test $? -ne 0
check "... and left alone" grep -qx keep "$T/file.nbd"

for a in "tcp:127.0.0.1" "tcp:::1:10809" "udp:1.2.3.4:5" "unix:" "tcp:127.0.0.1:99999"; do
	"$VDISKD" -f -n b -c "$T/b.ctl" -l "$a" -d ram 16M 2>"$T/b.log"
	check "bad address '$a' refused" test $? -ne 0
done
finish
