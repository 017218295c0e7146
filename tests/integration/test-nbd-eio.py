"""I/O errors from the disk: vdiskd on a raw image inside
the fault filesystem (tests/lib/faultfs.py), which fails chosen byte
ranges.  The client must get the error on the request that touched the
range (an NBD error reply with EIO, or ENOSPC when the disk is full) and
on no other: several adjacent 4 KiB reads or writes sent at once are
merged by the daemon into one iocb, and the one failing request must be
picked out.  Large requests the kernel splits (short results), unaligned
writes (read-modify-write), FLUSH; "errors" in `vdiskctl stats --json`
counts every error reply, and the daemon keeps serving afterwards.  Both
cache modes: with --cache writeback reads go through the page cache,
whose readahead meets the failing block too."""

import json
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import *  # noqa: E402,F403
import faultfs  # noqa: E402

K = 4096
SIZE = 16 * MiB
DATA_END = 12 * MiB		# written; the rest of the image is sparse
t = Checks()
why = faultfs.unavailable()
if why:
    skip("faultfs: " + why)
top = tempfile.mkdtemp(prefix="eio.", dir=os.environ.get("TESTS_TMP") or None)
fs = faultfs.FaultFS(os.path.join(top, "backing"), os.path.join(top, "mnt"))
try:
    fs.start()
except faultfs.FaultFSUnavailable as e:
    skip(str(e))


def old(off, n=K):
    """The image's initial content: each 8 bytes hold their offset."""
    first = off // 8
    return b"".join(struct.pack("<Q", first + i) for i in range(n // 8))


def new(tag, off, n=K):
    return b"".join(struct.pack("<II", tag, (off + i * 8) & 0xffffffff) for i in range(n // 8))


vdiskctl = os.environ.get("VDISKCTL", "build/vdiskctl")
d = c = None
replies_with_errors = 0


def batch(reqs):
    """Sends every request in one write, then reads all replies.  reqs:
    (cmd, offset, length, payload, flags); returns {index: (err, data)}."""
    global replies_with_errors
    c.send(b"".join(Client.request_bytes(cmd, off, ln, handle=100 + i, flags=fl, payload=p)
                    for i, (cmd, off, ln, p, fl) in enumerate(reqs)))
    out = {}
    for _ in reqs:
        h, err, data, _ = c.read_reply()
        out[h - 100] = (err, data)
        replies_with_errors += err != 0
    return out


def stats():
    out = subprocess.run([vdiskctl, "-s", d.ctl, "stats", "--json"], check=True,
                         capture_output=True, text=True, timeout=10).stdout
    return json.loads(out)


def R(off, n=K):
    return (CMD_READ, off, n, b"", 0)


def W(off, payload, flags=0):
    return (CMD_WRITE, off, len(payload), payload, flags)


def run(mode):
    global d, c, replies_with_errors
    replies_with_errors = 0
    with open(os.path.join(fs.backing, "disk-%s.img" % mode), "wb") as f:
        for off in range(0, DATA_END, MiB):
            f.write(old(off, MiB))
        f.truncate(SIZE)
    IMG = "/disk-%s.img" % mode
    d = Daemon("--cache", mode, fs.path("disk-%s.img" % mode), name="disk")
    c = d.client(timeout=30)
    c.negotiate(b"disk")
    s0 = stats()
    t.check(mode + ": vdiskctl stats --json: errors and merged counters",
            "errors" in s0 and "merged" in s0, s0)

    # Four adjacent 4 KiB READs at once, the third on a failing block; again
    # on fresh ranges until the daemon merged a batch (it normally does at once).
    merged_batches = 0
    for n in range(6):
        base = (1 + n) * MiB
        fs.fail(IMG, base + 2 * K, base + 3 * K, op="read")
        m0 = stats()["merged"]
        r = batch([R(base + i * K) for i in range(4)])
        merged = stats()["merged"] > m0
        merged_batches += merged
        ok = (r[2][0] == EIO and all(r[i][0] == 0 and r[i][1] == old(base + i * K)
                                     for i in (0, 1, 3)))
        t.check(mode + ": 4 adjacent READs%s, the 3rd on a failing block: EIO on it "
                "alone, the others read their data" % (" (merged)" if merged else
                                                       " (not merged)"), ok,
                {i: (r[i][0], len(r[i][1])) for i in r})
        if merged:
            break
    t.check(mode + ": the daemon merged a batch of adjacent READs", merged_batches > 0)

    merged_batches = 0
    for n in range(6):
        base = (8 + n // 2) * MiB + (n % 2) * 512 * 1024
        fs.fail(IMG, base + 2 * K, base + 3 * K, op="write")
        m0 = stats()["merged"]
        r = batch([W(base + i * K, new(n, base + i * K)) for i in range(4)])
        merged = stats()["merged"] > m0
        merged_batches += merged
        ok = r[2][0] == EIO and all(r[i][0] == 0 for i in (0, 1, 3))
        t.check(mode + ": 4 adjacent WRITEs%s, the 3rd on a failing block: EIO on it alone" %
                (" (merged)" if merged else " (not merged)"), ok, {i: r[i][0] for i in r})
        fs.clear()
        back = batch([R(base + i * K) for i in range(4)])
        t.check(mode + ": ... the other three wrote their data",
                all(back[i] == (0, new(n, base + i * K)) for i in (0, 1, 3)),
                {i: back[i][0] for i in back})
        if merged:
            break
    t.check(mode + ": the daemon merged a batch of adjacent WRITEs", merged_batches > 0)

    # One large request the kernel splits into 128 KiB FUSE requests: the
    # failing piece makes its result short, which must be an error, not data.
    fs.fail(IMG, 4 * MiB + 640 * 1024, 4 * MiB + 644 * 1024, op="read")
    r = batch([R(4 * MiB, MiB), R(5 * MiB, 64 * K)])
    t.check(mode + ": a 1 MiB READ over a failing block (a short read): EIO",
            r[0][0] == EIO, r[0][0])
    t.check(mode + ": ... the READ next to it succeeds", r[1] == (0, old(5 * MiB, 64 * K)),
            r[1][0])
    fs.fail(IMG, 6 * MiB + 640 * 1024, 6 * MiB + 644 * 1024, op="write")
    r = batch([W(6 * MiB, new(50, 6 * MiB, MiB))])
    t.check(mode + ": a 1 MiB WRITE over a failing block (a short write): EIO",
            r[0][0] == EIO, r[0][0])

    # An unaligned WRITE is a read-modify-write under O_DIRECT: the read
    # fails.  Through the page cache it is a plain partial write (FUSE
    # without writeback caching reads nothing for it).
    fs.fail(IMG, 7 * MiB + K, 7 * MiB + 2 * K, op="read")
    r = batch([W(7 * MiB + K + 10, b"x" * 100), W(7 * MiB + 3 * K + 10, b"y" * 100)])
    if mode == "none":
        t.check(mode + ": an unaligned WRITE whose read-modify-write read fails: EIO",
                r[0][0] == EIO, r[0][0])
    else:
        t.check(mode + ": an unaligned WRITE on a read-failing block (no read needed): done",
                r[0][0] == 0, r[0][0])
    t.check(mode + ": ... an unaligned WRITE beside it succeeds", r[1][0] == 0, r[1][0])

    # FLUSH when fsync fails; a FUA WRITE.
    fs.fail(None, op="fsync")
    r = batch([(CMD_FLUSH, 0, 0, b"", 0)])
    t.check(mode + ": FLUSH when the disk's fsync fails: EIO", r[0][0] == EIO, r[0][0])
    fs.clear()
    r = batch([(CMD_FLUSH, 0, 0, b"", 0), W(3 * MiB, new(60, 3 * MiB), CMD_FLAG_FUA)])
    t.check(mode + ": FLUSH and FUA WRITE succeed once it does not",
            r[0][0] == 0 and r[1][0] == 0, r)

    # A full disk: ENOSPC, not EIO, on the write that needs room.
    fs.enospc_after(2 * K)
    r = batch([W(14 * MiB, new(70, 14 * MiB, 4 * K))])
    t.check(mode + ": WRITE to unallocated blocks past the free space: ENOSPC",
            r[0][0] == ENOSPC, r[0][0])
    r = batch([W(14 * MiB, new(71, 14 * MiB, 2 * K)), W(2 * MiB + 64 * K, new(72, 0))])
    t.check(mode + ": ... a WRITE that fits, and one over allocated blocks: done",
            r[0][0] == 0 and r[1][0] == 0, r)
    # Room for two of four merged writes: exactly two fail (retried alone,
    # they may run in any order).
    fs.enospc_after(2 * K)
    r = batch([W(15 * MiB + i * K, new(80 + i, 15 * MiB + i * K)) for i in range(4)])
    errs = sorted(r[i][0] for i in r)
    t.check(mode + ": 4 adjacent WRITEs with room for 2: two done, two ENOSPC",
            errs == [0, 0, ENOSPC, ENOSPC], errs)
    fs.enospc_after(None)
    back = batch([R(15 * MiB + i * K) for i in range(4)])
    t.check(mode + ": ... the two that were done hold their data",
            all(back[i] == (0, new(80 + i, 15 * MiB + i * K)) for i in r if r[i][0] == 0))

    st = stats()
    errs = st["errors"] - s0["errors"]
    t.check(mode + ": stats: errors counts every error reply (%d)" % replies_with_errors,
            errs == replies_with_errors,
            "errors %d, error replies %d" % (errs, replies_with_errors))

    # Serving goes on: every range reads again, writes work, data is right.
    fs.clear()
    rmw = bytearray(old(7 * MiB + K))
    rmw[10:110] = b"z" * 100
    w = batch([W(7 * MiB + K + 10, b"z" * 100)])	# alone: reads in flight with it may see either
    r = batch([R(MiB + 2 * K), R(4 * MiB, MiB), R(7 * MiB + K, K), R(3 * MiB), R(14 * MiB, 2 * K)])
    t.check(mode + ": after clear: the failed ranges read and write again, the data is right",
            w[0][0] == 0 and r[0] == (0, old(MiB + 2 * K)) and r[1] == (0, old(4 * MiB, MiB)) and
            r[2] == (0, bytes(rmw)) and r[3] == (0, new(60, 3 * MiB)) and
            r[4] == (0, new(71, 14 * MiB, 2 * K)),
            {i: (r[i][0], len(r[i][1])) for i in r})
    t.check(mode + ": the daemon is still alive", d.alive())
    c.close()
    t.check(mode + ": SIGTERM: exit 0", d.stop() == 0, d.log_text()[-2000:])
    print("vdiskd log (errors it logged):")
    print("\n".join(d.log_text().splitlines()[-15:]))


for mode in ("none", "writeback"):
    run(mode)
fs.stop()
t.finish()
