"""reopen on a paused disk waits for what is still in flight.

A paused disk still runs an operator's flush.  With io_submit held by the
stall shim before it hands the iocbs to the kernel, a flush from one control client is in flight when another
client asks for a reopen: the reopen must wait for the flush (closing the
image under it would run the FDSYNC on a closed or reused fd), then
succeed; the flush succeeds too, and nothing touches a bad fd."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import Ctl, CMD_READ, CMD_WRITE, Checks, Daemon, MiB, skip  # noqa: E402

STALL_MS = 1500




shim = os.path.join(os.environ.get("TESTS_BUILD", "build/tests"), "stall-shim.so")
if not os.path.exists(shim):
    skip("no %s (make tests builds it)" % shim)

t = Checks()
tmp = os.environ.get("TESTS_TMP", "/tmp")
image = os.path.join(tmp, "reopen-inflight.%d.img" % os.getpid())
stall_file = image + ".stall"
with open(image, "wb") as f:
    f.truncate(16 * MiB)

saved = dict(os.environ)
os.environ["LD_PRELOAD"] = shim
os.environ["STALL_SUBMIT_MS"] = str(STALL_MS)
os.environ["STALL_SUBMIT_FILE"] = stall_file
os.environ["STALL_SUBMIT_BEFORE"] = "1"     # the flush stays out of the kernel
os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
try:
    d = Daemon(image, name="ro")
finally:
    os.environ.clear()
    os.environ.update(saved)

a, b = Ctl(d.ctl), Ctl(d.ctl)
nb = d.client()
nb.negotiate(b"ro")
t.check("a write before the pause", nb.cmd(CMD_WRITE, 0, 4096, payload=b"x" * 4096)[0] == 0)
t.check("pause", a.call("pause", timeout=10).get("state") == "paused")

open(stall_file, "w").close()
a.send("flush")
time.sleep(0.3)
s = b.call("stats")
if s["inflight"] < 1 and s["pending"] < 1:
    # The flush did not go through io_submit (no FDSYNC here): it ran on
    # the worker and may be done already; the race cannot be shown.
    os.unlink(stall_file)
    a.reply()
    d.stop()
    skip("the flush is not held by io_submit on this filesystem (no IOCB_CMD_FDSYNC)")
t.check("the flush is in flight while paused", s["inflight"] >= 1, s)

t0 = time.monotonic()
r = b.call("reopen")
dt = time.monotonic() - t0
t.check("reopen succeeds", r.get("ok") is True, r)
t.check("... only once the flush is done (waited %.2f s)" % dt, dt >= STALL_MS / 1000 - 0.6, dt)
rf = a.reply()
t.check("the flush succeeds", rf.get("ok") is True, rf)
os.unlink(stall_file)

t.check("resume", a.call("resume").get("ok") is True)
t.check("the data survives the reopen", nb.cmd(CMD_READ, 0, 4096)[1] == b"x" * 4096)
t.check("writes work after it", nb.cmd(CMD_WRITE, 4096, 4096, payload=b"y" * 4096)[0] == 0)
s = a.call("stats")
t.check("no I/O errors", s["errors"] == 0, s["errors"])
nb.close()
t.check("vdiskd exits 0 on SIGTERM", d.stop() == 0)
log = d.log_text()
t.check("no bad file descriptor in the log", "Bad file descriptor" not in log, log[-2000:])
os.unlink(image)
t.finish()
