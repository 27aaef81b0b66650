"""get_block_for_send on a cluster (in-process, real RPC): a sound local plain copy comes
back as an open verified file; a missing or corrupt one falls back to a peer's verified copy
(bytes), exactly as get_block does, the corrupt one moved aside and the copy repaired."""

from __future__ import annotations

import os
from pathlib import Path

from sync_helpers import until

from pygarage.block.block_file import BlockFile
from pygarage.model.s3.block_ref_table import BlockRef
from pygarage.testing.inproc import InprocCluster


async def test_local_file_or_a_peer_copy(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=3, rf=3, workers=False) as c:
        g1, g2, _ = c.garages
        data = os.urandom(300_000)
        h, block = g1.block_manager.pack(data)
        assert not block.compressed
        await g1.block_manager.put_block(h, block)
        await until(lambda: all(g.block_manager.store.has(h) for g in c.garages), within_s=10)
        bm = g2.block_manager
        got = await bm.get_block_for_send(h)
        assert isinstance(got, BlockFile)
        try:
            assert got.read() == data
        finally:
            got.close()
        # Referenced here: a copy fetched from a peer is kept again.
        await g2.block_ref_table.data.write_entries([BlockRef(h, b"v" * 32, False)])
        bm.store.delete(h)
        assert await bm.get_block_for_send(h) == data
        await until(lambda: bm.store.has(h), within_s=10)
        found = bm.store.find(h)
        assert found is not None
        path = found[0]
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 0x01
        path.write_bytes(bytes(raw))
        assert await bm.get_block_for_send(h) == data  # a peer's copy, never this one
        assert bm.corruptions == 1
        assert path.with_name(path.name + ".corrupted").exists()
        await until(lambda: bm.store.has(h), within_s=10)
        got = await bm.get_block_for_send(h)  # repaired: a sound local file again
        assert isinstance(got, BlockFile)
        got.close()
