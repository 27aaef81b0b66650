"""Blocks received from peers (block/put, reads from other nodes, resync) are verified on
the event loop when small, in a worker thread otherwise; and a node serving a small cached
block to a peer reads it without a thread. Either way a corrupt copy is refused."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
import zstandard

from pygarage.block import block as block_mod
from pygarage.block import manager as manager_mod
from pygarage.block.block import INLINE_MAX, DataBlock, pack_block, unpack_block_async
from pygarage.model.garage import Garage
from pygarage.util import nowait
from pygarage.util.errors import CorruptData


@pytest.fixture
def offloaded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the blocks handed to a worker thread (the real offload still runs)."""
    sizes: list[int] = []
    real = block_mod.offload

    def recording(fn: Any, h: bytes, block: DataBlock) -> Any:
        sizes.append(len(block.payload))
        return real(fn, h, block)
    monkeypatch.setattr(block_mod, "offload", recording)
    return sizes


def _corrupt(block: DataBlock) -> DataBlock:
    raw = bytearray(block.payload)
    raw[-1] ^= 0x01
    return DataBlock(block.compressed, bytes(raw))


@pytest.mark.parametrize("size", [0, 1, 4096, INLINE_MAX])
async def test_small_blocks_are_verified_without_a_thread(offloaded: list[int],
                                                          size: int) -> None:
    data = os.urandom(size)
    h, block = pack_block(data, None)
    assert await unpack_block_async(h, block) == data
    if size:
        with pytest.raises(CorruptData):
            await unpack_block_async(h, _corrupt(block))
    assert offloaded == []


async def test_larger_blocks_go_to_a_thread(offloaded: list[int]) -> None:
    data = os.urandom(INLINE_MAX + 1)
    h, block = pack_block(data, None)
    assert await unpack_block_async(h, block) == data
    with pytest.raises(CorruptData):
        await unpack_block_async(h, _corrupt(block))
    assert offloaded == [INLINE_MAX + 1] * 2


async def test_the_plain_size_decides_for_compressed_blocks(offloaded: list[int]) -> None:
    small = b"compressible " * 1000
    h, block = pack_block(small, 1)
    assert block.compressed
    assert await unpack_block_async(h, block) == small
    assert offloaded == []
    # A few hundred bytes on the wire that expand to 1 MiB: the decompression is the work.
    big = bytes(1 << 20)
    h, block = pack_block(big, 1)
    assert block.compressed and len(block.payload) < 1000
    assert await unpack_block_async(h, block) == big
    assert offloaded == [len(block.payload)]


async def test_frame_without_its_size_goes_to_a_thread(offloaded: list[int]) -> None:
    # Nodes always write the plain size in the frame: one without it is refused, there.
    data = b"streamed " * 100
    payload = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    h = pack_block(data, None)[0]
    with pytest.raises(CorruptData):
        await unpack_block_async(h, DataBlock(True, payload))
    assert offloaded == [len(payload)]


async def test_bad_zstd_from_a_peer_is_corrupt_data(offloaded: list[int]) -> None:
    h = pack_block(b"x", None)[0]
    with pytest.raises(CorruptData):
        await unpack_block_async(h, DataBlock(True, b"\x28\xb5\x2f\xfd" + b"\xff" * 20))


@pytest.mark.skipif(not nowait.available(), reason="needs Linux openat2")
async def test_raw_local_read_of_a_small_cached_block_needs_no_thread(
        garage: Garage, monkeypatch: pytest.MonkeyPatch) -> None:
    bm = garage.block_manager
    small, large = os.urandom(4096), os.urandom(INLINE_MAX + 1)
    stored = {}
    for data in (small, large):
        h, block = bm.pack(data)
        await bm.put_block(h, block)
        stored[h] = block
    threaded: list[Any] = []
    real = manager_mod.offload

    def recording(fn: Any, *args: Any) -> asyncio.Future[Any]:
        threaded.append(args)
        return real(fn, *args)
    monkeypatch.setattr(manager_mod, "offload", recording)
    for h, block in stored.items():
        assert await bm.read_raw_local(h) == block
    assert await bm.read_raw_local(b"\x07" * 32) is None
    # The small block, just written, is in the page cache: read here. The large one is
    # over the limit: read in a thread.
    hashes = [a[0] for a in threaded]
    assert bm.pack(large)[0] in hashes
    assert bm.pack(small)[0] not in hashes
