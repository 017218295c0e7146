"""READ and WRITE over the 32 MiB payload limit, for clients that never
asked for block sizes (NBD_OPT_EXPORT_NAME, as nbd-tester-client's
integrityhuge trace does, or GO without NBD_INFO_BLOCK_SIZE): served in
pieces inside the daemon, streamed, with memory bounded by the pieces,
never one buffer of the client's length.  40 MiB and 100 MiB, simple and
structured replies, data checked; a failing piece (past the end is
refused up front, so the error comes from faultless checks only);
a client that did negotiate keeps getting EINVAL; 2 GiB is refused."""

import hashlib
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import *  # noqa: E402,F403

t = Checks()
SIZE = 256 * MiB
# A file, not a ram disk: the ram disk's own memory would hide the
# daemon's buffers in RSS.
img = os.path.join(os.environ.get("TESTS_TMP", "/tmp"), "big.%d.img" % os.getpid())
with open(img, "wb") as f:
    f.truncate(SIZE)
# Under ASan, freed pieces sit in its quarantine (256 MiB by default) and
# count in RSS: keep it small, or the bounds below measure ASan.
if os.environ.get("ASAN_OPTIONS") is not None:
    os.environ["ASAN_OPTIONS"] += ":quarantine_size_mb=8"
d = Daemon("--cache", "none", img, name="disk")


def rss_mib():
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def export_name_client():
    c = d.client(timeout=60)
    c.start()
    c.option(OPT_EXPORT_NAME, b"disk")
    c.size, c.tflags = struct.unpack(">QH", c.recv_exact(10))
    c.structured = False
    return c


def go_client(structured):
    """GO without asking for NBD_INFO_BLOCK_SIZE."""
    c = d.client(timeout=60)
    c.start()
    if structured:
        c.option(OPT_STRUCTURED_REPLY)
        r = c.replies()
        assert r[-1][1] == REP_ACK, r
        c.structured = True
    c.option(OPT_GO, c.go_data(b"disk", []))
    r = c.replies()
    assert r[-1][1] == REP_ACK, r
    return c


def pattern(seed, n):
    block = hashlib.sha256(b"%d" % seed).digest() * (4096 // 32)
    return (block * (n // 4096 + 1))[:n]


def roundtrip(c, name, off, n, seed):
    data = pattern(seed, n)
    r0 = rss_mib()
    c.request(CMD_WRITE, off, n, handle=1, payload=b"")
    # Send the payload in pieces, watching the daemon's memory meanwhile.
    peak = r0
    for i in range(0, n, 4 * MiB):
        c.send(data[i:i + 4 * MiB])
        if i % (16 * MiB) == 0:
            peak = max(peak, rss_mib())
    h, err, _, _ = c.read_reply()
    t.check("%s: WRITE of %d MiB succeeds" % (name, n // MiB), h == 1 and err == 0, (h, err))
    c.request(CMD_READ, off, n, handle=2)
    h, err, got, chunks = c.read_reply(read_len=n)
    peak = max(peak, rss_mib())
    t.check("%s: READ of %d MiB returns it (%d chunks)" % (name, n // MiB, len(chunks)),
            h == 2 and err == 0 and got == data, (h, err, len(got)))
    if c.structured:
        t.check("%s: ... as OFFSET_DATA chunks ended by NONE" % name,
                chunks[-1][0] == REPLY_TYPE_NONE and
                all(ch[0] == REPLY_TYPE_OFFSET_DATA for ch in chunks[:-1]), len(chunks))
    t.check("%s: memory stays bounded (RSS %d -> %d MiB)" % (name, r0, peak),
            peak - r0 < 40, str((r0, peak)))
    return data


c = export_name_client()
roundtrip(c, "EXPORT_NAME, simple", 0, 40 * MiB, 1)
roundtrip(c, "EXPORT_NAME, simple", 100 * MiB, 100 * MiB, 2)
# Requests behind a big one are answered after it, in step.
c.request(CMD_READ, 0, 48 * MiB, handle=5)
c.request(CMD_READ, 0, 4096, handle=6)
h1, e1, d1, _ = c.read_reply(read_len=48 * MiB)
h2, e2, d2, _ = c.read_reply(read_len=4096)
t.check("a request pipelined behind a big READ is answered after it",
        (h1, e1, h2, e2) == (5, 0, 6, 0) and d2 == d1[:4096], (h1, e1, h2, e2))
t.check("a big READ past the end: EINVAL up front", c.cmd(CMD_READ, SIZE - MiB, 40 * MiB)[0]
        == EINVAL)
c.request(CMD_WRITE, SIZE - MiB, 40 * MiB, handle=7)
c.send(b"\xaa" * (40 * MiB))
h, err, _, _ = c.read_reply()
t.check("a big WRITE past the end: ENOSPC, its payload skipped", (h, err) == (7, ENOSPC),
        (h, err))
t.check("... and the stream stays in step", c.cmd(CMD_READ, 0, 4096)[0] == 0)
c.close()

c = go_client(structured=True)
roundtrip(c, "GO without block sizes, structured", 50 * MiB, 40 * MiB, 3)
c.close()

# A client that asked for block sizes keeps the advertised maximum.
c = d.client(timeout=30)
c.negotiate(b"disk")
t.check("a client that negotiated block sizes: READ of 40 MiB is EINVAL",
        c.cmd(CMD_READ, 0, 40 * MiB)[0] == EINVAL)
c.close()

# Over the 1 GiB cap (and past this disk): refused.
c = export_name_client()
c.request(CMD_READ, 0, 0xffffffff, handle=9)
h, err, _, _ = c.read_reply()
t.check("a READ of 4 GiB: EINVAL", (h, err) == (9, EINVAL), (h, err))
c.close()

# A client that vanishes in the middle of a big WRITE: no leak, no crash.
c = export_name_client()
c.request(CMD_WRITE, 0, 64 * MiB, handle=10)
c.send(b"\x01" * (20 * MiB))
c.close()
time.sleep(0.5)
c = export_name_client()
t.check("the daemon serves on after a client left mid-WRITE",
        c.cmd(CMD_READ, 0, 4096)[0] == 0 and d.alive())
c.close()
t.check("SIGTERM: exit 0", d.stop() == 0, d.log_text()[-2000:])
os.unlink(img)
t.finish()
