"""vdiskd's NBD server through libnbd (Debian's python3-libnbd): what a
conformant client negotiates and sees, block status after trim and zero,
many commands in flight on several connections (multi-conn), and FLUSH on
one connection covering writes made on another."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import Checks, Daemon, MiB, skip  # noqa: E402

try:
    import nbd
except ImportError:
    skip("python3-libnbd is not installed (run with /usr/bin/python3)")

t = Checks()
SIZE = 64 * MiB
d = Daemon("-d", "ram", "64M", name="disk")
uri = "nbd+unix:///disk?socket=" + d.sock


def handle(meta=True):
    h = nbd.NBD()
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.set_full_info(True)
    h.connect_uri(uri)
    return h


h = handle()
t.check("structured replies negotiated", h.get_structured_replies_negotiated())
t.check("base:allocation negotiated", h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION))
t.check("size", h.get_size() == SIZE)
t.check("export name", h.get_canonical_export_name() == "disk")
t.check("can: flush fua trim zero fast_zero cache df multi_conn",
        all((h.can_flush(), h.can_fua(), h.can_trim(), h.can_zero(), h.can_fast_zero(),
             h.can_cache(), h.can_df(), h.can_multi_conn())))
t.check("not read-only", not h.is_read_only())
t.check("block size constraints",
        (h.get_block_size(nbd.SIZE_MINIMUM), h.get_block_size(nbd.SIZE_PREFERRED),
         h.get_block_size(nbd.SIZE_MAXIMUM)) == (1, 4096, 32 * MiB))

buf = os.urandom(MiB)
h.pwrite(buf, 5 * MiB)
t.check("pwrite/pread 1 MiB", h.pread(MiB, 5 * MiB) == buf)
h.pwrite(b"hello", 7, nbd.CMD_FLAG_FUA)
t.check("unaligned FUA pwrite", h.pread(5, 7) == b"hello")


def extents(off, ln, flags=0):
    out = []

    def cb(metacontext, offset, entries, err):
        if metacontext == nbd.CONTEXT_BASE_ALLOCATION:
            out.extend(zip(entries[0::2], entries[1::2]))
        return 0
    h.block_status(ln, off, cb, flags)
    return out


e = extents(5 * MiB, MiB)
t.check("block status of written data: allocated", e and e[0][1] & nbd.STATE_HOLE == 0, e)
h.zero(MiB, 5 * MiB)
t.check("zero: reads back zero", h.pread(MiB, 5 * MiB) == bytes(MiB))
e = extents(5 * MiB, MiB)
t.check("block status after zero: zero", e and e[0][1] & nbd.STATE_ZERO, e)
h.pwrite(buf, 9 * MiB)
h.trim(MiB, 9 * MiB)
e = extents(9 * MiB, MiB, nbd.CMD_FLAG_REQ_ONE)
t.check("REQ_ONE: one extent no longer than asked", len(e) == 1 and e[0][0] <= MiB, e)
e = extents(0, SIZE)
t.check("block status of the whole disk: extents cover a prefix, ordered",
        e and sum(x[0] for x in e[:-1]) < SIZE, e[:8])
try:
    h.zero(MiB, 20 * MiB, nbd.CMD_FLAG_FAST_ZERO)
    fast = True
except nbd.Error as ex:
    fast = ex.errnum == 95
t.check("fast zero: done or ENOTSUP", fast)
h.cache(MiB, 0)
h.flush()
t.check("cache and flush", True)

chunks = []


def chunk(sub, offset, typ, err):
    chunks.append((offset, typ, len(sub)))
    return 0


h.pread_structured(65536, 5 * MiB, chunk, nbd.CMD_FLAG_DF)
t.check("pread with DF: a single content chunk", len(chunks) == 1, chunks)

try:
    h.set_strict_mode(0)
    h.pread(4096, SIZE)
    t.check("read past the end fails", False)
except nbd.Error as ex:
    t.check("read past the end fails with EINVAL", ex.errnum == 22, ex)
h.set_strict_mode(nbd.STRICT_COMMANDS | nbd.STRICT_FLAGS | nbd.STRICT_BOUNDS)



def wait_all(x, cookies):
    """Polls until every command completed; False after 30 s."""
    left = set(cookies)
    deadline = time.monotonic() + 30
    while left and time.monotonic() < deadline:
        x.poll(100)
        left = {c for c in left if not x.aio_command_completed(c)}
    return not left


# More commands in flight than the server takes at once (it stops reading
# until replies drain), completed out of order.
N = 1000
bufs = [nbd.Buffer(4096) for _ in range(N)]
for i in range(N):
    bufs[i] = nbd.Buffer.from_bytearray(bytearray([i % 251]) * 4096)
cookies = [h.aio_pwrite(bufs[i], i * 4096) for i in range(N)]
t.check("%d writes in flight on one connection" % N, wait_all(h, cookies))
rbufs = [nbd.Buffer(4096) for _ in range(N)]
cookies = [h.aio_pread(rbufs[i], i * 4096) for i in range(N)]
t.check("%d reads in flight on one connection" % N, wait_all(h, cookies))
t.check("... each read what its write wrote",
        all(rbufs[i].to_bytearray() == bytearray([i % 251]) * 4096 for i in range(N)))
h.shutdown()

# Multi-conn: write on four connections, flush on a fifth.
hs = [handle(meta=False) for _ in range(4)]
data = [os.urandom(256 * 1024) for _ in range(4)]
pending = []
for i, x in enumerate(hs):
    for j in range(16):
        b = nbd.Buffer.from_bytearray(bytearray(data[i][j * 16384:(j + 1) * 16384]))
        pending.append((x, x.aio_pwrite(b, 32 * MiB + i * MiB + j * 16384), b))
ok = all(wait_all(x, [c]) for x, c, _ in pending)
t.check("multi-conn: 64 writes on 4 connections", ok)
f = handle(meta=False)
f.flush()
ok = all(f.pread(256 * 1024, 32 * MiB + i * MiB) == data[i] for i in range(4))
t.check("multi-conn: writes from 4 connections visible on a 5th after FLUSH", ok)
for x in hs + [f]:
    x.shutdown()

t.check("SIGTERM: exit 0", d.stop() == 0, d.log_text())
t.finish()
