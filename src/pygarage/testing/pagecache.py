"""Dropping a file's pages from the page cache, for tests of reads that must never wait for
the disk (util/nowait).

A read refused because the pages are not in memory still starts the kernel's readahead,
and on a fast disk that can complete before the refusal is decided, so the read succeeds:
correct (it waited for nothing), but a test expecting the refusal must evict and try again
rather than count on one attempt."""

from __future__ import annotations

import os
from pathlib import Path

TRIES = 20


def evict(path: Path | str) -> None:
    """Write the file's dirty pages, then drop its clean ones from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
