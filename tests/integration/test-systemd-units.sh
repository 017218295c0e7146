# The systemd units: `systemd-analyze verify` passes on them without a
# word (installed under a private PREFIX so ExecStart names a real
# binary and the man pages in Documentation= resolve), and it does catch
# a broken copy; the settings the issue asks for are there; and the
# service's command line, run the way systemd would run it for an instance,
# serves the disk from /etc/vdiskd/NAME.conf under the name NAME.
. "$(dirname "$0")/../lib/daemon.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
need make
need systemd-analyze
if ! systemd-analyze --version >/dev/null 2>&1; then
	skip "systemd-analyze cannot run here"
fi

P=$T/prefix
if ! make -s -C "$ROOT" -o all BUILD="$BUILD" install DESTDIR= PREFIX="$P" \
	SYSCONFDIR="$P/etc" >"$T/install.log" 2>&1; then
	cat "$T/install.log"
	check "make install into a private prefix" false
	finish
fi
U=$P/lib/systemd/system
ln -s 'vdiskd@.service' "$U/vdiskd@disk1.service"
ln -s 'vdiskd@.socket' "$U/vdiskd@disk1.socket"

# Quiet means clean: verify prints warnings (unknown keys, bad values)
# and still exits 0, so any output about our units is a failure.
verify() {
	local out=$T/verify.out
	systemd-analyze verify "$@" >"$out" 2>&1
	local rc=$?
	cat "$out"
	[ $rc = 0 ] && ! grep -q 'vdiskd' "$out"
}
check "verify vdiskd@.service and vdiskd@.socket (templates)" \
	verify --man=no "$U/vdiskd@.service" "$U/vdiskd@.socket"
check "verify the instances vdiskd@disk1.service and .socket" \
	verify --man=no "$U/vdiskd@disk1.service" "$U/vdiskd@disk1.socket"
# Documentation= is checked too: man must find vdiskd(8), vdiskd.conf(5)
# and vdiskctl(8) among the installed pages.
verify_man() { MANPATH="$P/share/man" verify "$@"; }
check "verify with the man pages of Documentation= installed" \
	verify_man "$U/vdiskd@disk1.service" "$U/vdiskd@disk1.socket"

# The check has teeth: a missing binary fails, a misspelt key is reported.
B=$T/broken
mkdir -p "$B"
sed 's|^ExecStart=[^ ]*|ExecStart=/nonexistent/vdiskd|' "$U/vdiskd@.service" \
	>"$B/vdiskd@.service"
check "verify fails for a unit whose binary is missing" \
	sh -c "! systemd-analyze verify --man=no '$B/vdiskd@.service' >/dev/null 2>&1"
sed 's|^WatchdogSec=|WatchdogSecs=|' "$U/vdiskd@.service" >"$B/typo@.service"
systemd-analyze verify --man=no "$B/typo@.service" >"$T/typo.out" 2>&1
check "verify reports a misspelt key" grep -q "Unknown key 'WatchdogSecs'" "$T/typo.out"

# What the issue asks of the service.
S=$ROOT/scripts/vdiskd@.service
for line in 'Type=notify' \
	'ExecStart=/usr/sbin/vdiskd -f --config /etc/vdiskd/%i.conf -n %i' \
	'RuntimeDirectory=vdiskd' 'RuntimeDirectoryPreserve=yes' \
	'Restart=on-failure' 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
	'ProtectHome=yes' 'PrivateTmp=yes' \
	'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
	'ReadWritePaths=-/var/lib/vdiskd' 'WantedBy=multi-user.target'; do
	check "service: $line" grep -qx -- "$line" "$S"
done
check "service: a WatchdogSec=" grep -qE '^WatchdogSec=[0-9]+' "$S"
# Block devices must stay reachable: no PrivateDevices=, and nothing that
# adds a DeviceAllow= rule (which closes the default device policy).
for key in PrivateDevices ProtectClock DeviceAllow DevicePolicy ExecReload; do
	check "service: no $key=" sh -c "! grep -q '^$key=' '$S'"
done
K=$ROOT/scripts/vdiskd@.socket
for line in 'ListenStream=/run/vdiskd/%i.nbd' 'Service=vdiskd@%i.service' \
	'SocketMode=0600' 'WantedBy=sockets.target'; do
	check "socket: $line" grep -qx -- "$line" "$K"
done

# The installed unit's command line for instance disk1, with what systemd
# puts in the environment (RuntimeDirectory= -> $RUNTIME_DIRECTORY).
mkdir -p "$P/etc/vdiskd" "$T/run"
truncate -s 8M "$T/disk1.img"
printf 'image = %s\nname = ignored-the-unit-says-disk1\n' "$T/disk1.img" \
	>"$P/etc/vdiskd/disk1.conf"
cmdline=$(sed -n 's/^ExecStart=//p' "$U/vdiskd@.service" | sed 's/%i/disk1/g')
check "the unit's ExecStart names the installed binary" \
	test -x "${cmdline%% *}"
# shellcheck disable=SC2086 # the unit's words, split as systemd splits them
RUNTIME_DIRECTORY=$T/run $cmdline 2>"$T/unit.log" &
VD_PID=$!
VD_PIDS+=("$VD_PID")
if wait_socket "$T/run/disk1.nbd"; then
	check "ExecStart for disk1 serves \$RUNTIME_DIRECTORY/disk1.nbd" true
	check "the control socket is \$RUNTIME_DIRECTORY/disk1.ctl" test -S "$T/run/disk1.ctl"
	"$VDISKCTL" -s "$T/run/disk1.ctl" info --json >"$T/info.json" 2>&1
	check "the disk is called disk1 (-n %i wins over the file)" \
		grep -q '"name":"disk1"' "$T/info.json"
	if command -v nbdinfo >/dev/null; then
		check "nbdinfo sees export disk1 of 8 MiB" \
			test "$(nbdinfo --size "nbd+unix:///disk1?socket=$T/run/disk1.nbd")" = 8388608
	fi
	vd_stop
	check "the service's process exits 0 on SIGTERM" test "$VD_RC" = 0
else
	cat "$T/unit.log"
	check "ExecStart for disk1 serves \$RUNTIME_DIRECTORY/disk1.nbd" false
fi

finish
