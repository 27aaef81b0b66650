"""Reading a small file on the event loop only when the kernel can answer from memory.

A 4 KiB block read in a worker thread costs more CPU in the hand-over (queue, futex
wake-ups, the GIL changing hands, the loop's wake-up) than the read itself: 17 % of the
server CPU per 4 KiB GET here. But a read that reaches the disk must never stall the event
loop (a second-hand HDD seeks for 10 ms). Linux answers both: openat2 with RESOLVE_CACHED
fails with EAGAIN when the path lookup would need I/O, and preadv2 with RWF_NOWAIT fails
with EAGAIN when the data is not all in the page cache. Either failure is
BlockingIOError here, and the caller goes to its thread instead. O_NOATIME keeps the read
from dirtying the inode (an atime update can wait on the journal).

Where openat2 or RESOLVE_CACHED is missing (non-Linux, kernels before 5.12, a seccomp
filter), `available()` turns False after the first refusal and every read takes the
thread.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys

_SYS_OPENAT2 = 437  # the same number on every Linux architecture (added after 5.1)
_RESOLVE_CACHED = 0x20
_AT_FDCWD = -100
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)

_syscall = None
if sys.platform == "linux" and _RWF_NOWAIT:
    try:
        _syscall = ctypes.CDLL(None, use_errno=True).syscall
        _syscall.restype = ctypes.c_long
    except (OSError, AttributeError):
        _syscall = None
_enabled = _syscall is not None
_noatime = _O_NOATIME  # dropped after an EPERM (a file this user does not own)


def available() -> bool:
    return _enabled


def disable() -> None:
    """Every read takes the thread from now on (tests; a kernel that refused)."""
    global _enabled
    _enabled = False


def _how(flags: int) -> ctypes.Array[ctypes.c_char]:
    # struct open_how { u64 flags; u64 mode; u64 resolve; }
    return ctypes.create_string_buffer(struct.pack("QQQ", flags, 0, _RESOLVE_CACHED), 24)


def open_cached(path: str) -> int:
    """A read-only descriptor of `path`, resolved from the dentry cache alone.
    Raises BlockingIOError if that would need disk I/O (or openat2 is unavailable),
    FileNotFoundError and the like as os.open does."""
    global _enabled, _noatime
    if not _enabled or _syscall is None:
        raise BlockingIOError(errno.EAGAIN, "openat2 with RESOLVE_CACHED is unavailable")
    raw = os.fsencode(path)
    while True:
        fd = _syscall(_SYS_OPENAT2, _AT_FDCWD, raw, _how(os.O_RDONLY | os.O_CLOEXEC | _noatime),
                      ctypes.c_size_t(24))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.EPERM and _noatime:
            _noatime = 0  # O_NOATIME needs the file's owner: read without it
            continue
        if err in (errno.ENOSYS, errno.EINVAL, errno.E2BIG, errno.EPERM, errno.EOPNOTSUPP):
            _enabled = False  # this kernel (or a sandbox) refuses openat2 or the flag
            raise BlockingIOError(errno.EAGAIN, "openat2 with RESOLVE_CACHED is unavailable")
        raise OSError(err, os.strerror(err), path)


def read_cached(fd: int, max_size: int) -> bytes:
    """The whole file behind `fd` from the page cache. Raises BlockingIOError if any of
    it is not in memory, or if it is larger than max_size (a job for a thread)."""
    size = os.fstat(fd).st_size
    if size > max_size:
        raise BlockingIOError(errno.EAGAIN, "too large to read on the event loop")
    buf = bytearray(size)
    if size == 0:
        return b""
    n = os.preadv(fd, [buf], 0, _RWF_NOWAIT)
    if n != size:  # part of it cached only, or the file is shorter than it said
        raise BlockingIOError(errno.EAGAIN, "not all in the page cache")
    return bytes(buf)
