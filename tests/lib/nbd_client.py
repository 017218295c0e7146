"""A raw-socket NBD client for tests: speaks the protocol byte by byte so
tests can send what real clients never would (bad lengths, cut messages,
too many options), plus a helper that runs vdiskd on a private socket.

Only the standard library: it runs under any python3."""

import atexit
import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668E33EF

FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_STARTTLS = 5
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_LIST_META_CONTEXT = 9
OPT_SET_META_CONTEXT = 10

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_META_CONTEXT = 4
REP_ERR_UNSUP = 2**31 + 1
REP_ERR_POLICY = 2**31 + 2
REP_ERR_INVALID = 2**31 + 3
REP_ERR_UNKNOWN = 2**31 + 6
REP_ERR_SHUTDOWN = 2**31 + 7
REP_ERR_TOO_BIG = 2**31 + 9

INFO_EXPORT = 0
INFO_NAME = 1
INFO_DESCRIPTION = 2
INFO_BLOCK_SIZE = 3

TF_HAS_FLAGS = 1 << 0
TF_READ_ONLY = 1 << 1
TF_SEND_FLUSH = 1 << 2
TF_SEND_FUA = 1 << 3
TF_SEND_TRIM = 1 << 5
TF_SEND_WRITE_ZEROES = 1 << 6
TF_SEND_DF = 1 << 7
TF_CAN_MULTI_CONN = 1 << 8
TF_SEND_CACHE = 1 << 10
TF_SEND_FAST_ZERO = 1 << 11

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_CACHE = 5
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

CMD_FLAG_FUA = 1 << 0
CMD_FLAG_NO_HOLE = 1 << 1
CMD_FLAG_DF = 1 << 2
CMD_FLAG_REQ_ONE = 1 << 3
CMD_FLAG_FAST_ZERO = 1 << 4

REPLY_FLAG_DONE = 1
REPLY_TYPE_NONE = 0
REPLY_TYPE_OFFSET_DATA = 1
REPLY_TYPE_OFFSET_HOLE = 2
REPLY_TYPE_BLOCK_STATUS = 5
REPLY_TYPE_ERROR = 2**15 + 1
REPLY_TYPE_ERROR_OFFSET = 2**15 + 2

EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN = \
    1, 5, 12, 22, 28, 75, 95, 108

MiB = 1024 * 1024


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Closed(Exception):
    """The server closed the connection."""


class Client:
    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.structured = False
        self.size = None
        self.tflags = None

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise Closed("connection closed after %d of %d bytes" % (len(buf), n))
            buf += chunk
        return bytes(buf)

    def is_closed(self, wait=5.0):
        """True when the server closed (EOF or reset) within wait seconds;
        any data that arrives first is discarded."""
        self.sock.settimeout(wait)
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline:
                d = self.sock.recv(65536)
                if not d:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        except OSError:
            return True
        return False

    # Handshake.
    def greeting(self):
        d = self.recv_exact(18)
        magic, opt, hflags = struct.unpack(">QQH", d)
        assert magic == NBDMAGIC and opt == IHAVEOPT, d
        return hflags

    def client_flags(self, flags=FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES):
        self.send(struct.pack(">I", flags))

    def start(self, flags=FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES):
        hflags = self.greeting()
        assert hflags == FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, hflags
        self.client_flags(flags)

    @staticmethod
    def opt_bytes(opt, data=b"", length=None):
        if length is None:
            length = len(data)
        return struct.pack(">QII", IHAVEOPT, opt, length) + data

    def option(self, opt, data=b"", length=None):
        self.send(self.opt_bytes(opt, data, length))

    def reply(self):
        """One option reply: (opt, type, data)."""
        magic, opt, rtype, length = struct.unpack(">QIII", self.recv_exact(20))
        assert magic == REP_MAGIC, hex(magic)
        return opt, rtype, self.recv_exact(length)

    def replies(self):
        """Replies up to the final one (ACK or an error)."""
        out = []
        while True:
            r = self.reply()
            out.append(r)
            if r[1] == REP_ACK or r[1] >= 2**31:
                return out

    @staticmethod
    def go_data(name=b"", infos=(), namelen=None):
        if namelen is None:
            namelen = len(name)
        return (struct.pack(">I", namelen) + name + struct.pack(">H", len(infos)) +
                b"".join(struct.pack(">H", i) for i in infos))

    @staticmethod
    def meta_data(name=b"", queries=()):
        return (struct.pack(">I", len(name)) + name + struct.pack(">I", len(queries)) +
                b"".join(struct.pack(">I", len(q)) + q for q in queries))

    def negotiate(self, name=b"", structured=True, meta=False, opt=OPT_GO):
        """A whole handshake the way libnbd does it."""
        self.start()
        if structured:
            self.option(OPT_STRUCTURED_REPLY)
            r = self.replies()
            assert r[-1][1] == REP_ACK, r
            self.structured = True
        if meta:
            self.option(OPT_SET_META_CONTEXT, self.meta_data(name, [b"base:allocation"]))
            r = self.replies()
            assert r[-1][1] == REP_ACK and r[0][1] == REP_META_CONTEXT, r
            self.meta_id = struct.unpack(">I", r[0][2][:4])[0]
        self.option(opt, self.go_data(name, [INFO_BLOCK_SIZE]))
        r = self.replies()
        assert r[-1][1] == REP_ACK, r
        for _, t, d in r:
            if t == REP_INFO and struct.unpack(">H", d[:2])[0] == INFO_EXPORT:
                self.size, self.tflags = struct.unpack(">QH", d[2:])
        return r

    # Transmission.
    @staticmethod
    def request_bytes(cmd, offset=0, length=0, handle=1, flags=0, payload=b"",
                      magic=REQUEST_MAGIC):
        return struct.pack(">IHHQQI", magic, flags, cmd, handle, offset, length) + payload

    def request(self, cmd, offset=0, length=0, handle=1, flags=0, payload=b""):
        self.send(self.request_bytes(cmd, offset, length, handle, flags, payload))

    def read_reply(self, read_len=None):
        """One whole reply: (handle, error, data, chunks).  read_len: the
        length of the READ this answers when replies are simple."""
        magic = struct.unpack(">I", self.recv_exact(4))[0]
        if magic == SIMPLE_REPLY_MAGIC:
            err, handle = struct.unpack(">IQ", self.recv_exact(12))
            data = b""
            if read_len and not err:
                data = self.recv_exact(read_len)
            return handle, err, data, []
        assert magic == STRUCTURED_REPLY_MAGIC, hex(magic)
        chunks = []
        err = 0
        data = b""
        while True:
            flags, rtype, handle, length = struct.unpack(">HHQI", self.recv_exact(16))
            payload = self.recv_exact(length)
            chunks.append((rtype, payload))
            if rtype == REPLY_TYPE_OFFSET_DATA:
                data += payload[8:]
            elif rtype in (REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET):
                err = struct.unpack(">I", payload[:4])[0]
            if flags & REPLY_FLAG_DONE:
                return handle, err, data, chunks
            magic = struct.unpack(">I", self.recv_exact(4))[0]
            assert magic == STRUCTURED_REPLY_MAGIC, hex(magic)

    def cmd(self, cmd, offset=0, length=0, flags=0, payload=b"", handle=1):
        """Sends one request and waits for its reply: (error, data, chunks)."""
        self.request(cmd, offset, length, handle, flags, payload)
        h, err, data, chunks = self.read_reply(length if cmd == CMD_READ else None)
        assert h == handle, (h, handle)
        return err, data, chunks


def direct_ok(path):
    """Whether an aligned O_DIRECT write to a new file at path works (the
    file is removed again)."""
    import mmap
    buf = mmap.mmap(-1, 4096)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    try:
        return os.pwritev(fd, [buf], 0) == 4096
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(path)


def thread_names(pid):
    """{tid: name} of the process's live threads (/proc/PID/task/*/comm)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                out[tid] = f.read().strip()
        except OSError:
            pass        # the thread ended meanwhile
    return out


def _die_with_parent():
    # PR_SET_PDEATHSIG: the daemon goes when the test does, however the
    # test ends (a timeout's SIGKILL included).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


_daemons = []


def _cleanup():
    for d in _daemons:
        d.kill()


atexit.register(_cleanup)
# SIGTERM (tests/run's timeout) runs the atexit handlers too.
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))


class Daemon:
    """vdiskd in the foreground on a private socket pair; killed when the
    test exits."""

    def __init__(self, *args, name="disk", listen=None):
        tmp = os.environ.get("TESTS_TMP") or tempfile.gettempdir()
        self.dir = tempfile.mkdtemp(prefix="nbd.", dir=tmp)
        self.sock = os.path.join(self.dir, "disk.nbd")
        self.ctl = os.path.join(self.dir, "disk.ctl")
        self.log = os.path.join(self.dir, "vdiskd.log")
        exe = os.environ.get("VDISKD", "build/vdiskd")
        cmd = [exe, "-f", "-n", name, "-c", self.ctl]
        # "{sock}" in a listen address stands for the daemon's own socket.
        for l in (listen or ["unix:" + self.sock]):
            cmd += ["-l", l.replace("{sock}", self.sock)]
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"),
                                     preexec_fn=_die_with_parent)
        _daemons.append(self)
        self.wait_ready()

    def wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("vdiskd exited: " + self.log_text())
            if os.path.exists(self.ctl) and os.path.exists(self.sock):
                try:
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(self.sock)
                    s.close()
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("vdiskd did not start: " + self.log_text())

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def client(self, **kw):
        return Client(self.sock, **kw)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM, then wait; returns the exit status (None: had to kill)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stats(self):
        import json
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.ctl)
        f = s.makefile("rw")
        f.readline()  # greeting
        f.write('{"cmd":"stats"}\n')
        f.flush()
        r = json.loads(f.readline())
        s.close()
        return r


class Ctl:
    """One control connection: the greeting, then request/reply lines."""

    def __init__(self, path, timeout=60):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.f = self.s.makefile("rw")
        self.greeting = json.loads(self.f.readline())

    def send(self, cmd, **args):
        args["cmd"] = cmd
        self.f.write(json.dumps(args) + "\n")
        self.f.flush()

    def reply(self):
        return json.loads(self.f.readline())

    def call(self, cmd, **args):
        self.send(cmd, **args)
        return self.reply()

    def close(self):
        self.f.close()
        self.s.close()


class Checks:
    """Counts checks like tests/lib/daemon.sh: ok / NOT OK lines, and an
    exit status of 0 only when all passed."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, desc, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok: " + desc)
        else:
            self.failed += 1
            print("NOT OK: " + desc + (" (%s)" % detail if detail else ""))
        sys.stdout.flush()
        return cond

    def run(self, desc, fn, *args):
        """Runs fn; an exception is a failed check."""
        try:
            r = fn(*args)
        except Exception as e:  # noqa: BLE001 - a test reports everything
            import traceback
            traceback.print_exc()
            return self.check(desc, False, repr(e))
        return self.check(desc, r is not False, "returned False")

    def finish(self):
        print("%d checks passed, %d failed" % (self.passed, self.failed))
        sys.exit(0 if self.failed == 0 and self.passed > 0 else 1)


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)
