"""SIGTERM with I/O that does not come back in time.

io_submit is held by the stall shim (8 s, as under memory pressure) with
an unaligned O_DIRECT write in flight: its read-modify-write read went
into the kernel, its write waits behind the stalled submit thread.
SIGTERM with --shutdown-timeout 1: the daemon says what is stuck and
exits 1 after about a second, without freeing what the kernel may still
write into and without submitting the queued write on a closed fd (no
sanitizer report, no EBADF).  A clean SIGTERM still exits 0."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import CMD_WRITE, Checks, Daemon, MiB, skip  # noqa: E402

shim = os.path.join(os.environ.get("TESTS_BUILD", "build/tests"), "stall-shim.so")
if not os.path.exists(shim):
    skip("no %s (make tests builds it)" % shim)

t = Checks()
tmp = os.environ.get("TESTS_TMP", "/tmp")
image = os.path.join(tmp, "stuck.%d.img" % os.getpid())
stall_file = image + ".stall"
with open(image, "wb") as f:
    f.truncate(16 * MiB)

saved = dict(os.environ)
os.environ["LD_PRELOAD"] = shim
os.environ["STALL_SUBMIT_MS"] = "8000"
os.environ["STALL_SUBMIT_FILE"] = stall_file
os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
try:
    d = Daemon("--cache", "none", "--shutdown-timeout", "1", image, name="stuck")
finally:
    os.environ.clear()
    os.environ.update(saved)

nb = d.client()
nb.negotiate(b"stuck")
t.check("a write before the stall", nb.cmd(CMD_WRITE, 0, 4096, payload=b"a" * 4096)[0] == 0)
open(stall_file, "w").close()
# Unaligned: read-modify-write of the covering block under O_DIRECT.
nb.request(CMD_WRITE, 10, 100, handle=7, payload=b"b" * 100)
nb.request(CMD_WRITE, 8192, 4096, handle=8, payload=b"c" * 4096)
time.sleep(0.5)

t0 = time.monotonic()
d.proc.send_signal(signal.SIGTERM)
try:
    rc = d.proc.wait(15)
except Exception:  # noqa: BLE001
    rc = None
dt = time.monotonic() - t0
os.unlink(stall_file)
log = d.log_text()
t.check("exit 1 (rc %s)" % rc, rc == 1, log[-1500:])
t.check("after about the shutdown timeout (%.1f s), not the stall" % dt, 0.8 <= dt < 4, dt)
t.check("the log says what is stuck", "shutdown did not finish in 1 s" in log and
        "in flight" in log, log[-1500:])
t.check("no sanitizer report", "Sanitizer" not in log, log[-3000:])
t.check("no write on a closed fd", "Bad file descriptor" not in log, log[-1500:])
t.check("the control socket is gone", not os.path.exists(d.ctl))
nb.close()

# Nothing stuck: SIGTERM is a clean exit 0 well inside the timeout.
d2 = Daemon("--shutdown-timeout", "5", image, name="clean")
c = d2.client()
c.negotiate(b"clean")
t.check("a write", c.cmd(CMD_WRITE, 0, 4096, payload=b"z" * 4096)[0] == 0)
c.close()
t0 = time.monotonic()
t.check("clean SIGTERM: exit 0", d2.stop() == 0)
t.check("... at once (%.2f s)" % (time.monotonic() - t0), time.monotonic() - t0 < 2)
os.unlink(image)
t.finish()
