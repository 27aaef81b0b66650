"""Shared by the cascade tests: run every table's insert queue until nothing is left."""

from __future__ import annotations

from pygarage.model.garage import Garage
from pygarage.table.queue import InsertQueueWorker


async def drain(g: Garage) -> None:
    # Hooks queue inserts into other tables, whose hooks queue more: a few passes settle it.
    for _ in range(5):
        for t in g.tables:
            w = InsertQueueWorker(t)
            while t.data.queued(1):
                await w.work()
