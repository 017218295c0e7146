"""The fault-injecting test filesystem itself (tests/lib/faultfs.py), no
vdiskd: writes not made durable vanish at a power cut and fsynced ones
stay (fsync, fdatasync, AIO FDSYNC, O_DSYNC opens, RWF_DSYNC on buffered
and O_DIRECT handles, AIO RWF_DSYNC); a cut kills the mount until it is
remounted; EIO ranges hit only those ranges; ENOSPC after N bytes and
space given back; O_DIRECT; delays; the broken-fsync debug knob."""

import errno
import mmap
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import Checks, skip  # noqa: E402
import faultfs  # noqa: E402
import linux_aio  # noqa: E402

K = 4096
t = Checks()
top = tempfile.mkdtemp(prefix="faultfs.", dir=os.environ.get("TESTS_TMP") or None)
why = faultfs.unavailable()
if why:
    skip("faultfs: " + why)
fs = faultfs.FaultFS(os.path.join(top, "backing"), os.path.join(top, "mnt"))
try:
    fs.start()
except faultfs.FaultFSUnavailable as e:
    skip(str(e))
IMG = fs.path("f.img")
BACK = os.path.join(fs.backing, "f.img")


def block(c, n=K):
    """An aligned buffer (mmap) full of byte c, for O_DIRECT."""
    m = mmap.mmap(-1, n)
    m.write(bytes([c]) * n)
    return m


def backing_at(off, n=K):
    with open(BACK, "rb") as f:
        f.seek(off)
        return f.read(n)


def delta(fn):
    a = fs.stats()
    fn()
    b = fs.stats()
    return {k: b[k] - a[k] for k in ("writes", "dsync_writes", "fsyncs", "fdatasyncs")}


def raises(err, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno == err
    return False


# The file and its size are made durable first.
fd = os.open(IMG, os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(fd, 1 << 20)
os.fsync(fd)
t.check("fsync: FUSE_FSYNC (datasync=0)", delta(lambda: os.fsync(fd))["fsyncs"] == 1)
t.check("fdatasync: FUSE_FSYNC (datasync=1)",
        delta(lambda: os.fdatasync(fd))["fdatasyncs"] == 1)

# Slot i of the file (4 KiB each) gets byte i+1 in different ways.  A
# FUSE_FSYNC covers the whole file (it carries no range), so the writes
# meant to vanish come after the last one.
expect = {}		# slot -> byte it must hold after the cut
os.pwrite(fd, block(2), 1 * K)				# fsync
os.fsync(fd)
expect[1] = 2
os.pwrite(fd, block(3), 2 * K)				# fdatasync
os.fdatasync(fd)
expect[2] = 3
d = delta(lambda: os.pwritev(fd, [block(6)], 4 * K, os.RWF_DSYNC))
t.check("buffered pwritev2(RWF_DSYNC): O_DSYNC write, then FUSE_FSYNC",
        d["dsync_writes"] == 1 and d["fdatasyncs"] == 1, d)
expect[4] = 6
dfd = os.open(IMG, os.O_RDWR | os.O_DSYNC)
d = delta(lambda: os.pwrite(dfd, block(5), 3 * K))
t.check("buffered write on an O_DSYNC handle: O_DSYNC write, then FUSE_FSYNC",
        d["dsync_writes"] == 1 and d["fdatasyncs"] == 1, d)
os.close(dfd)
xfd = os.open(IMG, os.O_RDWR | os.O_DIRECT)
t.check("O_DIRECT open: direct_io", fs.stats()["direct_opens"] >= 1)
aio = linux_aio.supported()
if aio:
    os.pwrite(xfd, block(10), 8 * K)
    d = delta(lambda: linux_aio.fsync(xfd, True))
    t.check("AIO IOCB_CMD_FDSYNC: FUSE_FSYNC (datasync=1)", d["fdatasyncs"] == 1, d)
    expect[8] = 10
# No whole-file sync from here on.
os.pwrite(fd, block(1), 0 * K)				# dirty: vanishes
expect[0] = 0
os.pwrite(fd, block(0x22), 1 * K)			# overwrite of a durable block, dirty
os.pwrite(xfd, block(4), 3 * K)				# dirty, then an O_DSYNC write over it
dfd = os.open(IMG, os.O_RDWR | os.O_DSYNC | os.O_DIRECT)
d = delta(lambda: os.pwrite(dfd, block(5), 3 * K))
t.check("O_DIRECT write on an O_DSYNC handle: O_DSYNC write, no FUSE_FSYNC",
        d["dsync_writes"] == 1 and d["fdatasyncs"] == 0, d)
os.close(dfd)
expect[3] = 5
d = delta(lambda: os.pwritev(xfd, [block(7)], 5 * K, os.RWF_DSYNC))
t.check("O_DIRECT pwritev2(RWF_DSYNC): O_DSYNC write, no FUSE_FSYNC",
        d["dsync_writes"] == 1 and d["fdatasyncs"] == 0, d)
expect[5] = 7
os.pwrite(xfd, block(8), 6 * K)				# O_DIRECT, dirty
expect[6] = 0
if aio:
    d = delta(lambda: linux_aio.pwrite(xfd, block(9), 7 * K, os.RWF_DSYNC))
    t.check("O_DIRECT AIO pwrite with RWF_DSYNC: O_DSYNC write, no FUSE_FSYNC",
            d["dsync_writes"] == 1 and d["fdatasyncs"] == 0, d)
    expect[7] = 9
t.check("O_DIRECT reads back", os.pread(xfd, K, 5 * K) == bytes([7]) * K)
os.pwrite(fd, block(11), 9 * K)				# dirty
expect[9] = 0
os.pwrite(fd, block(12), (1 << 20) + K)			# dirty extension
st = fs.stats()
t.check("dirty entries are counted", st["dirty_entries"] >= 3, st)

r = fs.cut_power()
t.check("cut_power undoes the dirty entries", r["undone_entries"] >= 3, r)
t.check("after the cut: reads fail with EIO", raises(errno.EIO, os.pread, xfd, K, 0))
t.check("after the cut: writes fail with EIO", raises(errno.EIO, os.pwrite, fd, b"x", 0))
t.check("after the cut: fsync fails with EIO", raises(errno.EIO, os.fsync, fd))
t.check("after the cut: open fails with EIO", raises(errno.EIO, os.open, IMG, os.O_RDONLY))
for x in (fd, xfd):
    try:
        os.close(x)
    except OSError:
        pass
got = {i: backing_at(i * K) for i in expect}
bad = {i: (got[i][:1], expect[i]) for i in expect if got[i] != bytes([expect[i]]) * K}
t.check("backing file after the cut: exactly the durable writes", not bad, bad)
t.check("the dirty extension is undone (size back to 1 MiB)",
        os.path.getsize(BACK) == 1 << 20, os.path.getsize(BACK))
fs.remount()
with open(IMG, "rb") as f:
    data = f.read()
t.check("remounted: the mount reads what was durable",
        len(data) == 1 << 20 and all(data[i * K:(i + 1) * K] == bytes([expect[i]]) * K
                                      for i in expect))

# EIO (and other errnos) on byte ranges, O_DIRECT so no readahead.
fd = os.open(IMG, os.O_RDWR | os.O_DIRECT)
fs.fail("/f.img", 16 * K, 17 * K, op="read")
t.check("read of the failing block: EIO", raises(errno.EIO, os.preadv, fd, [block(0)], 16 * K))
t.check("read of a range covering it: EIO",
        raises(errno.EIO, os.preadv, fd, [block(0, 4 * K)], 14 * K))
t.check("reads of the neighbours succeed",
        os.preadv(fd, [block(0)], 15 * K) == K and os.preadv(fd, [block(0)], 17 * K) == K)
t.check("a read-only rule leaves writes alone", os.pwrite(fd, block(13), 16 * K) == K)
fs.fail("f.img", 20 * K + 512, 20 * K + 1024, op="write", err=errno.ENOSPC)
t.check("write overlapping a write rule: its errno (ENOSPC)",
        raises(errno.ENOSPC, os.pwrite, fd, block(14), 20 * K))
t.check("writes next to it succeed",
        os.pwrite(fd, block(14), 19 * K) == K and os.pwrite(fd, block(14), 21 * K) == K)
t.check("reads of a write-failing range succeed", os.preadv(fd, [block(0)], 20 * K) == K)
fs.clear()
fs.fail(None, 30 * K, 31 * K, op="both", count=1)
t.check("a rule with count=1 fails once", raises(errno.EIO, os.preadv, fd, [block(0)], 30 * K))
t.check("... and then no more", os.preadv(fd, [block(0)], 30 * K) == K)
fs.fail("/other.img", 0, 1 << 30)
t.check("a rule on another file does not hit this one", os.preadv(fd, [block(0)], 0) == K)
fs.clear()
t.check("clear: the range reads again", os.preadv(fd, [block(0)], 16 * K) == K)
os.close(fd)

# ENOSPC: a sparse file, 16 blocks of room.
sp = fs.path("sparse.img")
fd = os.open(sp, os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(fd, 1 << 20)
fs.enospc_after(16 * K)
ok = all(os.pwrite(fd, block(1), i * K) == K for i in range(16))
t.check("enospc_after(64 KiB): 16 new blocks fit", ok)
t.check("the 17th new block: ENOSPC", raises(errno.ENOSPC, os.pwrite, fd, block(1), 16 * K))
t.check("overwriting an allocated block still works", os.pwrite(fd, block(2), 3 * K) == K)
t.check("a write half old, half new: ENOSPC",
        raises(errno.ENOSPC, os.pwrite, fd, block(1, 2 * K), 15 * K))
fs.give_space(K)
t.check("give_space(4 KiB): one more block", os.pwrite(fd, block(1), 16 * K) == K)
t.check("... and no more", raises(errno.ENOSPC, os.pwrite, fd, block(1), 17 * K))
r = faultfs._libc.fallocate(fd, faultfs.FALLOC_FL_PUNCH_HOLE | faultfs.FALLOC_FL_KEEP_SIZE,
                            0, 2 * K)
t.check("punching a hole frees space", r == 0 and os.pwrite(fd, block(1), 17 * K) == K and
        os.pwrite(fd, block(1), 18 * K) == K)
t.check("... only what it freed", raises(errno.ENOSPC, os.pwrite, fd, block(1), 19 * K))
fs.enospc_after(None)
t.check("enospc_after(None): no limit", os.pwrite(fd, block(1), 40 * K) == K)
os.close(fd)

# Delay.
fd = os.open(IMG, os.O_RDONLY | os.O_DIRECT)
fs.delay(100, op="read")
t0 = time.monotonic()
os.preadv(fd, [block(0)], 0)
dt = time.monotonic() - t0
fs.clear()
t0 = time.monotonic()
os.preadv(fd, [block(0)], 0)
dt2 = time.monotonic() - t0
t.check("delay(100 ms): a read takes >= 100 ms, and not after clear",
        dt >= 0.1 and dt2 < 0.1, (dt, dt2))
os.close(fd)

# A truncate is dirty metadata too: undone at a cut unless fsynced.
fd = os.open(IMG, os.O_RDWR)
os.ftruncate(fd, 4 * K)
os.close(fd)
fs.cut_power()
t.check("an unsynced truncate is undone by a cut (data back)",
        os.path.getsize(BACK) == 1 << 20 and backing_at(2 * K) == bytes([3]) * K)
fs.reset()
with open(IMG, "rb") as f:
    f.seek(2 * K)
    t.check("reset: the mount answers again", f.read(K) == bytes([3]) * K)
fs.stop()
t.check("stop: unmounted", not os.path.ismount(fs.mnt))

# The debugging knob that proves the power-cut test can fail.
env = dict(os.environ, FAULTFS_BROKEN_FSYNC="1")
bfs = faultfs.FaultFS(fs.backing, fs.mnt, env=env).start()
fd = os.open(IMG, os.O_RDWR)
os.pwrite(fd, block(0x55), 0)
os.fsync(fd)
bfs.cut_power()
os.close(fd)
t.check("FAULTFS_BROKEN_FSYNC=1: fsynced writes vanish at a cut", backing_at(0) == bytes(K),
        backing_at(0)[:4])
bfs.stop()
t.finish()
