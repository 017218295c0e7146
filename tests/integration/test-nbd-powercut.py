"""Power cuts: vdiskd's durability contract on a raw image inside the
fault filesystem (tests/lib/faultfs.py), with --cache none and
--cache writeback, and --cache none once more with the kernel's
IOCB_CMD_FDSYNC refused at vdiskd's probe (faultfs fails that one fsync
with EINVAL), so that FLUSH runs fdatasync on the worker thread.

libnbd sends random sector-aligned writes (512 B to 1 MiB, some with FUA),
several in flight, and periodic FLUSHes, while a model records which
writes were acknowledged durable: a write acknowledged with FUA, or one
acknowledged before a FLUSH was sent that later completed.  At a random
moment the filesystem "loses power" (everything not fsynced is undone and
every request fails with EIO), vdiskd is killed with SIGKILL, the
filesystem is remounted, a new vdiskd serves the image and every sector
is read back: a sector last written durably must hold that write; every
other sector must hold its previous durable content or one of the later
writes, whole (each sector carries its write id and sector number).

Writes never overlap one in flight, so a sector's writes form one
sequence.  POWERCUT_SEED=N repeats a run's random choices (the timing
differs); POWERCUT_CUTS=N cuts per run (default 16).  The whole
test stays under ~75 s (POWERCUT_BUDGET).  FAULTFS_BROKEN_FSYNC=1 (fsync
is a no-op: FLUSH reaches no disk), =dsync (O_DSYNC writes are not
durable: FUA through RWF_DSYNC is lost) or =2 (both) make it fail."""

import errno
import os
import random
import struct
import sys
import subprocess
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import Checks, Daemon, MiB, skip  # noqa: E402
import faultfs  # noqa: E402

try:
    import nbd
except ImportError:
    skip("python3-libnbd is not installed (run with /usr/bin/python3)")

SECTOR = 512
SIZE = 8 * MiB
NSECT = SIZE // SECTOR
MAX_INFLIGHT = 16
CUTS = int(os.environ.get("POWERCUT_CUTS", "16"))
BUDGET = float(os.environ.get("POWERCUT_BUDGET", "70"))	# seconds, both modes
SEED = int(os.environ.get("POWERCUT_SEED") or random.SystemRandom().randrange(1 << 32))
SIZES = [1, 1, 2, 3, 8, 8, 8, 16, 24, 32, 128, 256, 512, 2048]	# sectors
print("seed %d (POWERCUT_SEED=%d repeats it), %d cuts per cache mode" % (SEED, SEED, CUTS))
sys.stdout.flush()
rng = random.Random(SEED)
t = Checks()

why = faultfs.unavailable()
if why:
    skip("faultfs: " + why)
top = tempfile.mkdtemp(prefix="powercut.", dir=os.environ.get("TESTS_TMP") or None)
fs = faultfs.FaultFS(os.path.join(top, "backing"), os.path.join(top, "mnt"))
try:
    fs.start()
except faultfs.FaultFSUnavailable as e:
    skip(str(e))


def sector_bytes(wid, s):
    return bytes(SECTOR) if wid == 0 else struct.pack("<QQ", wid, s) * (SECTOR // 16)


def payload(wid, first, n):
    return b"".join(struct.pack("<QQ", wid, s) * (SECTOR // 16) for s in range(first, first + n))


class Round:
    """One run of writes up to a cut.  base[s]: the write id the disk held
    at the start (durable); hist[s]: ids written since, in order; dur[s]:
    index in hist[s] of the last write known durable (-1: base)."""

    def __init__(self, base):
        self.base = base
        self.hist = {}
        self.dur = {}

    def submitted(self, wid, first, n):
        pos = []
        for s in range(first, first + n):
            h = self.hist.setdefault(s, [])
            pos.append(len(h))
            h.append(wid)
        return pos

    def durable(self, first, n, pos):
        for i, s in enumerate(range(first, first + n)):
            if pos[i] > self.dur.get(s, -1):
                self.dur[s] = pos[i]

    def allowed(self, s):
        h = self.hist.get(s)
        if not h:
            return [self.base[s]]
        k = self.dur.get(s, -1)
        return ([self.base[s]] + h) if k < 0 else h[k:]


class Writer:
    """Keeps MAX_INFLIGHT commands going on one libnbd handle."""

    def __init__(self, h, rnd, next_wid, trims=False):
        self.h = h
        self.trims = trims
        self.r = rnd
        self.wid = next_wid
        self.inflight = {}	# cookie -> ("w", first, n, fua, pos, buf) | ("f", ack_seq)
        self.busy = set()	# sectors under a write in flight
        self.acked = []		# (ack_seq, first, n, pos): acknowledged, not yet durable
        self.ack_seq = 0
        self.n = dict(writes=0, fua=0, flushes=0, acked=0, failed=0, trims=0)
        self.dead = False

    def submit_write(self):
        n = rng.choice(SIZES)
        for _ in range(8):
            align = rng.choice((1, 8, 8))
            first = rng.randrange(0, NSECT - n + 1) // align * align
            if not any(s in self.busy for s in range(first, first + n)):
                break
        else:
            return False
        fua = rng.random() < 0.2
        if self.trims and rng.random() < 0.15:
            # A trim is a write of zeroes (id 0) to the model: on a
            # dynamic VHD the sectors read as zeroes once it is done, and
            # as their old or new contents if a cut comes first.
            buf = None
            pos = self.r.submitted(0, first, n)
            c = self.h.aio_trim(n * SECTOR, first * SECTOR,
                                flags=nbd.CMD_FLAG_FUA if fua else 0)
            self.n["trims"] += 1
        else:
            self.wid += 1
            buf = nbd.Buffer.from_bytearray(bytearray(payload(self.wid, first, n)))
            pos = self.r.submitted(self.wid, first, n)
            c = self.h.aio_pwrite(buf, first * SECTOR, flags=nbd.CMD_FLAG_FUA if fua else 0)
        self.inflight[c] = ("w", first, n, fua, pos, buf)
        self.busy.update(range(first, first + n))
        self.n["writes"] += 1
        self.n["fua"] += fua
        return True

    def submit_flush(self):
        c = self.h.aio_flush()
        self.inflight[c] = ("f", self.ack_seq)
        self.n["flushes"] += 1

    def reap(self):
        for c in list(self.inflight):
            try:
                if not self.h.aio_command_completed(c):
                    continue
                ok = True
            except nbd.Error:
                ok = False
            x = self.inflight.pop(c)
            if x[0] == "w":
                _, first, n, fua, pos, _ = x
                self.busy.difference_update(range(first, first + n))
                if not ok:
                    self.n["failed"] += 1
                    continue
                self.n["acked"] += 1
                if fua:
                    self.r.durable(first, n, pos)
                else:
                    self.ack_seq += 1
                    self.acked.append((self.ack_seq, first, n, pos))
            elif ok:
                upto = x[1]
                keep = []
                for a in self.acked:
                    if a[0] <= upto:
                        self.r.durable(a[1], a[2], a[3])
                    else:
                        keep.append(a)
                self.acked = keep
            else:
                self.n["failed"] += 1

    def step(self, submit=True):
        if submit and not self.dead:
            while len(self.inflight) < MAX_INFLIGHT:
                if rng.random() < 0.07:
                    self.submit_flush()
                elif not self.submit_write():
                    break
        try:
            self.h.poll(1)
        except nbd.Error:
            self.dead = True
        self.reap()


def verify(h, rnd, label, totals):
    """Reads the whole disk; returns the new base (write id per sector)."""
    base = [0] * NSECT
    bad = []
    for off in range(0, SIZE, MiB):
        data = h.pread(MiB, off)
        for i in range(MiB // SECTOR):
            s = off // SECTOR + i
            sec = data[i * SECTOR:(i + 1) * SECTOR]
            wid, s2 = struct.unpack_from("<QQ", sec)
            if sec == bytes(SECTOR):
                wid = 0
            elif s2 != s or sec != sector_bytes(wid, s):
                wid = -1
            allowed = rnd.allowed(s)
            if wid not in allowed:
                h_ = rnd.hist.get(s, [])
                bad.append("sector %d (byte %d): holds %s, allowed %s (base %d, written %s, "
                           "durable index %d)" % (s, s * SECTOR, "garbage" if wid < 0 else
                                                  "write %d" % wid, allowed[:6], rnd.base[s],
                                                  h_[-6:], rnd.dur.get(s, -1)))
            base[s] = wid
            h_ = rnd.hist.get(s)
            if h_:
                if rnd.dur.get(s, -1) >= 0:
                    totals["durable_sectors"] += 1
                if wid != h_[-1]:
                    totals["lost_sectors"] += 1
    ok = t.check("%s: every sector durable or old-or-new after the cut" % label, not bad,
                 "%d bad sectors; %s" % (len(bad), "; ".join(bad[:3])))
    return base, ok


def connect(d):
    h = nbd.NBD()
    h.connect_unix(d.sock)
    return h


def start_daemon(mode, img, worker_flush):
    """vdiskd on img; worker_flush: its FDSYNC probe fails (EINVAL), so
    that FLUSH and emulated FUA run fdatasync on the worker thread."""
    if worker_flush:
        fs.fail(None, op="fsync", err=errno.EINVAL, count=1)
        n = fs.stats()["injected"]
        d = Daemon("-v", "-v", "--cache", mode, img, name="disk")
        if fs.stats()["injected"] != n + 1 or "FDSYNC no" not in d.log_text():
            fs.clear()
            t.check("%s: vdiskd's FDSYNC probe met the injected EINVAL" % mode, False,
                    d.log_text()[-1000:])
        return d
    return Daemon("--cache", mode, img, name="disk")


# (cache mode, FDSYNC refused, share of the time budget, image format).
# The VHD run is a dynamic image: allocation, bitmaps and the BAT must
# keep the same contract, and the image must open and check clean after
# every cut without a repair.  It also sends TRIMs (whole blocks too: the
# image's blocks are 512 KiB), which deallocate: a trimmed sector holds
# zeroes once the trim is durable, and its old contents or zeroes before.
VDISK_IMG = os.path.join(os.path.dirname(os.environ.get("VDISKD", "build/vdiskd")), "vdisk-img")
RUNS = [("none", False, 0.27, "raw"), ("writeback", False, 0.27, "raw"),
        ("none", True, 0.21, "raw")]
if os.access(VDISK_IMG, os.X_OK):
    RUNS.append(("none", False, 0.25, "vhd"))
else:
    print("skip: no %s: the VHD run is left out" % VDISK_IMG)
start = time.monotonic()
for mi, (mode, worker_flush, share, fmt) in enumerate(RUNS):
    mode_start = time.monotonic()
    name = mode + ("+fdatasync" if worker_flush else "") + ("" if fmt == "raw" else ", vhd")
    img_back = os.path.join(fs.backing, "disk-%d.img" % mi)
    if fmt == "vhd":
        subprocess.run([VDISK_IMG, "create", "-t", "dynamic", "--block-size", "512K",
                        img_back, str(SIZE)], check=True, capture_output=True)
    else:
        with open(img_back, "wb") as f:
            f.truncate(SIZE)
    img = fs.path("disk-%d.img" % mi)
    d = start_daemon(mode, img, worker_flush)
    h = connect(d)
    base = [0] * NSECT
    wid = 0
    totals = dict(writes=0, fua=0, flushes=0, acked=0, failed=0, durable_sectors=0,
                  lost_sectors=0, cuts=0, trims=0)
    mode_budget = BUDGET * share
    all_ok = True
    for cut in range(CUTS):
        if cut >= 3 and time.monotonic() - mode_start > mode_budget:
            print("%s: time budget spent after %d cuts" % (name, cut))
            break
        rnd = Round(base)
        w = Writer(h, rnd, wid, trims=fmt == "vhd")
        cut_at = time.monotonic() + rng.uniform(0.05, 0.8)
        while time.monotonic() < cut_at and not w.dead:
            w.step()
        fs.cut_power()
        at_cut = len(w.inflight)
        settle = time.monotonic() + 0.03	# replies sent after the cut still promise
        while time.monotonic() < settle and w.inflight and not w.dead:
            w.step(submit=False)
        d.kill()
        w.step(submit=False)
        wid = w.wid
        for k in w.n:
            totals[k] += w.n[k]
        totals["cuts"] += 1
        w.h = None
        del h
        fs.remount()
        if fmt == "vhd":
            p = subprocess.run([VDISK_IMG, "check", img_back], capture_output=True, text=True)
            if p.returncode != 0:
                all_ok = False
                t.check("%s cut %d: vdisk-img check is clean" % (name, cut + 1), False,
                        p.stdout + p.stderr)
            totals["checked_clean"] = totals.get("checked_clean", 0) + (p.returncode == 0)
        d = start_daemon(mode, img, worker_flush)
        h = connect(d)
        base, ok = verify(h, rnd, "%s cut %d (%d writes, %d FUA, %d flushes, %d in flight)" %
                          (name, cut + 1, w.n["writes"], w.n["fua"], w.n["flushes"],
                           at_cut), totals)
        all_ok = all_ok and ok
    print("%s: %s in %.1f s" % (name, totals, time.monotonic() - mode_start))
    t.check("%s: writes were acknowledged durable (FUA, FLUSH) and checked" % name,
            totals["durable_sectors"] > 0, totals)
    t.check("%s: the cuts lost undurable writes (the fault FS works)" % name,
            totals["lost_sectors"] > 0, totals)
    if fmt == "vhd":
        t.check("%s: the image checked clean after every cut, no repair" % name,
                totals.get("checked_clean", 0) == totals["cuts"], totals)
        t.check("%s: trims were sent" % name, totals["trims"] > 0, totals)
    h.shutdown()
    t.check("%s: SIGTERM: exit 0" % name, d.stop() == 0, d.log_text()[-2000:])
fs.stop()
print("total %.1f s, seed %d" % (time.monotonic() - start, SEED))
t.finish()
