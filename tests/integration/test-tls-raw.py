"""NBD STARTTLS on a raw socket, with Python's ssl as the TLS client:
options before STARTTLS under require (ERR_TLS_REQD, nothing opened),
STARTTLS with clear-text options behind it in the same packet (never
acted upon), STARTTLS twice, truncated and garbage TLS records, a TLS
alert, a handshake left half done (dropped at the handshake timeout),
many requests and replies per record; libnbd's set_tls* calls; the
connections command; certificate reload by reload-tls and SIGHUP."""

import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import *  # noqa: E402,F403

REP_ERR_TLS_REQD = 2**31 + 5

tmp = tempfile.mkdtemp(prefix="tls.", dir=os.environ.get("TESTS_TMP"))
pki = os.path.join(tmp, "pki")
r = subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "..", "lib", "make-pki.sh"),
                    pki], capture_output=True, text=True)
if r.returncode == 77:
    skip(r.stdout.strip())
if r.returncode:
    print(r.stdout, r.stderr)
    sys.exit(1)
P = lambda *a: os.path.join(pki, *a)  # noqa: E731

t = Checks()
HS_TIMEOUT = 2
port = free_port()
d = Daemon("-d", "ram", "64M", "--tls", "require", "--tls-certificates", P("server"),
           "--tls-verify-peer", "--handshake-timeout", str(HS_TIMEOUT), name="disk",
           listen=["unix:{sock}", "tcp:127.0.0.1:%d" % port])


def ctl(daemon, cmd):
    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon.ctl)
    f = s.makefile("rw")
    f.readline()
    f.write(json.dumps({"cmd": cmd}) + "\n")
    f.flush()
    r = json.loads(f.readline())
    s.close()
    return r


def client_ctx(certdir=P("client"), ca=None, cert=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(ca or os.path.join(certdir, "ca-cert.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(certdir, "client-cert.pem"),
                            os.path.join(certdir, "client-key.pem"))
    return ctx


def starttls(c, extra=b""):
    """Sends STARTTLS (and extra bytes in the same packet); returns the
    first reply."""
    c.send(Client.opt_bytes(OPT_STARTTLS) + extra)
    return c.reply()


def wrap(c, ctx=None):
    c.sock = (ctx or client_ctx()).wrap_socket(c.sock, server_hostname="localhost")
    # The greeting was in clear text: negotiate() goes on from the options.
    c.start = lambda *a, **k: None
    return c


def tls_client():
    c = d.client()
    c.start()
    r = starttls(c)
    assert r[1] == REP_ACK, r
    return wrap(c)


def still_serves():
    c = tls_client()
    c.negotiate(b"disk")
    err, data, _ = c.cmd(CMD_READ, 0, 4096)
    c.close()
    return err == 0 and data == bytes(4096)


def client_hello():
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


# ---- require: nothing before STARTTLS ----
for name, opt, data in [("LIST", OPT_LIST, b""), ("INFO", OPT_INFO, Client.go_data(b"disk")),
                        ("GO", OPT_GO, Client.go_data(b"disk")),
                        ("STRUCTURED_REPLY", OPT_STRUCTURED_REPLY, b""),
                        ("SET_META_CONTEXT", OPT_SET_META_CONTEXT,
                         Client.meta_data(b"disk", [b"base:allocation"]))]:
    c = d.client()
    c.start()
    c.option(opt, data)
    r = c.replies() if opt in (OPT_LIST, OPT_INFO, OPT_GO) else [c.reply()]
    t.check("require: %s before STARTTLS gets ERR_TLS_REQD and nothing else" % name,
            len(r) == 1 and r[0][1] == REP_ERR_TLS_REQD and r[0][0] == opt, r)
    c.close()
c = d.client()
c.start()
c.option(OPT_GO, Client.go_data(b"disk"))
c.reply()
st = d.stats()
t.check("require: no connection reached transmission, no disk work",
        st["connections"] == 0 and st["reads"] == 0, st)
c.close()
c = d.client()
c.start()
c.option(OPT_EXPORT_NAME, b"disk")
t.check("require: EXPORT_NAME before TLS closes the connection", c.is_closed())
c = d.client()
c.start()
c.option(OPT_ABORT)
r = c.reply()
t.check("require: ABORT is still answered", r[1] == REP_ACK, r)
c.close()
c = d.client()
c.start()
c.option(OPT_STARTTLS, b"xx")
r = c.reply()
t.check("STARTTLS with data: ERR_INVALID", r[1] == REP_ERR_INVALID, r)
c.close()

# ---- a whole session over TLS on the raw client ----
def full_session():
    c = tls_client()
    c.negotiate(b"disk")
    pat = bytes(range(256)) * 16
    err, _, _ = c.cmd(CMD_WRITE, 8192, 4096, payload=pat)
    err2, data, _ = c.cmd(CMD_READ, 8192, 4096)
    c.close()
    return err == 0 and err2 == 0 and data == pat
t.run("TLS session: GO, WRITE, READ back", full_session)

# ---- many requests per record, many replies per record ----
def pipelined():
    c = tls_client()
    c.negotiate(b"disk")
    n = 64
    buf = b"".join(Client.request_bytes(CMD_WRITE, i * 4096, 4096, handle=i + 1,
                                        payload=bytes([i]) * 4096) for i in range(n))
    c.send(buf)
    ok = all(c.read_reply()[1] == 0 for _ in range(n))
    c.send(b"".join(Client.request_bytes(CMD_READ, i * 4096, 4096, handle=1000 + i)
                    for i in range(n)))
    got = {}
    for _ in range(n):
        h, err, data, _ = c.read_reply(4096)
        got[h] = (err, data)
    c.close()
    return ok and all(got[1000 + i] == (0, bytes([i]) * 4096) for i in range(n))
t.run("64 WRITEs in one write, then 64 READs: every reply right", pipelined)

# The server's cipher order: AES-128-GCM first; a client without it still
# gets what it offers.
def ciphers():
    c = tls_client()
    default = c.sock.cipher()
    c.negotiate(b"disk")
    ok = c.cmd(CMD_READ, 0, 4096)[0] == 0
    c.close()
    ctx = client_ctx()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE+CHACHA20")
    c = d.client()
    c.start()
    starttls(c)
    wrap(c, ctx)
    chacha = c.sock.cipher()
    c.negotiate(b"disk")
    ok = ok and c.cmd(CMD_READ, 0, 4096)[0] == 0
    c.close()
    return t.check("AES-128-GCM preferred; a TLS 1.2 ChaCha20-only client gets ChaCha20",
                   ok and default[0] == "TLS_AES_128_GCM_SHA256" and "CHACHA20" in chacha[0],
                   repr((default, chacha)))
ciphers()


# Each request in a record of its own (as libnbd sends them): the server
# reads many records per system call and answers them together.
def one_record_each():
    c = tls_client()
    c.negotiate(b"disk")
    n = 100
    for i in range(n):
        c.send(Client.request_bytes(CMD_WRITE, i * 512, 512, handle=i + 1,
                                    payload=bytes([i % 251]) * 512))
    ok = sorted(c.read_reply()[0] for _ in range(n)) == list(range(1, n + 1))
    for i in range(n):
        c.send(Client.request_bytes(CMD_READ, i * 512, 512, handle=5000 + i))
    got = {}
    for _ in range(n):
        h, err, data, _ = c.read_reply(512)
        got[h] = (err, data)
    c.close()
    return ok and all(got[5000 + i] == (0, bytes([i % 251]) * 512) for i in range(n))
t.run("100 requests, one TLS record each: every reply right", one_record_each)


# A client that reads slowly: 4k and 1 MiB READs mixed (16 MiB), all sent at
# once, the replies left unread until the socket and the server's record
# buffer are full (records it keeps while the socket says EAGAIN), then
# read a little at a time.  Every byte must come in
# order (records kept back by a full socket are sent later, never lost or
# reordered) and the connection must go on.
def slow_reader():
    # Over TCP with a small receive window: a unix socket here takes
    # megabytes before it says EAGAIN.
    c = d.client()
    c.sock.close()
    c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    c.sock.settimeout(20)
    c.sock.connect(("127.0.0.1", port))
    c.start()
    if starttls(c)[1] != REP_ACK:
        return t.check("slow reader: STARTTLS", False)
    wrap(c)
    c.negotiate(b"disk")
    blocks = 1536   # 6 MiB of 4k blocks, each its index repeated
    img = b"".join(struct.pack(">I", i) * 1024 for i in range(blocks))
    for off in range(0, len(img), 1 << 20):
        err, _, _ = c.cmd(CMD_WRITE, off, 1 << 20, payload=img[off:off + (1 << 20)])
        if err:
            return False
    reqs = {}
    buf = b""
    for i in range(400):
        if i % 25 == 12:
            off, ln = ((i // 25) % 5) << 20, 1 << 20
        else:
            off, ln = ((i * 37) % blocks) * 4096, 4096
        reqs[100 + i] = (off, ln)
        buf += Client.request_bytes(CMD_READ, off, ln, handle=100 + i)
    c.send(buf)
    time.sleep(1.0)
    raw = c.sock
    slow = {"left": 256 * 1024}

    class Slow:
        def recv(self, n):
            if slow["left"] > 0:
                time.sleep(0.002)
                n = min(n, 3000)
            b = raw.recv(n)
            slow["left"] -= len(b)
            return b
    c.sock = Slow()
    bad = []
    for _ in range(len(reqs)):
        h, err, data, _ = c.read_reply(4096)
        off, ln = reqs.pop(h, (None, None))
        if err or off is None or data != img[off:off + ln]:
            bad.append(h)
    c.sock = raw
    err, data, _ = c.cmd(CMD_READ, 4096, 4096)
    c.close()
    return t.check("a slow reader gets all 400 replies right, then more",
                   not bad and not reqs and err == 0 and data == img[4096:8192],
                   "bad %s, missing %s" % (bad[:5], list(reqs)[:5]))
slow_reader()

# ---- STARTTLS injection ----
def injection(extra, desc):
    c = d.client()
    c.start()
    r = starttls(c, extra)
    if r[1] != REP_ACK or r[0] != OPT_STARTTLS:
        return t.check(desc + ": STARTTLS acknowledged first", False, r)
    try:
        wrap(c)     # a clear-text reply here would break the handshake
    except (ssl.SSLError, OSError) as e:
        return t.check(desc + ": TLS handshake after STARTTLS", False, repr(e))
    # If the server had kept the injected option, its reply would come now.
    c.option(OPT_LIST)
    r = c.replies()
    ok = r[0][0] == OPT_LIST and r[-1][1] == REP_ACK
    c.negotiate(b"disk")     # still in the option phase: the GO was not run
    err, _, _ = c.cmd(CMD_READ, 0, 512)
    c.close()
    return t.check(desc + ": injected bytes never acted upon", ok and err == 0, r)


injection(Client.opt_bytes(OPT_GO, Client.go_data(b"disk")), "STARTTLS+GO in one packet")
injection(Client.opt_bytes(OPT_EXPORT_NAME, b"disk"), "STARTTLS+EXPORT_NAME in one packet")
injection(Client.opt_bytes(OPT_STRUCTURED_REPLY) + Client.opt_bytes(OPT_INFO, Client.go_data(b"disk")),
          "STARTTLS+STRUCTURED_REPLY+INFO in one packet")

# ---- STARTTLS twice ----
def twice():
    c = tls_client()
    c.option(OPT_STARTTLS)
    r = c.reply()
    c.negotiate(b"disk")
    c.close()
    return r[1] == REP_ERR_INVALID
t.run("STARTTLS after TLS: ERR_INVALID, session goes on", twice)

# ---- bad TLS input: this connection closes, the server goes on ----
def bad_after_ack(data, desc, close_after=False):
    c = d.client()
    c.start()
    r = starttls(c)
    c.send(data)
    if close_after:
        c.sock.shutdown(socket.SHUT_WR)
    closed = c.is_closed(wait=HS_TIMEOUT + 3)
    c.close()
    t.check(desc + ": connection closed", closed and r[1] == REP_ACK, r)
    t.check(desc + ": server still serves", d.alive() and still_serves())


hello = client_hello()
bad_after_ack(b"\x17\x03\x03\x00\x20" + os.urandom(32), "application data instead of a ClientHello")
bad_after_ack(os.urandom(300), "random bytes as the handshake")
bad_after_ack(b"\x15\x03\x01\x00\x02\x02\x28", "a fatal TLS alert")
bad_after_ack(hello[: len(hello) // 2], "a truncated ClientHello, then EOF", close_after=True)
bad_after_ack(b"\x16\x03\x01\xff\xff" + b"\x01" * 64, "a record longer than TLS allows")

# Half a handshake and then silence: dropped at the handshake timeout.
c = d.client()
c.start()
starttls(c)
t0 = time.monotonic()
c.send(hello[: len(hello) // 2])
closed = c.is_closed(wait=HS_TIMEOUT + 5)
el = time.monotonic() - t0
t.check("a half-done TLS handshake is dropped at the handshake timeout",
        closed and HS_TIMEOUT - 1 <= el <= HS_TIMEOUT + 4, "closed=%s after %.1fs" % (closed, el))

# Garbage in the middle of an established session.
def garbage_mid_session():
    c = tls_client()
    c.negotiate(b"disk")
    os.write(c.sock.fileno(), b"\x17\x03\x03\x00\x40" + os.urandom(64))
    try:
        c.sock.settimeout(5)
        d_ = c.sock.recv(100)
        closed = d_ == b""
    except (ssl.SSLError, OSError):
        closed = True
    c.close()
    return closed and still_serves()
t.run("a forged record mid-session closes that connection only", garbage_mid_session)

# verify-peer with Python: no certificate fails.
def no_client_cert():
    c = d.client()
    c.start()
    starttls(c)
    try:
        wrap(c, client_ctx(cert=False))
        c.option(OPT_LIST)       # TLS 1.3: the refusal comes after the client's Finished
        c.replies()
    except (ssl.SSLError, OSError, Closed):
        return still_serves()
    return False
t.run("verify-peer: a client without a certificate is refused", no_client_cert)

# ---- connections: encrypted, with the peer's DN ----
def connections_show_peer():
    c = tls_client()
    c.negotiate(b"disk")
    r = ctl(d, "connections")
    c.close()
    conns = [x for x in r["connections"] if x["state"] == "transmission"]
    return (r["ok"] and r["tls"] == "require" and len(conns) == 1 and conns[0]["tls"]
            and "CN=client1" in conns[0]["tls_peer"] and conns[0]["tls_cipher"].startswith("TLS")
            and conns[0]["ktls"] is False) or r
t.run("connections: tls true, peer DN CN=client1, cipher, ktls", connections_show_peer)
info = ctl(d, "info")
t.check("info: tls require", info.get("tls") == "require", info)
t.check("the daemon is alive after everything", d.alive())
t.check("SIGTERM exits 0", d.stop() == 0)

# ---- libnbd from Python: set_tls, set_tls_certificates, set_tls_psk_file ----
try:
    import nbd
except ImportError:
    nbd = None
    print("python3-libnbd missing: libnbd checks skipped")

# A private copy of the credentials, so the reload test can change them.
live = os.path.join(tmp, "live")
shutil.copytree(P("server"), live)
d2 = Daemon("-d", "ram", "64M", "--tls", "require", "--tls-certificates", live,
            "--tls-psk", P("keys.psk"), name="disk")
if nbd:
    def libnbd_x509():
        h = nbd.NBD()
        h.set_tls(nbd.TLS_REQUIRE)
        h.set_tls_certificates(P("client"))
        h.connect_unix(d2.sock)
        h.pwrite(b"\xaa" * 65536, 0)
        ok = h.pread(65536, 0) == b"\xaa" * 65536 and h.get_tls_negotiated()
        h.shutdown()
        return ok
    t.run("libnbd set_tls + set_tls_certificates: write, read back", libnbd_x509)

    def libnbd_psk():
        h = nbd.NBD()
        h.set_tls(nbd.TLS_REQUIRE)
        h.set_tls_psk_file(P("keys.psk"))
        h.set_tls_username("alice")
        h.connect_unix(d2.sock)
        ok = h.pread(65536, 0) == b"\xaa" * 65536
        r = ctl(d2, "connections")
        peers = [x.get("tls_peer") for x in r["connections"] if x["state"] == "transmission"]
        h.shutdown()
        return ok and peers == ["psk:alice"] or peers
    t.run("libnbd set_tls_psk_file: read; connections shows psk:alice", libnbd_psk)

    def libnbd_wrong_psk():
        h = nbd.NBD()
        h.set_tls(nbd.TLS_REQUIRE)
        h.set_tls_psk_file(P("wrong.psk"))
        h.set_tls_username("alice")
        try:
            h.connect_unix(d2.sock)
        except nbd.Error:
            return True
        return False
    t.run("libnbd with the wrong PSK fails", libnbd_wrong_psk)

    def libnbd_allow_clear():
        h = nbd.NBD()
        h.set_tls(nbd.TLS_ALLOW)
        h.set_tls_certificates(P("client"))
        h.connect_unix(d2.sock)
        ok = h.get_tls_negotiated()
        h.shutdown()
        return ok
    t.run("libnbd TLS_ALLOW against require negotiates TLS", libnbd_allow_clear)


# ---- reload: new clients see the new certificate, old ones go on ----
def server_issuer(cafile):
    """Handshakes with cafile as the only trust; True when it verifies."""
    c = Client(d2.sock)
    c.start()
    starttls(c)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile)
    try:
        wrap(c, ctx)
        c.option(OPT_LIST)
        c.replies()
        return True
    except (ssl.SSLError, OSError, Closed):
        return False
    finally:
        c.close()


t.check("before reload: the server's certificate is from the test CA",
        server_issuer(P("ca-cert.pem")) and not server_issuer(P("other-cert.pem")))
old = None
if nbd:
    old = nbd.NBD()
    old.set_tls(nbd.TLS_REQUIRE)
    old.set_tls_certificates(P("client"))
    old.connect_unix(d2.sock)
for f in ("server-cert.pem", "server-key.pem"):
    shutil.copy(P("server-other", f), os.path.join(live, f))
vc = subprocess.run([os.environ.get("VDISKCTL", "build/vdiskctl"), "-s", d2.ctl, "reload-tls"],
                    capture_output=True, text=True)
t.check("vdiskctl reload-tls: exit 0", vc.returncode == 0, vc.stderr)
t.check("after reload: new clients get the new certificate",
        server_issuer(P("other-cert.pem")) and not server_issuer(P("ca-cert.pem")))
if old:
    t.check("after reload: the connection made before it still works",
            old.pread(4096, 0) == b"\xaa" * 4096)
with open(os.path.join(live, "server-key.pem"), "w") as f:
    f.write("not a key\n")
vc = subprocess.run([os.environ.get("VDISKCTL", "build/vdiskctl"), "-s", d2.ctl, "reload-tls"],
                    capture_output=True, text=True)
t.check("reload with a broken key: exit 1 and says why",
        vc.returncode == 1 and "server-key.pem" in vc.stderr, vc.stderr)
t.check("after a failed reload the last good certificate stays",
        server_issuer(P("other-cert.pem")))
for f in ("server-cert.pem", "server-key.pem"):
    shutil.copy(P("server", f), os.path.join(live, f))
d2.proc.send_signal(signal.SIGHUP)
ok = False
for _ in range(50):
    if server_issuer(P("ca-cert.pem")):
        ok = True
        break
    time.sleep(0.1)
t.check("SIGHUP reloads: the test CA's certificate again", ok)
if old:
    t.check("the old connection still works after SIGHUP", old.pread(4096, 0) == b"\xaa" * 4096)
    old.shutdown()
t.check("SIGTERM exits 0", d2.stop() == 0)
t.finish()
