"""Shared pieces of scripts/bench and scripts/profile: the test patterns,
the servers of each mode and how they are started and warmed, fio runs
over NBD (or on the file, the "raw" reference), and CPU accounting of a
server from /proc/PID/stat.

Not a daemon component: standard library only, run by python3."""

import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Test:
    """One fio pattern.  jobs > 1: that many fio jobs, each its own NBD
    connection (multi-conn), iodepth per job, results summed."""

    def __init__(self, name, rw, bs, qd, jobs=1, latency=False):
        self.name, self.rw, self.bs, self.qd = name, rw, bs, qd
        self.jobs, self.latency = jobs, latency

    def astuple(self):
        return (self.name, self.rw, self.bs, self.qd)


TESTS = [
    Test("4k-randread", "randread", "4k", 32),
    Test("4k-randwrite", "randwrite", "4k", 32),
    Test("4k-randread-qd1", "randread", "4k", 1, latency=True),
    Test("4k-randwrite-qd1", "randwrite", "4k", 1, latency=True),
    Test("64k-read", "read", "64k", 16),
    Test("64k-write", "write", "64k", 16),
    Test("1m-read", "read", "1m", 8),
    Test("1m-write", "write", "1m", 8),
    # qemu-img convert's request size (2 MiB, up to 8 at once).
    Test("2m-read", "read", "2m", 8),
    Test("2m-write", "write", "2m", 8),
    Test("4k-randread-mc", "randread", "4k", 32, jobs=4),
    Test("4k-randwrite-mc", "randwrite", "4k", 32, jobs=4),
]
TEST_BY_NAME = {t.name: t for t in TESTS}
# --quick: the 4k patterns the targets are about, at QD32, QD1 and with
# four connections; about two minutes per mode at --time 2.
QUICK_TESTS = ["4k-randread", "4k-randwrite", "4k-randread-qd1", "4k-randread-mc"]

MODES = ("none", "writeback", "ram")
# Servers each mode compares, in the order of the table; "raw" (fio on the
# file itself) is added by the bench where the mode has a file.
MODE_SERVERS = {
    "none": ["vdiskd", "qemu-nbd"],
    "writeback": ["vdiskd", "qemu-nbd", "nbdkit"],
    "ram": ["vdiskd", "nbdkit", "qemu-nbd"],
}


def round_order(names, rnd):
    """The servers in round rnd: each round starts one further along, so
    none always runs first (or right after the same one)."""
    k = rnd % len(names)
    return names[k:] + names[:k]


def die(msg, prog="bench"):
    print("%s: %s" % (prog, msg), file=sys.stderr)
    sys.exit(1)


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    s = s.strip().upper().rstrip("B").rstrip("I")
    if s and s[-1] in mult:
        return int(s[:-1]) * mult[s[-1]]
    return int(s)


def stat_times(path):
    """(utime + stime in seconds, the CPU it last ran on) from a /proc
    .../stat file (the fields after the command name, which may hold
    spaces and parentheses)."""
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[36])


def stat_cpu_seconds(path):
    """utime + stime, in seconds, from a /proc .../stat file."""
    return stat_times(path)[0]


def cpu_seconds(pid):
    """utime + stime of a process, in seconds.  The thread-group leader's
    /proc/PID/stat sums every thread, live and exited."""
    return stat_cpu_seconds("/proc/%d/stat" % pid)


def thread_cpu_seconds(pid):
    """{thread name: utime + stime in seconds} of a process's live
    threads; threads that share a name are summed."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        task = "/proc/%d/task/%s/" % (pid, tid)
        try:
            with open(task + "comm") as f:
                name = f.read().strip()
            out[name] = out.get(name, 0) + stat_cpu_seconds(task + "stat")
        except OSError:
            continue    # exited meanwhile
    return out


def steal_seconds():
    """CPU seconds the hypervisor took from this machine's vCPUs (the
    steal field of /proc/stat), all CPUs together.  A round during which
    the host ran something else measures the host, not the server."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / CLK_TCK if len(fields) > 8 else 0.0


def steal_line(results, max_steal):
    """One line on the host's steal over every fio run in results (the
    dicts median_of returns), or None when the kernel reports none."""
    v = sorted(x for r in results.values() for x in r.get("steal_rounds", ()))
    repeats = sum(r.get("repeats", 0) for r in results.values())
    if not v or (v[-1] < 0.005 and not repeats):
        return None
    busy = sum(1 for x in v if x >= 0.1)
    line = ("host steal: median %.2f, max %.2f CPUs over the %d fio runs kept; %d with "
            ">= 0.1 (the host ran something else on these vCPUs: such rounds measure the "
            "host)" % (statistics.median(v), v[-1], len(v), busy))
    if max_steal:
        line += "; %d run(s) repeated for steal >= %.2f" % (repeats, max_steal)
    return line


def run_fio_quiet(max_steal, *args, **kw):
    """run_fio, and again (at most twice more) while the host stole
    max_steal CPUs or more during the run: such a run measures the host,
    not the server.  0: never repeat."""
    r = run_fio(*args, **kw)
    repeats = 0
    while max_steal and r["steal"] >= max_steal and repeats < 2:
        repeats += 1
        r = run_fio(*args, **kw)
    r["repeats"] = repeats
    return r


def wait_socket(path, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Server:
    def __init__(self, name, argv, sock, log, fatal=True, cpus=None):
        """cpus: a taskset CPU list to run the server on (--server-cpus)."""
        if cpus:
            # taskset execs the server: same PID, and every thread it
            # starts inherits the CPU set.
            argv = ["taskset", "-c", cpus] + argv
        self.name = name
        self.sock = sock
        self.argv = argv
        self.log = open(log, "ab")
        # A server killed by an earlier round may have left its socket
        # (nbdkit refuses to replace one).
        if os.path.exists(sock):
            os.unlink(sock)
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log)
        if not wait_socket(sock, self.proc):
            self.stop()
            if not fatal:
                raise RuntimeError(name)
            die("%s did not start (log: %s)" % (name, log))

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def warm_page_cache(image):
    """The image's dirty pages written back, its page cache dropped and
    read in again in order-0 (4 KiB) folios.  Which folios hold the cache
    decides what a 4 KiB buffered write costs: with ext4's large folios
    (Linux 6.18 here) a sequential read brings the file in through
    readahead in large folios, and 4k random writes into them ran at
    13.2-13.8k IOPS through nbdkit against 121-140k after this warm-up,
    on the same file (each dirties, and writeback then writes, the whole
    large folio).  Which state a server met used to depend on what ran
    before it.  POSIX_FADV_RANDOM switches readahead off for this open
    file, and the kernel then reads in order-0 folios; large reads keep
    the warm-up at 2 s a GiB from the disk."""
    fd = os.open(image, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        while os.read(fd, 1 << 20):
            pass
    finally:
        os.close(fd)


class Setup:
    """What a mode serves: mode, the image file (none, writeback; for ram
    the tmpfs file qemu-nbd serves), its size, the work directory, the
    vdiskd binaries, TLS.  a: the parsed options (vdiskd, vdiskd_b, tls,
    driver, ceph_conf)."""

    def __init__(self, mode, image, size, workdir, a, tls=None):
        self.mode, self.image, self.size, self.workdir, self.a = mode, image, size, workdir, a
        self.tls = tls      # fio's side: (client certificates, URI shim) or None

    def client_tls(self, name):
        return self.tls if name != "vdiskd-plain" else None

    def vdiskd_binary(self, name):
        return self.a.vdiskd_b if name == "vdiskd-b" else self.a.vdiskd

    def server_argv(self, name, sock):
        a, workdir, image = self.a, self.workdir, self.image
        tls = getattr(a, "tls", False) and name != "vdiskd-plain"
        certs = os.path.join(workdir, "pki", "server")
        driver = getattr(a, "driver", "raw")
        if driver == "rbd":
            # mode is the cache mode, none or writeback, the same for both:
            # qemu's rbd driver sets rbd_cache=false for --cache=none
            # (BDRV_O_NOCACHE) and rbd_cache=true otherwise, and nothing
            # else, so librbd's defaults (writearound, writethrough until
            # the first flush) stay; vdiskd --cache writeback asks for
            # writearound from the first write (no writethrough until a
            # flush).
            if name in ("vdiskd", "vdiskd-b"):
                return [self.vdiskd_binary(name), "-f", "-q", "--cache", self.mode,
                        "-n", "bench", "-c", os.path.join(workdir, name + ".ctl"),
                        "-l", "unix:" + sock, "-d", "rbd", "--ceph-conf", a.ceph_conf,
                        image] + (getattr(a, "vdiskd_args", None) or [])
            if name == "qemu-nbd":
                return ["qemu-nbd", "-f", "raw", "--cache=" + self.mode, "-t", "-k", sock,
                        "rbd:%s:conf=%s" % (image, a.ceph_conf)]
            die("server %s cannot serve rbd" % name)
        if name in ("vdiskd", "vdiskd-b", "vdiskd-plain"):
            argv = [self.vdiskd_binary(name), "-f", "-q", "-n", "bench",
                    "-c", os.path.join(workdir, name + ".ctl"), "-l", "unix:" + sock]
            if self.mode == "ram":
                argv += ["-d", "ram", str(self.size)]
            else:
                argv += ["--cache", self.mode, image]
            argv += getattr(a, "vdiskd_args", None) or []
            return argv + (["--tls", "require", "--tls-certificates", certs] if tls else [])
        if name == "qemu-nbd":
            # -e 8: qemu-nbd serves one client at a time by default (the
            # multi-conn tests open four).  tmpfs (ram mode) takes no
            # O_DIRECT, so qemu-nbd serves its file through the page cache.
            cache = ["--cache=none", "--aio=native"] if self.mode == "none" else \
                ["--cache=writeback"]
            return ["qemu-nbd", "-f", "raw"] + cache + ["-e", "8", "-t", "-k", sock, image] + \
                (["--object", "tls-creds-x509,id=tls0,dir=%s,endpoint=server" % certs,
                  "--tls-creds", "tls0"] if tls else [])
        if name == "nbdkit":
            plugin = ["memory", str(self.size)] if self.mode == "ram" else ["file", image]
            return ["nbdkit", "-f", "-U", sock] + \
                (["--tls=require", "--tls-certificates=" + certs] if tls else []) + plugin
        die("unknown server " + name)

    def start(self, name, sock=None):
        """A server for one round, warmed; a second try when it does not
        come up (a busy machine, a stale socket)."""
        sock = sock or os.path.join(self.workdir, name + ".sock")
        log = os.path.join(self.workdir, name + ".log")
        for attempt in range(2):
            try:
                srv = Server(name, self.server_argv(name, sock), sock, log,
                             fatal=attempt == 1, cpus=getattr(self.a, "server_cpus", None))
                break
            except RuntimeError:
                print("bench: %s did not start, trying again" % name, file=sys.stderr)
                time.sleep(1)
        self.warm(srv)
        return srv

    def warm(self, srv=None):
        """The same starting state for every server: in writeback mode the
        image's dirty pages written back (so one server's writes do not
        cost the next) and every page read into the page cache; in ram mode
        the whole disk written once through NBD (vdiskd's and nbdkit's
        memory start empty, and reading holes would be cheaper than
        reading data).  Nothing for --cache none (O_DIRECT), nor for an
        RBD image (a cluster, no page cache).  The raw reference is warmed
        the same way and runs with fio's --invalidate=0 (fio_argv)."""
        if self.mode == "writeback" and self.image and getattr(self.a, "driver", "raw") != "rbd":
            warm_page_cache(self.image)
        elif self.mode == "ram" and srv is not None and srv.name != "qemu-nbd":
            run_fio(Test("fill", "write", "1m", 8), ("nbd", srv.sock), None, self.size,
                    ramp=0, tls=self.client_tls(srv.name))


# librbd's cache for fio-rbd in each cache mode, in a [client] section of
# its own configuration file (fio's rbd engine sets no option itself):
# none as qemu and vdiskd set it; writeback as vdiskd --cache writeback
# sets it, so "x fio-rbd" is librbd with and without vdiskd and NBD in
# between.  qemu-nbd --cache=writeback sets rbd_cache=true alone.
RBD_FIO_CACHE = {
    "none": ["rbd cache = false"],
    "writeback": ["rbd cache = true", "rbd cache policy = writearound",
                  "rbd cache writethrough until flush = false"],
}


class RbdCluster:
    """A throw-away one-node cluster (tests/lib/ceph-cluster.sh, memstore)
    under workdir, with the image rbd/bench of size bytes written once
    (reads of unwritten objects would cost the OSD nothing), and a
    ceph.conf for fio-rbd per cache mode.  Sets CEPH_CONF for the tools."""

    image = "rbd/bench"

    def __init__(self, workdir, caches, size, prog="bench"):
        here = os.path.dirname(os.path.abspath(__file__))
        self.script = os.path.join(here, "..", "tests", "lib", "ceph-cluster.sh")
        self.dir = os.path.join(workdir, "ceph")
        self.ceph_conf = os.path.join(self.dir, "ceph.conf")
        self.caches, self.size, self.prog = caches, size, prog
        self.started = False

    def start(self):
        if subprocess.run([self.script, "start", self.dir]).returncode != 0:
            die("the ceph cluster did not start", self.prog)
        self.started = True
        os.environ["CEPH_CONF"] = self.ceph_conf
        with open(self.ceph_conf) as f:
            base = f.read()
        for c in self.caches:
            with open(self.fio_conf(c), "w") as f:
                f.write(base + "\n[client]\n" + "\n".join(RBD_FIO_CACHE[c]) + "\n")
        pool, name = self.image.split("/")
        subprocess.run(["rbd", "create", "--size", "%dM" % (self.size >> 20), self.image],
                       check=True)
        print("%s: filling %s (%d MiB)" % (self.prog, self.image, self.size >> 20),
              file=sys.stderr)
        subprocess.run(["fio", "--name=fill", "--ioengine=rbd", "--clientname=admin",
                        "--pool=" + pool, "--rbdname=" + name, "--rw=write", "--bs=4m",
                        "--iodepth=8", "--size=%d" % self.size, "--refill_buffers"],
                       check=True, capture_output=True)

    def fio_conf(self, cache):
        return os.path.join(self.dir, "fio-%s.conf" % cache)

    def fio_target(self, cache):
        """fio_argv's target for fio's own rbd engine in this cache mode."""
        return ("rbd", self.image, self.fio_conf(cache))

    def osd_pid(self):
        try:
            with open(os.path.join(self.dir, "run", "osd.0.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        if self.started:
            subprocess.run([self.script, "stop", self.dir])
            self.started = False


def fio_argv(test, target, seconds, size, ramp=1, direct=True, tls=None, extra=()):
    """fio's command line for one run; target is ('nbd', socket),
    ('raw', file) or ('rbd', pool/image[, ceph.conf]); seconds None: once
    over size; extra: more fio options."""
    if isinstance(test, tuple):
        test = Test(*test)
    argv = ["fio", "--name=" + test.name, "--rw=" + test.rw, "--bs=" + test.bs,
            "--iodepth=%d" % test.qd, "--size=%d" % size, "--output-format=json",
            "--randrepeat=0", "--norandommap", "--lat_percentiles=1",
            "--percentile_list=50:99"]
    if seconds is not None:
        argv += ["--runtime=%d" % seconds, "--time_based"]
    if ramp:
        argv += ["--ramp_time=%d" % ramp]
    if test.jobs > 1:
        argv += ["--numjobs=%d" % test.jobs, "--group_reporting"]
    argv += list(extra)
    env = None
    if target[0] == "nbd" and tls:
        argv += ["--ioengine=nbd", "--uri=nbds+unix:///?socket=%s&tls-certificates=%s"
                 % (target[1], tls[0])]
        env = dict(os.environ, LD_PRELOAD=tls[1])
    elif target[0] == "nbd":
        argv += ["--ioengine=nbd", "--uri=nbd+unix:///?socket=" + target[1]]
    elif target[0] == "rbd":
        pool, img = target[1].split("/", 1)
        argv += ["--ioengine=rbd", "--clientname=admin", "--pool=" + pool,
                 "--rbdname=" + img]
        if len(target) > 2:
            # fio's engine sets no librbd option itself: the cache mode
            # comes from the configuration file.
            env = dict(os.environ, CEPH_CONF=target[2])
    else:
        # Buffered libaio completes in io_submit (so its queue depth is 1
        # in effect); that is what a buffered file gives an application.
        argv += ["--ioengine=libaio", "--direct=%d" % (1 if direct else 0),
                 "--filename=" + target[1]]
        if not direct:
            # fio drops the file's page cache before a job by default: the
            # buffered reference would then read from the disk, not from
            # the cache Setup.warm gave every server.
            argv += ["--invalidate=0"]
    return argv, env


def parse_fio(stdout, test):
    """fio's JSON (fio may print notes before it) -> a result dict:
    iops, bw (bytes/s), ios (counted after the ramp), lat_mean_us,
    lat_p99_us (fio's total latency, submission to completion)."""
    if isinstance(test, tuple):
        test = Test(*test)
    job = json.loads(stdout[stdout.index("{"):])["jobs"][0]
    d = job["read"] if "read" in test.rw else job["write"]
    lat = d.get("lat_ns", {})
    pct = lat.get("percentile", {})
    p99 = next((v for k, v in pct.items() if k.startswith("99.0")), None)
    return {"iops": d["iops"], "bw": d["bw_bytes"], "ios": d["total_ios"],
            "lat_mean_us": lat.get("mean", 0) / 1000.0 if lat else None,
            "lat_p99_us": p99 / 1000.0 if p99 else None}


def proc_tree(pid):
    """pid and its descendants (fio runs each job in a process of its own)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, tid)) as f:
                    todo += [int(x) for x in f.read().split()]
        except OSError:
            continue    # gone meanwhile
    return out


def tree_thread_seconds(pids):
    """thread_cpu_seconds summed over processes, by thread name."""
    out = {}
    for p in pids:
        try:
            for name, v in thread_cpu_seconds(p).items():
                out[name] = out.get(name, 0) + v
        except OSError:
            continue
    return out


def task_states(pids):
    """{tid: (utime + stime in seconds, the CPU it last ran on)} of every
    thread of pids."""
    out = {}
    for p in pids:
        try:
            tids = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for tid in tids:
            try:
                out[int(tid)] = stat_times("/proc/%d/task/%s/stat" % (p, tid))
            except OSError:
                continue    # exited meanwhile
    return out


def busiest(samples):
    """The thread that gained the most CPU time from the first of these
    task_states samples to the last."""
    first, last = samples[0], samples[-1]
    gain = {t: last[t][0] - first[t][0] for t in last if t in first}
    return max(gain, key=gain.get) if gain else None


class CpuWindow:
    """Samples a server's CPU seconds over fio's measured window: from
    ramp seconds after fio starts to ramp + seconds, so neither start-up
    nor the ramp counts.  cores = CPU seconds per wall second.  watch:
    {label: function returning PIDs}, other processes whose threads are
    sampled at the same instants (scripts/profile: fio, ceph-osd).
    place_with: a label of watch; every 10 ms of the window the CPU that
    the server's busiest thread and that process's busiest thread last
    ran on are compared, and same_cpu is the share of samples in which
    they were one (a wake-up between two CPUs costs far more on a VM
    than one on the same CPU)."""

    def __init__(self, pid, ramp, seconds, watch=None, place_with=None):
        self.pid, self.ramp, self.seconds = pid, ramp, seconds
        self.watch = watch or {}
        self.place_with = place_with if pid and place_with in self.watch else None
        self.cores = None
        self.threads = None     # {thread name: cores}
        self.watched = {}       # {label: {thread name: cores}}
        self.same_cpu = None    # (share, samples)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _sample(self):
        return ({n: tree_thread_seconds(f()) for n, f in self.watch.items()},
                thread_cpu_seconds(self.pid) if self.pid else {},
                cpu_seconds(self.pid) if self.pid else 0, time.monotonic())

    def _wait_window(self):
        """Waits out the window (False: fio ended first), sampling the
        placement on the way when asked to."""
        end = time.monotonic() + max(self.seconds - 0.3, 0.2)
        ours, theirs = [], []
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            if self.stop.wait(min(0.01, left) if self.place_with else left):
                return False
            if self.place_with:
                ours.append(task_states([self.pid]))
                theirs.append(task_states(self.watch[self.place_with]()))
        if len(ours) > 1:
            a, b = busiest(ours), busiest(theirs)
            both = [(x[a][1], y[b][1]) for x, y in zip(ours, theirs) if a in x and b in y]
            if both:
                self.same_cpu = (sum(1 for x, y in both if x == y) / len(both), len(both))
        return True

    def _run(self):
        if self.stop.wait(self.ramp + 0.1):
            return
        try:
            w0, th0, c0, t0 = self._sample()
            if not self._wait_window():
                return
            w1, th1, c1, t1 = self._sample()
        except OSError:
            return
        dt = t1 - t0
        self.watched = {n: {k: (v - w0[n].get(k, 0)) / dt for k, v in w1[n].items()}
                        for n in w1}
        if self.pid:
            self.cores = (c1 - c0) / dt
            self.threads = {n: (v - th0.get(n, 0)) / dt for n, v in th1.items()}

    def result(self):
        self.thread.join()
        return self.cores


def run_fio(test, target, seconds, size, ramp=1, direct=True, tls=None, cpu_pid=None,
            prog="bench", extra=(), watch=None, place_with=None):
    """One fio run; returns parse_fio's dict, plus with cpu_pid the
    server's cores (CPU seconds per second) and ios_per_cpu_s over the
    measured window; steal: the host's stolen CPU-s per second over the
    run.  watch: {label: PID}, more processes whose threads' cores land
    in r["watched"][label]; the label "fio" means fio itself (its PID is
    not known before; give None).
    place_with: a label of watch whose placement against the server's
    lands in r["same_cpu"] (CpuWindow)."""
    argv, env = fio_argv(test, target, seconds, size, ramp, direct, tls, extra)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    # "fio" is fio's own process tree; a label without a PID is left out.
    funcs = {n: (lambda p=(proc.pid if n == "fio" else p): proc_tree(p))
             for n, p in (watch or {}).items() if n == "fio" or p}
    win = CpuWindow(cpu_pid, ramp, seconds, funcs, place_with) \
        if (cpu_pid or funcs) and seconds else None
    c0 = cpu_seconds(cpu_pid) if cpu_pid else None
    s0, t0 = steal_seconds(), time.monotonic()
    stdout, stderr = proc.communicate()
    steal = (steal_seconds() - s0) / max(time.monotonic() - t0, 0.001)
    if win:
        win.stop.set()
        win.result()
    if proc.returncode != 0:
        die("fio failed: %s\n%s" % (" ".join(argv), stderr), prog)
    r = parse_fio(stdout, test)
    r["steal"] = steal
    r["watched"] = win.watched if win else {}
    r["same_cpu"] = win.same_cpu if win else None
    if cpu_pid:
        cores = win.cores if win else None
        if cores is None:
            # A run too short for the window: the whole run's CPU.
            cores = (cpu_seconds(cpu_pid) - c0) / ((seconds or 1) + ramp)
        r["cores"] = cores
        r["ios_per_cpu_s"] = r["iops"] / cores if cores > 0 else None
        r["thread_cores"] = win.threads if win else None
    return r


def prepare(image, size, prog="bench"):
    """The image filled with random data, so reads do not hit holes."""
    print("%s: filling %s (%d MiB)" % (prog, image, size >> 20), file=sys.stderr)
    with open(image, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def workdir_for(mode, default):
    """ram mode serves qemu-nbd's file from /dev/shm; the others need a
    filesystem that takes O_DIRECT (not tmpfs)."""
    return "/dev/shm" if mode == "ram" else default


def cpu_idle():
    """The cpuidle driver, and in a KVM guest with haltpoll how long an
    idle vCPU polls before it halts: a wake that has to bring a halted vCPU
    back costs tens of microseconds, so QD1 latency depends on it (see
    docs/performance.md)."""
    base = "/sys/devices/system/cpu/cpuidle/current_driver"
    try:
        with open(base) as f:
            drv = f.read().strip()
    except OSError:
        return "cpuidle unknown"
    if drv == "haltpoll":
        try:
            with open("/sys/module/haltpoll/parameters/guest_halt_poll_ns") as f:
                return "cpuidle haltpoll, guest_halt_poll_ns %s" % f.read().strip()
        except OSError:
            pass
    return "cpuidle " + drv


def server_cpus_note(a, sep):
    """sep + "servers on CPUs LIST" under --server-cpus, else nothing."""
    cpus = getattr(a, "server_cpus", None)
    return sep + "servers on CPUs " + cpus if cpus else ""


def machine_line(info, a):
    """The text output's first line: what on the machine moves the figures."""
    return "machine: %d CPUs, Linux %s, %s%s" % (
        info["nproc"], info["kernel"], info["idle"], server_cpus_note(a, "; "))


def machine_md(info, a):
    """The --markdown header's machine sentence (without its full stop)."""
    return "Machine: %d CPUs (%s), Linux %s, %d MiB RAM, %s%s" % (
        info["nproc"], info["cpu"], info["kernel"], info["mem_mib"], info["idle"],
        server_cpus_note(a, ", "))


def print_table(head, body, nleft):
    """head and body (rows of strings) in aligned columns, the first nleft
    left-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(head)]

    def fmt(r):
        return "  ".join((c.ljust(w) if i < nleft else c.rjust(w))
                         for i, (c, w) in enumerate(zip(r, widths)))
    print(fmt(head))
    print("-" * len(fmt(head)))
    for r in body:
        print(fmt(r))


def machine(image=None):
    """nproc, CPU model, kernel, and the filesystem and device of image."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "mem_mib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20,
            "idle": cpu_idle()}
    if image:
        r = subprocess.run(["df", "--output=source,fstype", os.path.dirname(image)],
                           capture_output=True, text=True)
        lines = r.stdout.split("\n")
        if r.returncode == 0 and len(lines) > 1:
            info["fs"] = " ".join(lines[1].split())
    return info
