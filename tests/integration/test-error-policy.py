"""The error policy (--on-write-error, --on-read-error) on a disk that fails
on purpose (tests/lib/faultfs.py):

  report  the client gets ENOSPC / EIO, the disk keeps running;
  enospc  a write that hits ENOSPC is held, not answered, and the disk
          pauses with pause_reason "ENOSPC on write at offset N"; writes
          behind it are held too; once the filesystem has room again,
          `vdiskctl resume` retries them and they succeed -- the client
          never saw an error; an EIO is still reported;
  pause   any write (or, --on-read-error pause, read) error pauses the
          disk the same way.
And fio --verify across an ENOSPC pause: space given, resume, no error."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import CMD_READ, CMD_WRITE, Checks, Daemon, MiB, skip  # noqa: E402
import faultfs  # noqa: E402

ENOSPC_WIRE, EIO_WIRE = 28, 5
K = 4096
SIZE = 64 * MiB
VDISKCTL = os.environ.get("VDISKCTL", "build/vdiskctl")

why = faultfs.unavailable()
if why:
    skip("faultfs: " + why)
top = tempfile.mkdtemp(prefix="errpol.", dir=os.environ.get("TESTS_TMP") or None)
fs = faultfs.FaultFS(os.path.join(top, "backing"), os.path.join(top, "mnt"))
try:
    fs.start()
except faultfs.FaultFSUnavailable as e:
    skip(str(e))

t = Checks()


def ctl(d, *args):
    p = subprocess.run([VDISKCTL, "-s", d.ctl, "--json"] + list(args), capture_output=True,
                       text=True, timeout=30)
    return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None), p.stderr


def image(name):
    with open(os.path.join(fs.backing, name), "wb") as f:
        f.truncate(SIZE)        # sparse: every write allocates
    return fs.path(name)


def no_reply(c, wait=0.5):
    """True when no reply arrives within wait seconds."""
    c.sock.settimeout(wait)
    try:
        b = c.sock.recv(1, socket.MSG_PEEK)
        return False if b else False
    except socket.timeout:
        return True
    finally:
        c.sock.settimeout(30)


def pat(tag, n=K):
    return bytes([tag]) * n


# ---- report (the default) ----------------------------------------------
fs.clear()
d = Daemon("--cache", "none", image("report.img"), name="d")
c = d.client(timeout=30)
c.negotiate(b"d")
t.check("report: a write with room succeeds", c.cmd(CMD_WRITE, 0, K, payload=pat(1))[0] == 0)
fs.enospc_after(0)
err = c.cmd(CMD_WRITE, MiB, K, payload=pat(2))[0]
t.check("report: a write past the space gets ENOSPC (%d)" % err, err == ENOSPC_WIRE, err)
rc, s, _ = ctl(d, "stats")
t.check("report: the disk keeps running", s["state"] == "running" and s["pause_reason"] == "",
        s)
fs.enospc_after(None)
c.close()
t.check("report: exit 0", d.stop() == 0)

# ---- enospc ---------------------------------------------------------------
fs.clear()
d = Daemon("--cache", "none", "--on-write-error", "enospc", image("enospc.img"), name="d")
c = d.client(timeout=30)
c.negotiate(b"d")
t.check("enospc: a write with room succeeds", c.cmd(CMD_WRITE, 0, K, payload=pat(1))[0] == 0)
fs.enospc_after(0)
c.request(CMD_WRITE, 2 * MiB, K, handle=11, payload=pat(11))
time.sleep(0.3)
t.check("enospc: the write that hit ENOSPC is not answered", no_reply(c))
rc, s, _ = ctl(d, "stats")
t.check("enospc: the disk is paused, saying why (%r)" % s["pause_reason"],
        s["state"] == "paused" and s["pause_reason"].startswith("ENOSPC on write at offset %d"
                                                                  % (2 * MiB)), s)
rc, info, _ = ctl(d, "info")
t.check("enospc: info says it too", info["pause_reason"] == s["pause_reason"], info)
c.request(CMD_WRITE, 3 * MiB, K, handle=12, payload=pat(12))
c.request(CMD_READ, 0, K, handle=13)
time.sleep(0.3)
t.check("enospc: requests behind it are held too", no_reply(c))
t.check("enospc: the log says it once", d.log_text().count("paused by an I/O error") == 1,
        d.log_text()[-800:])
fs.enospc_after(None)       # the operator grows the filesystem
rc, r, _ = ctl(d, "resume")
t.check("enospc: resume", rc == 0)
got = {}
for _ in range(3):
    h, e, data, _ = c.read_reply()
    got[h] = (e, data)
t.check("enospc: after resume every held request succeeds",
        all(got[h][0] == 0 for h in (11, 12, 13)), {h: got[h][0] for h in got})
t.check("enospc: the retried writes are there",
        c.cmd(CMD_READ, 2 * MiB, K)[1] == pat(11) and c.cmd(CMD_READ, 3 * MiB, K)[1] == pat(12))
rc, s, _ = ctl(d, "stats")
t.check("enospc: running again, no reason", s["state"] == "running" and s["pause_reason"] == "",
        s)
t.check("enospc: the client never saw an error", s["errors"] == 0, s["errors"])
# An EIO is not ENOSPC: reported.
fs.fail("/enospc.img", 5 * MiB, 5 * MiB + K, op="write")
err = c.cmd(CMD_WRITE, 5 * MiB, K, payload=pat(3))[0]
t.check("enospc: an EIO is still reported (%d)" % err, err == EIO_WIRE, err)
fs.clear()

# fio --verify across an ENOSPC pause.
fio = subprocess.run(["which", "fio"], capture_output=True).returncode == 0
if fio:
    errors0 = ctl(d, "stats")[1]["errors"]
    fs.enospc_after(2 * MiB)
    job = subprocess.Popen(["fio", "--name=v", "--ioengine=nbd",
                            "--uri=nbd+unix:///d?socket=" + d.sock, "--rw=randwrite",
                            "--bs=16k", "--iodepth=8", "--size=8M", "--offset=16M",
                            "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
                            "--output-format=json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, cwd=top)
    paused = False
    for _ in range(100):
        time.sleep(0.1)
        rc, s, _ = ctl(d, "stats")
        if s["state"] == "paused":
            paused = True
            break
    t.check("fio: the disk pauses when the filesystem fills", paused, s)
    fs.enospc_after(None)
    ctl(d, "resume")
    out, errout = job.communicate(timeout=120)
    t.check("fio --verify finishes with no error after resume", job.returncode == 0,
            errout[-500:])
    rc, s, _ = ctl(d, "stats")
    t.check("fio: no error reached the client", s["errors"] == errors0, s["errors"])
else:
    print("skip: fio missing: the fio part is left out")
c.close()
t.check("enospc: exit 0", d.stop() == 0)

# ---- pause, on write and on read ---------------------------------------
fs.clear()
d = Daemon("--cache", "none", "--on-write-error", "pause", "--on-read-error", "pause",
           image("pause.img"), name="d")
c = d.client(timeout=30)
c.negotiate(b"d")
t.check("pause: a write", c.cmd(CMD_WRITE, 0, K, payload=pat(7))[0] == 0)
fs.fail("/pause.img", 4 * MiB, 4 * MiB + K, op="write", count=1)
c.request(CMD_WRITE, 4 * MiB, K, handle=21, payload=pat(21))
time.sleep(0.3)
rc, s, _ = ctl(d, "stats")
t.check("pause: an EIO on write pauses (%r)" % s["pause_reason"],
        s["state"] == "paused" and s["pause_reason"].startswith("EIO on write"), s)
ctl(d, "resume")
h, e, _, _ = c.read_reply()
t.check("pause: resume retries it, and it succeeds", h == 21 and e == 0, (h, e))
fs.fail("/pause.img", 0, K, op="read", count=1)
c.request(CMD_READ, 0, K, handle=22)
time.sleep(0.3)
rc, s, _ = ctl(d, "stats")
t.check("pause: an EIO on read pauses (%r)" % s["pause_reason"],
        s["state"] == "paused" and s["pause_reason"].startswith("EIO on read at offset 0"), s)
ctl(d, "resume")
h, e, data, _ = c.read_reply()
t.check("pause: the read, retried, returns the data", h == 22 and e == 0 and data == pat(7),
        (h, e))
rc, s, _ = ctl(d, "stats")
t.check("pause: no error counted", s["errors"] == 0, s["errors"])
c.close()
t.check("pause: exit 0", d.stop() == 0)

for bad in (["--on-write-error", "sometimes"], ["--on-read-error", "enospc"]):
    p = subprocess.run([os.environ.get("VDISKD", "build/vdiskd"), "-f", "-l",
                        "unix:/nonexistent/x", "-c", "/nonexistent/c"] + bad + ["-d", "ram",
                                                                            "1M"],
                       capture_output=True, text=True, timeout=20)
    t.check("%s: exit 1 with a message" % " ".join(bad),
            p.returncode == 1 and "error" in p.stderr, (p.returncode, p.stderr))
fs.stop()
t.finish()
