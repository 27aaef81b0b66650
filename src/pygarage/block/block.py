"""A data block as stored: plain or zstd, addressed by the BLAKE3 hash of its plain bytes.

Hashing and (de)compression are CPU work on up to block_size bytes; callers run these
functions in a worker thread (blake3 and zstandard release the GIL), except on small blocks,
where handing the work to a thread costs more than the work (unpack_block_async).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import zstandard

from ..util.errors import CorruptData
from ..util.ids import block_hash
from ..util.offload import offload

# Blocks up to this size (stored and plain) are hashed, packed and verified on the event
# loop, and read there when the kernel has them in memory (util/nowait): BLAKE3 of 64 KiB
# takes about 11 us, a thread hand-off 20-160 us of CPU (util/offload.py).
INLINE_MAX = 64 * 1024


@dataclass(frozen=True)
class DataBlock:
    compressed: bool
    payload: bytes  # as written to disk (zstd frame if compressed)


# zstd contexts are costly to set up (a third of compressing a 1 MiB block, most of a small
# one) and not thread-safe: one per thread (and level), reused.
_zstd = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cs: dict[int, zstandard.ZstdCompressor] | None = getattr(_zstd, "c", None)
    if cs is None:
        cs = _zstd.c = {}
    c = cs.get(level)
    if c is None:
        c = cs[level] = zstandard.ZstdCompressor(level=level)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_zstd, "d", None)
    if d is None:
        d = _zstd.d = zstandard.ZstdDecompressor()
    return d


def pack_block(data: bytes, level: int | None) -> tuple[bytes, DataBlock]:
    """-> (hash of plain data, block to store). Keeps zstd only when it saves space."""
    h = block_hash(data)
    if level is not None:
        z = _compressor(level).compress(data)
        if len(z) < len(data):
            return h, DataBlock(True, z)
    return h, DataBlock(False, data)


def plain_size(block: DataBlock) -> int | None:
    """Its plain size, without decompressing (None: not in the zstd frame's header, or
    no valid header)."""
    if not block.compressed:
        return len(block.payload)
    try:
        n = zstandard.frame_content_size(block.payload)
    except zstandard.ZstdError:
        return None
    return n if n >= 0 else None


def unpack_block(h: bytes, block: DataBlock) -> bytes:
    """Plain bytes, verified against the hash: a corrupted file is never served."""
    try:
        data = (_decompressor().decompress(block.payload)
                if block.compressed else block.payload)
    except zstandard.ZstdError as e:
        raise CorruptData(f"block {h.hex()}: bad zstd data: {e}") from None
    if block_hash(data) != h:
        raise CorruptData(f"block {h.hex()}: content does not match its hash")
    return data


def is_small(block: DataBlock) -> bool:
    """Stored and plain bytes both at most INLINE_MAX (the plain size as the zstd frame
    tells it): unpacking it costs less than a thread hand-off."""
    n = plain_size(block)
    return n is not None and n <= INLINE_MAX and len(block.payload) <= INLINE_MAX


async def unpack_block_async(h: bytes, block: DataBlock) -> bytes:
    """unpack_block, in a worker thread unless the block is small."""
    if is_small(block):
        return unpack_block(h, block)
    return await offload(unpack_block, h, block)
