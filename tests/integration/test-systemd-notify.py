"""vdiskd under a pretend systemd: this test binds the datagram socket
that $NOTIFY_SOCKET names (a path, then an abstract "@" address) and
checks what arrives.

READY=1 comes once, and only when the NBD socket already accepts (a
start-up that fails never says it); WATCHDOG=1 keeps coming at half of
$WATCHDOG_USEC, and not at all when $WATCHDOG_PID names another process;
STATUS= follows the disk (serving, connections, paused, stopping);
STOPPING=1 comes on SIGTERM, and the exit status is 0."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import Checks, Client  # noqa: E402

VDISKD = os.environ["VDISKD"]
TMP = tempfile.mkdtemp(prefix="systemd-notify.", dir=os.environ.get("TESTS_TMP", "/tmp"))
WATCHDOG_USEC = 400000		# pings every 200 ms

t = Checks()


class Notify:
    """The receiving end of $NOTIFY_SOCKET."""

    def __init__(self, abstract):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "vdiskd-test-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            path = os.path.join(TMP, "notify")
            if os.path.exists(path):
                os.unlink(path)
            self.sock.bind(path)
            self.env = path
        self.msgs = []		# (monotonic time, text)

    def recv(self, timeout):
        """One datagram (may carry several lines) or None."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            d = self.sock.recv(4096)
        except socket.timeout:
            return None
        m = (time.monotonic(), d.decode())
        self.msgs.append(m)
        return m

    def wait_for(self, pred, timeout):
        """The first message from now on for which pred(text) holds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = self.recv(end - time.monotonic())
            if m and pred(m[1]):
                return m
        return None

    def collect(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.recv(end - time.monotonic())

    def texts(self, prefix):
        return [m[1] for m in self.msgs if m[1].startswith(prefix)]

    def close(self):
        self.sock.close()


def start(notify, watchdog_pid="self", watchdog=True, extra=(), sock=None):
    """vdiskd -f on a private socket.  watchdog_pid "self" makes
    $WATCHDOG_PID the daemon's own pid (an exec wrapper: the shell's $$
    survives exec), None leaves it unset, anything else is used as is."""
    sock = sock or os.path.join(TMP, "d.nbd")
    ctl = os.path.join(TMP, "d.ctl")
    for p in (sock, ctl):
        if os.path.exists(p):
            os.unlink(p)
    env = dict(os.environ, NOTIFY_SOCKET=notify.env)
    for k in ("WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS"):
        env.pop(k, None)
    if watchdog:
        env["WATCHDOG_USEC"] = str(WATCHDOG_USEC)
    argv = [VDISKD, "-f", "-d", "ram", "-n", "disk", "-l", "unix:" + sock,
            "-c", ctl] + list(extra) + ["64M"]
    if watchdog_pid == "self":
        argv = ["/bin/sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"',
                "sh"] + argv
    elif watchdog_pid is not None:
        env["WATCHDOG_PID"] = str(watchdog_pid)
    log = open(os.path.join(TMP, "vdiskd.log"), "a")
    p = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
    p.sock, p.ctl = sock, ctl
    return p


def stop(p, timeout=20):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def accepts(path):
    """True when the NBD server answers with its greeting."""
    try:
        c = Client(path, timeout=5)
        c.greeting()
        c.close()
        return True
    except Exception:  # noqa: BLE001 - refused, closed, garbage: all "no"
        return False


def ctl(path, cmd):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(path)
    f = s.makefile("rw")
    f.readline()		# greeting
    f.write(json.dumps({"cmd": cmd}) + "\n")
    f.flush()
    r = json.loads(f.readline())
    s.close()
    return r


def story(abstract):
    kind = "abstract @ address" if abstract else "path"
    n = Notify(abstract)
    p = start(n)

    # READY=1, and at that moment the socket answers.
    ready = n.wait_for(lambda m: "READY=1" in m.split("\n"), 15)
    t.check("%s: READY=1 arrives" % kind, ready is not None)
    if not ready:
        stop(p)
        return
    t.check("%s: the NBD socket answers as soon as READY=1 is in" % kind,
            accepts(p.sock))
    t.check("%s: READY=1 is the only thing in its datagram" % kind,
            ready[1] == "READY=1", repr(ready[1]))
    status = [m for m in n.texts("STATUS=")]
    t.check("%s: STATUS= says serving by then" % kind,
            any(s.startswith("STATUS=serving") for s in status), repr(status))

    # Watchdog: pings at half the interval, never a gap systemd would
    # punish.  Sanitizer builds are slower: the bounds are generous.
    since = time.monotonic()
    n.collect(2.0)
    pings = [m[0] for m in n.msgs if m[1] == "WATCHDOG=1" and m[0] >= since]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    t.check("%s: WATCHDOG=1 about every %d ms (%d in 2 s)" %
            (kind, WATCHDOG_USEC // 2000, len(pings)), 6 <= len(pings) <= 16,
            "gaps %s" % [round(g, 3) for g in gaps])
    t.check("%s: no gap between pings reaches WATCHDOG_USEC" % kind,
            gaps and max(gaps) < WATCHDOG_USEC / 1e6,
            "largest gap %.3f s" % (max(gaps) if gaps else -1))

    # STATUS= follows connections and pause/resume.
    c = Client(p.sock, timeout=10)
    c.negotiate()
    got = n.wait_for(lambda m: m == "STATUS=serving, 1 connection", 5)
    t.check("%s: STATUS= counts the connection" % kind, got is not None,
            repr(n.texts("STATUS=")))
    r = ctl(p.ctl, "pause")
    got = n.wait_for(lambda m: m.startswith("STATUS=paused"), 5)
    t.check("%s: STATUS= says paused after vdiskctl pause" % kind,
            r.get("ok") and got is not None, "%r %r" % (r, n.texts("STATUS=")))
    r = ctl(p.ctl, "resume")
    got = n.wait_for(lambda m: m.startswith("STATUS=serving"), 5)
    t.check("%s: and serving again after resume" % kind,
            r.get("ok") and got is not None, "%r %r" % (r, n.texts("STATUS=")))
    c.close()

    # SIGTERM: STOPPING=1, a stopping status, exit 0; READY=1 only once.
    p.send_signal(signal.SIGTERM)
    got = n.wait_for(lambda m: "STOPPING=1" in m.split("\n"), 10)
    t.check("%s: STOPPING=1 on SIGTERM" % kind, got is not None)
    rc = stop(p)
    n.collect(0.2)
    t.check("%s: exit status 0 after SIGTERM" % kind, rc == 0, "exit %s" % rc)
    t.check("%s: a STATUS= line says stopping" % kind,
            any(s.startswith("STATUS=stopping") for s in n.texts("STATUS=")),
            repr(n.texts("STATUS=")))
    t.check("%s: READY=1 was sent once" % kind,
            sum(m[1].split("\n").count("READY=1") for m in n.msgs) == 1)
    n.close()


def watchdog_not_ours():
    n = Notify(False)
    p = start(n, watchdog_pid=1)
    ready = n.wait_for(lambda m: m == "READY=1", 15)
    n.collect(1.0)
    t.check("WATCHDOG_PID of another process: ready, but no WATCHDOG=1",
            ready is not None and not n.texts("WATCHDOG=1"), repr(n.msgs))
    stop(p)
    n.close()

    n = Notify(False)
    p = start(n, watchdog_pid=None)
    n.wait_for(lambda m: m == "READY=1", 15)
    n.collect(0.8)
    t.check("WATCHDOG_USEC without WATCHDOG_PID: pings anyway",
            len(n.texts("WATCHDOG=1")) >= 2, repr(n.msgs))
    stop(p)
    n.close()

    n = Notify(False)
    p = start(n, watchdog=False)
    n.wait_for(lambda m: m == "READY=1", 15)
    n.collect(0.8)
    t.check("no WATCHDOG_USEC: no WATCHDOG=1", not n.texts("WATCHDOG=1"),
            repr(n.msgs))
    stop(p)
    n.close()


def failed_start_is_never_ready():
    """A listener that cannot be created: exit 1, and no READY=1."""
    n = Notify(False)
    p = start(n, sock=os.path.join(TMP, "no-such-dir", "d.nbd"))
    rc = p.wait(20)
    n.collect(0.3)
    t.check("start-up failure: exit 1", rc == 1, "exit %s" % rc)
    t.check("start-up failure: READY=1 never sent",
            not any("READY=1" in m[1] for m in n.msgs), repr(n.msgs))
    n.close()


def bad_notify_socket():
    """A $NOTIFY_SOCKET nobody listens on must not stop the disk."""
    class Gone:
        env = os.path.join(TMP, "nobody-here")
    p = start(Gone())
    ok = False
    for _ in range(200):
        if accepts(p.sock):
            ok = True
            break
        time.sleep(0.05)
    t.check("NOTIFY_SOCKET without a listener: serves anyway", ok)
    rc = stop(p)
    t.check("NOTIFY_SOCKET without a listener: exit 0 on SIGTERM", rc == 0,
            "exit %s" % rc)


story(abstract=False)
story(abstract=True)
watchdog_not_ours()
failed_start_is_never_ready()
bad_notify_socket()
t.finish()
