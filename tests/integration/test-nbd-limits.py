"""NBD server limits: the handshake timeout (10 s), the connection cap
(--max-connections), shutdown with requests in flight and with a client
that reads nothing, and many clients at once."""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import *  # noqa: E402,F403

t = Checks()
d = Daemon("--max-connections", "4", "-d", "ram", "64M", name="disk")

# Handshake timeout: a silent client, and one that stops mid-option.
t0 = time.monotonic()
quiet = d.client(timeout=30)
quiet.greeting()
slow = d.client(timeout=30)
slow.start()
slow.send(Client.opt_bytes(OPT_GO, Client.go_data(b"disk"))[:20])
done = d.client()
done.negotiate(b"disk")
closed_quiet = quiet.is_closed(wait=20)
dt = time.monotonic() - t0
t.check("a silent client is dropped after the 10 s handshake timeout",
        closed_quiet and 9 <= dt <= 15, dt)
t.check("a client stuck mid-option is dropped too", slow.is_closed(wait=5))
t.check("a client past its handshake is not timed out", done.cmd(CMD_READ, 0, 512)[0] == 0)
quiet.close()
slow.close()

# Connection cap: 4.  'done' holds one; three more fit in their
# handshake.  A fifth makes room by dropping the oldest connection still
# in its handshake, never an established one.
held = [done]
for _ in range(3):
    c = d.client()
    c.greeting()
    held.append(c)
    time.sleep(0.05)
time.sleep(0.2)
extra = d.client()
t.run("a fifth connection over a cap of 4 is admitted (it gets a greeting)", extra.greeting)
t.check("... by dropping the oldest handshake", held[1].is_closed(wait=3))
t.check("... not the younger ones", not held[2].is_closed(wait=0.3))
t.check("... nor the established one", done.cmd(CMD_READ, 0, 512)[0] == 0)
# All four established: now a new one is refused at once.
established = [done]
for c in (held[2], held[3], extra):
    c.close()
time.sleep(0.3)
for _ in range(3):
    c = d.client()
    c.negotiate(b"disk")
    established.append(c)
extra = d.client()
t.check("with every connection established, a fifth is closed at once",
        extra.is_closed(wait=3))
extra.close()
t.check("the established connections still work",
        all(c.cmd(CMD_READ, 0, 512)[0] == 0 for c in established))
for c in established[1:]:
    c.close()
time.sleep(0.3)
c = d.client()
c.negotiate(b"disk")
t.check("after some close, new connections are taken again", c.cmd(CMD_READ, 0, 512)[0] == 0)
c.close()
held[1].close()
done.close()
t.check("SIGTERM: exit 0", d.stop() == 0, d.log_text())

# Shutdown with requests in flight: the client gets its replies, then EOF.
d = Daemon("-d", "ram", "256M", name="disk")
c = d.client()
c.negotiate(b"disk")
N = 128
c.send(b"".join(Client.request_bytes(CMD_READ, i * MiB, MiB, handle=i) for i in range(N)))
time.sleep(0.2)
d.proc.send_signal(15)
got, bad = 0, 0
try:
    while True:
        h, err, data, _ = c.read_reply()
        if err or len(data) != MiB or h >= N:
            bad += 1
        got += 1
except (Closed, OSError):
    pass
t.check("shutdown: replies to accepted requests arrive whole (%d of %d), then EOF" % (got, N),
        got > 0 and bad == 0, (got, bad))
rc = d.proc.wait(30)
t.check("shutdown with requests in flight: exit 0", rc == 0, d.log_text())
c.close()

# Shutdown while a client reads nothing: it is cut after the grace time.
d = Daemon("-d", "ram", "256M", name="disk")
c = d.client()
c.negotiate(b"disk")
c.send(b"".join(Client.request_bytes(CMD_READ, i * MiB, MiB, handle=i) for i in range(200)))
time.sleep(0.3)
t0 = time.monotonic()
d.proc.send_signal(15)
try:
    rc = d.proc.wait(40)
except Exception:  # noqa: BLE001
    rc = None
t.check("shutdown with a client that reads nothing: exit 0 after the grace time",
        rc == 0 and time.monotonic() - t0 < 30, (rc, time.monotonic() - t0))
c.close()

# Many clients at once, each with requests in flight.
d = Daemon("-d", "ram", "64M", name="disk")
errors = []


def worker(k):
    try:
        c = d.client()
        c.negotiate(b"disk")
        for r in range(20):
            reqs = b"".join(Client.request_bytes(CMD_WRITE, (k * 32 + i) * 4096, 4096,
                                                 handle=i, payload=bytes([k]) * 4096)
                            for i in range(32))
            c.send(reqs)
            for i in range(32):
                h, err, _, _ = c.read_reply()
                if err:
                    errors.append((k, h, err))
        for i in range(32):
            err, data, _ = c.cmd(CMD_READ, (k * 32 + i) * 4096, 4096, handle=i)
            if err or data != bytes([k]) * 4096:
                errors.append((k, i, "data"))
        c.request(CMD_DISC)
        c.close()
    except Exception as e:  # noqa: BLE001
        errors.append((k, repr(e)))


threads = [threading.Thread(target=worker, args=(k,)) for k in range(100)]
for th in threads:
    th.start()
for th in threads:
    th.join()
t.check("100 clients at once, 640 writes each, all answered and read back",
        not errors, errors[:5])
time.sleep(0.3)
st = d.stats()
t.check("... no connection left over", st.get("connections") == 0, st)
t.check("SIGTERM: exit 0", d.stop() == 0, d.log_text())
t.finish()
