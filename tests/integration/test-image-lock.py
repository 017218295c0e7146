"""Image locking between processes (drivers/file-lock.c).

vdiskd locks its image as QEMU does (open file description locks on
bytes 100 + permission and 200 + permission), so that a second vdiskd,
qemu-nbd or qemu on the same file refuse, and the other way round:

  - the lock bytes in /proc/locks: 100 and 101 held, 201 and 203 (no one
    else may write or resize) for a writer; 100, 201, 203 read-only;
  - a second vdiskd, read-write or --read-only, exits 1 saying the image
    is in use; the first still serves what was written to it;
  - qemu-nbd refuses an image vdiskd serves, and vdiskd one qemu-nbd
    serves (and starts once qemu-nbd is gone);
  - two --read-only daemons share an image, and a writer is refused;
  - kill -9 of the holder frees the image at once;
  - reopen (paused) keeps the lock, also when it fails;
  - after a live snapshot the old leaf is a parent: locked read-only, so
    a writer is refused there and a reader is let in; the new leaf is
    locked for writing, and vdisk-img check --repair refuses it.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import CMD_READ, CMD_WRITE, Checks, Daemon, MiB, skip  # noqa: E402

VDISKD = os.environ.get("VDISKD", "build/vdiskd")
VDISKCTL = os.environ.get("VDISKCTL", "build/vdiskctl")
VDISK_IMG = os.path.join(os.path.dirname(os.path.abspath(VDISKD)), "vdisk-img")
SIZE = 16 * MiB

if not shutil.which("qemu-nbd"):
    skip("qemu-nbd not installed (scripts/deps.sh --test installs qemu-utils)")

top = tempfile.mkdtemp(prefix="imglock.", dir=os.environ.get("TESTS_TMP") or None)
t = Checks()
procs = []


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def image(name, size=SIZE):
    path = os.path.join(top, name)
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def lock_bytes(path):
    """The byte ranges of OFD locks on path's inode, from /proc/locks."""
    st = os.stat(path)
    want = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    out = set()
    with open("/proc/locks") as f:
        for line in f:
            x = line.split()
            if "OFDLCK" in x and x[-3] == want:
                out.add((int(x[-2]), int(x[-1])))
    return out


def second(*args, n=[0]):
    """A vdiskd that is expected to refuse: (exit status, stderr)."""
    n[0] += 1
    cmd = [VDISKD, "-f", "-n", "second%d" % n[0], "-c", os.path.join(top, "s%d.ctl" % n[0]),
           "-l", "unix:" + os.path.join(top, "s%d.nbd" % n[0])] + list(args)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None, "still running after 20 s"
    return p.returncode, p.stderr


def ctl(d, *args):
    p = subprocess.run([VDISKCTL, "-s", d.ctl] + list(args), capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout + p.stderr


def qemu_nbd(path, *args):
    sock = os.path.join(top, "q%d.sock" % len(procs))
    p = subprocess.Popen(["qemu-nbd", "-f", "raw", "-t", "-k", sock] + list(args) + [path],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    procs.append(p)
    for _ in range(100):
        if os.path.exists(sock) or p.poll() is not None:
            break
        time.sleep(0.05)
    return p


try:
    # --- a writer's locks, and a second user refused ---
    a = image("a.img")
    d = Daemon(a)
    c = d.client()
    c.negotiate()
    payload = bytes(range(256)) * 16
    t.check("the first daemon writes", c.cmd(CMD_WRITE, 8192, 4096, payload=payload)[0] == 0)
    held = lock_bytes(a)
    t.check("a writer locks bytes 100-101, 201 and 203 (%s)" % sorted(held),
            {(100, 101), (201, 201), (203, 203)} <= held or
            {(100, 100), (101, 101), (201, 201), (203, 203)} <= held, sorted(held))
    rc, err = second(a)
    t.check("a second read-write vdiskd exits 1", rc == 1, "rc %s: %s" % (rc, err))
    t.check("... saying the image is in use", "is in use" in err and a in err, err)
    rc, err = second("--read-only", a)
    t.check("a second --read-only vdiskd exits 1 (it wants a consistent image)", rc == 1,
            "rc %s: %s" % (rc, err))
    rc, err = second("--cache", "writeback", a)
    t.check("so does one through the page cache", rc == 1 and "is in use" in err,
            "rc %s: %s" % (rc, err))
    q = qemu_nbd(a)
    try:
        q.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    qerr = q.stderr.read() if q.poll() is not None else ""
    t.check("qemu-nbd refuses the image vdiskd serves", q.poll() not in (None, 0),
            "qemu-nbd status %s" % q.poll())
    t.check("... with qemu's lock message", "lock" in qerr, qerr)
    st, data, _ = c.cmd(CMD_READ, 8192, 4096)
    t.check("the first daemon still serves its data", st == 0 and data == payload)

    # --- reopen keeps the lock, also when it fails ---
    t.check("pause", ctl(d, "pause")[0] == 0)
    rc, out = ctl(d, "reopen")
    t.check("reopen of the same image while locked: exit 0", rc == 0, out)
    rc, out = ctl(d, "reopen", os.path.join(top, "missing.img"))
    t.check("reopen of a missing image fails", rc == 1, out)
    t.check("resume", ctl(d, "resume")[0] == 0)
    rc, err = second(a)
    t.check("after both reopens a second vdiskd is still refused", rc == 1,
            "rc %s: %s" % (rc, err))
    t.check("the lock bytes are back (%s)" % sorted(lock_bytes(a)), lock_bytes(a) == held)

    # --- kill -9 frees it ---
    c.close()
    d.kill()
    d2 = Daemon(a)
    t.check("after kill -9 of the holder a new vdiskd starts at once", d2.alive())
    d2.stop()

    # --- qemu-nbd first ---
    q = qemu_nbd(a)
    t.check("qemu-nbd serves the image", q.poll() is None, q.stderr.read() if q.poll() else "")
    rc, err = second(a)
    t.check("vdiskd refuses an image qemu-nbd writes to", rc == 1 and "is in use" in err,
            "rc %s: %s" % (rc, err))
    q.send_signal(signal.SIGTERM)
    q.wait(timeout=10)
    d3 = Daemon(a)
    t.check("and serves it once qemu-nbd is gone", d3.alive())
    d3.stop()

    # --- readers share ---
    r1 = Daemon("--read-only", a, name="r1")
    r2 = Daemon("--read-only", a, name="r2")
    t.check("two --read-only daemons share an image", r1.alive() and r2.alive())
    t.check("a reader locks bytes 100, 201 and 203 (%s)" % sorted(lock_bytes(a)),
            lock_bytes(a) == {(100, 100), (201, 201), (203, 203)})
    rc, err = second(a)
    t.check("a writer is refused while they read", rc == 1 and "is in use" in err,
            "rc %s: %s" % (rc, err))
    r1.stop()
    r2.stop()
    t.check("no locks are left when they stop", lock_bytes(a) == set(), sorted(lock_bytes(a)))

    # --- a live snapshot: the old leaf becomes a read-only parent ---
    if os.access(VDISK_IMG, os.X_OK):
        base = os.path.join(top, "base.vhd")
        subprocess.run([VDISK_IMG, "create", base, "16M"], check=True, capture_output=True)
        d = Daemon(base, name="vhd")
        leaf = os.path.join(top, "leaf.vhd")
        rc, out = ctl(d, "snapshot", leaf)
        t.check("snapshot while locked: exit 0", rc == 0, out)
        rc, err = second(base)
        t.check("the old leaf, now a parent, refuses a writer", rc == 1 and "is in use" in err,
                "rc %s: %s" % (rc, err))
        t.check("... which is locked read-only (%s)" % sorted(lock_bytes(base)),
                lock_bytes(base) == {(100, 100), (201, 201), (203, 203)})
        r = Daemon("--read-only", base, name="parent-reader")
        t.check("a reader of the parent is let in", r.alive())
        r.stop()
        rc, err = second(leaf)
        t.check("the new leaf refuses a second writer", rc == 1 and "is in use" in err,
                "rc %s: %s" % (rc, err))
        # vdisk-img check --repair rewrites footers and cuts the file:
        # never under a daemon.
        with open(leaf, "r+b") as f:
            f.seek(8)
            f.write(b"XXXX")    # the footer copy at 0 now differs
        size = os.path.getsize(leaf)
        p = subprocess.run([VDISK_IMG, "check", "--repair", leaf], capture_output=True,
                           text=True, timeout=30)
        t.check("vdisk-img check --repair refuses the served leaf",
                p.returncode == 1 and "repair failed" in p.stdout and "is in use" in p.stderr,
                p.stdout + p.stderr)
        t.check("... and leaves the file as it was", os.path.getsize(leaf) == size)
        d.stop()
    else:
        t.check("vdisk-img built next to vdiskd (%s)" % VDISK_IMG, False)
finally:
    cleanup()
    shutil.rmtree(top, ignore_errors=True)
t.finish()
