"""faultfs: a FUSE pass-through filesystem that fails on purpose, for tests.

It mirrors a backing directory at a mount point and, on command, forgets
writes that were not made durable ("cut power"), fails chosen byte ranges
with an errno, runs out of space, or delays requests.  It runs as its own
process (FUSE requests must never be served by the process that makes
them); tests drive it through the client class at the bottom:

    fs = FaultFS(backing_dir, mountpoint).start()   # FaultFSUnavailable: skip
    fs.fail("/disk.img", 8192, 12288, op="write")    # EIO on that range
    fs.enospc_after(1 << 20); fs.give_space(4096)    # ENOSPC, then some room
    fs.delay(5)                                      # every request waits 5 ms
    fs.clear()                                       # no faults (not a reset)
    fs.cut_power()                                   # undirty, then EIO on all I/O
    fs.remount()                                     # a fresh mount: the disk is back
    fs.stats()                                       # counters (below)
    fs.stop()

Run by hand: /usr/bin/python3 tests/lib/faultfs.py --control SOCK BACKING MNT

Durability model
----------------
Writes go through to the backing file at once (reads are plain preads of
it), and each mutating request first saves what it overwrites in an undo
log kept per file (per inode: every handle of the file shares it).
FUSE_FSYNC on a file (fsync or fdatasync alike) empties that file's log:
everything written to it before the fsync is durable.  "cut power" undoes
every file's log, newest entry first, so that the backing file holds
exactly what had been made durable; from then on every request (open,
read, write, fsync, truncate, fallocate, create...) fails with EIO, like
a dead disk, until "reset" or a remount.

* A write is durable on completion when its FUSE_WRITE carries O_DSYNC or
  O_SYNC (or its handle was opened so): the kernel puts the file's open
  flags there plus the call's RWF_DSYNC/RWF_SYNC (fuse_write_flags(); seen
  on Linux 6.18).
  Only that write's byte range becomes durable (POSIX says no more): it is
  protected from the undo of older entries, the rest of the log stays dirty.
* truncate and fallocate (allocate, punch hole, zero range, with or without
  KEEP_SIZE) are dirty metadata like writes: logged with the old bytes and
  the old size, durable at the next fsync of the file.
* Namespace operations (create, unlink, rename, mkdir, chmod...) are
  durable at once and are not undone.  A clean stop (unmount) keeps
  everything: only a cut forgets.
* After a cut, "reset" revives the mount in place: the kernel drops a
  file's page cache at its next open (faultfs never sets keep_cache) and
  attributes are never cached (attr_timeout=0), but a handle that stayed
  open may still read pages cached before the cut: prefer remount().

Which syscalls reach FUSE (Linux 6.18, libfuse 2.9, measured by
tests/integration/test-faultfs.py through the counters):
  fsync -> FUSE_FSYNC (datasync=0); fdatasync -> FUSE_FSYNC (datasync=1);
  io_submit IOCB_CMD_FDSYNC -> FUSE_FSYNC (datasync=1);
  pwritev2(RWF_DSYNC), AIO pwrite with aio_rw_flags=RWF_DSYNC, and writes
  on an O_DSYNC handle -> FUSE_WRITE with O_DSYNC in its flags, on
  O_DIRECT (direct_io) handles as well as buffered ones; buffered ones
  also get a FUSE_FSYNC after the write, direct_io ones do not.
  A FUSE_FSYNC answered ENOSYS makes the kernel skip fsync for the whole
  mount (silently successful), so faultfs always implements it.

O_DIRECT opens get direct_io in the open reply (no page cache: every read
and write reaches faultfs); other opens are cached by the kernel but, FUSE
being write-through without -o writeback_cache, every write() still
reaches faultfs before it returns.

Control protocol
----------------
A unix stream socket (--control PATH, mode 0600, outside the mount).
One JSON object per line each way; each request gets one reply,
{"ok": true, ...} or {"ok": false, "error": "message"}.
  {"cmd":"ping"}
  {"cmd":"stats"}       -> {"ok":true,"stats":{...counters...}}
  {"cmd":"cut_power"}   -> {"ok":true,"undone_entries":N,"undone_bytes":N}
  {"cmd":"reset"}       revive after a cut (what is left is what was durable)
  {"cmd":"sync"}        make everything durable (as if every file was fsynced)
  {"cmd":"fail","path":"/disk.img"|null,"start":S,"end":E,
   "op":"read"|"write"|"both"|"fsync","errno":5,"count":null|N}
                        requests of that op overlapping [S, E) of that file
                        (null: any file) fail with errno, N times or always;
                        fsync rules ignore the range.  -> {"ok":true,"id":N}
  {"cmd":"clear"}       drop fail rules, the space limit and the delay
  {"cmd":"enospc","bytes":N|null}
                        writes, fallocates and growing truncates that would
                        allocate more than N further bytes (4 KiB blocks not
                        yet allocated in the backing file) fail with ENOSPC,
                        whole; punching holes gives space back; null: no limit
  {"cmd":"give_space","bytes":N}   add N bytes to the remaining space
  {"cmd":"delay","ms":N,"op":"all"|"read"|"write"|"fsync"}
Counters: opens, direct_opens, dsync_opens, reads, writes, dsync_writes,
  fsyncs, fdatasyncs, truncates, fallocates, injected (errors injected),
  enospc, dead_refusals, cuts, dirty_bytes, dirty_entries, write_flags
  (the distinct FUSE_WRITE flags words seen, as hex strings).

Debugging the tests that use it: FAULTFS_BROKEN_FSYNC=1 in faultfs's
environment makes FUSE_FSYNC a no-op (it answers 0 and keeps the log);
=dsync ignores O_DSYNC on writes instead, =2 does both.  Only to prove
that a test can fail.
"""

import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

BLOCK = 4096
O_DSYNC = getattr(os, "O_DSYNC", 0o10000)
O_SYNC = getattr(os, "O_SYNC", 0o4010000)
O_DIRECT = getattr(os, "O_DIRECT", 0o40000)
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
FALLOC_FL_ZERO_RANGE = 16
SEEK_DATA, SEEK_HOLE = 3, 4


def import_fusepy():
    """fusepy's module: "fuse" upstream, "fusepy" in Debian's python3-fusepy."""
    for name in ("fusepy", "fuse"):
        try:
            mod = __import__(name)
        except (ImportError, OSError, EnvironmentError) as e:  # no libfuse: OSError
            last = e
            continue
        if hasattr(mod, "FUSE") and hasattr(mod, "FuseOSError"):
            return mod
    raise ImportError("fusepy not importable (python3-fusepy): %s" % last)


# ---------------------------------------------------------------- server

def _err(e):
    return OSError(e, os.strerror(e))


class FileState:
    """One backing file: its fd (shared by every FUSE handle), undo log and
    allocation map.  lock serializes the mutating requests on the file so
    that the log's order is the order of the writes."""

    def __init__(self, path, fd):
        self.path = path
        self.fd = fd
        self.lock = threading.Lock()
        # ("u", offset, old_bytes, old_size): undo by ftruncate(old_size)
        # then pwrite(old_bytes, offset).  ("p", offset, length, end):
        # [offset, offset+length) was made durable by an O_DSYNC write.
        self.log = []
        self.dirty_bytes = 0
        self.alloc = None	# set of allocated block numbers, when tracked

    def scan_alloc(self):
        blocks = set()
        size = os.fstat(self.fd).st_size
        pos = 0
        while pos < size:
            try:
                d = os.lseek(self.fd, pos, SEEK_DATA)
            except OSError:
                break
            h = os.lseek(self.fd, d, SEEK_HOLE)
            blocks.update(range(d // BLOCK, (h + BLOCK - 1) // BLOCK))
            pos = h
        self.alloc = blocks

    def rollback(self):
        """Undoes the log, newest first, except ranges made durable."""
        protected = []		# (start, end)
        floor = 0		# the file is at least this long (durable data)
        n = len(self.log)
        undone = 0
        for e in reversed(self.log):
            if e[0] == "p":
                protected.append((e[1], e[1] + e[2]))
                floor = max(floor, e[3])
                continue
            _, off, old, old_size = e
            size = max(old_size, floor)
            if os.fstat(self.fd).st_size != size:
                os.ftruncate(self.fd, size)
            for s, t in _subtract(off, off + len(old), protected):
                os.pwrite(self.fd, old[s - off:t - off], s)
            undone += len(old)
        self.log = []
        self.dirty_bytes = 0
        self.alloc = None
        return n, undone


def _subtract(start, end, ranges):
    """[start, end) minus the union of ranges, as a list of pieces."""
    pieces = [(start, end)]
    for a, b in ranges:
        out = []
        for s, t in pieces:
            if b <= s or a >= t:
                out.append((s, t))
                continue
            if s < a:
                out.append((s, a))
            if b < t:
                out.append((b, t))
        pieces = out
        if not pieces:
            break
    return [p for p in pieces if p[0] < p[1]]


class Rule:
    def __init__(self, rid, path, start, end, op, err, count):
        self.id, self.path, self.start, self.end = rid, path, start, end
        self.op, self.err, self.count = op, err, count

    def hits(self, path, op, off, length):
        if self.path is not None and self.path != path:
            return False
        if op == "fsync":
            return self.op == "fsync"
        if self.op not in (op, "both"):
            return False
        return off < self.end and off + max(length, 1) > self.start


class FaultOps:
    """The FUSE operations (fusepy, raw_fi=True)."""

    def __init__(self, backing):
        self.root = os.path.realpath(backing)
        self.lock = threading.Lock()	# files, handles, rules, space, counters
        self.files = {}			# path -> FileState
        self.handles = {}		# fh -> (FileState, open flags)
        self.next_fh = 1
        self.dead = False
        self.rules = []
        self.next_rule = 1
        self.space = None		# bytes that may still be allocated
        self.delays = {}		# op -> seconds
        broken = os.environ.get("FAULTFS_BROKEN_FSYNC", "")
        self.broken_fsync = broken in ("1", "2")
        self.broken_dsync = broken in ("2", "dsync")
        self.c = dict.fromkeys((
            "opens", "direct_opens", "dsync_opens", "reads", "writes", "dsync_writes",
            "fsyncs", "fdatasyncs", "truncates", "fallocates", "injected", "enospc",
            "dead_refusals", "cuts"), 0)
        self.write_flags = set()

    def __call__(self, op, *args):
        fn = getattr(self, "op_" + op, None)
        if fn is None:
            raise _err(errno.ENOSYS)
        return fn(*args)

    # ---- helpers
    def real(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def count(self, key, n=1):
        with self.lock:
            self.c[key] += n

    def alive(self):
        if self.dead:
            self.count("dead_refusals")
            raise _err(errno.EIO)

    def pause(self, op):
        d = self.delays.get(op) or self.delays.get("all")
        if d:
            time.sleep(d)

    def inject(self, path, op, off=0, length=0):
        if not self.rules:
            return
        with self.lock:
            for r in self.rules:
                if r.hits(path, op, off, length):
                    if r.count is not None:
                        r.count -= 1
                        if r.count <= 0:
                            self.rules.remove(r)
                    self.c["injected"] += 1
                    raise _err(r.err)

    def state(self, path):
        with self.lock:
            fs = self.files.get(path)
            if fs is None:
                fd = os.open(self.real(path), os.O_RDWR | os.O_CLOEXEC)
                fs = self.files[path] = FileState(path, fd)
            return fs

    def fs_of(self, path, fi):
        if fi is not None and fi.fh in self.handles:
            return self.handles[fi.fh][0]
        return self.state(path)

    def allocate(self, fs, off, length):
        """Charges the blocks of [off, off+length) not yet allocated; raises
        ENOSPC (charging nothing) when there is not room.  fs.lock held."""
        if self.space is None or length <= 0:
            return
        if fs.alloc is None:
            fs.scan_alloc()
        new = [b for b in range(off // BLOCK, (off + length + BLOCK - 1) // BLOCK)
               if b not in fs.alloc]
        with self.lock:
            if self.space is None:
                return
            if len(new) * BLOCK > self.space:
                self.c["enospc"] += 1
                raise _err(errno.ENOSPC)
            self.space -= len(new) * BLOCK
        fs.alloc.update(new)

    def release_blocks(self, fs, off, length):
        if fs.alloc is None:
            return
        first, last = (off + BLOCK - 1) // BLOCK, (off + length) // BLOCK
        freed = [b for b in range(first, last) if b in fs.alloc]
        fs.alloc.difference_update(freed)
        with self.lock:
            if self.space is not None:
                self.space += len(freed) * BLOCK

    def log_undo(self, fs, off, length):
        """Saves [off, off+length) and the size before a change.  fs.lock held."""
        size = os.fstat(fs.fd).st_size
        old = os.pread(fs.fd, max(0, min(length, size - off)), off) if off < size else b""
        fs.log.append(("u", off, old, size))
        fs.dirty_bytes += len(old) + 64

    # ---- control
    def cut_power(self):
        with self.lock:
            self.dead = True
            self.c["cuts"] += 1
            files = list(self.files.values())
        entries = nbytes = 0
        for fs in files:
            with fs.lock:
                n, b = fs.rollback()
                entries += n
                nbytes += b
        return {"undone_entries": entries, "undone_bytes": nbytes}

    def sync_all(self):
        with self.lock:
            files = list(self.files.values())
        for fs in files:
            with fs.lock:
                fs.log = []
                fs.dirty_bytes = 0

    def stats(self):
        with self.lock:
            s = dict(self.c)
            s["write_flags"] = sorted(self.write_flags)
            files = list(self.files.values())
            s["space"] = self.space
            s["dead"] = self.dead
        s["dirty_entries"] = sum(len(f.log) for f in files)
        s["dirty_bytes"] = sum(f.dirty_bytes for f in files)
        return s

    # ---- namespace (durable at once)
    def op_init(self, path):
        return 0

    def op_destroy(self, path):
        return 0

    def op_getattr(self, path, fi=None):
        if fi is not None and fi.fh in self.handles:
            st = os.fstat(self.handles[fi.fh][0].fd)
        else:
            st = os.lstat(self.real(path))
        return {k: getattr(st, k) for k in (
            "st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime",
            "st_mtime", "st_ctime", "st_blocks", "st_ino")}

    def op_statfs(self, path):
        v = os.statvfs(self.real(path))
        return {k: getattr(v, k) for k in (
            "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
            "f_ffree", "f_favail", "f_namemax")}

    def op_access(self, path, mode):
        if not os.access(self.real(path), mode):
            raise _err(errno.EACCES)
        return 0

    def op_readdir(self, path, fh):
        return [".", ".."] + os.listdir(self.real(path))

    def op_opendir(self, path):
        return 0

    def op_releasedir(self, path, fh):
        return 0

    def op_mkdir(self, path, mode):
        self.alive()
        os.mkdir(self.real(path), mode)

    def op_rmdir(self, path):
        self.alive()
        os.rmdir(self.real(path))

    def op_unlink(self, path):
        self.alive()
        os.unlink(self.real(path))
        with self.lock:
            fs = self.files.pop(path, None)
        # The handles keep using the FileState (and its fd) until released.
        del fs

    def op_rename(self, old, new):
        self.alive()
        os.rename(self.real(old), self.real(new))
        with self.lock:
            self.files.pop(new, None)
            fs = self.files.pop(old, None)
            if fs is not None:
                fs.path = new
                self.files[new] = fs

    def op_chmod(self, path, mode):
        os.chmod(self.real(path), mode)

    def op_chown(self, path, uid, gid):
        os.chown(self.real(path), uid, gid)

    def op_utimens(self, path, times=None):
        if times:
            os.utime(self.real(path), ns=times)
        else:
            os.utime(self.real(path))

    # ---- files
    def _open(self, path, fi, create_mode=None):
        self.alive()
        self.pause("open")
        self.inject(path, "open")
        if create_mode is not None:
            fd = os.open(self.real(path), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
                         create_mode)
            os.close(fd)
        fs = self.state(path)
        with self.lock:
            fh = self.next_fh
            self.next_fh += 1
            self.handles[fh] = (fs, fi.flags)
            self.c["opens"] += 1
            if fi.flags & O_DIRECT:
                self.c["direct_opens"] += 1
            if fi.flags & O_DSYNC:
                self.c["dsync_opens"] += 1
        fi.fh = fh
        fi.direct_io = 1 if fi.flags & O_DIRECT else 0
        fi.keep_cache = 0
        return 0

    def op_open(self, path, fi):
        return self._open(path, fi)

    def op_create(self, path, mode, fi):
        return self._open(path, fi, create_mode=mode)

    def op_release(self, path, fi):
        with self.lock:
            self.handles.pop(fi.fh, None)
        return 0

    def op_flush(self, path, fi):
        return 0

    def op_read(self, path, size, off, fi):
        self.alive()
        self.pause("read")
        fs = self.fs_of(path, fi)
        self.inject(fs.path, "read", off, size)
        self.count("reads")
        data = os.pread(fs.fd, size, off)
        self.alive()		# a cut while reading: the data may be torn
        return data

    def op_write(self, path, data, off, fi):
        self.alive()
        self.pause("write")
        fs = self.fs_of(path, fi)
        self.inject(fs.path, "write", off, len(data))
        flags = fi.flags
        if fi.fh in self.handles:
            flags |= self.handles[fi.fh][1]
        dsync = bool(flags & (O_DSYNC | O_SYNC)) and not self.broken_dsync
        with fs.lock:
            self.alive()
            self.allocate(fs, off, len(data))
            if fs.log and dsync:
                end = max(os.fstat(fs.fd).st_size, off + len(data))
                fs.log.append(("p", off, len(data), end))
            elif not dsync:
                self.log_undo(fs, off, len(data))
            n = os.pwrite(fs.fd, data, off)
        with self.lock:
            self.c["writes"] += 1
            if dsync:
                self.c["dsync_writes"] += 1
            self.write_flags.add("%#x" % fi.flags)
        return n

    def op_fsync(self, path, datasync, fi):
        self.alive()
        self.pause("fsync")
        fs = self.fs_of(path, fi)
        self.inject(fs.path, "fsync")
        self.count("fdatasyncs" if datasync else "fsyncs")
        if self.broken_fsync:
            return 0
        with fs.lock:
            self.alive()
            fs.log = []
            fs.dirty_bytes = 0
        return 0

    def op_fsyncdir(self, path, datasync, fh):
        self.alive()
        return 0

    def op_truncate(self, path, length, fi=None):
        self.alive()
        fs = self.fs_of(path, fi)
        self.inject(fs.path, "write", length, 0)
        with fs.lock:
            self.alive()
            size = os.fstat(fs.fd).st_size
            if length > size:
                self.allocate(fs, size, 0)	# a sparse extension allocates nothing
                self.log_undo(fs, size, 0)
            else:
                self.log_undo(fs, length, size - length)
                self.release_blocks(fs, length, size - length + BLOCK)
            os.ftruncate(fs.fd, length)
        self.count("truncates")
        return 0

    def op_fallocate(self, path, mode, off, length, fi):
        self.alive()
        fs = self.fs_of(path, fi)
        self.inject(fs.path, "write", off, length)
        with fs.lock:
            self.alive()
            if mode & FALLOC_FL_PUNCH_HOLE:
                self.log_undo(fs, off, length)
            else:
                self.allocate(fs, off, length)
                self.log_undo(fs, off, length)
            if _libc.fallocate(fs.fd, mode, ctypes.c_int64(off), ctypes.c_int64(length)) < 0:
                e = ctypes.get_errno()
                fs.log.pop()
                raise _err(e)
            if mode & FALLOC_FL_PUNCH_HOLE:
                self.release_blocks(fs, off, length)
        self.count("fallocates")
        return 0


_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


class Control(threading.Thread):
    def __init__(self, ops, path):
        super().__init__(daemon=True)
        self.ops = ops
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        self.sock.listen(8)

    def run(self):
        while True:
            c, _ = self.sock.accept()
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        f = c.makefile("rw")
        for line in f:
            try:
                rep = self.handle(json.loads(line))
            except Exception as e:  # noqa: BLE001 - every failure is an answer
                rep = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
            f.write(json.dumps(rep) + "\n")
            f.flush()
        c.close()

    def handle(self, r):
        o = self.ops
        cmd = r.get("cmd")
        rep = {"ok": True}
        if cmd == "ping":
            pass
        elif cmd == "stats":
            rep["stats"] = o.stats()
        elif cmd == "cut_power":
            rep.update(o.cut_power())
        elif cmd == "reset":
            o.dead = False
        elif cmd == "sync":
            o.sync_all()
        elif cmd == "fail":
            op = r.get("op", "both")
            if op not in ("read", "write", "both", "fsync"):
                raise ValueError("op: read, write, both or fsync")
            e = r.get("errno", errno.EIO)
            if isinstance(e, str):
                e = getattr(errno, e)
            path = r.get("path")
            if path is not None and not path.startswith("/"):
                path = "/" + path
            with o.lock:
                rule = Rule(o.next_rule, path, int(r.get("start", 0)),
                            int(r.get("end", 1 << 63)), op, int(e), r.get("count"))
                o.next_rule += 1
                o.rules.append(rule)
            rep["id"] = rule.id
        elif cmd == "clear":
            with o.lock:
                o.rules = []
                o.space = None
                o.delays = {}
                files = list(o.files.values())
            for fs in files:
                fs.alloc = None
        elif cmd == "enospc":
            with o.lock:
                o.space = None if r.get("bytes") is None else int(r["bytes"])
                files = list(o.files.values())
            for fs in files:
                with fs.lock:
                    fs.alloc = None
        elif cmd == "give_space":
            with o.lock:
                if o.space is not None:
                    o.space += int(r["bytes"])
        elif cmd == "delay":
            op = r.get("op", "all")
            with o.lock:
                o.delays = dict(o.delays)
                o.delays[op] = float(r.get("ms", 0)) / 1000.0
        else:
            raise ValueError("unknown command %r" % cmd)
        return rep


def _extended_fusepy(fusepy):
    """fusepy 3.0 stops its fuse_operations at ioctl; libfuse 2.9 goes on
    with poll, write_buf, read_buf, flock and fallocate.  Returns a FUSE
    subclass with fallocate wired up (the others stay NULL)."""
    base = fusepy.fuse_operations
    names = [f[0] for f in base._fields_]
    if "fallocate" not in names and names[-1] == "ioctl":
        fi_p = ctypes.POINTER(fusepy.fuse_file_info)

        class ops(ctypes.Structure):
            _fields_ = list(base._fields_) + [
                ("poll", ctypes.c_void_p),
                ("write_buf", ctypes.c_void_p),
                ("read_buf", ctypes.c_void_p),
                ("flock", ctypes.c_void_p),
                ("fallocate", ctypes.CFUNCTYPE(
                    ctypes.c_int, ctypes.c_char_p, ctypes.c_int, fusepy.c_off_t,
                    fusepy.c_off_t, fi_p)),
            ]
        fusepy.fuse_operations = ops

    class FUSE(fusepy.FUSE):
        def fallocate(self, path, mode, off, length, fip):
            return self.operations("fallocate", self._decode_optional_path(path),
                                   mode, off, length, fip.contents)
    return FUSE


class _OpsAdapter:
    """fusepy asks getattr(operations, name) to decide what to register and
    then calls operations(name, *args)."""

    use_ns = True

    def __init__(self, ops):
        self._ops = ops
        for name in dir(ops):
            if name.startswith("op_"):
                setattr(self, name[3:], True)

    def __call__(self, op, *args):
        return self._ops(op, *args)


def serve(backing, mnt, control):
    fusepy = import_fusepy()
    FUSE = _extended_fusepy(fusepy)
    ops = FaultOps(backing)
    Control(ops, control).start()
    # fusepy turns OSError into -errno; keep its logger quiet about them.
    import logging
    logging.getLogger("fuse").setLevel(logging.CRITICAL)
    logging.getLogger("fusepy").setLevel(logging.CRITICAL)
    FUSE(_OpsAdapter(ops), mnt, raw_fi=True, foreground=True, nothreads=False,
         fsname="faultfs", subtype="faultfs", big_writes=True, max_write=131072,
         max_read=131072, attr_timeout=0, entry_timeout=0, negative_timeout=0)


# ---------------------------------------------------------------- client

class FaultFSUnavailable(Exception):
    """FUSE cannot be used here: the test should skip, saying why."""


class FaultFSError(Exception):
    pass


_instances = []


def _cleanup():
    for fs in list(_instances):
        try:
            fs.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _die_with_parent():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def unavailable():
    """Why faultfs cannot run here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not accessible (not root?)"
    try:
        import_fusepy()
    except ImportError as e:
        return str(e)
    return None


class FaultFS:
    def __init__(self, backing, mnt, control=None, log=None, env=None):
        self.backing = os.path.abspath(backing)
        self.mnt = os.path.abspath(mnt)
        parent = os.path.dirname(self.backing)
        self.control = control or os.path.join(parent, "faultfs.ctl")
        self.log = log or os.path.join(parent, "faultfs.log")
        self.env = env
        self.proc = None
        self.sock = None
        self.f = None
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def path(self, name):
        """The path of name inside the mount."""
        return os.path.join(self.mnt, name.lstrip("/"))

    def start(self, timeout=15):
        why = unavailable()
        if why:
            raise FaultFSUnavailable(why)
        if os.path.ismount(self.mnt):
            raise FaultFSError("%s is already a mount point" % self.mnt)
        if os.path.exists(self.control):
            os.unlink(self.control)
        cmd = ["/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
               os.path.abspath(__file__), "--control", self.control, self.backing, self.mnt]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, env=self.env,
                                     preexec_fn=_die_with_parent)
        _instances.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                _instances.remove(self)
                raise FaultFSUnavailable("faultfs could not mount %s: %s" %
                                         (self.mnt, self.log_text()[-600:].strip()))
            if os.path.exists(self.control) and os.path.ismount(self.mnt):
                try:
                    self._connect()
                    self.call("ping")
                    return self
                except OSError:
                    self._disconnect()
            time.sleep(0.02)
        self.stop()
        raise FaultFSUnavailable("faultfs did not mount %s within %ds: %s" %
                                 (self.mnt, timeout, self.log_text()[-600:]))

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.control)
        self.f = self.sock.makefile("rw")

    def _disconnect(self):
        if self.sock:
            self.sock.close()
        self.sock = self.f = None

    def call(self, cmd, **args):
        if self.f is None:
            raise FaultFSError("faultfs is not running")
        args["cmd"] = cmd
        self.f.write(json.dumps(args) + "\n")
        self.f.flush()
        line = self.f.readline()
        if not line:
            raise FaultFSError("faultfs closed its control socket")
        r = json.loads(line)
        if not r.get("ok"):
            raise FaultFSError("%s: %s" % (cmd, r.get("error")))
        return r

    def stop(self, timeout=10):
        """Unmounts (SIGTERM: libfuse unmounts and exits); lazily unmounts
        and kills it when it does not go."""
        self._disconnect()
        p, self.proc = self.proc, None
        if self in _instances:
            _instances.remove(self)
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if os.path.ismount(self.mnt):
            for c in (["fusermount", "-u", "-z", self.mnt], ["umount", "-l", self.mnt]):
                try:
                    if subprocess.call(c, stderr=subprocess.DEVNULL) == 0:
                        break
                except OSError:
                    pass

    def remount(self):
        """A fresh mount of the same backing directory: the kernel's caches
        are gone and the disk answers again with what was durable."""
        self.stop()
        return self.start()

    # The fault API.
    def cut_power(self):
        """Forgets what was not durable; then every request fails with EIO."""
        return self.call("cut_power")

    def reset(self):
        self.call("reset")

    def sync(self):
        self.call("sync")

    def fail(self, path, start=0, end=1 << 63, op="both", err=errno.EIO, count=None):
        return self.call("fail", path=path, start=start, end=end, op=op, errno=err,
                         count=count)["id"]

    def clear(self):
        self.call("clear")

    def enospc_after(self, nbytes):
        """None: no limit."""
        self.call("enospc", bytes=nbytes)

    def give_space(self, nbytes):
        self.call("give_space", bytes=nbytes)

    def delay(self, ms, op="all"):
        self.call("delay", ms=ms, op=op)

    def stats(self):
        return self.call("stats")["stats"]


import atexit  # noqa: E402
atexit.register(_cleanup)


def main(argv):
    import argparse
    p = argparse.ArgumentParser(description="faultfs: a FUSE filesystem that fails on purpose")
    p.add_argument("--control", required=True, help="control socket path")
    p.add_argument("backing")
    p.add_argument("mountpoint")
    a = p.parse_args(argv)
    serve(a.backing, a.mountpoint, a.control)


if __name__ == "__main__":
    main(sys.argv[1:])
