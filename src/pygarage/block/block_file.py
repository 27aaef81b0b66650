"""A plain block file, open and verified against its hash, for the kernel to send.

Block files are never written in place (a new copy is renamed over the old name), so the
open file keeps the very bytes that were hashed, whatever happens to the name meanwhile
(replaced, moved aside as corrupted, deleted): the sender uses this fd, never the path.
Hashing reads the file in a worker thread, which also brings it into the page cache, so
the send that follows does not wait for the disk.
"""

from __future__ import annotations

import io
import os
import threading

import blake3

from ..util.errors import CorruptData
from .block import DataBlock, unpack_block
from .store import BlockStore, read_fd

# Read in pieces of a usual block: one read and one hash call (a GIL hand-off each) per
# block; smaller pieces that stay in the CPU cache measured no faster. One per thread.
_PIECE = 1024 * 1024
_bufs = threading.local()


class BlockFile:
    """Bytes [offset, offset + count) of a verified plain block file. Owns the file:
    close() it once sent (or not)."""

    __slots__ = ("file", "offset", "count")

    def __init__(self, file: io.FileIO, offset: int, count: int):
        self.file = file
        self.offset = offset
        self.count = count

    def narrow(self, skip: int, take: int) -> None:
        """Keep only bytes [skip, take) of the current range."""
        self.offset += skip
        self.count = take - skip

    def read(self) -> bytes:
        """Blocking: the range's bytes (where the kernel cannot send the file itself)."""
        parts = []
        pos, end = self.offset, self.offset + self.count
        while pos < end:
            chunk = os.pread(self.file.fileno(), end - pos, pos)
            if not chunk:
                raise CorruptData("block file shorter than when it was verified")
            parts.append(chunk)
            pos += len(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self.file.close()


def hash_fd(fd: int) -> tuple[bytes, int]:
    """Blocking: (BLAKE3 of the whole file, its length), read with pread (no mapping: a
    file truncated by someone else would be a SIGBUS)."""
    buf: bytearray | None = getattr(_bufs, "b", None)
    if buf is None:
        buf = _bufs.b = bytearray(_PIECE)
    view = memoryview(buf)
    h = blake3.blake3()
    pos = 0
    while n := os.preadv(fd, [buf], pos):
        h.update(view[:n])  # blake3 releases the GIL on large inputs
        pos += n
    return h.digest(), pos


def open_verified(store: BlockStore, h: bytes) -> BlockFile | bytes | None:
    """Blocking, for a worker thread: the local copy of block `h`, checked against `h`.
    A plain copy comes back open, as a BlockFile of the whole block; a compressed one as
    its plain bytes (decompressed, verified); None if this node has no copy. A copy that
    does not match raises CorruptData (nothing of it is returned)."""
    opened = store.open_local(h)
    if opened is None:
        return None
    fd, compressed = opened
    if compressed:
        try:
            payload = read_fd(fd)
        finally:
            os.close(fd)
        return unpack_block(h, DataBlock(True, payload))
    try:
        digest, size = hash_fd(fd)
        if digest != h:
            raise CorruptData(f"block {h.hex()}: content does not match its hash")
        file = io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise
    return BlockFile(file, 0, size)
