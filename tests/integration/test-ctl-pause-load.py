"""Pause under load: fio writes and verifies through NBD while the disk
is paused and resumed 100 times.  While paused nothing is in flight and
no request reaches the driver (the counters stand still); requests that
arrive are held, not failed; fio finishes without an error and its
verification passes."""

import json
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import Ctl, Checks, Daemon, skip  # noqa: E402

CYCLES = 100




if not shutil.which("fio"):
    skip("fio not installed (scripts/deps.sh installs it)")
r = subprocess.run(["fio", "--enghelp"], capture_output=True, text=True)
if "nbd" not in r.stdout.split():
    skip("this fio has no nbd engine")

t = Checks()
tmp = os.environ.get("TESTS_TMP", "/tmp")
image = os.path.join(tmp, "pause-load.%d.img" % os.getpid())
with open(image, "wb") as f:
    f.truncate(64 << 20)
d = Daemon(image, name="load")
ctl = Ctl(d.ctl)
t.check("greeting", ctl.greeting.get("vdiskd", {}).get("protocol") == 1, ctl.greeting)

# Rate-limited so the run outlasts the pause cycles even on a slow
# (sanitized) build; verify_backlog checks data in the middle of the run,
# the final verify pass reads everything back.
fio_log = os.path.join(d.dir, "fio.out")
fio = subprocess.Popen(
    ["fio", "--name=pause-load", "--ioengine=nbd",
     "--uri=nbd+unix:///?socket=" + d.sock,
     "--rw=randwrite", "--bs=4k", "--size=32M", "--iodepth=16",
     "--rate_iops=800", "--verify=crc32c", "--verify_fatal=1",
     "--verify_backlog=256", "--verify_state_save=0", "--output-format=normal"],
    stdout=open(fio_log, "w"), stderr=subprocess.STDOUT, cwd=d.dir)

# Wait until fio is connected and writing.
deadline = time.monotonic() + 20
while time.monotonic() < deadline and fio.poll() is None:
    if ctl.call("stats")["writes"] > 100:
        break
    time.sleep(0.05)
t.check("fio is writing", ctl.call("stats")["writes"] > 100)

KEYS = ("reads", "writes", "flushes", "trims", "zeroes", "bytes_read",
        "bytes_written", "iocbs_submitted", "io_submit_calls")
bad_pause = bad_inflight = bad_still = bad_resume = 0
cycles_under_load = held_seen = 0
vdiskctl = os.environ.get("VDISKCTL")
for i in range(CYCLES):
    running = fio.poll() is None
    if vdiskctl and i % 10 == 0:
        # Now and then through vdiskctl, to cover its pause too.
        p = subprocess.run([vdiskctl, "-s", d.ctl, "pause", "--json"],
                           capture_output=True, text=True)
        r = json.loads(p.stdout) if p.returncode == 0 else {"ok": False, "out": p.stderr}
    else:
        r = ctl.call("pause")
    if not (r.get("ok") and r.get("state") == "paused"):
        bad_pause += 1
        print("pause %d: %s" % (i, r))
    a = ctl.call("stats")
    time.sleep(random.uniform(0.005, 0.03))
    b = ctl.call("stats")
    if a["inflight"] != 0 or b["inflight"] != 0 or a["state"] != "paused" or \
            b["state"] != "paused" or a["pending"] or a["waiting"]:
        bad_inflight += 1
        print("paused %d: inflight %d/%d pending %d waiting %d state %s/%s" % (
            i, a["inflight"], b["inflight"], a["pending"], a["waiting"],
            a["state"], b["state"]))
    if any(a[k] != b[k] for k in KEYS):
        bad_still += 1
        print("paused %d: counters moved: %s" % (
            i, {k: (a[k], b[k]) for k in KEYS if a[k] != b[k]}))
    held_seen += b.get("held", 0) > 0
    r = ctl.call("resume")
    if not (r.get("ok") and r.get("state") == "running"):
        bad_resume += 1
        print("resume %d: %s" % (i, r))
    cycles_under_load += running and fio.poll() is None
    time.sleep(random.uniform(0.005, 0.05))

t.check("%d pauses answered ok, state paused" % CYCLES, bad_pause == 0, bad_pause)
t.check("while paused: inflight, pending and waiting are 0", bad_inflight == 0, bad_inflight)
t.check("while paused: no request reaches the driver (counters stand still)",
        bad_still == 0, bad_still)
t.check("%d resumes answered ok" % CYCLES, bad_resume == 0, bad_resume)
t.check("every cycle happened while fio was running", cycles_under_load == CYCLES,
        cycles_under_load)
t.check("requests arriving while paused were held", held_seen > 0, held_seen)

try:
    rc = fio.wait(300)
except subprocess.TimeoutExpired:
    fio.kill()
    rc = None
out = open(fio_log).read()
t.check("fio finished with status 0", rc == 0, rc)
t.check("fio reports err=0 and no verify failure",
        "err= 0" in out and "verify failed" not in out and "bad magic" not in out,
        out[-2000:])
s = ctl.call("stats")
t.check("no I/O errors counted", s["errors"] == 0, s["errors"])
t.check("the data was verified by reading it back", s["reads"] >= 8192, s["reads"])
t.check("the disk is running at the end", s["state"] == "running")
ctl.close()
t.check("vdiskd exits 0 on SIGTERM", d.stop() == 0)
os.unlink(image)
t.finish()
