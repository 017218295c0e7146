"""The per-stage latency breakdown in `stats` (docs/performance.md): every
stage counts the requests that went through it, its p50 is at most its
p99, the whole (total) is no shorter than a part (vbd), io_submit calls
are counted once each, a driver without the queue (ram) leaves the queue's
stages empty, and the poll window (--poll-us) is off unless asked for.
`vdiskctl stats` prints the stage table.  Under O_DIRECT the submit
thread follows the main thread to its CPU by default (pinned to one CPU,
moves counted); it keeps every CPU with --submit-cpu free, and with
buffered I/O (--cache writeback), where io_submit does the copy.  Those
O_DIRECT parts need a filesystem under TESTS_TMP that takes O_DIRECT:
without one the rest runs and the test exits 77."""


import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import Checks, Daemon, MiB, direct_ok, skip  # noqa: E402

try:
    import nbd
except ImportError:
    skip("python3-libnbd is not installed (run with /usr/bin/python3)")

STAGES = ("recv", "queue", "submit", "device", "vbd", "reply", "total")
t = Checks()
tmp = os.environ.get("TESTS_TMP") or "/tmp"


def load(d, reads=300, writes=200, depth=16):
    """reads + writes 4 KiB requests, depth at a time, then one flush."""
    h = nbd.NBD()
    h.connect_uri("nbd+unix:///disk?socket=" + d.sock)
    buf = nbd.Buffer(4096)
    ops = ["r"] * reads + ["w"] * writes
    errors = []

    def done(err):
        if err.value:
            errors.append(err.value)
        return 1	# retire the command

    for i, op in enumerate(ops):
        off = (i * 7919 % 2048) * 4096
        if op == "r":
            h.aio_pread(buf, off, completion=done)
        else:
            h.aio_pwrite(buf, off, completion=done)
        while h.aio_in_flight() >= depth:
            h.poll(-1)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    t.check("%d requests without an error" % len(ops), not errors, str(errors[:5]))
    h.flush()
    h.shutdown()
    return len(ops) + 1


def submit_cpus(d):
    """The CPUs the daemon's vdiskd-submit thread may run on."""
    task = "/proc/%d/task" % d.proc.pid
    for tid in os.listdir(task):
        with open(os.path.join(task, tid, "comm")) as f:
            if f.read().strip() == "vdiskd-submit":
                return os.sched_getaffinity(int(tid))
    return None


def placement(label, d, follows):
    """Checks where d's submit thread may run after some I/O."""
    s = d.stats()
    cpus, allowed = submit_cpus(d), os.sched_getaffinity(d.proc.pid)
    if follows:
        t.check("%s: the submit thread followed the main thread (moves >= 1)" % label,
                s.get("submit_moves", 0) >= 1, str(s.get("submit_moves")))
        t.check("%s: the submit thread is on one CPU the daemon may use" % label,
                cpus is not None and len(cpus) == 1 and cpus <= allowed,
                "%s of %s" % (cpus, allowed))
    else:
        t.check("%s: no moves" % label, s.get("submit_moves") == 0, str(s.get("submit_moves")))
        t.check("%s: the submit thread keeps every CPU" % label, cpus == allowed,
                "%s vs %s" % (cpus, allowed))


def check_stages(label, s, n, queued):
    for st in STAGES:
        c = s.get("stage_%s_count" % st)
        p50, p99 = s.get("stage_%s_p50_us" % st), s.get("stage_%s_p99_us" % st)
        t.check("%s: stage %s reported" % (label, st), c is not None and p50 is not None
                and p99 is not None, str(s))
        if c is None:
            continue
        t.check("%s: %s p50 <= p99" % (label, st), p50 <= p99, "%s %s" % (p50, p99))
        if st in ("queue", "device"):
            want = n if queued else 0
            t.check("%s: %s counted every request (%d)" % (label, st, c),
                    c >= want if queued else c == 0, "want %s" % want)
        elif st == "submit":
            t.check("%s: submit counts io_submit calls" % label,
                    c == s["io_submit_calls"] and (c > 0) == queued,
                    "%d vs %d" % (c, s["io_submit_calls"]))
        else:
            t.check("%s: %s counted every request (%d >= %d)" % (label, st, c, n), c >= n)
    t.check("%s: total p99 >= vbd p50" % label,
            s["stage_total_p99_us"] >= s["stage_vbd_p50_us"], str(s))
    t.check("%s: vbd stage counts every op" % label,
            s["stage_vbd_count"] == s["reads"] + s["writes"] + s["flushes"],
            "%d vs %d" % (s["stage_vbd_count"], s["reads"] + s["writes"] + s["flushes"]))


img = os.path.join(tmp, "stages.img")
with open(img, "wb") as f:
    f.truncate(16 * MiB)
d = Daemon("--cache", "writeback", img, name="disk")
n = load(d)
s = d.stats()
check_stages("raw", s, n, True)
t.check("raw: no poll window by default", s.get("submit_polled") == 0, str(s.get("submit_polled")))
t.check("raw: a sleeping submit thread was woken", s.get("submit_wakeups", 0) > 0)
placement("buffered", d, False)
out = subprocess.run([os.environ.get("VDISKCTL", "build/vdiskctl"), "-s", d.ctl, "stats"],
                     capture_output=True, text=True)
t.check("vdiskctl stats prints the stage table",
        out.returncode == 0 and "stage" in out.stdout and "  device" in out.stdout
        and "  total" in out.stdout, out.stdout + out.stderr)
t.check("vdiskctl stats hides the raw stage keys",
        "stage_device_p50_us" not in out.stdout, out.stdout)
d.stop()

d = Daemon("-d", "ram", "16M", name="disk")
n = load(d)
check_stages("ram", d.stats(), n, False)
d.stop()

# O_DIRECT: the submit thread follows by default; --submit-cpu free
# leaves it to the scheduler.
no_direct = not direct_ok(os.path.join(tmp, "stages.direct"))
if not no_direct:
    d = Daemon("--cache", "none", img, name="disk")
    load(d)
    placement("O_DIRECT", d, True)
    d.stop()
    d = Daemon("--cache", "none", "--submit-cpu", "free", img, name="disk")
    load(d)
    placement("O_DIRECT, free", d, False)
    d.stop()

# The poll window: a busy submit thread finds some batches by spinning.
d = Daemon("--cache", "writeback", "--poll-us", "500", img, name="disk")
n = load(d, reads=2000, writes=0, depth=32)
s = d.stats()
check_stages("poll", s, n, True)
t.check("poll: batches found by the poll window or by a wake",
        s["submit_polled"] + s["submit_wakeups"] > 0, str(s))
d.stop()
os.unlink(img)
if no_direct and t.failed == 0:
    print("%d checks passed; SKIP: the submit thread's placement under O_DIRECT:"
          " %s does not take O_DIRECT" % (t.passed, tmp))
    sys.exit(77)
t.finish()
