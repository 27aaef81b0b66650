"""db writer hand-overs (httpspeed): the writes one event loop submits during one iteration
reach the writer thread in one queue put and come back in one loop callback."""

from __future__ import annotations

import asyncio
import queue
import threading
from pathlib import Path
from typing import Any

import pytest

from pygarage.db import writer as writer_mod
from pygarage.db.base import Transaction
from pygarage.db.open import open_db


class CountingQueue(queue.SimpleQueue):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.puts = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.puts += 1
        super().put(item, block, timeout)


@pytest.mark.parametrize("engine", ["lmdb", "sqlite"])
async def test_one_iterations_writes_cost_one_hand_over_each_way(
        engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_mod.queue, "SimpleQueue", CountingQueue)
    db = open_db(engine, tmp_path / engine, fsync=False, lmdb_map_size=1 << 26)
    try:
        db.open_tree("t")
        loop = asyncio.get_running_loop()
        wakeups = 0
        real = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal wakeups
            if threading.current_thread() is not threading.main_thread():
                wakeups += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
        q = db.writer._q
        assert isinstance(q, CountingQueue)
        puts_before = q.puts

        def put(i: int):  # type: ignore[no-untyped-def]
            def fn(tx: Transaction) -> int:
                tx.insert("t", f"k{i:03d}".encode(), b"v")
                return i
            return fn
        results = await asyncio.gather(*(db.write(put(i)) for i in range(40)))
        assert results == list(range(40))
        assert q.puts - puts_before == 1  # before: one put (one thread wake-up) per write
        assert wakeups == 1  # before: one loop wake-up per write
        assert len(db.range("t", None, None, 100)) == 40
        # A failing write among them still fails alone.
        def bad(tx: Transaction) -> None:
            raise ValueError("no")
        out = await asyncio.gather(db.write(put(100)), db.write(bad), db.write(put(101)),
                                   return_exceptions=True)
        assert out[0] == 100 and out[2] == 101 and isinstance(out[1], ValueError)
    finally:
        db.close()
