"""The rebalance worker on a real directory tree (no server): every block ends in its
primary dir (with data_fsync), a corrupted file is moved aside and reported, not copied."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pygarage.block.block import pack_block
from pygarage.block.rebalance import RebalanceWorker
from pygarage.block.store import BlockStore
from pygarage.util.background import WorkerState
from pygarage.util.config import DataDir


def test_rebalance_moves_to_primary_and_sets_corrupted_aside(tmp_path: Path) -> None:
    s1 = BlockStore((DataDir(tmp_path / "d1", 1000),), True, tmp_path / "data_layout")
    blocks = [pack_block(os.urandom(64), None) for _ in range(60)]
    for h, b in blocks:
        s1.write(h, b)
    s = BlockStore((DataDir(tmp_path / "d1", 1000), DataDir(tmp_path / "d2", 1000)), True,
                   tmp_path / "data_layout")
    to_move = [h for h, _ in blocks if s.layout.primary(h) == 1]
    assert to_move
    # One block to move is damaged: it must not reach d2 under its name.
    bad = to_move[0]
    found = s.find(bad)
    assert found is not None
    found[0].write_bytes(b"not the block")
    reported: list[bytes] = []

    async def on_corrupted(h: bytes) -> None:
        reported.append(h)

    locks: dict[bytes, asyncio.Lock] = {}

    def lock(h: bytes) -> asyncio.Lock:
        return locks.setdefault(h[:1], asyncio.Lock())

    async def run() -> RebalanceWorker:
        w = RebalanceWorker(s, lock, on_corrupted)
        while await w.work() is not WorkerState.DONE:
            pass
        return w

    w = asyncio.run(run())
    assert reported == [bad] and w.corrupted == 1
    assert w.moved == len(to_move) - 1
    assert w.status()["progress"] == "100.00%"
    assert not s.layout.has_secondaries()
    for h, b in blocks:
        if h == bad:
            assert s.find(h) is None
            continue
        f = s.find(h)
        assert f is not None and os.path.dirname(f[0]) == s.primary_dir(h)
        got = s.read(h)
        assert got is not None and got.payload == b.payload
    assert list((tmp_path / "d1").rglob("*.corrupted"))
    # Persisted: a restart with the same dirs loads the layout without secondaries.
    again = BlockStore((DataDir(tmp_path / "d1", 1000), DataDir(tmp_path / "d2", 1000)),
                       False, tmp_path / "data_layout")
    assert again.layout == s.layout
