"""An idle daemon burns no CPU.

vdiskd serves a raw file (default --cache none) and -d ram; an NBD client
connects, finishes the handshake and stays connected and idle: over 5 s
the daemon (utime + stime of all its threads, /proc/PID/stat) must use
less than 1% of a core.  Then a burst of pipelined 4k reads and writes
(QD32, 0.5 s), and from 1 s after its last reply the daemon must be back
under 1% (measured over 3 s).  The same with --poll-us 1000 (the
longest window) when the daemon has that option: a polling mode must
stop spinning when idle.  There a stream of one-at-a-time reads (QD1,
1 s) comes after the burst; during it the main thread must poll (at
least half a core: it does not sleep between requests), and once it
ends the daemon must be idle again.  A thread
that spins, or polls on a timer, fails it: the per-thread figures of the
busiest threads, by name (vdiskd, vdiskd-submit, vdiskd-worker: checked),
are printed with each check.

The measurement itself is checked first on a process that spins."""

import os
import random
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import (CMD_READ, CMD_WRITE, SIMPLE_REPLY_MAGIC, Checks, Daemon,  # noqa: E402
                        MiB, skip, thread_names)

CLK_TCK = os.sysconf("SC_CLK_TCK")
IDLE_S = 5.0
AFTER_BURST_S = 3.0
LIMIT = 0.01          # of one core
SIZE = 64 * MiB


def ticks(path):
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def threads(pid):
    """{tid: (comm, utime + stime ticks)} of every live thread."""
    out = {}
    for tid, comm in thread_names(pid).items():
        try:
            out[tid] = (comm, ticks("/proc/%d/task/%s/stat" % (pid, tid)))
        except OSError:
            pass
    return out


def usage(pid, seconds):
    """Fraction of one core the process used over seconds, and a note on
    its busiest threads."""
    t0 = threads(pid)
    c0, w0 = ticks("/proc/%d/stat" % pid), time.monotonic()
    time.sleep(seconds)
    c1, w1 = ticks("/proc/%d/stat" % pid), time.monotonic()
    t1 = threads(pid)
    per = sorted(((t1[t][1] - t0[t][1], t1[t][0], t) for t in t1 if t in t0), reverse=True)
    note = ", ".join("%s/%s %d ms" % (comm, tid, d * 1000 // CLK_TCK)
                     for d, comm, tid in per[:3])
    return (c1 - c0) / CLK_TCK / (w1 - w0), "%d threads; busiest: %s" % (len(t1), note)


def burst(c, seconds=0.5, qd=32):
    """Pipelined 4k random reads and writes, qd at a time; returns the
    number of requests."""
    payload = os.urandom(4096)
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        cmds = []
        for i in range(qd):
            off = random.randrange(SIZE // 4096) * 4096
            if i % 2:
                c.request(CMD_WRITE, off, 4096, handle=i + 1, payload=payload)
            else:
                c.request(CMD_READ, off, 4096, handle=i + 1)
            cmds.append(CMD_READ if i % 2 == 0 else CMD_WRITE)
        for _ in range(qd):
            _, err = read_any(c, cmds)
            assert err == 0, err
        n += qd
    return n


def read_any(c, cmds):
    """One simple reply (replies come in any order); a read's carries its
    data."""
    magic, err, h = struct.unpack(">IIQ", c.recv_exact(16))
    assert magic == SIMPLE_REPLY_MAGIC, hex(magic)
    if cmds[h - 1] == CMD_READ and err == 0:
        c.recv_exact(4096)
    return h, err


def case(ck, label, args):
    d = Daemon(*args)
    pid = d.proc.pid
    # The names the per-thread notes below (and operators' top -H) use.
    names = sorted(thread_names(pid).values())
    ck.check("%s: threads named vdiskd, vdiskd-submit, vdiskd-worker (%s)"
             % (label, ", ".join(names)),
             names == ["vdiskd", "vdiskd-submit", "vdiskd-worker"])
    c = d.client()
    c.negotiate(structured=False)
    time.sleep(0.3)     # the handshake's own work settled
    u, note = usage(pid, IDLE_S)
    ck.check("%s: idle with a client connected, %.2f%% of a core over %.0f s (< %.0f%%)"
             % (label, u * 100, IDLE_S, LIMIT * 100), u < LIMIT, note)
    n = burst(c)
    if "--poll-us" in args:
        t0 = ticks("/proc/%d/task/%d/stat" % (pid, pid))
        w0 = time.monotonic()
        n += burst(c, seconds=1.0, qd=1)
        t1 = ticks("/proc/%d/task/%d/stat" % (pid, pid))
        main_u = (t1 - t0) / CLK_TCK / (time.monotonic() - w0)
        ck.check("%s: the main thread polls between QD1 requests, %.0f%% of a core (>= 50%%)"
                 % (label, main_u * 100), main_u >= 0.5)
    time.sleep(1.0)
    u, note = usage(pid, AFTER_BURST_S)
    ck.check("%s: idle again 1 s after a burst of %d requests, %.2f%% of a core over %.0f s"
             % (label, n, u * 100, AFTER_BURST_S), u < LIMIT, note)
    ck.check("%s: still serving (a read after the idle time)" % label,
             c.cmd(CMD_READ, 0, 4096)[0] == 0)
    c.close()
    ck.check("%s: the daemon stops cleanly" % label, d.stop() == 0)


def main():
    if not os.path.exists("/proc/self/stat"):
        skip("no /proc")
    ck = Checks()
    # The measurement sees a spinning process (else every check below
    # could pass for nothing).
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        u, _ = usage(spin.pid, 1.0)
    finally:
        spin.kill()
        spin.wait()
    ck.check("the measurement sees a spinning process (%.0f%% of a core)" % (u * 100), u > 0.3)

    exe = os.environ.get("VDISKD", "build/vdiskd")
    help_text = subprocess.run([exe, "--help"], capture_output=True, text=True)
    poll = "--poll-us" in help_text.stdout + help_text.stderr
    tmp = os.environ.get("TESTS_TMP") or "/tmp"
    img = os.path.join(tmp, "idle-cpu.%d.img" % os.getpid())
    with open(img, "wb") as f:
        f.truncate(SIZE)
    try:
        configs = [("raw file", [img]), ("-d ram", ["-d", "ram", "64M"])]
        if poll:
            configs += [("raw file --poll-us 1000", ["--poll-us", "1000", img]),
                        ("-d ram --poll-us 1000", ["--poll-us", "1000", "-d", "ram", "64M"])]
        for label, args in configs:
            ck.run(label + ": every step ran", case, ck, label, args)
        if not poll:
            print("SKIP part: %s --help has no --poll-us; the default mode was checked"
                  % exe)
    finally:
        os.unlink(img)
    ck.finish()


if __name__ == "__main__":
    main()
