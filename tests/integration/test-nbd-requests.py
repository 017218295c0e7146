"""Transmission-phase requests on a raw socket: every command, bad
ranges, lengths, commands and flags, oversized WRITEs whose payload is
skipped, bad magic, requests cut at every offset, pipelining with replies
out of order, DISC with requests in flight, clients that vanish with
requests in flight, read-only exports."""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import *  # noqa: E402,F403

t = Checks()
SIZE = 64 * MiB
d = Daemon("-d", "ram", "64M", name="disk")


def conn(structured=True, meta=False):
    c = d.client()
    c.negotiate(b"disk", structured=structured, meta=meta)
    return c


# Every command, structured replies.
c = conn(meta=True)
tf = c.tflags
t.check("transmission flags: flush, fua, trim, zeroes, fast zero, DF, multi-conn, cache",
        tf & TF_SEND_FLUSH and tf & TF_SEND_FUA and tf & TF_SEND_TRIM and
        tf & TF_SEND_WRITE_ZEROES and tf & TF_SEND_FAST_ZERO and tf & TF_SEND_DF and
        tf & TF_CAN_MULTI_CONN and tf & TF_SEND_CACHE and not tf & TF_READ_ONLY, hex(tf))
pat = bytes(range(256)) * 16
err, _, _ = c.cmd(CMD_WRITE, 4096, 4096, payload=pat)
t.check("WRITE", err == 0)
err, data, chunks = c.cmd(CMD_READ, 4096, 4096)
t.check("READ returns what was written, in one OFFSET_DATA chunk",
        err == 0 and data == pat and len(chunks) == 1 and
        chunks[0][0] == REPLY_TYPE_OFFSET_DATA, chunks[:1])
err, data, _ = c.cmd(CMD_READ, 4096 + 100, 17, flags=CMD_FLAG_DF)
t.check("unaligned READ with DF", err == 0 and data == pat[100:117])
err, _, _ = c.cmd(CMD_WRITE, 1, 3, flags=CMD_FLAG_FUA, payload=b"xyz")
t.check("unaligned WRITE with FUA", err == 0 and c.cmd(CMD_READ, 0, 5)[1] == b"\0xyz\0")
t.check("FLUSH", c.cmd(CMD_FLUSH)[0] == 0)
t.check("TRIM", c.cmd(CMD_TRIM, 4096, 4096)[0] == 0)
err, _, _ = c.cmd(CMD_WRITE_ZEROES, 8192, 8192, flags=CMD_FLAG_NO_HOLE)
t.check("WRITE_ZEROES NO_HOLE", err == 0)
err, _, _ = c.cmd(CMD_WRITE_ZEROES, 0, 1 * MiB, flags=CMD_FLAG_FAST_ZERO)
t.check("WRITE_ZEROES FAST_ZERO: done or ENOTSUP", err in (0, ENOTSUP), err)
t.check("CACHE", c.cmd(CMD_CACHE, 0, 1 * MiB)[0] == 0)
err, _, chunks = c.cmd(CMD_BLOCK_STATUS, 0, SIZE)
ok = err == 0 and len(chunks) == 1 and chunks[0][0] == REPLY_TYPE_BLOCK_STATUS
if ok:
    p = chunks[0][1]
    ctx = struct.unpack(">I", p[:4])[0]
    ext = [struct.unpack(">II", p[i:i + 8]) for i in range(4, len(p), 8)]
    total = sum(e[0] for e in ext)
    ok = ctx == c.meta_id and ext and all(e[0] > 0 for e in ext) and \
        sum(e[0] for e in ext[:-1]) < SIZE
t.check("BLOCK_STATUS: one chunk, the negotiated id, nonzero extents", ok, chunks)
err, _, chunks = c.cmd(CMD_BLOCK_STATUS, 0, SIZE, flags=CMD_FLAG_REQ_ONE)
p = chunks[0][1] if chunks else b""
t.check("BLOCK_STATUS REQ_ONE: exactly one extent within the request",
        err == 0 and len(p) == 12 and 0 < struct.unpack(">I", p[4:8])[0] <= SIZE, p)

# Errors, structured (a READ must get an error chunk).
def e(cmd, off, ln, flags=0, payload=b""):
    return c.cmd(cmd, off, ln, flags, payload)[0]


t.check("READ past the end: EINVAL", e(CMD_READ, SIZE, 512) == EINVAL)
t.check("READ crossing the end: EINVAL", e(CMD_READ, SIZE - 512, 1024) == EINVAL)
t.check("READ wrapping 2^64: EINVAL", e(CMD_READ, 2**64 - 512, 1024) == EINVAL)
t.check("READ of length 0: EINVAL", e(CMD_READ, 0, 0) == EINVAL)
t.check("READ over 32 MiB: EINVAL", e(CMD_READ, 0, 32 * MiB + 1) == EINVAL)
t.check("WRITE past the end: ENOSPC", e(CMD_WRITE, SIZE, 512, payload=bytes(512)) == ENOSPC)
t.check("TRIM past the end: EINVAL", e(CMD_TRIM, SIZE - 1, 2) == EINVAL)
t.check("WRITE_ZEROES past the end: ENOSPC", e(CMD_WRITE_ZEROES, SIZE, 1) == ENOSPC)
t.check("BLOCK_STATUS past the end: EINVAL", e(CMD_BLOCK_STATUS, SIZE, 1) == EINVAL)
t.check("unknown command 9: EINVAL", e(9, 0, 512) == EINVAL)
t.check("unknown flag: EINVAL", e(CMD_READ, 0, 512, 1 << 9) == EINVAL)
t.check("REQ_ONE on READ: EINVAL", e(CMD_READ, 0, 512, CMD_FLAG_REQ_ONE) == EINVAL)
t.check("FLUSH with a length: EINVAL", e(CMD_FLUSH, 0, 512) == EINVAL)
err, _, chunks = c.cmd(CMD_READ, SIZE, 512)
t.check("a READ error is a structured error chunk",
        chunks and chunks[-1][0] in (REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET), chunks)

# A WRITE over 32 MiB: refused, its payload skipped, the stream in step.
big = 33 * MiB
c.request(CMD_WRITE, 0, big, handle=77)
c.send(b"\xee" * big)
h, err, _, _ = c.read_reply()
t.check("WRITE of 33 MiB: EINVAL, payload skipped", h == 77 and err == EINVAL, (h, err))
err, data, _ = c.cmd(CMD_READ, 0, 16)
t.check("... and the stream stays in step", err == 0 and data != b"\xee" * 16)
c.close()

# Simple replies.
c = conn(structured=False)
t.check("no DF without structured replies", not c.tflags & TF_SEND_DF)
c.request(CMD_READ, 0, 4096, handle=5)
h, err, data, _ = c.read_reply(4096)
t.check("simple READ", h == 5 and err == 0 and len(data) == 4096)
c.request(CMD_READ, 0, 4096, handle=6, flags=CMD_FLAG_DF)
h, err, data, _ = c.read_reply(4096)
t.check("DF without structured replies: EINVAL, no payload", err == EINVAL and data == b"")
c.request(CMD_BLOCK_STATUS, 0, 4096, handle=7)
h, err, _, _ = c.read_reply()
t.check("BLOCK_STATUS without a meta context: EINVAL", err == EINVAL)
c.request(CMD_READ, SIZE, 4096, handle=8)
h, err, data, _ = c.read_reply(4096)
t.check("simple READ error: no payload follows", err == EINVAL and data == b"")
t.check("... stream still in step", c.cmd(CMD_READ, 0, 8, handle=9)[0] == 0)

# Pipelining: many requests in one send, replies matched by handle.
reqs = b""
expect = {}
for i in range(200):
    off = (i * 7919 * 512) % (SIZE - 65536)
    ln = 512 * (1 + i % 64)
    if i % 3 == 0:
        payload = bytes([i % 256]) * ln
        reqs += Client.request_bytes(CMD_WRITE, off, ln, handle=1000 + i, payload=payload)
        expect[1000 + i] = (None, 0)
    else:
        reqs += Client.request_bytes(CMD_READ, off, ln, handle=1000 + i)
        expect[1000 + i] = (ln, 0)
c.send(reqs)
got = {}
for _ in range(200):
    magic, err, h = struct.unpack(">IIQ", c.recv_exact(16))
    ln = expect.get(h, (None, 0))[0]
    if ln and not err:
        c.recv_exact(ln)
    got[h] = err
t.check("200 pipelined requests: every handle answered once, no errors",
        sorted(got) == sorted(expect) and not any(got.values()))

# Bad magic closes.
c.send(Client.request_bytes(CMD_READ, 0, 512, magic=0x12345678))
t.check("bad request magic closes the connection", c.is_closed())
c.close()

# A request cut at every offset.
wr = Client.request_bytes(CMD_WRITE, 65536, 512, handle=3, payload=b"\x5a" * 512)
for cut in range(len(wr)):
    c = conn(structured=False)
    c.send(wr[:cut])
    c.close()
t.check("a WRITE cut at every offset (%d cuts): daemon alive" % len(wr), d.alive())
c = conn()
t.check("... none of the cut WRITEs was applied",
        c.cmd(CMD_READ, 65536, 512)[1] == bytes(512))
for i in range(len(wr)):
    c.send(wr[i:i + 1])
h, err, _, _ = c.read_reply()
t.check("the same WRITE a byte at a time", h == 3 and err == 0 and
        c.cmd(CMD_READ, 65536, 512)[1] == b"\x5a" * 512)
c.close()

# DISC with requests in flight: all answered, then closed.
c = conn()
c.send(b"".join(Client.request_bytes(CMD_READ, i * MiB, MiB, handle=i) for i in range(16)) +
       Client.request_bytes(CMD_DISC))
n = 0
try:
    for _ in range(16):
        h, err, data, _ = c.read_reply()
        n += 1 if err == 0 and len(data) == MiB else 0
except Closed:
    pass
t.check("DISC after 16 READs: all 16 answered", n == 16, n)
t.check("... then the connection is closed", c.is_closed())
c.close()

# Clients that vanish with requests in flight or replies queued.
for linger in (False, True):
    for k in range(5):
        c = conn()
        if linger:  # RST instead of FIN
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.send(b"".join(Client.request_bytes(CMD_READ, (i % 60) * MiB, MiB, handle=i)
                        for i in range(100)) +
               b"".join(Client.request_bytes(CMD_WRITE, i * 4096, 4096, handle=500 + i,
                                             payload=bytes(4096)) for i in range(20)))
        c.close()
t.check("10 clients vanished with 120 requests each in flight: daemon alive", d.alive())
time.sleep(0.5)
c = conn()
t.check("... and serves the next client", c.cmd(CMD_READ, 0, 4096)[0] == 0)
c.close()

st = d.stats()
t.check("... with nothing left in flight", st.get("inflight") == 0, st)
rc = d.stop()
t.check("SIGTERM: exit 0", rc == 0, "%s\n%s" % (rc, d.log_text()))

# Read-only export.
d = Daemon("-r", "-d", "ram", "16M", name="disk")
c = conn()
t.check("read-only: READ_ONLY set, no TRIM/WRITE_ZEROES advertised",
        c.tflags & TF_READ_ONLY and not c.tflags & (TF_SEND_TRIM | TF_SEND_WRITE_ZEROES),
        hex(c.tflags))
t.check("read-only: WRITE is EPERM", e(CMD_WRITE, 0, 512, payload=bytes(512)) == EPERM)
t.check("read-only: TRIM is EPERM", e(CMD_TRIM, 0, 512) == EPERM)
t.check("read-only: WRITE_ZEROES is EPERM", e(CMD_WRITE_ZEROES, 0, 512) == EPERM)
t.check("read-only: READ works", e(CMD_READ, 0, 512) == 0)
c.close()
t.check("read-only daemon: SIGTERM exit 0", d.stop() == 0)
t.finish()
