"""vdiskd --config FILE, end to end: every key reaches the running disk
(seen through libnbd and the control socket), the command line overrides
the file, and bad files (unknown key, bad value, missing file, duplicate
key, very long line, binary junk, ...) stop vdiskd with exit status 1 and
one message naming the file, the line and the key, before it creates any
socket."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import Checks, skip  # noqa: E402

try:
    import nbd
except ImportError:
    skip("python3-libnbd is not installed (scripts/deps.sh --test installs it)")

VDISKD = os.environ["VDISKD"]
VDISKCTL = os.environ["VDISKCTL"]
TMP = tempfile.mkdtemp(prefix="systemd-config.", dir=os.environ.get("TESTS_TMP", "/tmp"))
MiB = 1 << 20

t = Checks()
procs = []


def path(name):
    return os.path.join(TMP, name)


def write(name, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path(name), mode) as f:
        f.write(data)
    return path(name)


def image(name, size):
    with open(path(name), "wb") as f:
        f.truncate(size)
    return path(name)


def env():
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_"))}
    e["RUNTIME_DIRECTORY"] = path("run")
    return e


def start(args, wait_for):
    """vdiskd -f ARGS; returns the process once wait_for (a socket path)
    accepts, or None if it died."""
    log = open(path("vdiskd.log"), "a")
    p = subprocess.Popen([VDISKD, "-f"] + args, env=env(), stdout=log, stderr=log)
    procs.append(p)
    end = time.monotonic() + 15
    while time.monotonic() < end and p.poll() is None:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(wait_for)
            s.close()
            return p
        except OSError:
            time.sleep(0.05)
    print(open(path("vdiskd.log")).read())
    return None


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def ctl(sock, *args):
    r = subprocess.run([VDISKCTL, "-s", sock] + list(args) + ["--json"],
                       capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout) if r.stdout.strip() else {"stderr": r.stderr}


def connect(sock, name=""):
    h = nbd.NBD()
    h.set_export_name(name)
    h.connect_unix(sock)
    return h


def every_key():
    img = image("every.img", 8 * MiB)
    a, b, c = path("a.nbd"), path("b.nbd"), path("every.ctl")
    conf = write("every.conf", """\
# every key once (listen twice)
image = %s
driver = raw
listen = unix:%s
listen = unix:%s
control = %s
read-only = yes
cache = writeback
queue-depth = 16
max-connections = 2
log-level = debug
name = cfgdisk
""" % (img, a, b, c))
    p = start(["--config", conf], c)
    t.check("every key: vdiskd starts from the file alone", p is not None)
    if not p:
        return
    info = ctl(c, "info")
    t.check("image, driver, name, read-only and cache reach the disk",
            info.get("image") == img and info.get("driver") == "raw" and
            info.get("name") == "cfgdisk" and info.get("read_only") is True and
            info.get("cache") == "writeback" and info.get("size") == 8 * MiB,
            repr(info))
    t.check("both listen addresses are served, nothing else",
            info.get("listen") == ["unix:" + a, "unix:" + b], repr(info))
    t.check("no default sockets in the run directory",
            not os.path.exists(path("run/cfgdisk.nbd")) and
            not os.path.exists(path("run/cfgdisk.ctl")))
    h1 = connect(a, "cfgdisk")
    h2 = connect(b, "cfgdisk")
    t.check("libnbd on each address sees the export, read-only",
            h1.get_size() == 8 * MiB and h2.get_size() == 8 * MiB and
            h1.is_read_only() and h2.is_read_only())
    try:
        h3 = connect(a, "cfgdisk")
        third = h3.get_size() is None
    except nbd.Error:
        third = True
    t.check("max-connections = 2: a third connection is refused", third)
    for h in (h1, h2):
        h.shutdown()
    lvl = ctl(c, "log-level")
    t.check("log-level = debug", lvl.get("level") == "debug", repr(lvl))
    rc = stop(p)
    t.check("every key: exit 0 on SIGTERM", rc == 0, "exit %s" % rc)


def command_line_wins():
    small, big = image("small.img", 4 * MiB), image("big.img", 12 * MiB)
    fa, fc = path("file.nbd"), path("file.ctl")
    conf = write("override.conf", """\
image = %s
listen = unix:%s
control = %s
cache = writeback
log-level = warn
name = fromfile
read-only = no
max-connections = 1
""" % (small, fa, fc))
    la, lc = path("cli.nbd"), path("cli.ctl")
    p = start(["--config", conf, "-n", "fromcli", "-l", "unix:" + la, "-c", lc,
               "--cache", "none", "-v", "-r", "--max-connections", "3", big], lc)
    t.check("overrides: vdiskd starts", p is not None)
    if not p:
        return
    info = ctl(lc, "info")
    t.check("IMAGE, -n, --cache and -r on the command line win",
            info.get("image") == big and info.get("size") == 12 * MiB and
            info.get("name") == "fromcli" and info.get("cache") == "none" and
            info.get("read_only") is True, repr(info))
    t.check("-l replaces the file's listen, -c its control",
            info.get("listen") == ["unix:" + la] and not os.path.exists(fa) and
            not os.path.exists(fc), repr(info))
    t.check("-v wins over log-level = warn",
            ctl(lc, "log-level").get("level") == "debug")
    hs = [connect(la, "fromcli") for _ in range(3)]
    t.check("--max-connections 3 wins over max-connections = 1",
            all(h.get_size() == 12 * MiB for h in hs))
    for h in hs:
        h.shutdown()
    stop(p)

    # The file still fills what the command line leaves out.
    p = start(["--config", conf, "-l", "unix:" + la, "-c", lc], lc)
    info = ctl(lc, "info") if p else {}
    t.check("without overrides the file's values stand",
            info.get("name") == "fromfile" and info.get("cache") == "writeback"
            and info.get("image") == small and info.get("read_only") is False,
            repr(info))
    if p:
        stop(p)


def refused(desc, args, want, code=1):
    """vdiskd must exit with code, print want on stderr, create nothing."""
    r = subprocess.run([VDISKD, "-f", "-l", "unix:" + path("never.nbd"),
                        "-c", path("never.ctl")] + args, env=env(),
                       capture_output=True, text=True, timeout=30)
    t.check("%s: exit %d" % (desc, code), r.returncode == code,
            "exit %d, stderr %r" % (r.returncode, r.stderr))
    t.check("%s: %s" % (desc, want), want in r.stderr, repr(r.stderr))
    if code == 1:
        t.check("%s: one line of error" % desc, r.stderr.count("\n") == 1,
                repr(r.stderr))
    t.check("%s: no socket was made" % desc,
            not os.path.exists(path("never.nbd")) and
            not os.path.exists(path("never.ctl")))


def bad_files():
    img = image("ok.img", MiB)
    good = "image = %s\n" % img

    f = write("unknown.conf", good + "# fine so far\nimage-file = /x\n")
    refused("unknown key", ["--config", f],
            "%s:3: key 'image-file': unknown key" % f)
    f = write("badval.conf", good + "queue-depth = 0\n")
    refused("bad value", ["--config", f],
            "%s:2: key 'queue-depth': '0' is not a number from 1 to 4096" % f)
    f = write("badbool.conf", good + "read-only = perhaps\n")
    refused("bad boolean", ["--config", f],
            "%s:2: key 'read-only': 'perhaps' is not true or false" % f)
    f = write("baddriver.conf", good + "driver = qcow2\n")
    refused("unknown driver", ["--config", f],
            "%s:2: key 'driver': unknown driver 'qcow2'" % f)
    f = write("badlisten.conf", good + "listen = 127.0.0.1:10809\n")
    refused("bad listen address", ["--config", f],
            "%s:2: key 'listen': '127.0.0.1:10809' is not unix:PATH" % f)
    f = write("dup.conf", good + "cache = none\n\ncache = writeback\n")
    refused("duplicate key", ["--config", f],
            "%s:4: key 'cache': given twice (first on line 2)" % f)
    refused("missing file", ["--config", path("nope.conf")],
            "%s: cannot open: No such file or directory" % path("nope.conf"))
    refused("a directory", ["--config", TMP], "%s: cannot read: Is a directory" % TMP)
    f = write("long.conf", good + "# " + "x" * 5000 + "\n")
    refused("very long line", ["--config", f],
            "%s:2: line longer than 4096 bytes" % f)
    f = write("nul.conf", good.encode() + b"name = a\0b\n")
    refused("NUL byte", ["--config", f], "%s:2: NUL byte at column 9" % f)
    rnd = random.Random(5)
    f = write("junk.conf", bytes(rnd.randrange(256) for _ in range(3000)))
    refused("binary junk", ["--config", f], "(binary file?)")
    refused("a program as config", ["--config", "/bin/true"],
            "/bin/true:1: control character 0x7f at column 1 (binary file?)")
    f = write("noimage.conf", "cache = none\n")
    refused("no image anywhere", ["--config", f],
            "%s: no 'image' key, and no IMAGE on the command line" % f)
    f = write("noeq.conf", good + "read-only\n")
    refused("key without '='", ["--config", f],
            "%s:2: 'read-only' is not 'key = value'" % f)
    f = write("empty.conf", good + "name =\n")
    refused("empty value", ["--config", f], "%s:2: key 'name': no value after '='" % f)
    # A bad value on the command line is still exit 1, a usage error 2.
    refused("bad --queue-depth over a good file",
            ["--config", write("good.conf", good), "--queue-depth", "0"],
            "--queue-depth: '0' is not a number")
    refused("two images", ["--config", path("good.conf"), img, img],
            "only one IMAGE", code=2)


try:
    every_key()
    command_line_wins()
    bad_files()
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
t.finish()
