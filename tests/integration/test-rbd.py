"""The rbd driver on a real one-node Ceph cluster (tests/lib/ceph-cluster.sh):

 * qemu-img convert into vdiskd, rbd export out, byte for byte the source;
 * fio --verify with two connections (multi-conn);
 * a live snapshot (vdiskctl snapshot) under stamped writes: rbd export of
   the snapshot holds, in every block, a whole write that was sent before
   the snapshot answered, and nothing older than what was acknowledged
   before it was asked for;
 * --cache none: an acknowledged write is in the cluster at once;
   --cache writeback: librbd's cache holds even the first write until a
   flush (rbd export by a second client does not see it), FUA and FLUSH
   put acknowledged data in the cluster, there after kill -9 of vdiskd;
 * a second vdiskd on the same image is refused (exit 1), --read-only is
   not; a snapshot is served read-only; info names pool, image, features,
   snapshots;
 * bad input: malformed specs, missing pool/image/snapshot, an
   unreachable monitor: exit 1 with a message naming what is wrong;
 * the OSD stopped mid-run (bluestore, so the data survives): requests
   wait, or fail after --ceph-op-timeout; vdiskd does not crash and
   serves again when the OSD is back.

Skips (exit 77) only when the cluster cannot start on this machine."""

import atexit
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import Checks, Daemon, MiB, skip, thread_names  # noqa: E402

try:
    import nbd
except ImportError:
    skip("python3-libnbd is not installed (run with /usr/bin/python3)")

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER = os.path.join(HERE, "..", "lib", "ceph-cluster.sh")
VDISKD = os.environ.get("VDISKD", "build/vdiskd")
VDISKCTL = os.environ.get("VDISKCTL", "build/vdiskctl")
for tool in ("qemu-img", "fio", "rbd"):
    if not shutil.which(tool):
        skip("%s is not installed (scripts/deps.sh --test)" % tool)

top = tempfile.mkdtemp(prefix="rbd.", dir=os.environ.get("TESTS_TMP") or None)
t = Checks()
clusters = []


def cluster_start(name, store):
    d = os.path.join(top, name)
    r = subprocess.run([CLUSTER, "start", d, store], capture_output=True, text=True)
    if r.returncode == 77:
        skip(r.stdout.strip() or "the ceph cluster cannot start here")
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        raise SystemExit("ceph-cluster.sh start failed (%d)" % r.returncode)
    clusters.append(d)
    return d


@atexit.register
def _stop_clusters():
    for d in clusters:
        subprocess.run([CLUSTER, "stop", d], capture_output=True)


def rbd(conf, *args, check=True):
    r = subprocess.run(["rbd", "-c", conf] + list(args), capture_output=True)
    if check and r.returncode != 0:
        raise RuntimeError("rbd %s: %s" % (" ".join(args), r.stderr.decode()))
    return r


def export(conf, spec):
    out = os.path.join(top, "export.img")
    if os.path.exists(out):
        os.unlink(out)
    rbd(conf, "export", spec, out)
    with open(out, "rb") as f:
        return f.read()


def ctl(d, *args):
    return subprocess.run([VDISKCTL, "-s", d.ctl] + list(args),
                          capture_output=True, text=True, timeout=60)


def uri(d):
    return "nbd+unix:///?socket=" + d.sock


def connect(d):
    h = nbd.NBD()
    h.connect_uri(uri(d))
    return h


def vdiskd_fails(conf, *args, timeout=30):
    """vdiskd that must exit 1: returns (rc, its messages)."""
    sock = os.path.join(top, "bad.nbd")
    r = subprocess.run([VDISKD, "-f", "-l", "unix:" + sock, "-c",
                        os.path.join(top, "bad.ctl"), "--ceph-conf", conf] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stderr


t0 = time.monotonic()
conf = os.path.join(cluster_start("mem", "memstore"), "ceph.conf")
print("cluster up in %.1f s" % (time.monotonic() - t0))
SIZE = 64 * MiB

# ---- qemu-img convert in, rbd export out ----
rbd(conf, "create", "--size", "64M", "rbd/img")
src = os.path.join(top, "src.img")
with open(src, "wb") as f:
    f.write(os.urandom(SIZE // 2))
    f.write(b"\0" * (SIZE // 4))
    f.write(os.urandom(SIZE // 4))
d = Daemon("--ceph-conf", conf, "rbd:rbd/img", name="img")
r = subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, uri(d)],
                   capture_output=True, text=True)
t.check("qemu-img convert into vdiskd", r.returncode == 0, r.stderr)
with open(src, "rb") as f:
    want = f.read()
t.check("rbd export equals the source", export(conf, "rbd/img") == want)
r = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", src, uri(d)],
                   capture_output=True, text=True)
t.check("reads through vdiskd equal the source", r.returncode == 0, r.stdout + r.stderr)

# ---- block status, trim, zeroes ----
h = connect(d)
h.trim(4 * MiB, 0)
h.zero(1 * MiB, 8 * MiB)
t.check("trim and write zeroes read back as zeroes",
        h.pread(4 * MiB, 0) == b"\0" * (4 * MiB) and h.pread(1 * MiB, 8 * MiB) == b"\0" * MiB)
h.shutdown()
want = b"\0" * (4 * MiB) + want[4 * MiB:8 * MiB] + b"\0" * MiB + want[9 * MiB:]

# ---- info, second daemon, read-only ----
info = json.loads(ctl(d, "--json", "info").stdout)
ri = info.get("rbd", {})
t.check("info names pool, image, object size, features",
        ri.get("pool") == "rbd" and ri.get("image") == "img" and
        ri.get("object_size") == 4 * MiB and "exclusive-lock" in ri.get("features", "") and
        ri.get("exclusive_lock") == "held", json.dumps(info))
comms = sorted(thread_names(d.proc.pid).values())
t.check("the driver's submit thread is named vdiskd-rbd", "vdiskd-rbd" in comms,
        " ".join(comms))
rc, err = vdiskd_fails(conf, "-n", "img2", "rbd:rbd/img")
t.check("a second vdiskd on the image is refused", rc == 1 and "exclusive lock" in err, err)
ro = Daemon("--ceph-conf", conf, "-r", "rbd:rbd/img", name="img-ro")
h = connect(ro)
t.check("a read-only second vdiskd serves it", h.is_read_only() and
        h.pread(MiB, 20 * MiB) == want[20 * MiB:21 * MiB])
h.shutdown()
ro.stop()

# ---- fio --verify, two connections ----
fio = subprocess.run(["fio", "--name=verify", "--ioengine=nbd", "--uri=" + uri(d),
                      "--rw=randwrite", "--bs=4k", "--bssplit=4k/60:64k/30:1m/10",
                      "--iodepth=16", "--numjobs=2", "--size=16M",
                      "--offset_increment=16M", "--verify=crc32c", "--do_verify=1",
                      "--verify_fatal=1", "--verify_state_save=0", "--group_reporting"],
                     capture_output=True, text=True, timeout=240)
t.check("fio --verify with two connections", fio.returncode == 0,
        fio.stdout[-2000:] + fio.stderr[-2000:])

# ---- a live snapshot under writes ----
BLK = 64 * 1024
NBLK = 256               # 16 MiB at 48 MiB
BASE = 48 * MiB


def stamp(blk, gen):
    return struct.pack("<QQ", blk, gen) * (BLK // 16)


h = connect(d)
for b in range(NBLK):
    h.aio_pwrite(stamp(b, 0), BASE + b * BLK)
    while h.aio_in_flight() > 32:
        h.poll(-1)
while h.aio_in_flight():
    h.poll(-1)
h.flush()
acked = [0] * NBLK       # highest gen acknowledged, per block
sent = [0] * NBLK        # highest gen sent
state = {"stop": False, "snap_asked": None, "snap_answered": None, "gen": 0}
lock = threading.Lock()


def writer():
    import random
    rnd = random.Random(1)
    while not state["stop"]:
        b = rnd.randrange(NBLK)
        with lock:
            state["gen"] += 1
            g = state["gen"]
            if sent[b] > acked[b]:      # one write per block in flight
                continue
            sent[b] = g

        def done(err, b=b, g=g):
            with lock:
                acked[b] = max(acked[b], g)
            return 1
        h.aio_pwrite(stamp(b, g), BASE + b * BLK, completion=done)
        while h.aio_in_flight() > 16:
            h.poll(-1)
    while h.aio_in_flight():
        h.poll(-1)


wt = threading.Thread(target=writer)
wt.start()
time.sleep(1.0)
with lock:
    before = list(acked)     # acknowledged before the snapshot was asked for
r = ctl(d, "snapshot", "snap1")
with lock:
    after = list(sent)       # sent before the snapshot answered
time.sleep(0.5)
state["stop"] = True
wt.join()
h.shutdown()
t.check("vdiskctl snapshot snap1", r.returncode == 0 and "snap1" in r.stdout,
        r.stdout + r.stderr)
snap = export(conf, "rbd/img@snap1")
bad = []
for b in range(NBLK):
    blk = snap[BASE + b * BLK:BASE + (b + 1) * BLK]
    sb, sg = struct.unpack("<QQ", blk[:16])
    if blk != stamp(b, sg) or sb != b or not before[b] <= sg <= after[b]:
        bad.append((b, sg, before[b], after[b]))
t.check("the snapshot holds every block before or after, whole (%d writes)" % state["gen"],
        not bad, "bad blocks (blk, gen, acked-before, sent-before): %s" % bad[:8])
info = json.loads(ctl(d, "--json", "info").stdout)
t.check("info lists the snapshot", info.get("rbd", {}).get("snapshots") == ["snap1"],
        json.dumps(info.get("rbd")))
sd = Daemon("--ceph-conf", conf, "-d", "rbd", "rbd/img@snap1", name="snap")
h = connect(sd)
t.check("a snapshot is served read-only", h.is_read_only() and
        h.pread(BLK, BASE) == snap[BASE:BASE + BLK])
h.shutdown()
sd.stop()
# reopen while paused: the new instance takes the exclusive lock over
r1 = ctl(d, "pause")
r2 = ctl(d, "reopen")
r3 = ctl(d, "resume")
h = connect(d)
t.check("pause, reopen, resume keep serving (and the lock)",
        r1.returncode == r2.returncode == r3.returncode == 0 and
        h.pread(BLK, 40 * MiB) == want[40 * MiB:40 * MiB + BLK] and
        json.loads(ctl(d, "--json", "info").stdout)["rbd"]["exclusive_lock"] == "held",
        r1.stderr + r2.stderr + r3.stderr)
h.shutdown()
rc, err = vdiskd_fails(conf, "-n", "img3", "rbd:rbd/img")
t.check("after the reopen a second vdiskd is still refused", rc == 1, err)
t.check("vdiskd exits 0 on SIGTERM", d.stop() == 0, d.log_text()[-2000:])

# ---- --cache none: librbd's cache is off, an acknowledged write is in the cluster ----
rbd(conf, "create", "--size", "16M", "rbd/nocache")
d = Daemon("--ceph-conf", conf, "--cache", "none", "rbd:rbd/nocache", name="nocache")
h = connect(d)
plain = os.urandom(MiB)
h.pwrite(plain, 2 * MiB)
t.check("--cache none: an unflushed write is in rbd export at once",
        export(conf, "rbd/nocache")[2 * MiB:3 * MiB] == plain)
h.shutdown()
d.stop()

# ---- --cache writeback: librbd's cache acknowledges writes; FUA and FLUSH survive kill -9 ----
# librbd's writearound cache acknowledges a write before the OSD has it:
# with the OSD frozen (SIGSTOP) the first write, unflushed, still
# completes (no writethrough until the first flush), a FUA write does not.
mdir = os.path.dirname(conf)
with open(os.path.join(mdir, "run", "osd.0.pid")) as f:
    osd_pid = int(f.read())
rbd(conf, "create", "--size", "16M", "rbd/dur")
d = Daemon("--ceph-conf", conf, "--cache", "writeback", "rbd:rbd/dur", name="dur")
h = connect(d)
h.pwrite(bytes(4096), 15 * MiB)        # the image's lock and header are settled
cached = os.urandom(MiB)


def wait_cookie(h, cookie, seconds):
    """True once the command completed (and retired it), False after seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if h.aio_command_completed(cookie):
            return True
        h.poll(100)
    return False


os.kill(osd_pid, signal.SIGSTOP)
try:
    c = h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(cached)), 8 * MiB)
    acked = wait_cookie(h, c, 5)
    fc = h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(4096)), 14 * MiB,
                      flags=nbd.CMD_FLAG_FUA)
    fua_early = wait_cookie(h, fc, 1.5)
finally:
    os.kill(osd_pid, signal.SIGCONT)
t.check("--cache writeback: the first write, unflushed, is acknowledged with the OSD "
        "frozen (from librbd's cache: no writethrough until the first flush)", acked)
t.check("--cache writeback: a FUA write is not acknowledged while the OSD is frozen",
        not fua_early)
t.check("both complete once the OSD runs again",
        (acked or wait_cookie(h, c, 30)) and (fua_early or wait_cookie(h, fc, 30)))
fua = os.urandom(MiB)
h.pwrite(fua, 0, nbd.CMD_FLAG_FUA)
img = export(conf, "rbd/dur")
t.check("a FUA write is in the cluster when acknowledged (read by a second client)",
        img[:MiB] == fua)
flushed = os.urandom(2 * MiB)
h.pwrite(flushed, 4 * MiB)
h.flush()
img = export(conf, "rbd/dur")
t.check("after FLUSH a second client reads every write acknowledged before it",
        img[4 * MiB:6 * MiB] == flushed and img[8 * MiB:9 * MiB] == cached)
last = os.urandom(MiB)
h.pwrite(last, 12 * MiB)
h.flush()
d.kill()
img = export(conf, "rbd/dur")
t.check("a FUA write is in rbd export after kill -9", img[:MiB] == fua)
t.check("flushed writes are in rbd export after kill -9",
        img[4 * MiB:6 * MiB] == flushed and img[12 * MiB:13 * MiB] == last)

# ---- bad input ----
for spec, what in (("/", "empty pool"), ("a/", "empty image"), ("a/b@", "empty snapshot"),
                   ("rbd/" + "x" * 10240, "longer than"), ("x" * 10240 + "/i", "longer than"),
                   ("nopool/img", "no pool 'nopool'"), ("rbd/noimg", "no image 'noimg'"),
                   ("rbd/img@nosnap", "no snapshot 'nosnap'")):
    rc, err = vdiskd_fails(conf, "-d", "rbd", spec)
    t.check("%.30s: exit 1, '%s'" % (spec, what), rc == 1 and what in err, err[-500:])
badconf = os.path.join(top, "unreachable.conf")
with open(badconf, "w") as f:
    f.write("[global]\nmon host = v2:127.0.0.1:9\nauth client required = none\n")
start = time.monotonic()
rc, err = vdiskd_fails(badconf, "--ceph-timeout", "3", "rbd:rbd/img")
t.check("an unreachable monitor: exit 1 within the timeout",
        rc == 1 and "no answer from the cluster" in err and time.monotonic() - start < 15, err)
print("memstore part done at %.1f s" % (time.monotonic() - t0))
subprocess.run([CLUSTER, "stop", clusters.pop()], capture_output=True)

# ---- the OSD stops mid-run (bluestore keeps the data) ----
bdir = cluster_start("blue", "bluestore")
conf = os.path.join(bdir, "ceph.conf")
rbd(conf, "create", "--size", "16M", "rbd/wait")
rbd(conf, "create", "--size", "16M", "rbd/tmo")
dw = Daemon("--ceph-conf", conf, "rbd:rbd/wait", name="wait")
dt = Daemon("--ceph-conf", conf, "--ceph-op-timeout", "3", "rbd:rbd/tmo", name="tmo")
hw, ht = connect(dw), connect(dt)
data = os.urandom(MiB)
hw.pwrite(data, 0)
ht.pwrite(data, 0)
subprocess.run([CLUSTER, "osd-stop", bdir], check=True)
res = {}


def waiting_write():
    try:
        hw.pwrite(data, 2 * MiB, nbd.CMD_FLAG_FUA)
        res["wait"] = "ok"
    except nbd.Error as e:
        res["wait"] = str(e)


def timing_out_write():
    start = time.monotonic()
    try:
        ht.pwrite(data, 2 * MiB, nbd.CMD_FLAG_FUA)
        res["tmo"] = "ok"
    except nbd.Error as e:
        res["tmo"] = "error: %s" % e
    res["tmo_s"] = time.monotonic() - start


tw = threading.Thread(target=waiting_write)
tt = threading.Thread(target=timing_out_write)
tw.start()
tt.start()
tt.join(30)
t.check("with --ceph-op-timeout 3 a write fails while the OSD is down",
        res.get("tmo", "").startswith("error") and 2 <= res.get("tmo_s", 0) < 20, str(res))
t.check("without it a write waits while the OSD is down", tw.is_alive() and "wait" not in res,
        str(res))
t.check("both daemons are alive with the OSD down", dw.alive() and dt.alive())
stats = dw.stats()
t.check("stats show the waiting request in flight", stats.get("inflight", 0) >= 1, str(stats))
subprocess.run([CLUSTER, "osd-start", bdir], check=True)
tw.join(60)
t.check("the waiting write completes once the OSD is back", res.get("wait") == "ok", str(res))
t.check("its data is there", hw.pread(MiB, 2 * MiB) == data)
ok = False
for _ in range(30):      # the timed-out client may need a moment
    try:
        ht.pwrite(data, 4 * MiB, nbd.CMD_FLAG_FUA)
        ok = ht.pread(MiB, 4 * MiB) == data
        break
    except nbd.Error:
        time.sleep(1)
t.check("the daemon with --ceph-op-timeout serves again", ok)
hw.shutdown()
ht.shutdown()
t.check("both exit 0 on SIGTERM", dw.stop() == 0 and dt.stop() == 0,
        dw.log_text()[-1500:] + dt.log_text()[-1500:])
img = export(conf, "rbd/wait")
t.check("rbd export after the OSD restart holds the writes",
        img[:MiB] == data and img[2 * MiB:3 * MiB] == data)
print("done at %.1f s" % (time.monotonic() - t0))
t.finish()
