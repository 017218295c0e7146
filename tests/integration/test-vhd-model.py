#!/usr/bin/python3
"""Random reads, writes, trims and zeroes over NBD against an in-memory
model on a three-deep chain (raw base <- differencing mid <- leaves made
by live snapshots), with snapshots taken while writes are in flight; the
data then outlives a restart on the leaf and vdisk-img check is clean.
Writes and zeroes start and end at any byte (read-modify-writes of
partial sectors), also in concurrent batches that share sectors but not
bytes.  TRIM on a differencing image keeps the data (documented); on a
dynamic image (no parent) the trimmed sectors read as zeroes, block
status calls them holes, and that outlives a restart.
Then fio --verify writes across a snapshot and verifies after it, and a
kill -9 cut: writes acknowledged before a completed FLUSH read back, the
image opens without repair and checks clean."""
import atexit, os, random, signal, subprocess, sys, tempfile, time
try:
    import nbd
except ImportError:
    print("SKIP: python3 nbd module missing"); sys.exit(77)

BUILD = os.environ.get("TESTS_BUILD", "build/tests")
VDISKD = os.environ["VDISKD"]; VDISKCTL = os.environ["VDISKCTL"]
VIMG = os.path.join(os.path.dirname(VDISKD), "vdisk-img")
T = tempfile.mkdtemp(dir=os.environ.get("TESTS_TMP", "/tmp"), prefix="test-vhd-model.")
SIZE = 24 << 20
failures = 0

def check(desc, ok):
    global failures
    print(("ok: " if ok else "NOT OK: ") + desc)
    failures += not ok

class Daemon:
    def __init__(self, image, *args):
        self.sock, self.ctl = T + "/d.nbd", T + "/d.ctl"
        for p in (self.sock, self.ctl):
            if os.path.exists(p): os.unlink(p)
        self.log = open(T + "/vdiskd.log", "a")
        self.p = subprocess.Popen([VDISKD, "-f", "-l", "unix:" + self.sock, "-c", self.ctl,
                                   *args, image], stdout=subprocess.DEVNULL, stderr=self.log)
        # A failed check exits early: never leave a daemon behind.
        atexit.register(lambda p=self.p: p.poll() is None and p.kill())
        for _ in range(200):
            if os.path.exists(self.ctl) and os.path.exists(self.sock): break
            if self.p.poll() is not None: raise SystemExit("vdiskd exited")
            time.sleep(0.05)
        time.sleep(0.1)
    def ctl_cmd(self, *a):
        return subprocess.run([VDISKCTL, "-s", self.ctl, *a], capture_output=True, text=True)
    def stop(self, sig=signal.SIGTERM):
        self.p.send_signal(sig)
        return self.p.wait(20)

rnd = random.Random(4242)
base = T + "/base.raw"
model = bytearray(rnd.randbytes(SIZE))
open(base, "wb").write(model)
mid = T + "/mid.vhd"
subprocess.run([VIMG, "create", "-b", base, mid], check=True)
d = Daemon(mid)
h = nbd.NBD(); h.connect_unix(d.sock)
check("size is the base's", h.get_size() == SIZE)

def verify(what):
    bad = 0
    for off in range(0, SIZE, 1 << 20):
        got = h.pread(1 << 20, off)
        for s in range(0, 1 << 20, 512):
            if got[s:s + 512] != model[off + s:off + s + 512]:
                bad += 1
    check(what + " (%d bad sectors)" % bad, bad == 0)

leaves = []
errors = []
def done(err):
    # err is a list [errno]; returning 1 retires the command.
    e = err.value if hasattr(err, "value") else err[0]
    if e:
        errors.append(e)
    return 1
def drain():
    while h.aio_in_flight() > 0:
        h.poll(-1)

def one_op(i, pending):
    off = rnd.randrange(SIZE // 512) * 512
    n = min(rnd.randrange(1, 512) * 512, SIZE - off)
    if rnd.randrange(3) == 0:
        # Any byte: partial sectors at one or both ends.
        off = min(off + rnd.randrange(512), SIZE - 1)
        n = min(rnd.choice((1, 3, 100, 511, 513, 4097, n)), SIZE - off)
    k = rnd.randrange(10)
    if k < 5:
        data = rnd.randbytes(n)
        flags = nbd.CMD_FLAG_FUA if rnd.randrange(8) == 0 else 0
        h.aio_pwrite(data, off, completion=done, flags=flags)
        model[off:off + n] = data
    elif k < 6:
        h.aio_zero(n, off, completion=done)
        model[off:off + n] = bytes(n)
    elif k < 7:
        # A differencing image keeps trimmed data: the model stays exact.
        h.aio_trim(n, off, completion=done)
    elif k < 8:
        h.aio_flush(completion=done)
    else:
        got = h.pread(n, off)
        if got != bytes(model[off:off + n]):
            raise SystemExit("read mismatch at %d+%d" % (off, n))

t0 = time.time()
def shared_sector_batch():
    """Writes in flight at once that share sectors but no byte: a
    read-modify-write that let another write into its sectors in between
    would lose that write's bytes."""
    base_off = rnd.randrange(SIZE // 512 - 64) * 512 + rnd.randrange(512)
    pos = base_off
    for j in range(rnd.randrange(4, 24)):
        n = rnd.choice((1, 2, 7, 61, 200, 512, 700, 1500))
        if pos + n > SIZE:
            break
        if rnd.randrange(6) == 0:
            h.aio_zero(n, pos, completion=done)
            model[pos:pos + n] = bytes(n)
        else:
            data = rnd.randbytes(n)
            h.aio_pwrite(data, pos, completion=done)
            model[pos:pos + n] = data
        pos += n + rnd.choice((0, 0, 1, 5))
    drain()
    got = h.pread(pos - base_off, base_off)
    if got != bytes(model[base_off:pos]):
        raise SystemExit("shared-sector batch at %d+%d lost data" % (base_off, pos - base_off))

for rnd_batch in range(3):
    for i in range(150):
        pending = []
        one_op(i, pending)
        drain()
        if i % 10 == 0:
            shared_sector_batch()
    # A snapshot while writes are in flight.
    leaf = T + "/leaf%d.vhd" % rnd_batch
    inflight = []
    for j in range(8):
        off = (j * (SIZE // 8)) // 512 * 512
        data = rnd.randbytes(64 << 10)
        h.aio_pwrite(data, off, completion=done)
        model[off:off + len(data)] = data
    snap = subprocess.Popen([VDISKCTL, "-s", d.ctl, "snapshot", leaf],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while snap.poll() is None or h.aio_in_flight() > 0:
        h.poll(0)
        time.sleep(0.001)
    check("snapshot %d while writes were in flight" % rnd_batch, snap.returncode == 0)
    check("no request failed", not errors)
    leaves.append(leaf)
    verify("after snapshot %d, the chain reads the model" % rnd_batch)
info = d.ctl_cmd("info").stdout
check("info shows the chain", leaves[-1] in info and mid in info and "base.raw" in info)
h.flush(); h.shutdown()
check("SIGTERM: exit 0", d.stop() == 0)
check("vdisk-img check: the leaf is clean",
      subprocess.run([VIMG, "check", leaves[-1]], capture_output=True).returncode == 0)
d = Daemon(leaves[-1])
h = nbd.NBD(); h.connect_unix(d.sock)
verify("restarted on the leaf: the data is all there")
h.shutdown(); d.stop()
print("model part: %.1f s" % (time.time() - t0))

# A dynamic image (no parent): trimmed sectors read as zeroes, block
# status says holes, and it survives a restart; writes at any byte.
img = T + "/trim.vhd"
subprocess.run([VIMG, "create", "--block-size", "512K", img, "8M"], check=True)
d = Daemon(img)
h = nbd.NBD(); h.add_meta_context("base:allocation"); h.connect_unix(d.sock)
DSIZE = 8 << 20
dmodel = bytearray(DSIZE)
trimmed = []
for i in range(300):
    off = rnd.randrange(DSIZE - 1)
    n = min(rnd.randrange(1, 1 << 18), DSIZE - off)
    k = rnd.randrange(5)
    if k < 3:
        data = rnd.randbytes(n)
        h.pwrite(data, off)
        dmodel[off:off + n] = data
    elif k < 4:
        if rnd.randrange(2):
            off, n = off // (512 << 10) * (512 << 10), (512 << 10) * rnd.randrange(1, 3)
            n = min(n, DSIZE - off)
        h.trim(n, off)
        a, z = (off + 511) // 512 * 512, (off + n) // 512 * 512
        if a < z:
            dmodel[a:z] = bytes(z - a)
            trimmed.append((a, z))
    else:
        check_at = rnd.randrange(DSIZE - n + 1)
        if h.pread(n, check_at) != bytes(dmodel[check_at:check_at + n]):
            raise SystemExit("dynamic image: read mismatch at %d+%d" % (check_at, n))
check("dynamic image: trims read as zeroes, writes at any byte read back",
      h.pread(DSIZE, 0) == bytes(dmodel))
# Block status: the last trims' ranges are holes unless written since.
holes = []
def bs_cb(meta, off, entries, err):
    if meta == "base:allocation":
        for j in range(0, len(entries), 2):
            holes.append((off, entries[j], entries[j + 1]))
            off += entries[j]
    return 0
h.trim(1 << 20, 2 << 20)
dmodel[2 << 20:3 << 20] = bytes(1 << 20)
h.block_status(1 << 20, 2 << 20, bs_cb)
check("dynamic image: block status calls a trimmed MiB a hole",
      holes and all(f & nbd.STATE_HOLE for _, _, f in holes) and
      sum(l for _, l, _ in holes) == 1 << 20)
h.flush(); h.shutdown()
check("dynamic image: SIGTERM: exit 0", d.stop() == 0)
check("dynamic image: vdisk-img check clean after trims",
      subprocess.run([VIMG, "check", img], capture_output=True).returncode == 0)
d = Daemon(img)
h = nbd.NBD(); h.connect_unix(d.sock)
check("dynamic image: restarted, the trims and writes read back",
      h.pread(DSIZE, 0) == bytes(dmodel))
h.shutdown(); d.stop()

# fio --verify across a snapshot.
fio_ok = subprocess.run("fio --enghelp 2>/dev/null | grep -qw nbd", shell=True).returncode == 0
if fio_ok:
    img = T + "/fio.vhd"
    subprocess.run([VIMG, "create", img, "64M"], check=True)
    d = Daemon(img)
    uri = "nbd+unix:///?socket=" + d.sock
    common = ["fio", "--ioengine=nbd", "--uri=" + uri, "--size=32M", "--iodepth=16",
              "--verify=crc32c", "--verify_fatal=1", "--minimal", "--name=w",
              "--rw=randwrite", "--bsrange=4k-64k", "--directory=" + T]
    w = subprocess.Popen(common + ["--do_verify=0", "--io_size=48M"], cwd=T,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    s = d.ctl_cmd("snapshot", T + "/fio-snap.vhd")
    check("snapshot while fio writes", s.returncode == 0)
    check("fio writes across the snapshot", w.wait(60) == 0)
    v = subprocess.run(common + ["--verify_only"], cwd=T, capture_output=True, timeout=60)
    check("fio --verify after the snapshot", v.returncode == 0)
    d.stop()
else:
    print("fio has no nbd engine: fio part not run")

# kill -9: FLUSHed writes survive, the image opens, check is clean.
img = T + "/crash.vhd"
subprocess.run([VIMG, "create", "--block-size", "512K", img, "16M"], check=True)
cmodel = bytearray(16 << 20)
for cut in range(6):
    d = Daemon(img)
    h = nbd.NBD(); h.connect_unix(d.sock)
    durable = bytearray(cmodel)
    racy = set()        # pages of writes left in flight: old or new
    for i in range(rnd.randrange(50, 400)):
        off = rnd.randrange((16 << 20) // 4096) * 4096
        data = rnd.randbytes(4096 * rnd.randrange(1, 8))
        data = data[:(16 << 20) - off]
        fua = rnd.randrange(10) == 0
        h.pwrite(data, off, nbd.CMD_FLAG_FUA if fua else 0)
        cmodel[off:off + len(data)] = data
        if fua:
            durable[off:off + len(data)] = data
        if rnd.randrange(40) == 0:
            h.flush(); durable[:] = cmodel
        # Some in flight when the cut comes.
        if i > 30 and rnd.randrange(8) == 0:
            page = rnd.randrange(4096)
            racy.add(page)
            h.aio_pwrite(rnd.randbytes(4096), page * 4096, completion=done)
    d.p.send_signal(signal.SIGKILL); d.p.wait()
    try: h.shutdown()
    except Exception: pass
    # What was not flushed may be old or new: take the disk's view as the
    # model from here, after checking that what was durable is.
    c = subprocess.run([VIMG, "check", img], capture_output=True, text=True)
    check("cut %d: vdisk-img check clean" % cut, c.returncode == 0)
    d = Daemon(img)
    h = nbd.NBD(); h.connect_unix(d.sock)
    got = h.pread(16 << 20, 0)
    bad = sum(1 for s in range(0, 16 << 20, 4096)
              if s // 4096 not in racy and durable[s:s + 4096] == cmodel[s:s + 4096]
              and got[s:s + 4096] != durable[s:s + 4096])
    check("cut %d: opens, flushed and FUA writes read back (%d bad pages)" % (cut, bad), bad == 0)
    cmodel[:] = got
    h.shutdown(); d.stop()
# kill -9 right after writes into new blocks, no FLUSH since: the end
# footer is still the file's last sector (a grow put it there before the
# blocks were placed), so check is clean and the flushed data reads back.
img = T + "/grow.vhd"
subprocess.run([VIMG, "create", img, "64M"], check=True)
d = Daemon(img)
h = nbd.NBD(); h.connect_unix(d.sock)
h.pwrite(b"x" * 4096, 8 << 20); h.flush()
for i in range(4):
    h.pwrite(b"y" * 4096, (20 + 8 * i) << 20)
d.p.send_signal(signal.SIGKILL); d.p.wait()
c = subprocess.run([VIMG, "check", img], capture_output=True, text=True)
check("kill -9 after unflushed allocations: vdisk-img check clean (%s)" % c.stdout.strip(),
      c.returncode == 0)
d = Daemon(img)
h = nbd.NBD(); h.connect_unix(d.sock)
check("... and the flushed write reads back", h.pread(4096, 8 << 20) == b"x" * 4096)
h.shutdown(); d.stop()
sz = os.path.getsize(img)
check("a clean exit cuts the file back to its blocks (%d bytes)" % sz, sz < 16 << 20)
c = subprocess.run([VIMG, "check", img], capture_output=True, text=True)
check("... and it checks clean", c.returncode == 0)
print("%d failed" % failures)
sys.exit(1 if failures else 0)
