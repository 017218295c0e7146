#!/usr/bin/env bash
# NBD over TLS with real clients: nbdinfo, nbdcopy, qemu-img, qemu-io and
# fio with X.509 and PSK, over unix and TCP; require against clear text;
# on with both; handshakes that must fail (untrusted, expired, wrong key,
# no client certificate under --tls-verify-peer) while the server goes on
# serving; start-up errors for bad credentials.
#
# libnbd (1.14) checks the server's certificate only when it has a host
# name, so the untrusted and expired server certificates are tried over
# TCP.  fio's nbd engine cannot pass tls-certificates= (libnbd refuses
# local files in URIs unless the program allows them, and fio does not):
# tests/lib/nbd-uri-shim.c allows them for the fio check.
. "$(dirname "$0")/../lib/daemon.sh"
need nbdinfo
need nbdcopy
need qemu-img
need qemu-io
bash "$(dirname "$0")/../lib/make-pki.sh" "$T/pki" >"$T/pki.log" 2>&1
rc=$?
[ $rc = 77 ] && skip "$(cat "$T/pki.log")"
[ $rc = 0 ] || { cat "$T/pki.log"; exit 1; }
P=$T/pki

fails() { ! "$@" >/dev/null 2>&1; }
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

SRC=$T/src.img
head -c 8M /dev/urandom >"$SRC"

# ---- X.509, require ----
vd_start -n disk -d ram 64M -l "tcp:127.0.0.1:$port" --tls require \
	--tls-certificates "$P/server" || exit 1
X="nbds+unix:///disk?socket=$VD_SOCK&tls-certificates=$P/client"
XT="nbds://localhost:$port/disk?tls-certificates=$P/client"
check "nbdinfo over nbds+unix (X.509)" bash -c "nbdinfo '$X' | grep -q 'with TLS'"
check "nbdinfo --size over nbds:// TCP (X.509, hostname checked)" \
	bash -c "[ \"\$(nbdinfo --size '$XT')\" = 67108864 ]"
check "nbdcopy to the disk (nbds+unix, multi-conn)" nbdcopy "$SRC" "$X"
check "nbdcopy back over TCP" nbdcopy "$XT" "$T/back.img"
check "round trip equal" cmp -n 8388608 "$SRC" "$T/back.img"
check "clear-text nbdinfo refused under require" fails nbdinfo "$VD_URI"
check "the refusal was ERR_TLS_REQD" grep -q "TLS is required" "$T/vdiskd.log"
check "a client that does not trust the server's CA fails (TCP)" \
	fails nbdinfo "nbds://localhost:$port/disk?tls-certificates=$P/other-ca"
QX="--object tls-creds-x509,id=tls0,dir=$P/client,endpoint=client"
QO="driver=nbd,path=$VD_SOCK,export=disk,tls-creds=tls0,tls-hostname=localhost"
check "qemu-img convert with tls-creds-x509" \
	qemu-img convert -n $QX -f raw "$SRC" --target-image-opts "$QO"
check "qemu-img compare with tls-creds-x509" \
	qemu-img compare $QX --image-opts "driver=raw,file.filename=$SRC" "$QO"
qio() {
	local out
	out=$(qemu-io "$@" 2>&1)
	echo "$out"
	! grep -qiE 'fail|error|mismatch|can.t' <<<"$out"
}
check "qemu-io write/read pattern over X.509" qio $QX --image-opts "$QO" \
	-c 'write -P 0x5a 1M 1M' -c 'read -P 0x5a 1M 1M' -c 'flush'
SHIM=$TESTS_BUILD/nbd-uri-shim.so
if command -v fio >/dev/null && [ -f "$SHIM" ]; then
	check "fio --verify, nbd engine, nbds+unix URI, 4 jobs (multi-conn)" \
		env LD_PRELOAD="$SHIM" fio --name=tlsverify --ioengine=nbd --uri="$X" \
		--rw=randwrite --bs=4k --size=8M --iodepth=16 --numjobs=4 \
		--offset_increment=8M --verify=crc32c --do_verify=1 --verify_state_save=0 --output="$T/fio.out"
	grep -q "err= 0" "$T/fio.out" || cat "$T/fio.out"
else
	echo "fio or $SHIM missing: fio check skipped"
fi
check "server still serves after the failures" bash -c "nbdinfo --size '$X' >/dev/null"
vd_stop
check "exit 0 after SIGTERM" [ "$VD_RC" = 0 ]

# ---- PSK, require ----
vd_start -n disk -d ram 64M --tls require --tls-psk "$P/keys.psk" || exit 1
K="nbds+unix://alice@/disk?socket=$VD_SOCK&tls-psk-file=$P/keys.psk"
check "nbdinfo with PSK" bash -c "[ \"\$(nbdinfo --size '$K')\" = 67108864 ]"
check "nbdcopy with PSK" nbdcopy "$SRC" "$K"
check "wrong PSK fails" fails nbdinfo "nbds+unix://alice@/disk?socket=$VD_SOCK&tls-psk-file=$P/wrong.psk"
check "unknown PSK user fails" fails nbdinfo "nbds+unix://bob@/disk?socket=$VD_SOCK&tls-psk-file=$P/keys.psk"
QP="--object tls-creds-psk,id=tls0,dir=$P,username=alice,endpoint=client"
QPO="driver=nbd,path=$VD_SOCK,export=disk,tls-creds=tls0"
check "qemu-img compare with tls-creds-psk" \
	qemu-img compare $QP --image-opts "driver=raw,file.filename=$SRC" "$QPO"
check "qemu-io with tls-creds-psk" qio $QP --image-opts "$QPO" \
	-c 'write -P 0x77 0 64k' -c 'read -P 0x77 0 64k'
check "server still serves after the wrong keys" bash -c "nbdinfo --size '$K' >/dev/null"
vd_stop

# ---- on: clear text and TLS both ----
vd_start -n disk -d ram 64M --tls on --tls-certificates "$P/server" || exit 1
X="nbds+unix:///disk?socket=$VD_SOCK&tls-certificates=$P/client"
check "--tls on: clear text works" bash -c "nbdinfo '$VD_URI' | grep -q 'without TLS'"
check "--tls on: TLS works" bash -c "nbdinfo '$X' | grep -q 'with TLS'"
check "vdiskctl info shows tls on" bash -c "'$VDISKCTL' -s '$VD_CTL' info | grep -q '^tls *on'"
vd_stop

# ---- --tls-verify-peer ----
vd_start -n disk -d ram 64M --tls require --tls-certificates "$P/server" --tls-verify-peer || exit 1
U() { echo "nbds+unix:///disk?socket=$VD_SOCK&tls-certificates=$P/$1"; }
check "verify-peer: a client certificate from the CA works" nbdinfo --size "$(U client)"
check "verify-peer: no client certificate fails" fails nbdinfo "$(U client-nocert)"
check "verify-peer: an expired client certificate fails" fails nbdinfo "$(U client-expired)"
check "verify-peer: a certificate from another CA fails" fails nbdinfo "$(U client-untrusted)"
check "verify-peer: the good client still works" nbdinfo --size "$(U client)"
check "the failures were logged as TLS handshake failures" \
	bash -c "[ \$(grep -c 'TLS handshake failed' '$T/vdiskd.log') -ge 3 ]"
vd_stop

# ---- an expired server certificate ----
vd_start -n disk -d ram 64M -l "tcp:127.0.0.1:$port" --tls require \
	--tls-certificates "$P/server-expired" || exit 1
check "a client refuses an expired server certificate (TCP)" \
	fails nbdinfo "nbds://localhost:$port/disk?tls-certificates=$P/client"
vd_stop

# ---- start-up errors: exit 1 with a message ----
bad() {	# bad DESC PATTERN ARGS...
	local desc=$1 pat=$2 rc; shift 2
	timeout 10 "$VDISKD" -f -d ram 16M -n bad -l "unix:$T/bad.nbd" -c "$T/bad.ctl" "$@" \
		>/dev/null 2>"$T/bad.err"
	rc=$?
	check "$desc: exit 1" [ $rc = 1 ]
	check "$desc: says '$pat'" grep -q -e "$pat" "$T/bad.err" || cat "$T/bad.err"
}
mkdir -p "$T/mismatch" "$T/nokey" "$T/noca"
cp "$P/server/server-cert.pem" "$P/server/server-key.pem" "$T/noca/"
cp "$P/server/ca-cert.pem" "$P/server/server-cert.pem" "$T/mismatch/"
cp "$P/cli-key.pem" "$T/mismatch/server-key.pem"
cp "$P/server/ca-cert.pem" "$P/server/server-cert.pem" "$T/nokey/"
printf 'alice:nothex\n' >"$T/bad.psk"
: >"$T/empty.psk"
bad "missing directory" "No such file" --tls on --tls-certificates "$T/nope"
bad "missing key file" "server-key.pem: no such file" --tls on --tls-certificates "$T/nokey"
bad "key does not match the certificate" "server-key.pem" --tls on --tls-certificates "$T/mismatch"
bad "malformed PSK file" "bad.psk:1: key is not hexadecimal" --tls on --tls-psk "$T/bad.psk"
bad "empty PSK file" "no username:hexkey line" --tls on --tls-psk "$T/empty.psk"
bad "missing PSK file" "cannot open" --tls on --tls-psk "$T/none.psk"
bad "--tls on without credentials" "needs --tls-certificates" --tls on
bad "credentials with --tls off" "--tls is off" --tls-psk "$P/keys.psk"
bad "--tls-verify-peer without a CA" "ca-cert.pem: no such file" --tls on \
	--tls-certificates "$T/noca" --tls-verify-peer
bad "bad --tls value" "not off, on or require" --tls maybe
finish
