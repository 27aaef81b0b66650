"""Keep freed memory for reuse instead of handing it back to the kernel at once (glibc).

Moving blocks means a fresh buffer of up to 1 MiB per record and per body frame, freed a
moment later. With glibc's defaults such buffers are mmap'ed and unmapped each time, or
the heap top is given back as soon as 128 KiB are free: either way every MiB moved is
faulted in again, 256 page faults plus zeroing by the kernel, which measured as more CPU
than the cipher itself. Raising both thresholds lets the heap keep up to _TRIM bytes of
free memory to reuse (bounded, so the process still shrinks after a burst).
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger("pygarage.net")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP = 4 << 20  # buffers below this come from the heap (records and frames are <= 1 MiB)
_TRIM = 32 << 20  # free heap kept for reuse before it is given back
_done: bool | None = None


def _is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError, AttributeError):  # not a glibc system
        return False


def keep_freed_memory() -> bool:
    """Once per process; False where the C library is not glibc (nothing to tune)."""
    global _done
    if _done is None:
        _done = _is_glibc() and _tune()
    return _done


def _tune() -> bool:
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP) == 1 and libc.mallopt(
            _M_TRIM_THRESHOLD, _TRIM) == 1
    except (OSError, AttributeError):
        ok = False
    if not ok:
        log.warning("could not tune the allocator: bulk RPC transfers will cost more CPU")
    return bool(ok)
