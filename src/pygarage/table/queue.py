"""Ships the inserts that table hooks queued (e.g. object -> version deletions) to their
owners through the replicated insert, after the hook's transaction committed.

An entry leaves the queue only once its owners acknowledged it at write quorum. When a
batch fails (owners down), each partition's entries are tried on their own so the
reachable ones still ship; what is left waits with a growing delay (1 s doubling up to
60 s) before the next try, and any new queued insert does not cut that delay short.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from ..net.conn import PRIO_BACKGROUND
from ..util.background import WorkerState
from ..util.errors import GarageError
from ..util.ids import partition_of
from .table import Table

log = logging.getLogger(__name__)

BATCH = 100
MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0


class InsertQueueWorker:
    def __init__(self, table: Table[Any]):
        self.table = table
        self.name = f"{table.name} queue"
        self._wake = asyncio.Event()
        table.data.on_queued = self._wake.set
        self.done = 0
        self.failures = 0  # consecutive failed rounds
        self.last_error: str | None = None

    def backoff_s(self) -> float:
        if self.failures == 0:
            return 0.0
        return min(MAX_BACKOFF_S, MIN_BACKOFF_S * 2 ** (self.failures - 1))

    async def work(self) -> WorkerState:
        items = self.table.data.queued(BATCH)
        if not items:
            return WorkerState.IDLE
        shipped = await self._ship(items)
        if shipped:
            await self.table.data.unqueue(shipped)
            self.done += len(shipped)
        if len(shipped) < len(items):
            self.failures += 1
            return WorkerState.IDLE  # wait_for_work applies the backoff
        self.failures = 0
        self.last_error = None
        return WorkerState.BUSY

    async def _ship(self, items: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """-> the items acknowledged by their owners."""
        decode = self.table.schema.decode
        try:
            await self.table.insert_many([decode(v) for _, v in items], checked=False,
                                         prio=PRIO_BACKGROUND)
            return items
        except (GarageError, OSError) as e:
            self._failed(e)
        groups: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for k, v in items:
            groups[partition_of(k[:32])].append((k, v))
        if len(groups) == 1:
            return []

        async def one(group: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
            try:
                await self.table.insert_many([decode(v) for _, v in group], checked=False,
                                             prio=PRIO_BACKGROUND)
                return group
            except (GarageError, OSError) as e:
                self._failed(e)
                return []
        done = await asyncio.gather(*(one(g) for g in groups.values()))
        return [it for g in done for it in g]

    def _failed(self, e: Exception) -> None:
        self.last_error = f"{type(e).__name__}: {e}"
        log.debug("%s: shipping failed, kept queued: %s", self.name, self.last_error)

    async def wait_for_work(self) -> None:
        delay = self.backoff_s()
        if delay:
            await asyncio.sleep(delay)
            return
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=10)
        except TimeoutError:
            pass

    def status(self) -> dict[str, object]:
        st: dict[str, object] = {
            "queueLength": self.table.data.db.tree_len(self.table.data.insert_queue),
            "progress": f"{self.done} shipped"}
        if self.last_error is not None:
            st["lastError"] = self.last_error
            st["retryInSecs"] = self.backoff_s()
        return st

