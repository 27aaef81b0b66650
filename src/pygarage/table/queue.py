"""Ships the inserts that table hooks queued (e.g. object -> version deletions) to their
owners, after the hook's transaction committed."""

from __future__ import annotations

import asyncio
from typing import Any

from ..util.background import WorkerState
from .table import Table


class InsertQueueWorker:
    def __init__(self, table: Table[Any]):
        self.table = table
        self.name = f"{table.name} queue"
        self._wake = asyncio.Event()
        table.data.on_queued = self._wake.set
        self.done = 0

    async def work(self) -> WorkerState:
        items = self.table.data.queued(100)
        if not items:
            return WorkerState.IDLE
        entries = [self.table.schema.decode(v) for _, v in items]
        await self.table.insert_many(entries)
        await self.table.data.unqueue(items)
        self.done += len(items)
        return WorkerState.BUSY

    async def wait_for_work(self) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=10)
        except TimeoutError:
            pass

    def status(self) -> dict[str, object]:
        return {"queueLength": self.table.data.db.tree_len(self.table.data.insert_queue),
                "progress": f"{self.done} shipped"}
