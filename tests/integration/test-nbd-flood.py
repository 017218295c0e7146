"""An idle flood does not lock out a client that makes progress.

300 connections that connect and send nothing, reconnecting whenever
they are dropped, against the default cap of 128 (and a per-peer cap of 100):
a well-behaved client (nbdinfo: libnbd answers the greeting at once) --
from the same uid as the flood on the unix socket, and over TCP from the
same address -- finishes its handshake within a second, every time.  A client can still
be dropped while it has not answered the greeting (a flood of R
reconnects per second cycles through the C handshake slots of its peer
in C/R seconds); it then tries again, as well-behaved clients do, and
the number of attempts is printed.  Established connections made before
the flood are never dropped."""

import os
import selectors
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import CMD_READ, Checks, Daemon, free_port, skip  # noqa: E402

FLOOD = 300
TRIES = 10


class Flood:
    """Keeps FLOOD idle connections open, reconnecting dropped ones; runs
    in a process of its own (python's GIL would otherwise slow the good
    client, not the server)."""

    def __init__(self, connect):
        self.connect = connect
        self.stop = threading.Event()
        self.reconnects = 0
        self.sel = selectors.DefaultSelector()

    def open_one(self):
        try:
            s = self.connect()
        except OSError:
            return
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ)

    def run(self):
        for _ in range(FLOOD):
            self.open_one()
        while not self.stop.is_set():
            for key, _ in self.sel.select(0.05):
                s = key.fileobj
                try:
                    data = s.recv(4096)     # the greeting, or the end
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(s)
                    s.close()
                    self.reconnects += 1
                    self.open_one()
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()


def unix_conn(path):
    def f():
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        return s
    return f


def tcp_conn(port):
    def f():
        return socket.create_connection(("127.0.0.1", port), timeout=5)
    return f


if len(sys.argv) == 4 and sys.argv[1] == "--flood":
    # The flood process: until stdin closes.
    fl = Flood(unix_conn(sys.argv[3]) if sys.argv[2] == "unix" else
               tcp_conn(int(sys.argv[3])))
    threading.Thread(target=lambda: (sys.stdin.read(), fl.stop.set()), daemon=True).start()
    fl.run()
    print(fl.reconnects)
    sys.exit(0)


class FloodProc:
    def __init__(self, kind, where):
        self.p = subprocess.Popen([sys.executable, __file__, "--flood", kind, str(where)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.reconnects = 0

    def finish(self):
        out, _ = self.p.communicate("", timeout=20)
        self.reconnects = int(out.strip() or 0)


if subprocess.run(["which", "nbdinfo"], capture_output=True).returncode != 0:
    skip("nbdinfo (libnbd-bin) is not installed")
t = Checks()
port = free_port()
d = Daemon("--max-peer-connections", "100", "-d", "ram", "64M", name="disk",
           listen=["unix:{sock}", "tcp:127.0.0.1:%d" % port])
early = d.client()
early.negotiate(b"disk")
t.check("an established connection before the flood", early.cmd(CMD_READ, 0, 4096)[0] == 0)

for name, kind, where, connect in (("unix, same uid", "unix", d.sock, unix_conn(d.sock)),
                                  ("tcp, same address", "tcp", port, tcp_conn(port))):
    fl = FloodProc(kind, where)
    time.sleep(1.0)
    worst = 0.0
    fails = 0
    attempts = []
    for _ in range(TRIES):
        t0 = time.monotonic()
        # libnbd, as real clients answer: at once.  A client dropped in its
        # handshake does what a well-behaved one does: tries again.
        uri = ("nbd+unix:///disk?socket=" + d.sock if kind == "unix" else
               "nbd://127.0.0.1:%d/disk" % port)
        ok, tries = False, 0
        while not ok and time.monotonic() - t0 < 1.0:
            tries += 1
            p = subprocess.run(["nbdinfo", "--size", uri], capture_output=True, text=True,
                               timeout=10)
            ok = p.returncode == 0 and p.stdout.strip() == str(64 << 20)
            if not ok:
                time.sleep(0.01)
        attempts.append(tries)
        dt = time.monotonic() - t0
        worst = max(worst, dt)
        if not ok or dt > 1.0:
            fails += 1
        time.sleep(0.1)
    fl.finish()
    t.check("%s: a good client served within a second %d of %d times (worst %.3f s, "
            "attempts %s, %d flood reconnects)" % (name, TRIES - fails, TRIES, worst,
                                                  attempts, fl.reconnects),
            fails == 0, worst)
    t.check("%s: the flood was being dropped" % name, fl.reconnects > 0, fl.reconnects)
    t.check("%s: the connection from before the flood still works" % name,
            early.cmd(CMD_READ, 4096, 4096)[0] == 0)

early.close()
t.check("SIGTERM: exit 0", d.stop() == 0)
t.finish()
