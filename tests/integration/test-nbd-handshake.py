"""The NBD handshake against bad and unusual clients, on a raw socket:
name lengths 0/4096/4097/0xffffffff, names longer than their option,
4 GB options, too many options, INFO then GO, GO twice, options after GO,
bytes cut at every offset.  After each, the daemon must still serve."""

import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nbd_client import *  # noqa: E402,F403

t = Checks()
d = Daemon("-d", "ram", "64M", name="disk")


def still_serves():
    c = d.client()
    c.negotiate(b"disk")
    err, data, _ = c.cmd(CMD_READ, 0, 4096)
    c.close()
    return err == 0 and data == bytes(4096)


def go_reply(data, length=None):
    c = d.client()
    c.start()
    c.option(OPT_GO, data, length)
    r = c.replies()
    c.close()
    return r


def export_name_closes(namelen, send=b""):
    c = d.client()
    c.start()
    c.option(OPT_EXPORT_NAME, send, namelen)
    closed = c.is_closed()
    c.close()
    return closed


# Name lengths.
r = go_reply(Client.go_data(b""))
t.check("GO with an empty name selects the disk", r[-1][1] == REP_ACK, r)
r = go_reply(Client.go_data(b"disk", [INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE]))
types = [struct.unpack(">H", x[2][:2])[0] for x in r if x[1] == REP_INFO]
t.check("GO answers EXPORT, NAME and BLOCK_SIZE infos",
        r[-1][1] == REP_ACK and {INFO_EXPORT, INFO_NAME, INFO_BLOCK_SIZE} <= set(types), r)
bs = [x[2] for x in r if x[1] == REP_INFO and x[2][:2] == b"\0\3"][0]
t.check("block size: min 1, preferred 4096, max 32 MiB",
        struct.unpack(">HIII", bs) == (INFO_BLOCK_SIZE, 1, 4096, 32 * MiB), bs)
r = go_reply(Client.go_data(b"x" * 4096))
t.check("GO with a 4096-byte unknown name: ERR_UNKNOWN", r[-1][1] == REP_ERR_UNKNOWN, r)
r = go_reply(Client.go_data(b"x" * 4097))
t.check("GO with a 4097-byte name: ERR_INVALID", r[-1][1] == REP_ERR_INVALID, r)
r = go_reply(struct.pack(">I", 0xffffffff) + b"abcd" + b"\0\0")
t.check("GO with name length 0xffffffff: ERR_INVALID", r[-1][1] == REP_ERR_INVALID, r)
r = go_reply(struct.pack(">I", 100) + b"disk" + b"\0\0")
t.check("GO with a name longer than the option: ERR_INVALID",
        r[-1][1] == REP_ERR_INVALID, r)
r = go_reply(b"\0\0")
t.check("GO shorter than its fixed fields: ERR_INVALID", r[-1][1] == REP_ERR_INVALID, r)

c = d.client()
c.start()
c.option(OPT_EXPORT_NAME, b"disk")
hdr = c.recv_exact(10)
t.check("EXPORT_NAME 'disk' with NO_ZEROES: size and flags, no zeroes",
        struct.unpack(">QH", hdr)[0] == 64 * MiB)
c.request(CMD_READ, 0, 512)
h, err, data, _ = c.read_reply(512)
t.check("EXPORT_NAME then a simple READ works", err == 0 and data == bytes(512))
c.close()

c = d.client()
c.start(FLAG_FIXED_NEWSTYLE)
c.option(OPT_EXPORT_NAME, b"")
hdr = c.recv_exact(10 + 124)
t.check("EXPORT_NAME without NO_ZEROES: 124 zero bytes", hdr[10:] == bytes(124))
c.close()

t.check("EXPORT_NAME of an unknown name closes the connection",
        export_name_closes(5, b"other"))
t.check("EXPORT_NAME with a 4097-byte name closes without reading it",
        export_name_closes(4097))
t.check("EXPORT_NAME with name length 0xffffffff closes at once",
        export_name_closes(0xffffffff))

# Oversized options.
c = d.client()
c.start()
t0 = time.monotonic()
try:
    c.option(OPT_GO, b"\0" * 65536, 0xffffffff)
    closed = c.is_closed()
except (BrokenPipeError, ConnectionResetError):
    closed = True	# closed before the client finished sending: what we want
t.check("a 4 GB option is refused without being read", closed and
        time.monotonic() - t0 < 5)
c.close()

c = d.client()
c.start()
c.option(OPT_GO, b"\0" * 200000)
r = c.replies()
t.check("a 200 kB GO is skipped and answered ERR_TOO_BIG", r[-1][1] == REP_ERR_TOO_BIG, r)
c.option(OPT_GO, Client.go_data(b"disk"))
r = c.replies()
t.check("... and the session goes on", r[-1][1] == REP_ACK, r)
c.close()

c = d.client()
c.start()
c.option(1000, b"z" * 70000)
r = c.replies()
t.check("an unknown 70 kB option: ERR_UNSUP", r[-1][1] == REP_ERR_UNSUP, r)
c.option(OPT_STARTTLS)
r = c.replies()
t.check("STARTTLS: ERR_POLICY or ERR_UNSUP", r[-1][1] in (REP_ERR_POLICY, REP_ERR_UNSUP), r)
c.option(OPT_LIST)
r = c.replies()
t.check("LIST names the disk", r[0][1] == REP_SERVER and r[0][2][4:8] == b"disk" and
        r[-1][1] == REP_ACK, r)
c.option(OPT_LIST_META_CONTEXT, Client.meta_data(b"disk", []))
r = c.replies()
t.check("LIST_META_CONTEXT offers base:allocation",
        r[0][1] == REP_META_CONTEXT and r[0][2][4:] == b"base:allocation", r)
c.option(OPT_SET_META_CONTEXT, Client.meta_data(b"disk", [b"base:allocation"]))
r = c.replies()
t.check("SET_META_CONTEXT before STRUCTURED_REPLY: ERR_INVALID",
        r[-1][1] == REP_ERR_INVALID, r)
c.option(OPT_ABORT)
r = c.replies()
t.check("ABORT is acknowledged, then the connection closes",
        r[-1][1] == REP_ACK and c.is_closed())
c.close()

# Too many options.
c = d.client()
c.start()
try:
    c.send(Client.opt_bytes(OPT_LIST) * 40)
except OSError:
    pass  # the server may hang up before it has all of them
n = 0
try:
    while True:
        c.reply()
        n += 1
except Closed:
    pass
except OSError:
    pass
t.check("more than 32 options: answered 32 times (x2 replies), then closed",
        n <= 64 and n >= 2, n)
c.close()

# INFO then GO, GO twice, options after GO.
c = d.client()
c.start()
c.option(OPT_INFO, Client.go_data(b"disk"))
r1 = c.replies()
c.option(OPT_GO, Client.go_data(b"disk"))
r2 = c.replies()
t.check("INFO then GO both succeed", r1[-1][1] == REP_ACK and r2[-1][1] == REP_ACK)
c.request(CMD_READ, 0, 4096)
_, err, data, _ = c.read_reply(4096)
t.check("... and transmission works", err == 0 and len(data) == 4096)
c.option(OPT_GO, Client.go_data(b"disk"))
t.check("GO twice: the second is garbage in transmission, connection closed",
        c.is_closed())
c.close()

c = d.client()
c.start()
c.option(OPT_GO, Client.go_data(b"disk"))
c.replies()
c.option(OPT_STRUCTURED_REPLY)
t.check("STRUCTURED_REPLY after GO closes the connection", c.is_closed())
c.close()

c = d.client()
c.greeting()
c.client_flags(1 << 5)
t.check("unknown client flags close the connection", c.is_closed())
c.close()

c = d.client()
c.start()
c.send(struct.pack(">QII", 0x1122334455667788, OPT_GO, 0))
t.check("bad option magic closes the connection", c.is_closed())
c.close()

# Bytes cut at every offset of a whole handshake.
hs = (struct.pack(">I", FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES) +
      Client.opt_bytes(OPT_STRUCTURED_REPLY) +
      Client.opt_bytes(OPT_SET_META_CONTEXT, Client.meta_data(b"disk", [b"base:allocation"])) +
      Client.opt_bytes(OPT_GO, Client.go_data(b"disk", [INFO_BLOCK_SIZE])) +
      Client.request_bytes(CMD_READ, 0, 512, handle=9))
ok = True
for cut in range(len(hs)):
    c = d.client()
    c.greeting()
    c.send(hs[:cut])
    c.close()
t.check("a handshake cut at every offset (%d cuts): daemon alive" % len(hs), d.alive())

c = d.client()
c.greeting()
for i in range(len(hs)):
    c.send(hs[i:i + 1])
    if i % 16 == 0:
        time.sleep(0.001)
replies = c.replies() + c.replies() + c.replies()
_, err, data, _ = c.read_reply()
t.check("the same handshake sent a byte at a time works",
        replies[-1][0] == OPT_GO and replies[-1][1] == REP_ACK and err == 0 and
        data == bytes(512), replies)
c.close()

t.run("the daemon still serves after all of it", still_serves)
st = d.stats()
t.check("no disk work for connections that never finished a handshake",
        st.get("reads") == 4, st)
rc = d.stop()
t.check("SIGTERM: exit 0", rc == 0, "%s\n%s" % (rc, d.log_text()))
t.finish()
