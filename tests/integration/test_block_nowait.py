"""Local reads of small blocks: on the event loop when the kernel has them in memory, in a
thread otherwise, the same verified bytes either way."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pygarage.testing import pagecache
from pygarage.testing.inproc import InprocCluster
from pygarage.util import nowait
from pygarage.util.errors import CorruptData, MissingBlock

pytestmark = pytest.mark.skipif(not nowait.available(), reason="needs Linux openat2")


async def test_small_block_read_from_cache_or_thread(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    async with InprocCluster(tmp_path, n=1, rf=1, workers=False) as c:
        bm = c.garages[0].block_manager
        for data in (os.urandom(4096), b"z" * 60_000, b"y" * 1_000_000):
            h, block = bm.pack(data)
            await bm.put_block(h, block)
            before = bm.reads_nowait
            assert await bm.read_local(h) == data
            # 60,000 zeros compress to a tiny file but are still small plain; a 1 MB one
            # decompresses to too much for the event loop.
            assert bm.reads_nowait == before + (len(data) <= 65536)
            found = bm.store.find(h)
            assert found is not None
            # Evicted: refused and read in a thread, or (a disk faster than the kernel's
            # second look, see testing/pagecache) read at once; the same bytes either way.
            pagecache.evict(found[0])
            assert await bm.read_local(h) == data
            # The kernel refusing (pages not in memory): the thread reads it.
            with monkeypatch.context() as m:
                m.setattr(nowait, "read_cached", _not_in_memory)
                before = bm.reads_nowait
                assert await bm.read_local(h) == data
                assert bm.reads_nowait == before
        with pytest.raises(MissingBlock):
            await bm.read_local(bytes(32))


def _not_in_memory(fd: int, max_size: int) -> bytes:
    raise BlockingIOError(errno.EAGAIN, "not in the page cache")


async def test_corrupt_cached_copy_is_set_aside_by_the_thread(tmp_path: Path) -> None:
    async with InprocCluster(tmp_path, n=1, rf=1, workers=False) as c:
        bm = c.garages[0].block_manager
        data = os.urandom(4096)
        h, block = bm.pack(data)
        await bm.put_block(h, block)
        found = bm.store.find(h)
        assert found is not None
        raw = bytearray(found[0].read_bytes())
        raw[7] ^= 1
        found[0].write_bytes(bytes(raw))
        with pytest.raises(CorruptData):
            await bm.read_local(h)
        assert bm.corruptions == 1
        assert not bm.store.has(h)
        assert found[0].with_name(found[0].name + ".corrupted").exists()
