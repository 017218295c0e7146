"""Socket activation the way systemd does it: the test binds and listens,
then forks, moves the sockets to fds 3.., sets LISTEN_PID to the child's
own pid (set after the fork, so it is the pid that execs vdiskd),
LISTEN_FDS and LISTEN_FDNAMES, and execs vdiskd.  A real NBD client
(libnbd's Python binding) reads and writes through the passed socket.

Also: no default listener is made next to activated sockets, -l still
adds one, the socket file stays when vdiskd exits (it is systemd's) and a
second vdiskd serves the same socket; LISTEN_PID of another process is
ignored; bad LISTEN_FDS values and fds that are not listening sockets
stop the daemon with exit status 1."""

import json
import os
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
TMP = tempfile.mkdtemp(prefix="systemd-activation.",
                       dir=os.environ.get("TESTS_TMP", "/tmp"))
MiB = 1 << 20

t = Checks()
children = []


def spawn(fds, args, listen_pid="self", fds_count=None, names=None, rundir=None):
    """Forks and execs vdiskd with fds[i] as fd 3+i.  listen_pid "self"
    puts the child's own pid in LISTEN_PID (what systemd does); a number
    is used as is; None leaves LISTEN_* unset."""
    rundir = rundir or os.path.join(TMP, "run")
    log = open(os.path.join(TMP, "vdiskd.log"), "ab")
    pid = os.fork()
    if pid == 0:
        try:
            # Out of the way first, so fds[i] == 3 + j cannot clobber.
            high = [os.dup(fd) for fd in fds]
            high = [fcntl_dupfd(fd, 100 + i) for i, fd in enumerate(high)]
            for i, fd in enumerate(high):
                os.dup2(fd, 3 + i, inheritable=True)
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_"))}
            env["RUNTIME_DIRECTORY"] = rundir
            if listen_pid is not None:
                env["LISTEN_PID"] = str(os.getpid() if listen_pid == "self"
                                        else listen_pid)
                env["LISTEN_FDS"] = str(len(fds) if fds_count is None else fds_count)
                if names is not None:
                    env["LISTEN_FDNAMES"] = names
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            os.execve(VDISKD, [VDISKD, "-f"] + list(args), env)
        finally:
            os._exit(127)
    log.close()
    children.append(pid)
    return pid


def fcntl_dupfd(fd, low):
    import fcntl
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low)
    os.close(fd)
    return new


def wait_exit(pid, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        p, status = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            children.remove(pid)
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    children.remove(pid)
    return "timeout"


def stop(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    return wait_exit(pid)


def wait_path(path, pid, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            children.remove(pid)
            return False
        time.sleep(0.05)
    return False


def unix_listener(name):
    path = os.path.join(TMP, name)
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(16)
    return s, path


def ctl(path, cmd):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(path)
    f = s.makefile("rw")
    f.readline()
    f.write(json.dumps({"cmd": cmd}) + "\n")
    f.flush()
    r = json.loads(f.readline())
    s.close()
    return r


def client(connect):
    h = nbd.NBD()
    connect(h)
    return h


def read_write(h, pattern):
    data = (pattern * (MiB // len(pattern) + 1))[:MiB]
    h.pwrite(data, MiB)
    h.flush()
    return bytes(h.pread(MiB, MiB)) == data


def log_text():
    with open(os.path.join(TMP, "vdiskd.log"), "rb") as f:
        return f.read().decode(errors="replace")


def one_unix_socket():
    ls, path = unix_listener("act.nbd")
    rundir = os.path.join(TMP, "run")
    pid = spawn([ls.fileno()], ["-d", "ram", "-n", "act", "64M"], names="nbd",
                rundir=rundir)
    ctl_path = os.path.join(rundir, "act.ctl")
    up = wait_path(ctl_path, pid)
    t.check("activated: the daemon starts (control socket appears)", up, log_text())
    if not up:
        return
    h = client(lambda h: h.connect_unix(path))
    t.check("libnbd connects through the passed unix socket", True)
    t.check("the export is the disk (64 MiB)", h.get_size() == 64 * MiB,
            str(h.get_size()))
    t.check("writes and reads back through it", read_write(h, b"activated!"))
    t.check("no default listener next to the activated socket",
            not os.path.exists(os.path.join(rundir, "act.nbd")),
            repr(os.listdir(rundir)))
    info = ctl(ctl_path, "info")
    t.check("info lists the passed socket by its address",
            info.get("listen") == ["unix:" + path], repr(info))
    h.shutdown()
    rc = stop(pid)
    t.check("SIGTERM: exit 0", rc == 0, "exit %s" % rc)
    t.check("the socket file stays: it is systemd's", os.path.exists(path))

    # systemd keeps the socket and starts the service again on the next
    # connection: the same listening socket serves a second daemon.
    pid = spawn([ls.fileno()], ["-d", "ram", "-n", "act", "64M"], rundir=rundir)
    up = wait_path(ctl_path, pid)
    ok = False
    if up:
        h = client(lambda h: h.connect_unix(path))
        ok = read_write(h, b"again")
        h.shutdown()
    t.check("a second daemon serves the same socket after the first exits", ok,
            log_text())
    stop(pid)
    ls.close()


def tcp_unix_and_listen_option():
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    port = tcp.getsockname()[1]
    us, upath = unix_listener("two.nbd")
    extra = os.path.join(TMP, "extra.nbd")
    ctl_path = os.path.join(TMP, "two.ctl")
    pid = spawn([tcp.fileno(), us.fileno()],
                ["-d", "ram", "-n", "two", "-l", "unix:" + extra, "-c", ctl_path,
                 "32M"], names="tcp:unix")
    up = wait_path(ctl_path, pid)
    t.check("two activated sockets and -l: the daemon starts", up, log_text())
    if not up:
        return
    ok = []
    for what, connect in (("tcp", lambda h: h.connect_tcp("127.0.0.1", str(port))),
                          ("unix", lambda h: h.connect_unix(upath)),
                          ("-l", lambda h: h.connect_unix(extra))):
        try:
            h = client(connect)
            ok.append(h.get_size() == 32 * MiB and read_write(h, what.encode()))
            h.shutdown()
        except nbd.Error as e:
            ok.append(False)
            print("%s: %s" % (what, e))
    t.check("serves the TCP socket, the unix socket and the -l address",
            ok == [True, True, True], repr(ok))
    info = ctl(ctl_path, "info")
    want = {"tcp:127.0.0.1:%d" % port, "unix:" + upath, "unix:" + extra}
    t.check("info lists all three", set(info.get("listen", [])) == want, repr(info))
    t.check("LISTEN_FDNAMES show up in the log",
            "from systemd as tcp" in log_text() and "from systemd as unix" in log_text())
    rc = stop(pid)
    t.check("exit 0", rc == 0, "exit %s" % rc)
    tcp.close()
    us.close()


def not_for_us():
    """LISTEN_PID names another process: the fds are not ours, so the
    default listener is made as if nothing had been passed."""
    ls, path = unix_listener("other.nbd")
    rundir = os.path.join(TMP, "run-other")
    pid = spawn([ls.fileno()], ["-d", "ram", "-n", "other", "16M"],
                listen_pid=1, rundir=rundir)
    default = os.path.join(rundir, "other.nbd")
    up = wait_path(os.path.join(rundir, "other.ctl"), pid) and \
        wait_path(default, pid)
    t.check("LISTEN_PID of another process: the default listener is made", up,
            log_text())
    if up:
        h = client(lambda h: h.connect_unix(default))
        t.check("and serves", h.get_size() == 16 * MiB)
        h.shutdown()
        info = ctl(os.path.join(rundir, "other.ctl"), "info")
        t.check("and the passed fd is not served", info.get("listen") ==
                ["unix:" + default], repr(info))
    stop(pid)
    ls.close()


def refused(desc, fds, want_log, **kw):
    before = len(log_text())
    pid = spawn(fds, ["-d", "ram", "-n", "bad", "16M"],
                rundir=os.path.join(TMP, "run-bad"), **kw)
    rc = wait_exit(pid)
    msg = log_text()[before:]
    t.check("%s: exit 1" % desc, rc == 1, "exit %s" % rc)
    t.check("%s: says why" % desc, want_log in msg, msg)


def bad_inputs():
    ls, _ = unix_listener("bad.nbd")
    refused("LISTEN_FDS=17", [ls.fileno()], "LISTEN_FDS=17 is not a number",
            fds_count=17)
    refused("LISTEN_FDS=junk", [ls.fileno()], "LISTEN_FDS=1x is not a number",
            fds_count="1x")
    refused("LISTEN_FDS=-1", [ls.fileno()], "LISTEN_FDS=-1 is not a number",
            fds_count="-1")
    refused("LISTEN_FDS=2 with one fd", [ls.fileno()], "fd 4",
            fds_count=2)
    with open(os.path.join(TMP, "plain-file"), "w") as f:
        refused("fd 3 is a file", [f.fileno()], "fd 3 is not a socket")
    a, b = socket.socketpair()
    refused("fd 3 is a connected socket", [a.fileno()],
            "fd 3 is not a listening stream socket")
    a.close()
    b.close()
    d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    d.bind(os.path.join(TMP, "dgram"))
    refused("fd 3 is a datagram socket", [d.fileno()],
            "fd 3 is not a listening stream socket")
    d.close()
    ls.close()

    # LISTEN_FDS=0 is "nothing passed": the default listener.
    rundir = os.path.join(TMP, "run-zero")
    pid = spawn([], ["-d", "ram", "-n", "zero", "16M"], rundir=rundir)
    t.check("LISTEN_FDS=0: the default listener is made",
            wait_path(os.path.join(rundir, "zero.nbd"), pid), log_text())
    stop(pid)


try:
    one_unix_socket()
    tcp_unix_and_listen_option()
    not_for_us()
    bad_inputs()
finally:
    for p in list(children):
        try:
            os.kill(p, signal.SIGKILL)
            os.waitpid(p, 0)
        except OSError:
            pass
t.finish()
