"""The I/O path allocates nothing per request and makes few system calls.

For -d ram, a raw file with --cache writeback, a raw file and a dynamic
VHD (vdisk-img create) with --cache none (O_DIRECT: only where TESTS_TMP
takes it) and -d ram over
X.509 TLS (Python's ssl as the client, through STARTTLS), after a warm-up
that fills the request pool: pipelined 4k reads and writes, 32 at a time
(each batch of 32 in one write, so the daemon may take it in one read),
then 4k reads and writes one at a time (QD1), with structured replies
(as qemu and libnbd negotiate them) and once, in memory, with simple
replies.  The disk is written
whole first, so the ram driver's memory is taken before counting.

- Heap allocations (tests/lib/alloc-count-shim.so preloaded; not in
  sanitizer builds, which bring their own allocator): fewer than one per
  100 requests over both loads.  A `stats` control command, whose JSON
  reply is built on the heap, must be seen to allocate: else the count
  could pass for nothing.  Under TLS, GnuTLS's record layer allocates
  a buffer or two for every record it takes in or puts out (5 a request
  at QD1, 0.8 at QD32: gdb puts every one under gnutls_record_recv or
  gnutls_record_uncork), and nothing but kTLS, which a unix socket does
  not have, goes around it.  There the limits are those counts plus
  under one a request: what vdiskd's own TLS code adds would show.
- Requests of 2 and 4 MiB (4 at a time: 16 MiB in flight, within what
  the request pool keeps of large buffers): under one allocation per 100
  requests and under one page fault per request (minflt in
  /proc/PID/stat; a fresh 2 MiB buffer faults in 512 pages).  Not under
  TLS, whose record buffers come on top, nor in sanitizer builds.
- System calls (strace -c -f attached to the daemon): at QD32, under one
  per request, since one readv, one io_submit and one sendmsg each carry
  many requests.  At QD1, at most what the path itself needs per request:
  3 in memory (epoll_wait, readv, sendmsg; read and sendto under TLS,
  with no read that says EAGAIN); 7 with the submit thread
  (also its futex wake and wait, io_submit, and the main loop's wait
  for the completion), plus a little slack for the loop's extra turns.
  Not counted there: the submit thread's moves (sched_setaffinity, when it
  follows the main thread under O_DIRECT).  strace's own stops make the
  main thread change CPU every other request; untraced, the moves are
  checked on their own: under one per 4 requests at QD1 (`submit_moves`).

A part that cannot run (no strace, no O_DIRECT, a sanitizer build) is
named, the others still run, and the test then exits 77."""

import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import (CMD_READ, CMD_WRITE, OPT_STARTTLS, REP_ACK,  # noqa: E402
                        SIMPLE_REPLY_MAGIC, Checks, Client, Daemon, MiB, direct_ok, skip)

SIZE = 64 * MiB
QD = 32
BATCHES = 100          # of QD requests: 3,200 pipelined
SINGLES = 1000         # requests at QD1
ALLOC_LIMIT = 0.01     # allocations per request
BIG_BATCHES = 25       # of 4 requests of 2 or 4 MiB
BIG_FAULT_LIMIT = 1    # page faults per large request
TLS_ALLOC_LIMIT = {"qd32": 1.5, "qd1": 5.5}     # GnuTLS's, and no more
QD32_LIMIT = 1.0       # system calls per request
QD1_LIMIT = {"ram": 3.2, "tls": 3.2, "submit": 7.5}
MOVES_LIMIT = 0.25     # submit thread moves per request, untraced QD1
NOT_PATH = {"sched_setaffinity"}

tmp = os.environ.get("TESTS_TMP") or "/tmp"
build = os.environ.get("TESTS_BUILD", "build/tests")
exe = os.environ.get("VDISKD", "build/vdiskd")
shim = os.path.join(build, "alloc-count-shim.so")
payload = os.urandom(4096)
skipped = []


def batches(c, n, sizes=(4096,), qd=QD):
    """n batches of qd requests (sizes in turn, a pair each), half reads,
    half writes, each batch sent in one write and answered in full."""
    for _ in range(n):
        out, reads = [], {}
        for i in range(qd):
            length = sizes[(i // 2) % len(sizes)]
            off = random.randrange(SIZE // length) * length
            if i % 2:
                out.append(Client.request_bytes(CMD_WRITE, off, length, handle=i + 1,
                                                payload=payload * (length // 4096)))
            else:
                out.append(Client.request_bytes(CMD_READ, off, length, handle=i + 1))
                reads[i + 1] = length
        c.send(b"".join(out))
        for _ in range(qd):
            if c.structured:
                h, err, data, _ = c.read_reply()
            else:
                magic, err, h = struct.unpack(">IIQ", c.recv_exact(16))
                assert magic == SIMPLE_REPLY_MAGIC, hex(magic)
                data = c.recv_exact(reads[h]) if h in reads and not err else b""
            assert err == 0 and len(data) == reads.get(h, 0), (h, err, len(data))
    return n * qd


def pipelined(c, n):
    """n batches of QD 4k requests."""
    return batches(c, n)


def big_batches(c, n):
    """n batches of 4 requests of 2 and 4 MiB: 12 MiB in flight."""
    return batches(c, n, sizes=(2 * MiB, 4 * MiB), qd=4)


def minflt(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def singles(c, n):
    for i in range(n):
        off = random.randrange(SIZE // 4096) * 4096
        if i % 2:
            err, _, _ = c.cmd(CMD_WRITE, off, 4096, payload=payload)
        else:
            err, _, _ = c.cmd(CMD_READ, off, 4096)
        assert err == 0, err
    return n


def sanitized():
    try:
        out = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
    except OSError:
        return False
    return "libasan" in out or "libtsan" in out


def count_file_read(path):
    with open(path, "rb") as f:
        return struct.unpack("=Q", f.read(8))[0]


class Strace:
    """strace -c -f on a running process; stop() gives {syscall: calls}."""

    def __init__(self, pid, out):
        self.out = out
        want = len(os.listdir("/proc/%d/task" % pid))
        self.proc = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        # Wait for "Process N attached with M threads" (or one "attached"
        # per thread), so that no part of the load goes uncounted.
        seen, lines = 0, []
        while seen < want:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("strace: " + "".join(lines))
            lines.append(line)
            m = re.search(r"attached(?: with (\d+) threads)?", line)
            if m:
                seen += int(m.group(1) or 1)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=20)
        calls = {}
        with open(self.out) as f:
            for line in f:
                parts = line.split()
                # % time, seconds, usecs/call, calls, [errors,] syscall
                if len(parts) >= 5 and parts[3].isdigit() and parts[-1] != "total":
                    calls[parts[-1]] = int(parts[3])
        os.unlink(self.out)
        return calls


def path_calls(calls):
    return sum(v for k, v in calls.items() if k not in NOT_PATH)


def summary(calls, n):
    top = sorted(calls.items(), key=lambda kv: -kv[1])
    return ", ".join("%s %.3f" % (k, v / n) for k, v in top)


def plain(structured=True):
    def connect(d):
        c = d.client(timeout=30)
        c.negotiate(structured=structured)
        assert c.structured == structured, c.structured
        return c
    return connect


def tls_connect(pki):
    import ssl

    def connect(d):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(os.path.join(pki, "client", "ca-cert.pem"))
        c = d.client(timeout=30)
        c.start()
        c.send(Client.opt_bytes(OPT_STARTTLS))
        r = c.reply()
        assert r[1] == REP_ACK, r
        c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
        c.start = lambda *a, **k: None     # the greeting was in clear text
        c.negotiate()
        assert c.structured
        return c
    return connect


def case(ck, label, kind, args, connect=plain()):
    count_path = os.path.join(tmp, "alloc.%d.count" % os.getpid())
    env_saved = dict(os.environ)
    counting = os.path.exists(shim) and not sanitized()
    if counting:
        os.environ["LD_PRELOAD"] = shim
        os.environ["ALLOC_COUNT_FILE"] = count_path
    try:
        d = Daemon(*args)
    finally:
        os.environ.clear()
        os.environ.update(env_saved)
    try:
        c = connect(d)
        for off in range(0, SIZE, 256 * 1024):     # every chunk of a ram disk
            err, _, _ = c.cmd(CMD_WRITE, off, 256 * 1024, payload=payload * 64)
            assert err == 0, err
        pipelined(c, 20)           # fills the request pool and the buffers
        singles(c, 50)
        m0 = d.stats()["submit_moves"]
        n = singles(c, SINGLES)
        moves = (d.stats()["submit_moves"] - m0) / n
        ck.check("%s: QD1 untraced, %.3f submit thread moves a request (< %.2f)"
                 % (label, moves, MOVES_LIMIT), moves < MOVES_LIMIT)

        if counting and kind == "tls":
            for what, load, nreq in (("qd32", pipelined, BATCHES), ("qd1", singles, SINGLES)):
                a0 = count_file_read(count_path)
                n = load(c, nreq)
                a1 = count_file_read(count_path)
                per = (a1 - a0) / n
                ck.check("%s: %s, %.3f heap allocations a request (< %.1f, GnuTLS's records)"
                         % (label, what.upper(), per, TLS_ALLOC_LIMIT[what]),
                         per < TLS_ALLOC_LIMIT[what])
        elif counting:
            a0 = count_file_read(count_path)
            n = pipelined(c, BATCHES) + singles(c, SINGLES)
            a1 = count_file_read(count_path)
            per = (a1 - a0) / n
            ck.check("%s: %d heap allocations in %d requests, %.4f a request (< %.2f)"
                     % (label, a1 - a0, n, per, ALLOC_LIMIT), per < ALLOC_LIMIT)
            big_batches(c, 5)          # the pool's large buffers
            a0, f0 = count_file_read(count_path), minflt(d.proc.pid)
            n = big_batches(c, BIG_BATCHES)
            a1, f1 = count_file_read(count_path), minflt(d.proc.pid)
            ck.check("%s: 2 and 4 MiB requests, %.3f heap allocations and %.2f page faults"
                     " a request (< %.2f, < %d)"
                     % (label, (a1 - a0) / n, (f1 - f0) / n, ALLOC_LIMIT, BIG_FAULT_LIMIT),
                     (a1 - a0) / n < ALLOC_LIMIT and (f1 - f0) / n < BIG_FAULT_LIMIT)
        if counting:
            a1 = count_file_read(count_path)
            d.stats()
            a2 = count_file_read(count_path)
            ck.check("%s: the count sees a stats command allocate (%d)" % (label, a2 - a1),
                     a2 > a1)
        else:
            skipped.append("allocation counts (%s)" %
                           ("a sanitizer build" if os.path.exists(shim) else "no " + shim))

        if shutil.which("strace"):
            out = os.path.join(tmp, "strace.%d.out" % os.getpid())
            st = Strace(d.proc.pid, out)
            n = pipelined(c, BATCHES)
            calls = st.stop()
            per = path_calls(calls) / n
            ck.check("%s: QD32, %.3f system calls a request (< %.1f)" % (label, per, QD32_LIMIT),
                     per < QD32_LIMIT, summary(calls, n))
            print("  %s" % summary(calls, n))
            st = Strace(d.proc.pid, out)
            n = singles(c, SINGLES)
            calls = st.stop()
            per = path_calls(calls) / n
            ck.check("%s: QD1, %.2f system calls a request (<= %.1f)"
                     % (label, per, QD1_LIMIT[kind]), per <= QD1_LIMIT[kind],
                     summary(calls, n))
            print("  %s" % summary(calls, n))
        else:
            skipped.append("system call counts (no strace)")
        c.close()
        ck.check("%s: the daemon stops cleanly" % label, d.stop() == 0)
    finally:
        d.kill()
        if os.path.exists(count_path):
            os.unlink(count_path)


def main():
    ck = Checks()
    img = os.path.join(tmp, "hot-path.%d.img" % os.getpid())
    vhd = img + ".vhd"
    with open(img, "wb") as f:
        f.truncate(SIZE)
    try:
        configs = [("-d ram", "ram", ["-d", "ram", "64M"]),
                   ("-d ram, simple replies", "ram", ["-d", "ram", "64M"], plain(False)),
                   ("--cache writeback", "submit", ["--cache", "writeback", img])]
        subprocess.run([os.path.join(os.path.dirname(os.path.abspath(exe)), "vdisk-img"),
                        "create", vhd, str(SIZE)], check=True)
        if direct_ok(img + ".probe"):
            configs.append(("--cache none", "submit", ["--cache", "none", img]))
            configs.append(("VHD, --cache none", "submit", ["--cache", "none", vhd]))
        else:
            skipped.append("--cache none (%s does not take O_DIRECT)" % tmp)
        for label, kind, args, *connect in configs:
            ck.run(label + ": every step ran", case, ck, label, kind, args, *connect)
        pki = os.path.join(tmp, "hot-path-pki.%d" % os.getpid())
        r = subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "..", "lib",
                                                 "make-pki.sh"), pki],
                           capture_output=True, text=True)
        if r.returncode == 0:
            ck.run("TLS: every step ran", case, ck, "-d ram, TLS", "tls",
                   ["-d", "ram", "64M", "--tls", "require", "--tls-certificates",
                    os.path.join(pki, "server")], tls_connect(pki))
        else:
            skipped.append("TLS (%s)" % (r.stdout + r.stderr).strip())
        shutil.rmtree(pki, ignore_errors=True)
    finally:
        os.unlink(img)
        if os.path.exists(vhd):
            os.unlink(vhd)
    if skipped and ck.failed == 0:
        print("%d checks passed, 0 failed" % ck.passed)
        skip("not run: " + "; ".join(dict.fromkeys(skipped)))
    ck.finish()


if __name__ == "__main__":
    main()
