"""The PUT path writes each block and its reference concurrently: a block whose write fails
after its reference was written is still listed in the version, so aborting the upload
frees the reference (no refcount left behind for a block that never arrived)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pygarage.api.common.signature import checksum as ck
from pygarage.api.s3.put import Referenced, store_and_reference, write_blocks
from pygarage.block.block import DataBlock
from pygarage.model.garage import Garage
from pygarage.model.s3.version_table import Version
from pygarage.testing.local_garage import local_garage
from pygarage.util.errors import QuorumError


@pytest.fixture
async def garage(tmp_path: Path) -> Garage:
    return local_garage(tmp_path, block_size=4096)


async def test_reference_and_block_written_together(garage: Garage) -> None:
    g = garage
    h, block = g.block_manager.pack(b"x" * 5000)
    await store_and_reference(g, b"v" * 32, h, block)
    assert g.block_manager.rc.get(h) == 1 and g.block_manager.store.has(h)


async def test_failed_block_write_is_listed_for_the_abort(garage: Garage,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    g = garage
    calls = 1  # the first call below fails
    real_put = g.block_manager.put_block

    async def flaky_put(h: bytes, block: DataBlock, **kw: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise QuorumError("second block lost")
        await real_put(h, block)
    monkeypatch.setattr(g.block_manager, "put_block", flaky_put)

    h, block = g.block_manager.pack(b"y" * 3000)
    with pytest.raises(Referenced) as e:
        await store_and_reference(g, b"w" * 32, h, block)
    assert e.value.block == h and g.block_manager.rc.get(h) == 1

    vid = b"u" * 32
    await g.version_table.insert(Version(vid))
    chunks = [b"a" * 4096, b"b" * 4096, b"c" * 100]

    async def read(n: int) -> bytes:
        return chunks.pop(0) if chunks else b""
    calls = 0
    with pytest.raises(QuorumError, match="second block lost"):
        await write_blocks(g, vid, 0, read, ck.Checksummer([], md5=True), chunks.pop(0))
    ver = await g.version_table.get(vid)
    assert ver is not None
    listed = {b.hash for b in ver.blocks.values()}
    # Every referenced block is listed, the failed one included: deleting the version
    # (the upload's abort) unreferences them all.
    refs = {r.block for r in await g.block_ref_table.get_all_local() if r.version == vid}
    assert refs and refs <= listed
    await g.shutdown()


async def test_blocks_listed_while_they_are_written(garage: Garage,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """No version write is left for after the last block write: the last block is listed
    while it is being stored (one round trip less per PUT)."""
    g = garage
    listed: set[bytes] = set()
    changed = asyncio.Event()
    real_insert, real_put = g.version_table.insert, g.block_manager.put_block

    async def insert(entry: Version) -> None:
        listed.update(b.hash for b in entry.blocks.values())
        changed.set()
        await real_insert(entry)

    last = g.block_manager.pack(b"end")[0]

    async def put_block(h: bytes, block: DataBlock, **kw: int) -> None:
        while h == last and h not in listed:  # completes only once listed
            changed.clear()
            await changed.wait()
        await real_put(h, block)
    monkeypatch.setattr(g.version_table, "insert", insert)
    monkeypatch.setattr(g.block_manager, "put_block", put_block)
    vid = b"l" * 32
    chunks = [os.urandom(4096) for _ in range(10)] + [b"end"]

    async def read(n: int) -> bytes:
        return chunks.pop(0) if chunks else b""
    async with asyncio.timeout(10):
        size, _ = await write_blocks(g, vid, 0, read, ck.Checksummer([], md5=True),
                                     chunks.pop(0))
    assert size == 10 * 4096 + 3
    ver = await g.version_table.get(vid)
    assert ver is not None and len(ver.blocks) == 11
    await g.shutdown()
