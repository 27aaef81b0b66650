"""`garage repair rebalance`: move every block file to the data dir the layout assigns it
(after data dirs were added, removed or resized), then forget the secondary locations.

Each move is a verified read, an atomic write to the primary dir (temp file, fsync per
data_fsync, rename), then the removal of the old copy (never in a read-only dir), under
the block's lock so a concurrent write or GC delete of the same block cannot interleave.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from ..util.background import WorkerState
from ..util.clock import SYSTEM_CLOCK, Clock, msec_to_rfc3339
from ..util.errors import CorruptData
from .block import unpack_block
from .scrub import OnCorrupted
from .store import BlockStore
from .walk import BlockFile, BlockWalker

log = logging.getLogger(__name__)

BATCH = 16
BlockLock = Callable[[bytes], AbstractAsyncContextManager[object]]


class RebalanceWorker:
    name = "Block rebalance worker"

    def __init__(self, store: BlockStore, lock: BlockLock, on_corrupted: OnCorrupted,
                 clock: Clock = SYSTEM_CLOCK):
        self.store = store
        self.lock = lock
        self.on_corrupted = on_corrupted
        self.clock = clock
        self.walker = BlockWalker(store.all_dirs())
        self.started = clock.now_msec()
        self.finished: int | None = None
        self.moved = 0
        self.moved_bytes = 0
        self.corrupted = 0

    async def work(self) -> WorkerState:
        files = await asyncio.to_thread(self.walker.next_batch, BATCH)
        if not files:
            # Every block is in its primary dir now (new writes always go there).
            layout = self.store.layout.without_secondaries()
            await asyncio.to_thread(self.store.set_layout, layout)
            self.finished = self.clock.now_msec()
            log.info("rebalance done: %d blocks (%d bytes) moved", self.moved, self.moved_bytes)
            return WorkerState.DONE
        for f in files:
            if os.path.dirname(f.path) != self.store.primary_dir(f.hash):
                async with self.lock(f.hash):
                    await self._move(f)
        return WorkerState.BUSY

    async def _move(self, f: BlockFile) -> None:
        read_only = f.base not in self.store.writable_dirs()

        def move() -> int | None:
            try:
                block = self.store.read_file(f.path)
            except FileNotFoundError:  # deleted meanwhile
                return 0
            try:
                unpack_block(f.hash, block)
            except CorruptData as e:
                log.error("rebalance: %s; moved aside", e)
                if not read_only:
                    self.store.move_corrupted(f.hash, f.path)
                return None
            self.store.write(f.hash, block)
            if not read_only:
                self.store.remove_file(f.path)
            return len(block.payload)

        n = await asyncio.to_thread(move)
        if n is None:
            self.corrupted += 1
            await self.on_corrupted(f.hash)
        elif n:
            self.moved += 1
            self.moved_bytes += n

    async def wait_for_work(self) -> None:  # never idle: it walks, then is done
        await asyncio.Event().wait()

    def status(self) -> dict[str, object]:
        end = self.finished or self.clock.now_msec()
        rate = self.moved_bytes * 1000 // max(1000, end - self.started)
        free = [f"Blocks moved: {self.moved}",
                f"Bytes moved: {self.moved_bytes} ({rate} B/s)",
                f"Started: {msec_to_rfc3339(self.started)}"]
        if self.corrupted:
            free.append(f"Corrupted blocks found and moved aside: {self.corrupted}")
        lay = self.store.layout
        free.append("Slots per data dir: " + ", ".join(
            f"{d.path}: {c}" for d, c in zip(lay.dirs, lay.slot_counts(), strict=True)))
        return {"progress": f"{self.walker.progress() * 100:.2f}%", "freeform": free}
