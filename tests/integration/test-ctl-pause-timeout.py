"""A pause that cannot drain in time: io_submit blocks (the stall shim,
as under memory pressure) with NBD writes waiting behind it.  pause
--timeout answers ETIMEDOUT after its timeout, the disk is resumed, the
writes complete once io_submit returns, and a later pause works."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import Ctl, CMD_READ, CMD_WRITE, Checks, Daemon, MiB, skip  # noqa: E402

STALL_MS = 2500




shim = os.path.join(os.environ.get("TESTS_BUILD", "build/tests"), "stall-shim.so")
if not os.path.exists(shim):
    skip("no %s (make tests builds it)" % shim)

t = Checks()
tmp = os.environ.get("TESTS_TMP", "/tmp")
image = os.path.join(tmp, "pause-timeout.%d.img" % os.getpid())
stall_file = image + ".stall"
with open(image, "wb") as f:
    f.truncate(16 * MiB)

# Only vdiskd gets the shim.  A sanitized vdiskd would object to a
# library loaded before its runtime.
saved = dict(os.environ)
os.environ["LD_PRELOAD"] = shim
os.environ["STALL_SUBMIT_MS"] = str(STALL_MS)
os.environ["STALL_SUBMIT_FILE"] = stall_file
os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
try:
    d = Daemon(image, name="slow")
finally:
    os.environ.clear()
    os.environ.update(saved)

ctl = Ctl(d.ctl)
nb = d.client()
nb.negotiate(b"slow")
t.check("writes work before the stall", nb.cmd(CMD_WRITE, 0, 4096, payload=b"a" * 4096)[0] == 0)

# io_submit now blocks for STALL_MS after each call: the first write goes
# through and holds the submit thread, the next ones wait behind it.
open(stall_file, "w").close()
nb.request(CMD_WRITE, 4096, 4096, handle=1, payload=b"b" * 4096)
time.sleep(0.2)
for h in range(2, 6):
    nb.request(CMD_WRITE, h * 4096, 4096, handle=h, payload=bytes([h]) * 4096)
time.sleep(0.2)
s = ctl.call("stats")
t.check("writes are stuck in flight", s["inflight"] >= 1, s["inflight"])

t0 = time.monotonic()
r = ctl.call("pause", timeout=0.5)
dt = time.monotonic() - t0
t.check("pause --timeout 0.5: ETIMEDOUT", r.get("ok") is False and r.get("error") == "ETIMEDOUT", r)
t.check("... after about the timeout", 0.4 <= dt < 2.0, dt)
t.check("... and it says the disk keeps running", "running" in r.get("message", ""), r)
s = ctl.call("stats")
t.check("the disk was resumed", s["state"] == "running", s["state"])
t.check("control answers while io_submit is blocked", s.get("ok") is True)

# The same through vdiskctl: exit 1, the message on stderr.
vdiskctl = os.environ.get("VDISKCTL")
if vdiskctl:
    nb.request(CMD_WRITE, 0, 4096, handle=9, payload=b"c" * 4096)
    time.sleep(0.1)
    p = subprocess.run([vdiskctl, "-s", d.ctl, "pause", "--timeout", "0.3"],
                       capture_output=True, text=True, timeout=30)
    t.check("vdiskctl pause --timeout 0.3 while stuck: exit 1, ETIMEDOUT on stderr",
            p.returncode == 1 and "ETIMEDOUT" in p.stderr, (p.returncode, p.stderr))

os.unlink(stall_file)
errs = []
for _ in range(6 if vdiskctl else 5):
    _, err, _, _ = nb.read_reply()
    errs.append(err)
t.check("every stuck write completes without error once io_submit returns",
        errs == [0] * len(errs), errs)
t.check("the data is there", nb.cmd(CMD_READ, 3 * 4096, 4096)[1] == bytes([3]) * 4096)
deadline = time.monotonic() + 3 * STALL_MS / 1000
while time.monotonic() < deadline and ctl.call("stats")["inflight"]:
    time.sleep(0.05)
r = ctl.call("pause", timeout=10)
t.check("a pause after the stall works", r.get("ok") is True and r.get("state") == "paused", r)
t.check("nothing in flight", ctl.call("stats")["inflight"] == 0)
t.check("resume", ctl.call("resume").get("ok") is True)
t.check("no I/O errors counted", ctl.call("stats")["errors"] == 0)
nb.close()
t.check("vdiskd exits 0 on SIGTERM", d.stop() == 0)
os.unlink(image)
t.finish()
