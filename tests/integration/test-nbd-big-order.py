"""A READ over 32 MiB with simple replies, pipelined behind other
requests: no other reply may land inside its data.

nbd-tester-client's integrityhuge trace (NBD_OPT_EXPORT_NAME, so simple
replies) pipelines 40-48 MiB READs behind WRITEs.  The big READ's header
went out as soon as its first piece was read, and the WRITEs' replies,
completing later, were queued between its pieces: the client found a
reply header (0x67446698) 8 or 16 MiB into the data ("Bad reply data").
Now the header waits until the requests parsed before it are answered.

Also: a big READ behind as many small READs as the connection has slots
is served (it waits for slots, it does not fail), and the same pipelines
with structured replies (where chunks may interleave) read back right."""

import os
import struct
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import *  # noqa: E402,F403

t = Checks()
SIZE = 256 * MiB
BIG = 40 * MiB
img = os.path.join(os.environ.get("TESTS_TMP", "/tmp"), "big-order.%d.img" % os.getpid())
with open(img, "wb") as f:
    f.truncate(SIZE)
d = Daemon("--cache", "none", img, name="disk")


def pattern(seed, n):
    block = bytes((seed * 7 + i) & 0xFF for i in range(4096))
    return block * (n // 4096)


def client(structured):
    c = d.client(timeout=60)
    c.start()
    if structured:
        c.option(OPT_STRUCTURED_REPLY)
        assert c.replies()[-1][1] == REP_ACK
        c.structured = True
        c.option(OPT_GO, c.go_data(b"disk", []))
        assert c.replies()[-1][1] == REP_ACK
    else:
        c.option(OPT_EXPORT_NAME, b"disk")
        c.size, c.tflags = struct.unpack(">QH", c.recv_exact(10))
    return c


# The big READ's range holds known data.
c = client(False)
for off in range(0, BIG, 8 * MiB):
    err, _, _ = c.cmd(CMD_WRITE, off, 8 * MiB, payload=pattern(off >> 23, 8 * MiB))
    assert err == 0
c.close()
want_big = b"".join(pattern(off >> 23, 8 * MiB) for off in range(0, BIG, 8 * MiB))


def pipeline(structured, before, desc):
    """Sends the requests in before (cmd, offset, length, payload) and then
    the big READ in one go; checks every reply and the data."""
    c = client(structured)
    data = b""
    for i, (cmd, off, n, payload) in enumerate(before):
        data += c.request_bytes(cmd, off, n, handle=1000 + i, payload=payload)
    data += c.request_bytes(CMD_READ, 0, BIG, handle=7)
    sender = threading.Thread(target=c.send, args=(data,))
    sender.start()
    lengths = {1000 + i: (n if cmd == CMD_READ else None) for i, (cmd, _, n, _) in enumerate(before)}
    lengths[7] = BIG
    got = {}
    partial = {}
    ok = True
    detail = ""
    try:
        while len(got) < len(lengths):
            if structured:
                # Chunks of different replies may interleave: one
                # message at a time, gathered per handle.
                magic = struct.unpack(">I", c.recv_exact(4))[0]
                if magic == SIMPLE_REPLY_MAGIC:
                    err, h = struct.unpack(">IQ", c.recv_exact(12))
                    if lengths.get(h):
                        raise AssertionError("simple reply to READ %#x" % h)
                    got[h] = (err, b"")
                    continue
                if magic != STRUCTURED_REPLY_MAGIC:
                    raise AssertionError("bad reply magic %#x after %d replies" % (magic, len(got)))
                flags, rtype, h, n = struct.unpack(">HHQI", c.recv_exact(16))
                chunk = c.recv_exact(n)
                e0, parts = partial.setdefault(h, [0, {}])
                if rtype == REPLY_TYPE_OFFSET_DATA:
                    parts[struct.unpack(">Q", chunk[:8])[0]] = chunk[8:]
                elif rtype in (REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET):
                    partial[h][0] = struct.unpack(">I", chunk[:4])[0]
                if flags & REPLY_FLAG_DONE:
                    e0, parts = partial.pop(h)
                    base = min(parts) if parts else 0
                    data = b"".join(parts[k] for k in sorted(parts))
                    if parts and sorted(parts)[0] != base:
                        raise AssertionError("chunks out of range")
                    got[h] = (e0, data)
                continue
            else:
                magic, err, h = struct.unpack(">IIQ", c.recv_exact(16))
                if magic != SIMPLE_REPLY_MAGIC:
                    raise AssertionError("bad reply magic %#x after %d replies" % (magic, len(got)))
                if h not in lengths:
                    raise AssertionError("unknown handle %#x" % h)
                payload = c.recv_exact(lengths[h]) if lengths[h] and not err else b""
            got[h] = (err, payload)
    except (AssertionError, Closed, OSError) as e:
        ok, detail = False, str(e)
    sender.join()
    c.close()
    if ok:
        bad = [h for h, (err, _) in got.items() if err]
        if bad:
            ok, detail = False, "errors on handles %s" % [(h, got[h][0], got[h][1][:80]) for h in bad]
        elif got[7][1] != want_big:
            p = got[7][1]
            at = next((k for k in range(0, min(len(p), BIG), 4096)
                       if p[k:k + 4096] != want_big[k:k + 4096]), len(p))
            ok, detail = False, "big READ data wrong at %d: %r" % (at, p[at:at + 8])
    t.check(desc, ok, detail)


for structured in (False, True):
    kind = "structured" if structured else "simple"
    for rnd in range(3):
        writes = [(CMD_WRITE, 128 * MiB + i * 8 * MiB, 8 * MiB, pattern(50 + i, 8 * MiB))
                  for i in range(6)]
        pipeline(structured, writes, "%s: 40 MiB READ behind six 8 MiB WRITEs (round %d)"
                 % (kind, rnd + 1))
    reads = [(CMD_READ, (i % 64) * 4096, 4096, b"") for i in range(255)]
    pipeline(structured, reads, "%s: 40 MiB READ behind 255 4 KiB READs" % kind)
    mixed = [(CMD_WRITE, 200 * MiB, 1 * MiB, pattern(9, MiB)), (CMD_FLUSH, 0, 0, b""),
             (CMD_READ, 200 * MiB, 4096, b"")] * 4
    pipeline(structured, mixed, "%s: 40 MiB READ behind WRITE/FLUSH/READ" % kind)

c = client(False)
err, data, _ = c.cmd(CMD_READ, 128 * MiB, 8 * MiB)
t.check("a pipelined WRITE reads back", err == 0 and data == pattern(50, 8 * MiB))
c.close()

# A 40 MiB WRITE behind 255 4 KiB READs: every slot of the connection is
# taken when its first piece wants one; it waits for them, never ENOMEM.
c = client(False)
big = pattern(77, 40 * MiB)
req = b"".join(c.request_bytes(CMD_READ, (i % 64) * 4096, 4096, handle=2000 + i)
               for i in range(255))
req += c.request_bytes(CMD_WRITE, 64 * MiB, 40 * MiB, handle=9) + big
sender = threading.Thread(target=c.send, args=(req,))
sender.start()
errs = {}
for _ in range(256):
    magic, err, h = struct.unpack(">IIQ", c.recv_exact(16))
    if h != 9 and not err:
        c.recv_exact(4096)
    errs[h] = err
sender.join()
t.check("a 40 MiB WRITE behind 255 4 KiB READs: every reply without error",
        len(errs) == 256 and not any(errs.values()), {h: e for h, e in errs.items() if e})
err, data, _ = c.cmd(CMD_READ, 64 * MiB, 40 * MiB)
t.check("... and the WRITE reads back", err == 0 and data == big)
c.close()
t.check("daemon alive", d.alive())
t.check("no connection closed by the daemon", "closing" not in d.log_text(), d.log_text()[-2000:])
d.stop()
os.unlink(img)
t.finish()
