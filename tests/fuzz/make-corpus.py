#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets, tests/fuzz/corpus/NAME/, from
valid inputs (and a few near misses).  The files are committed; run this
again after changing it.  The VHD seeds need qemu-img (qemu-utils)."""

import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) <= 8192, (target, name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def strings(target, items):
    for i, s in enumerate(items):
        write(target, "seed-%02d" % i, s)


strings("size", ["512", "4k", "1M", "1G", "1GiB", "16TiB", "8P", "2048B", "64t",
                 "0", "-1", "1Q", "18446744073709551615", "16777216P"])
strings("addr", ["unix:/run/vdiskd/disk.nbd", "unix:@abstract", "tcp:127.0.0.1:10809",
                 "tcp:[::1]:10809", "tcp::10809", "tcp:localhost:nbd",
                 "tcp:[fe80::1%eth0]:1", "unix:", "tcp:host", "udp:1.2.3.4:5"])
strings("throttle-limits", [
    "iops=2000,bps=50M", "none", "iops=0",
    "read-iops=100,write-iops=200,burst-iops=400,burst-seconds=5",
    "read-bps=10MiB,write-bps=20m,burst-bps=100M", "iops-size=4k,iops=10",
    "bps=1T,burst-bps=2T", "iops=1,iops=2", "burst-iops=1,iops=2", "iops=-1"])
strings("ctl", [
    '{"cmd":"info"}', '{"cmd":"pause","timeout":5}', '{"cmd":"pause","timeout":0.5,"force":true}',
    '{"cmd":"reopen","image":"/var/lib/vdiskd/a.img","n":3}', '{"cmd":"busy"}',
    '{"cmd":"nope"}', '{"cmd":"info","x":[1,{"y":null}]}', '{"cmd":"reopen"}',
    '{"cmd":"reopen","image":"\\u00e9\\ud83d\\ude00"}', '["info"]'])

with open(os.path.join(HERE, "..", "..", "scripts", "example.conf.sample"), "rb") as f:
    write("config", "example.conf", f.read())
strings("config", [
    "image = /var/lib/vdiskd/a.img\n",
    "image = /a.img\ndriver = raw\nread-only = true\ncache = writeback\n"
    "queue-depth = 64\nmax-connections = 8\nlog-level = debug\nname = a\n",
    "image = 1G\ndriver = ram\nlisten = unix:/run/a.nbd\nlisten = tcp:127.0.0.1:10809\n"
    "control = /run/a.ctl\n",
    "# comment\n\n   image=/b.img   \n",
    "image = /a\nimage = /b\n", "queue-depth = 0\n", "bogus = 1\n", "image\n",
])

# NBD handshake: byte 0 picks the read size and the export (see
# fuzz-nbd-handshake.c); then client flags and options.
IHAVEOPT = 0x49484156454F5054
OPT = dict(EXPORT_NAME=1, ABORT=2, LIST=3, STARTTLS=5, INFO=6, GO=7,
           STRUCTURED_REPLY=8, LIST_META_CONTEXT=9, SET_META_CONTEXT=10)


def opt(o, data=b""):
    return struct.pack(">QII", IHAVEOPT, o, len(data)) + data


def go_data(name, reqs=()):
    n = name.encode()
    return struct.pack(">I", len(n)) + n + struct.pack(">H", len(reqs)) + \
        b"".join(struct.pack(">H", r) for r in reqs)


def meta_data(name, queries):
    n = name.encode()
    out = struct.pack(">I", len(n)) + n + struct.pack(">I", len(queries))
    for q in queries:
        out += struct.pack(">I", len(q)) + q.encode()
    return out


FLAGS = struct.pack(">I", 3)    # FIXED_NEWSTYLE | NO_ZEROES
hs = {
    "go": FLAGS + opt(OPT["GO"], go_data("disk", (0, 1, 2, 3))),
    "go-empty-name": FLAGS + opt(OPT["GO"], go_data("")),
    "export-name": FLAGS + opt(OPT["EXPORT_NAME"], b"disk"),
    "list-abort": FLAGS + opt(OPT["LIST"]) + opt(OPT["ABORT"]),
    "info-go": FLAGS + opt(OPT["INFO"], go_data("disk", (3,))) +
    opt(OPT["GO"], go_data("disk")),
    "structured-meta-go": FLAGS + opt(OPT["STRUCTURED_REPLY"]) +
    opt(OPT["SET_META_CONTEXT"], meta_data("disk", ["base:allocation"])) +
    opt(OPT["GO"], go_data("disk")),
    "list-meta": FLAGS + opt(OPT["STRUCTURED_REPLY"]) +
    opt(OPT["LIST_META_CONTEXT"], meta_data("disk", ["base:", "qemu:dirty-bitmap:x"])),
    "starttls": FLAGS + opt(OPT["STARTTLS"]) + opt(OPT["GO"], go_data("disk")),
    "unknown-then-go": FLAGS + opt(99, b"x" * 40) + opt(OPT["GO"], go_data("disk")),
    "oldstyle-flags": struct.pack(">I", 0) + opt(OPT["GO"], go_data("disk")),
    "big-option": FLAGS + struct.pack(">QII", IHAVEOPT, OPT["GO"], 70000) + b"\0" * 64,
    # Names and queries past NBD_MAX_STRING (4096), lengths consistent.
    "long-name": FLAGS + opt(OPT["GO"], go_data("n" * 5000)),
    "long-query": FLAGS + opt(OPT["STRUCTURED_REPLY"]) +
    opt(OPT["SET_META_CONTEXT"], meta_data("disk", ["base:" + "a" * 5000])),
}
for i, (name, data) in enumerate(sorted(hs.items())):
    for sel in (0x0d, i & 0x1f):    # 4 KiB reads; and varied
        write("nbd-handshake", "%s-%02x" % (name, sel), bytes([sel]) + data)

# NBD requests: 16 bytes of negotiated caps, then 28-byte requests.
REQ = 0x25609513


def req(typ, off, length, flags=0, handle=1):
    return struct.pack(">IHHQQI", REQ, flags, typ, handle, off, length)


caps_rw = struct.pack(">QBHB", 1 << 30, 0, 0x7d, 7) + struct.pack(">I", 32 << 20)
caps_ro = struct.pack(">QBHB", 1 << 20, 0, 0x03, 2) + struct.pack(">I", 1 << 20)
for i, caps in enumerate((caps_rw, caps_ro)):
    assert len(caps) == 16
    write("nbd-request", "mix-%d" % i, caps + req(0, 0, 4096) + req(1, 4096, 512, 1) +
          req(3, 0, 0) + req(4, 1 << 20, 1 << 20) + req(6, 0, 65536, 0x12) +
          req(7, 0, 1 << 30, 8) + req(5, 512, 512) + req(2, 0, 0))
    write("nbd-request", "edge-%d" % i, caps + req(0, (1 << 30) - 512, 512) +
          req(1, 1 << 30, 1) + req(0, 0xffffffffffffff00, 0x1000) + req(0, 0, 0) +
          struct.pack(">I", 0x67446698) + b"\0" * 24)

def vhd_sum(buf, skip):
    return ~sum(b for i, b in enumerate(buf) if not skip <= i < skip + 4) & 0xffffffff


def differencing(footer, header, fsize):
    """A dynamic image made a differencing child: type 4, a parent name, a
    W2ku and a W2ru locator after the BAT (qemu-img makes no VHD children)."""
    f = bytearray(footer)
    struct.pack_into(">I", f, 60, 4)
    struct.pack_into(">I", f, 64, vhd_sum(f, 64))
    h = bytearray(header)
    name = "parent.vhd".encode("utf-16-be")
    h[64:64 + len(name)] = name
    path = "C:\\vhd\\parent.vhd".encode("utf-16-le")
    loc_at = fsize - 512                # where the footer was: it moves on
    for i, code in enumerate((0x57326B75, 0x57327275)):
        struct.pack_into(">IIIIQ", h, 576 + 24 * i, code, 512, len(path), 0,
                         loc_at + 512 * i)
    struct.pack_into(">I", h, 36, vhd_sum(h, 36))
    return struct.pack(">Q", loc_at + 1024) + bytes(f) + bytes(h)


# VHD: 8 bytes of footer offset (the file size - 512), the footer, the
# header, from images qemu-img makes.
if shutil.which("qemu-img"):
    tmp = tempfile.mkdtemp()
    try:
        for sub, size in (("dynamic", "64M"), ("dynamic", "3G"), ("fixed", "1M")):
            p = os.path.join(tmp, "x.vhd")
            subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o",
                            "subformat=" + sub, p, size], check=True)
            fsize = os.path.getsize(p)
            with open(p, "rb") as f:
                f.seek(fsize - 512)
                footer = f.read(512)
                f.seek(512)
                header = f.read(1024) if sub == "dynamic" else b""
            write("vhd", "%s-%s" % (sub, size), struct.pack(">Q", fsize - 512) + footer + header)
            if sub == "dynamic" and size == "64M":
                write("vhd", "differencing-64M", differencing(footer, header, fsize))
    finally:
        shutil.rmtree(tmp)
else:
    print("make-corpus: no qemu-img: VHD seeds not made", file=sys.stderr)
