#!/usr/bin/env bash
# Makes test credentials with certtool and psktool under DIR (nothing of
# it is kept in the tree):
#   DIR/server/         ca-cert.pem server-cert.pem server-key.pem (for vdiskd)
#   DIR/server-expired/ the same with an expired server certificate
#   DIR/client/         ca-cert.pem client-cert.pem client-key.pem (libnbd, qemu)
#   DIR/client-nocert/  ca-cert.pem only
#   DIR/client-expired/ an expired client certificate from the right CA
#   DIR/client-untrusted/ a client certificate from another CA
#   DIR/other-ca/       ca-cert.pem of that other CA only (does not trust the server)
#   DIR/server-other/   a server certificate from the other CA (for reloads)
#   DIR/keys.psk        alice's key;  DIR/wrong.psk  alice with another key
# Exits 77 when certtool or psktool is missing.
set -eu
dir=$1
command -v certtool >/dev/null && command -v psktool >/dev/null ||
	{ echo "SKIP: certtool/psktool not installed (gnutls-bin; scripts/deps.sh --test)"; exit 77; }
mkdir -p "$dir" && cd "$dir"
q() { "$@" >/dev/null 2>&1 || { echo "make-pki: $* failed" >&2; "$@"; exit 1; }; }

ca() {	# ca NAME CN
	printf 'cn = %s\nca\ncert_signing_key\nexpiration_days = 30\n' "$2" >"$1.info"
	q certtool --generate-privkey --outfile "$1-key.pem"
	q certtool --generate-self-signed --load-privkey "$1-key.pem" --template "$1.info" \
		--outfile "$1-cert.pem"
}
cert() {	# cert CA OUT-PREFIX TEMPLATE-LINES
	printf '%b' "$3" >"$2.info"
	q certtool --generate-privkey --outfile "$2-key.pem"
	q certtool --generate-certificate --load-ca-certificate "$1-cert.pem" \
		--load-ca-privkey "$1-key.pem" --load-privkey "$2-key.pem" \
		--template "$2.info" --outfile "$2-cert.pem"
}
expired='activation_date = "2020-01-01 00:00:00"\nexpiration_date = "2020-02-01 00:00:00"\n'
server='organization = vdiskd test\ncn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\n'
client='organization = vdiskd test\ncn = client1\ntls_www_client\nencryption_key\nsigning_key\n'

ca ca "vdiskd test CA"
ca other "untrusted CA"
cert ca srv "${server}expiration_days = 30\n"
cert ca srvold "${server}${expired}"
cert other srvother "${server}expiration_days = 30\n"
cert ca cli "${client}expiration_days = 30\n"
cert ca cliold "${client}${expired}"
cert other clibad "${client}expiration_days = 30\n"

mkdir -p server server-expired client client-nocert client-expired client-untrusted other-ca
cp ca-cert.pem server/; cp srv-cert.pem server/server-cert.pem; cp srv-key.pem server/server-key.pem
cp ca-cert.pem server-expired/; cp srvold-cert.pem server-expired/server-cert.pem
cp srvold-key.pem server-expired/server-key.pem
cp ca-cert.pem client/; cp cli-cert.pem client/client-cert.pem; cp cli-key.pem client/client-key.pem
cp ca-cert.pem client-nocert/
cp ca-cert.pem client-expired/; cp cliold-cert.pem client-expired/client-cert.pem
cp cliold-key.pem client-expired/client-key.pem
cp ca-cert.pem client-untrusted/; cp clibad-cert.pem client-untrusted/client-cert.pem
cp clibad-key.pem client-untrusted/client-key.pem
cp other-cert.pem other-ca/ca-cert.pem
mkdir -p server-other
cp other-cert.pem server-other/ca-cert.pem; cp srvother-cert.pem server-other/server-cert.pem
cp srvother-key.pem server-other/server-key.pem
q psktool -u alice -p keys.psk
q psktool -u alice -p wrong.psk
chmod 0600 keys.psk wrong.psk ./*-key.pem
