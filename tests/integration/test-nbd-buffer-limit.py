"""The daemon-wide buffer budget (--buffer-limit): 8 clients pipeline
32 MiB READs and read none of their replies.  Without a bound that took
the daemon past 500 MiB of RSS; with --buffer-limit 64M the buffers held
stay within the budget (the buffer_bytes statistic and RSS say so), no
request is failed or dropped, and once the clients read, every reply
arrives whole and right.  A bad --buffer-limit is refused."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import CMD_READ, CMD_WRITE, Checks, Daemon, MiB  # noqa: E402

import json

VDISKCTL = os.environ.get("VDISKCTL", "build/vdiskctl")
CLIENTS, PER = 8, 6
LEN = 32 * MiB


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stats(d):
    p = subprocess.run([VDISKCTL, "-s", d.ctl, "stats", "--json"], capture_output=True,
                       text=True, timeout=30)
    return json.loads(p.stdout)


t = Checks()
d = Daemon("--buffer-limit", "64M", "-d", "ram", "1G", name="disk")
w = d.client(timeout=60)
w.negotiate(b"disk")
pattern = bytes(range(256)) * (LEN // 256)
t.check("a 32 MiB pattern is written", w.cmd(CMD_WRITE, 0, LEN, payload=pattern)[0] == 0)
base = rss_kib(d.proc.pid)

clients = []
for i in range(CLIENTS):
    c = d.client(timeout=60)
    c.negotiate(b"disk")
    c.send(b"".join(c.request_bytes(CMD_READ, 0, LEN, handle=j) for j in range(PER)))
    clients.append(c)
time.sleep(2.0)
s = stats(d)
peak = rss_kib(d.proc.pid)
t.check("buffer_bytes stays within the budget (%d MiB of %d)" %
        (s["buffer_bytes"] // MiB, s["buffer_limit"] // MiB),
        0 < s["buffer_bytes"] <= 64 * MiB, s["buffer_bytes"])
t.check("RSS stays near the budget (%d MiB, was %d MiB before)" % (peak // 1024, base // 1024),
        peak - base < 64 * 1024 + 48 * 1024, (base, peak))
t.check("the daemon answers while the budget is spent", s.get("ok") is True)

bad = 0
got = 0
for c in clients:
    for _ in range(PER):
        h, err, data, _ = c.read_reply()
        got += 1
        if err or data != pattern:
            bad += 1
t.check("every reply arrives whole and right (%d of %d)" % (got - bad, CLIENTS * PER),
        bad == 0 and got == CLIENTS * PER, bad)
s = stats(d)
t.check("no request failed", s["errors"] == 0, s["errors"])
t.check("the budget is given back", s["buffer_bytes"] == 0, s["buffer_bytes"])
for c in clients:
    c.close()
w.close()
t.check("SIGTERM: exit 0", d.stop() == 0)

for bad_val in ("0", "1K", "lots", "-5M"):
    p = subprocess.run([os.environ.get("VDISKD", "build/vdiskd"), "-f", "-l", "unix:/nonexistent/x",
                        "-c", "/nonexistent/c", "--buffer-limit", bad_val, "-d", "ram", "1M"],
                       capture_output=True, text=True, timeout=20)
    t.check("--buffer-limit %s: exit 1 with a message" % bad_val,
            p.returncode == 1 and "buffer-limit" in p.stderr, (p.returncode, p.stderr))
t.finish()
