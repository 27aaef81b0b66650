"""Verified block files for sendfile: a plain copy comes back open once its hash matched, a
compressed one as its verified bytes, a corrupt one as CorruptData with nothing left open;
a read cancelled while its thread works still closes the file that thread opens."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pygarage.block import manager as manager_mod
from pygarage.block.block import pack_block
from pygarage.block.block_file import BlockFile, open_verified
from pygarage.block.store import BlockStore
from pygarage.model.garage import Garage
from pygarage.util.config import DataDir
from pygarage.util.errors import CorruptData


def _open_fds() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:
            pass
    return out


def _store(tmp_path: Path) -> BlockStore:
    return BlockStore((DataDir(tmp_path / "data"),), False)


def test_plain_copy_comes_back_open_and_verified(tmp_path: Path) -> None:
    s = _store(tmp_path)
    data = os.urandom(3 * 1024 * 1024 + 5)  # more than one hashing piece
    h, block = pack_block(data, 1)
    assert not block.compressed
    s.write(h, block, absent=True)
    f = open_verified(s, h)
    assert isinstance(f, BlockFile)
    try:
        assert (f.offset, f.count) == (0, len(data))
        assert f.read() == data
        f.narrow(10, 1000)
        assert f.read() == data[10:1000]
    finally:
        f.close()


def test_compressed_copy_comes_back_as_bytes(tmp_path: Path) -> None:
    s = _store(tmp_path)
    data = b"compressible " * 10000
    h, block = pack_block(data, 1)
    assert block.compressed
    s.write(h, block, absent=True)
    before = _open_fds()
    assert open_verified(s, h) == data
    assert _open_fds() == before


def test_missing_block(tmp_path: Path) -> None:
    assert open_verified(_store(tmp_path), b"\x01" * 32) is None


@pytest.mark.parametrize("compress", [None, 1])
def test_corrupt_copy_raises_and_closes(tmp_path: Path, compress: int | None) -> None:
    s = _store(tmp_path)
    data = b"abc" * 100000 if compress else os.urandom(100000)
    h, block = pack_block(data, compress)
    s.write(h, block, absent=True)
    found = s.find(h)
    assert found is not None
    raw = bytearray(found[0].read_bytes())
    raw[-1] ^= 0x01  # the last byte: all of the file is checked
    found[0].write_bytes(bytes(raw))
    before = _open_fds()
    with pytest.raises(CorruptData):
        open_verified(s, h)
    assert _open_fds() == before


async def test_get_block_for_send(garage: Garage) -> None:
    bm = garage.block_manager
    plain, packed = os.urandom(50000), b"z" * 50000
    for data in (plain, packed):
        h, block = bm.pack(data)
        await bm.put_block(h, block)
    got = await bm.get_block_for_send(bm.pack(plain)[0])
    assert isinstance(got, BlockFile)
    got.close()
    assert await bm.get_block_for_send(bm.pack(packed)[0]) == packed
    # A corrupt local copy: moved aside and an error, as get_block (single node).
    h = bm.pack(plain)[0]
    found = bm.store.find(h)
    assert found is not None
    raw = found[0].read_bytes()
    found[0].write_bytes(bytes([raw[0] ^ 0xFF]) + raw[1:])  # b"x" + ... left 1 in 256 intact
    with pytest.raises(CorruptData):
        await bm.get_block_for_send(h)
    assert bm.corruptions == 1 and bm.store.find(h) is None


async def test_cancelled_read_closes_the_file_its_thread_opens(
        garage: Garage, monkeypatch: pytest.MonkeyPatch) -> None:
    bm = garage.block_manager
    data = os.urandom(50000)
    h, block = bm.pack(data)
    await bm.put_block(h, block)
    path = str(bm.store.find(h)[0])  # type: ignore[index]
    started, release = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    opened: list[BlockFile] = []

    def slow_open(store: BlockStore, h: bytes) -> BlockFile | bytes | None:
        loop.call_soon_threadsafe(started.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(5)
        got = open_verified(store, h)
        assert isinstance(got, BlockFile)
        opened.append(got)
        return got
    monkeypatch.setattr(manager_mod, "open_verified", slow_open)
    task = asyncio.ensure_future(bm.get_block_for_send(h))
    await started.wait()
    task.cancel()  # while its thread works
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    for _ in range(500):  # the thread finishes after the cancellation
        if opened and opened[0].file.closed:
            break
        await asyncio.sleep(0.01)
    assert opened and opened[0].file.closed
    assert path not in _open_fds()
