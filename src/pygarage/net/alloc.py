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
import ctypes.util
import logging
import platform

log = logging.getLogger("pygarage.net")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP = 4 << 20  # buffers below this come from the heap (records and frames are <= 1 MiB)
_TRIM = 32 << 20  # free heap kept for reuse before it is given back
_done = False


def keep_freed_memory() -> bool:
    """Once per process; False where the C library is not glibc (nothing to tune)."""
    global _done
    if _done:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP) == 1 and libc.mallopt(
            _M_TRIM_THRESHOLD, _TRIM) == 1
    except (OSError, AttributeError):
        ok = False
    if not ok:
        log.warning("could not tune the allocator: bulk RPC transfers will cost more CPU")
    _done = ok
    return ok
