# make install: every file lands where it belongs, with the right mode;
# the units point at SBINDIR and SYSCONFDIR; the installed man pages
# render without a warning and document every option and config key; the
# example config parses, with every key uncommented too.
. "$(dirname "$0")/../lib/daemon.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
need make
need man
need groff

# -o all: install what tests/run is testing; never rebuild it here.
install_to() {
	make -s -C "$ROOT" -o all BUILD="$BUILD" install "$@" >"$T/install.log" 2>&1 ||
		{ cat "$T/install.log"; return 1; }
}

mode_is() { [ "$(stat -c %a "$2")" = "$1" ]; }

D=$T/dest
check "make install DESTDIR=... PREFIX=/usr" install_to DESTDIR="$D" PREFIX=/usr

cat >"$T/expected" <<'EOF'
0755 usr/sbin/vdiskd
0755 usr/sbin/vdiskctl
0755 usr/sbin/vdisk-img
0644 usr/share/man/man8/vdiskd.8
0644 usr/share/man/man8/vdiskctl.8
0644 usr/share/man/man8/vdisk-img.8
0644 usr/share/man/man5/vdiskd.conf.5
0644 usr/lib/systemd/system/vdiskd@.service
0644 usr/lib/systemd/system/vdiskd@.socket
0644 etc/vdiskd/example.conf.sample
EOF
while read -r mode f; do
	check "installed $f" test -f "$D/$f"
	check "$f has mode $mode" mode_is "${mode#0}" "$D/$f"
done <"$T/expected"

# Nothing strays outside the places make install owns.
(cd "$D" && find . -type f | sed 's|^\./||' | sort) >"$T/installed"
cat >"$T/allowed" <<'EOF'
^usr/sbin/[^/]*$
^usr/share/man/man[58]/[^/]*\.[58]$
^usr/lib/systemd/system/[^/]*\.\(service\|socket\)$
^etc/vdiskd/[^/]*$
EOF
check "every installed file is in sbin, man5/man8, the unit dir or /etc/vdiskd" \
	test -z "$(grep -v -f "$T/allowed" "$T/installed")"

U=$D/usr/lib/systemd/system
check "PREFIX=/usr: the units are the ones in scripts/, unchanged" \
	cmp -s "$U/vdiskd@.service" "$ROOT/scripts/vdiskd@.service"
check "ExecStart runs /usr/sbin/vdiskd on /etc/vdiskd/%i.conf" \
	grep -qx 'ExecStart=/usr/sbin/vdiskd -f --config /etc/vdiskd/%i.conf -n %i' \
	"$U/vdiskd@.service"
check "the socket unit listens on /run/vdiskd/%i.nbd" \
	grep -qx 'ListenStream=/run/vdiskd/%i.nbd' "$U/vdiskd@.socket"
check "the installed vdiskd runs" sh -c "'$D/usr/sbin/vdiskd' --version | grep -q '^vdiskd '"
check "the installed vdiskctl runs" sh -c "'$D/usr/sbin/vdiskctl' --help >/dev/null"
check "the installed vdisk-img runs" sh -c "'$D/usr/sbin/vdisk-img' --help >/dev/null"

# PREFIX and SYSCONFDIR are honoured by the units too.
D2=$T/dest-local
check "make install PREFIX=/usr/local SYSCONFDIR=/usr/local/etc" \
	install_to DESTDIR="$D2" PREFIX=/usr/local SYSCONFDIR=/usr/local/etc
U2=$D2/usr/local/lib/systemd/system
check "PREFIX=/usr/local: units in \$PREFIX/lib/systemd/system" \
	test -f "$U2/vdiskd@.service" -a -f "$U2/vdiskd@.socket"
check "PREFIX=/usr/local: ExecStart follows SBINDIR and SYSCONFDIR" \
	grep -qx 'ExecStart=/usr/local/sbin/vdiskd -f --config /usr/local/etc/vdiskd/%i.conf -n %i' \
	"$U2/vdiskd@.service"
check "PREFIX=/usr/local: binaries and example config moved along" \
	test -x "$D2/usr/local/sbin/vdiskd" -a -f "$D2/usr/local/etc/vdiskd/example.conf.sample"
check "PREFIX=/usr/local: no /usr/sbin left in the unit" \
	sh -c "! grep -n '/usr/sbin/' '$U2/vdiskd@.service'"

# Man pages: clean under man and groff's warnings, as installed.
for page in "$D"/usr/share/man/man8/*.8 "$D"/usr/share/man/man5/*.5; do
	name=${page##*/}
	MANWIDTH=80 man --warnings -l "$page" >"$T/$name.txt" 2>"$T/$name.err"
	check "man -l $name renders" test -s "$T/$name.txt"
	check "man --warnings -l $name: no warnings" test ! -s "$T/$name.err"
	groff -mandoc -ww -z -Tutf8 "$page" 2>"$T/$name.groff"
	check "groff -ww $name: no warnings" test ! -s "$T/$name.groff"
	[ -s "$T/$name.err" ] && cat "$T/$name.err" "$T/$name.groff"
done

# vdiskd(8) documents every option --help lists; vdiskd.conf(5) and the
# example document every key the parser knows (tests/unit/test-config.c
# holds the parser to the same list).
"$VDISKD" --help | grep -o -- '--[a-z-]*' | sort -u >"$T/options"
missing=""
while read -r opt; do
	grep -q -- "^\.It .*Fl \\\\-${opt#--}\\b" "$ROOT/man/vdiskd.8" || missing="$missing $opt"
done <"$T/options"
check "vdiskd(8) documents every option of --help${missing:+ (missing:$missing)}" \
	test -z "$missing"
check "--help lists --config" grep -qx -- --config "$T/options"
keys="image driver listen control read-only cache queue-depth max-connections log-level name"
missing=""
for k in $keys; do
	grep -q "^\.It Cm $k = " "$ROOT/man/vdiskd.conf.5" || missing="$missing man:$k"
	grep -q "^#\?$k = " "$D/etc/vdiskd/example.conf.sample" || missing="$missing example:$k"
done
check "every config key is in vdiskd.conf(5) and the example${missing:+ (missing:$missing)}" \
	test -z "$missing"

# The example as shipped parses (only its image is missing here) ...
"$VDISKD" -f -l "unix:$T/x.nbd" -c "$T/x.ctl" \
	--config "$D/etc/vdiskd/example.conf.sample" 2>"$T/example.err"
rc=$?
check "the example as shipped parses: it only fails to open its image" \
	sh -c "[ $rc = 1 ] && grep -q 'example.img' '$T/example.err' &&
	       ! grep -q 'example.conf.sample:' '$T/example.err'"
# ... and with every key uncommented it serves.
sed -E 's/^#([a-z-]+ = )/\1/' "$D/etc/vdiskd/example.conf.sample" >"$T/all.conf"
check "the uncommented example sets every key" \
	test "$(grep -c -E '^[a-z-]+ = ' "$T/all.conf")" -ge 11
if vd_start --config "$T/all.conf" -d ram 16M; then
	check "vdiskd serves with every key of the example set" true
	vd_stop
	check "and exits 0 on SIGTERM" test "$VD_RC" = 0
else
	check "vdiskd serves with every key of the example set" false
fi

finish
