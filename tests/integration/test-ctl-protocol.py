"""The control protocol against a running vdiskd, spoken on a raw socket:
the greeting, every command, bad input (not JSON, not an object, unknown
command, missing and wrong-typed arguments; brackets nested thousands
deep, a NUL inside a string, duplicate keys, trailing junk), a 1 MiB line without a
newline, 1,000 idle connections, a client that vanishes before its pause
reply, a client of another uid, and reopen (a copy, a missing path, while
running, a different size with clients connected).  After each abuse the
daemon still serves NBD and other control clients."""

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import CMD_FLUSH, CMD_READ, CMD_WRITE, Checks, Daemon, MiB  # noqa: E402


class Ctl:
    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""
        self.greeting = json.loads(self.line())

    def line(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def send(self, raw):
        self.s.sendall(raw)

    def reply(self):
        return json.loads(self.line())

    def call(self, cmd, **args):
        args["cmd"] = cmd
        self.send((json.dumps(args) + "\n").encode())
        return self.reply()

    def raw(self, raw):
        self.send(raw + b"\n")
        return self.reply()

    def closed(self, wait=5):
        self.s.settimeout(wait)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def err(r, name):
    return r.get("ok") is False and r.get("error") == name and \
        isinstance(r.get("message"), str) and r["message"] != ""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nr_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


t = Checks()
tmp = os.environ.get("TESTS_TMP", "/tmp")
image = os.path.join(tmp, "ctl-protocol.%d.img" % os.getpid())
with open(image, "wb") as f:
    f.truncate(16 * MiB)
d = Daemon(image, name="proto")
pid = d.proc.pid


def nbd_works():
    """A fresh NBD client writes and reads back 4 KiB."""
    c = d.client()
    c.negotiate(b"proto")
    pat = os.urandom(4096)
    ok = c.cmd(CMD_WRITE, 8192, 4096, payload=pat)[0] == 0 and \
        c.cmd(CMD_READ, 8192, 4096)[1] == pat
    c.close()
    return ok


def ctl_works():
    c = Ctl(d.ctl)
    r = c.call("stats")
    c.close()
    return r.get("ok") is True and "reads" in r


# --- greeting, mode, every command ---
st = os.stat(d.ctl)
t.check("control socket mode 0600", st.st_mode & 0o7777 == 0o600, oct(st.st_mode))
c = Ctl(d.ctl)
g = c.greeting
t.check("greeting {vdiskd:{version, protocol:1}}",
        set(g) == {"vdiskd"} and g["vdiskd"].get("protocol") == 1 and
        isinstance(g["vdiskd"].get("version"), str), g)
r = c.call("info")
t.check("info: every field",
        r.get("ok") is True and r["name"] == "proto" and r["image"] == image and
        r["driver"] == "raw" and r["size"] == 16 * MiB and r["logical_block"] >= 512 and
        r["physical_block"] >= r["logical_block"] and r["read_only"] is False and
        r["cache"] in ("none", "writeback") and r["state"] == "running" and
        r["listen"] == ["unix:" + d.sock] and r["pid"] == pid and
        r["version"] == g["vdiskd"]["version"], r)
t.check("reply starts with \"ok\"", json.dumps(r).startswith('{"ok": true'))
r = c.call("stats")
keys = ["reads", "writes", "flushes", "trims", "zeroes", "bytes_read", "bytes_written",
        "errors", "inflight", "waiting", "pending", "iocbs_submitted", "io_submit_calls",
        "merged", "connections", "uptime_s", "read_lat_p50_us", "read_lat_p99_us",
        "write_lat_p50_us", "write_lat_p99_us"]
t.check("stats: every DESIGN.md key, integers",
        r.get("ok") is True and all(isinstance(r.get(k), int) for k in keys) and
        r.get("state") == "running", [k for k in keys if not isinstance(r.get(k), int)])
before = r
t.check("NBD works", nbd_works())
r = c.call("stats")
t.check("stats: counters follow NBD I/O",
        r["writes"] == before["writes"] + 1 and r["reads"] == before["reads"] + 1 and
        r["bytes_written"] == before["bytes_written"] + 4096, r)
t.check("flush", c.call("flush").get("ok") is True)
t.check("stats: the flush was counted", c.call("stats")["flushes"] >= 1)
r = c.call("pause")
t.check("pause", r.get("ok") is True and r.get("state") == "paused", r)
r = c.call("pause", timeout=5)
t.check("pause again: ok (idempotent)", r.get("ok") is True and r.get("state") == "paused", r)
t.check("info: state paused", c.call("info")["state"] == "paused")
r = c.call("resume")
t.check("resume", r.get("ok") is True and r.get("state") == "running", r)
r = c.call("log-level")
t.check("log-level: shows the level", r.get("ok") is True and r.get("level") == "info", r)
r = c.call("log-level", level="debug")
t.check("log-level debug", r.get("ok") is True and r["level"] == "debug" and
        r["previous"] == "info", r)
t.check("log-level info", c.call("log-level", level="info").get("level") == "info")
t.check("log-level bogus: EINVAL", err(c.call("log-level", level="bogus"), "EINVAL"))

# --- bad input: clear errors, the connection stays usable ---
bad = [
    (b"hello", "EINVAL", "not JSON"),
    (b"{\"cmd\":\"stats\"", "EINVAL", "truncated JSON"),
    (b"[\"stats\"]", "EINVAL", "a JSON array"),
    (b"42", "EINVAL", "a JSON number"),
    (b"\"stats\"", "EINVAL", "a JSON string"),
    (b"{}", "EINVAL", "no cmd"),
    (b"{\"cmd\":1}", "EINVAL", "cmd not a string"),
    (b"{\"cmd\":\"stats\",\"cmd\":\"info\"}", "EINVAL", "duplicate keys"),
    (b"{\"cmd\":\"stats\"} {\"cmd\":\"info\"}", "EINVAL", "two objects on a line"),
    (b"{\"cmd\":\"format-disk\"}", "ENOSYS", "unknown command"),
    (b"{\"cmd\":\"stats\",\"extra\":1}", "EINVAL", "unknown argument"),
    (b"{\"cmd\":\"pause\",\"timeout\":\"soon\"}", "EINVAL", "wrong-typed timeout"),
    (b"{\"cmd\":\"pause\",\"timeout\":-3}", "EINVAL", "negative timeout"),
    (b"{\"cmd\":\"reopen\",\"image\":[1]}", "EINVAL", "wrong-typed image"),
    (b"{\"cmd\":\"log-level\",\"level\":3}", "EINVAL", "wrong-typed level"),
    (b"{\"cmd\":\"stats\"}\x00", "EINVAL", "a NUL byte"),
    (b"\xff\xfe{}", "EINVAL", "not UTF-8"),
    # Edge cases of the JSON itself (issue 10).
    (b"[" * 5000 + b"]" * 5000, "EINVAL", "arrays nested 5,000 deep"),
    (b"{\"cmd\":\"stats\",\"x\":" + b"[" * 20000 + b"]" * 20000 + b"}", "EINVAL",
     "an argument nested 20,000 deep"),
    (b"{\"a\":" * 4000 + b"1" + b"}" * 4000, "EINVAL", "objects nested 4,000 deep"),
    (b"{\"cmd\":\"stats\",\"x\":" + b"[" * 3000, "EINVAL", "3,000 unclosed brackets"),
    (b"{\"cmd\":\"st\x00ats\"}", "EINVAL", "a raw NUL inside a string"),
    (b"{\"cmd\":\"st\\u0000ats\"}", "EINVAL", "an escaped NUL (\\u0000) inside a string"),
    (b"{\"cmd\":\"reopen\",\"image\":\"/a\\u0000/etc/passwd\"}", "EINVAL",
     "an escaped NUL inside an argument"),
    (b"{\"cmd\":\"pause\",\"timeout\":1,\"timeout\":2}", "EINVAL",
     "a duplicate argument"),
    (b"{\"cmd\":\"stats\",\"x\":{\"k\":1,\"k\":2}}", "EINVAL",
     "a duplicate key in a nested object"),
    (b"{\"cmd\":\"stats\"}x", "EINVAL", "trailing junk after the object"),
    (b"{\"cmd\":\"stats\"}}", "EINVAL", "a trailing bracket"),
    (b"{\"cmd\":\"stats\"},", "EINVAL", "a trailing comma"),
    (b"{\"cmd\":\"stats\"} 1", "EINVAL", "a trailing number"),
]
for raw, name, desc in bad:
    r = c.raw(raw)
    t.check("%s: %s with a message" % (desc, name), err(r, name), r)
t.check("the connection still answers after bad requests", c.call("info").get("ok") is True)
t.check("after bad requests: NBD serves", nbd_works())
t.check("after bad requests: another control client is served", ctl_works())
r = c.call("reopen")
t.check("reopen while running: EBUSY", err(r, "EBUSY"), r)

# Pipelined: several requests in one write, replies in order.
c.send(b'{"cmd":"info"}\n{"cmd":"nope"}\n{"cmd":"stats"}\n')
a, b, s = c.reply(), c.reply(), c.reply()
t.check("pipelined requests answered in order",
        "image" in a and err(b, "ENOSYS") and "reads" in s, (a, b, s))
c.close()

# --- a 1 MiB line with no newline: error, closed, memory does not grow ---
rss0 = rss_kib(pid)
c = Ctl(d.ctl)
sent = 0
try:
    chunk = b"x" * 65536
    while sent < MiB:
        c.s.sendall(chunk)
        sent += len(chunk)
except (BrokenPipeError, ConnectionResetError, socket.timeout):
    pass
try:
    r = c.reply()
    t.check("1 MiB line: EMSGSIZE", err(r, "EMSGSIZE"), r)
except (EOFError, ConnectionResetError):
    t.check("1 MiB line: EMSGSIZE (or closed before we could read it)", True)
t.check("1 MiB line: the connection is closed", c.closed())
c.close()
rss1 = rss_kib(pid)
t.check("1 MiB line: daemon RSS grew by less than 512 KiB", rss1 - rss0 < 512,
        "%d -> %d KiB" % (rss0, rss1))
t.check("after the long line: NBD serves", nbd_works())
t.check("after the long line: control serves", ctl_works())

# --- 1,000 idle connections ---
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 1200
if soft < want and hard >= want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
fds0 = nr_fds(pid)
idle, refused = [], 0
for i in range(1000):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    try:
        s.connect(d.ctl)
        idle.append(s)
    except OSError:
        refused += 1
        s.close()
time.sleep(0.5)
fds1 = nr_fds(pid)
t.check("1,000 idle connections: the daemon holds at most ~64 of them",
        fds1 - fds0 <= 70, "%d -> %d fds" % (fds0, fds1))
t.check("1,000 idle connections: NBD serves", nbd_works())
t.check("1,000 idle connections: a new control client is served", ctl_works())
# The evicted ones were told why (those that were accepted and got a line).
told = 0
for s in idle[:50]:
    s.settimeout(0.2)
    try:
        data = s.recv(4096)
        lines = data.split(b"\n")
        told += any(b'"error"' in l for l in lines)
    except (socket.timeout, OSError):
        pass
t.check("evicted idle clients get an error line", told > 0, told)
for s in idle:
    s.close()
time.sleep(0.3)
t.check("after the idle flood: control serves", ctl_works())

# --- a client gone before its pause reply ---
c = Ctl(d.ctl)
c.send(b'{"cmd":"pause"}\n{"cmd":"stats"}\n')
c.close()
time.sleep(0.3)
t.check("client gone before the pause reply: daemon alive", d.alive())
c = Ctl(d.ctl)
r = c.call("stats")
t.check("... the pause took effect, nothing in flight",
        r["state"] == "paused" and r["inflight"] == 0, r)
t.check("... resume", c.call("resume").get("ok") is True)
c.close()
# Under load: an NBD client with requests outstanding, the pause client
# vanishes right after asking.
nb = d.client()
nb.negotiate(b"proto")
for h in range(16):
    nb.request(CMD_WRITE, h * 4096, 4096, handle=h + 1, payload=bytes(4096))
c = Ctl(d.ctl)
c.send(b'{"cmd":"pause","timeout":10}\n')
c.s.shutdown(socket.SHUT_RDWR)
c.close()
for h in range(16):
    nb.read_reply()
nb.close()
time.sleep(0.2)
c = Ctl(d.ctl)
t.check("client gone under load: daemon serves, paused",
        d.alive() and c.call("stats")["state"] == "paused")
t.check("... resume", c.call("resume").get("ok") is True)
c.close()
t.check("after the vanished clients: NBD serves", nbd_works())

# --- a client of another uid is refused with a reason ---
if os.geteuid() == 0:
    # The socket is 0600 in a 0700 directory: give the other uid a path
    # (a hard link in a directory it may enter) and the mode to connect.
    pub = os.path.join(tmp, "ctl-pub.%d" % os.getpid())
    os.mkdir(pub, 0o711)
    link = os.path.join(pub, "ctl")
    os.link(d.ctl, link)
    os.chmod(link, 0o666)
    os.chmod(tmp, os.stat(tmp).st_mode | 0o011)
    child = os.fork()
    if child == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(link)
            line = s.makefile("rb").readline()
            r = json.loads(line)
            os._exit(0 if err(r, "EPERM") and "permission" in r["message"] else 1)
        except Exception as e:  # noqa: BLE001
            print("child:", repr(e))
            os._exit(2)
    _, status = os.waitpid(child, 0)
    t.check("another uid: EPERM instead of the greeting", status == 0, status)
    os.chmod(d.ctl, 0o600)
    os.unlink(link)
    os.rmdir(pub)
    t.check("after the refused client: control serves", ctl_works())
else:
    print("# not root: cannot test a client of another uid")

# --- reopen ---
c = Ctl(d.ctl)
nb = d.client()
nb.negotiate(b"proto")
mark = b"ORIGINAL" * 512
nb.cmd(CMD_WRITE, 0, 4096, payload=mark)
nb.cmd(CMD_FLUSH)
t.check("reopen while running: EBUSY", err(c.call("reopen"), "EBUSY"))
t.check("pause for the snapshot", c.call("pause").get("ok") is True)
copy = image + ".copy"
shutil.copyfile(image, copy)
with open(copy, "r+b") as f:
    f.write(b"SNAPSHOT" * 512)
r = c.call("reopen", image=copy)
t.check("reopen while paused to a copy",
        r.get("ok") is True and r["image"] == copy and r["size"] == 16 * MiB and
        r["resized"] is False, r)
t.check("info shows the copy, still paused",
        c.call("info")["image"] == copy and c.call("stats")["state"] == "paused")
missing = os.path.join(tmp, "no-such-dir", "gone.img")
r = c.call("reopen", image=missing)
t.check("reopen to a missing path: ENOENT, the old image kept",
        err(r, "ENOENT") and c.call("info")["image"] == copy, r)
t.check("... still paused", c.call("stats")["state"] == "paused")
r = c.call("reopen")
t.check("reopen the same image again", r.get("ok") is True and r["image"] == copy, r)
big = image + ".big"
with open(big, "wb") as f:
    f.truncate(32 * MiB)
r = c.call("reopen", image=big)
t.check("a different size with a client connected: EBUSY, old image kept",
        err(r, "EBUSY") and "connected" in r["message"] and
        c.call("info")["image"] == copy, r)
t.check("resume", c.call("resume").get("ok") is True)
t.check("the NBD client reads the copy's data",
        nb.cmd(CMD_READ, 0, 4096)[1] == b"SNAPSHOT" * 512)
nb.close()
time.sleep(0.2)
t.check("pause", c.call("pause").get("ok") is True)
r = c.call("reopen", image=big)
t.check("a different size with no client: ok, resized",
        r.get("ok") is True and r["size"] == 32 * MiB and r["resized"] is True, r)
t.check("resume", c.call("resume").get("ok") is True)
t.check("info: the new size", c.call("info")["size"] == 32 * MiB)
c.close()
with open(image, "rb") as f:
    t.check("the original image was left alone", f.read(4096) == mark)

# --- shutdown: the reply comes, then the daemon exits 0 ---
c = Ctl(d.ctl)
r = c.call("shutdown")
t.check("shutdown answers ok", r.get("ok") is True, r)
try:
    rc = d.proc.wait(20)
except subprocess.TimeoutExpired:
    rc = None
t.check("vdiskd exits 0 after shutdown", rc == 0, rc)
t.check("the control socket is removed", not os.path.exists(d.ctl))
c.close()
for p in (image, copy, big):
    os.unlink(p)
t.finish()
