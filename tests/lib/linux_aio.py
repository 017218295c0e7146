"""Linux AIO (io_setup/io_submit/io_getevents) through ctypes, one iocb at
a time: enough for tests to send what vdiskd sends (IOCB_CMD_FDSYNC, a
pwrite with aio_rw_flags = RWF_DSYNC) without a C helper.  x86_64 and
aarch64 syscall numbers; standard library only."""

import ctypes
import os
import platform

_libc = ctypes.CDLL(None, use_errno=True)
_NR = {"x86_64": (206, 207, 209, 208), "aarch64": (0, 1, 2, 4)}
IOCB_CMD_PREAD, IOCB_CMD_PWRITE, IOCB_CMD_FSYNC, IOCB_CMD_FDSYNC = 0, 1, 2, 3


class iocb(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint64), ("key", ctypes.c_uint32),
                ("rw_flags", ctypes.c_int32), ("lio_opcode", ctypes.c_uint16),
                ("reqprio", ctypes.c_int16), ("fildes", ctypes.c_uint32),
                ("buf", ctypes.c_uint64), ("nbytes", ctypes.c_uint64),
                ("offset", ctypes.c_int64), ("reserved2", ctypes.c_uint64),
                ("flags", ctypes.c_uint32), ("resfd", ctypes.c_uint32)]


class io_event(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64),
                ("res", ctypes.c_int64), ("res2", ctypes.c_int64)]


def supported():
    return platform.machine() in _NR


def _one(cb):
    setup, destroy, submit, getevents = _NR[platform.machine()]
    ctx = ctypes.c_ulong(0)
    if _libc.syscall(setup, 8, ctypes.byref(ctx)) < 0:
        e = ctypes.get_errno()
        raise OSError(e, "io_setup: " + os.strerror(e))
    try:
        arr = (ctypes.POINTER(iocb) * 1)(ctypes.pointer(cb))
        if _libc.syscall(submit, ctx, ctypes.c_long(1), arr) != 1:
            e = ctypes.get_errno()
            raise OSError(e, "io_submit: " + os.strerror(e))
        ev = io_event()
        if _libc.syscall(getevents, ctx, ctypes.c_long(1), ctypes.c_long(1),
                         ctypes.byref(ev), None) != 1:
            e = ctypes.get_errno()
            raise OSError(e, "io_getevents: " + os.strerror(e))
        if ev.res < 0:
            raise OSError(-ev.res, os.strerror(-ev.res))
        return ev.res
    finally:
        _libc.syscall(destroy, ctx)


def pwrite(fd, buf, offset, rw_flags=0):
    """buf: a writable buffer (an mmap, for O_DIRECT alignment)."""
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    return _one(iocb(lio_opcode=IOCB_CMD_PWRITE, fildes=fd, buf=addr, nbytes=len(buf),
                     offset=offset, rw_flags=rw_flags))


def fsync(fd, datasync=True):
    """IOCB_CMD_FDSYNC (datasync) or IOCB_CMD_FSYNC."""
    return _one(iocb(lio_opcode=IOCB_CMD_FDSYNC if datasync else IOCB_CMD_FSYNC, fildes=fd))
