"""Background workers: one protocol, one runner that counts errors and reports status
(what `garage worker list` shows)."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from .logsafe import logsafe

log = logging.getLogger(__name__)


class WorkerState(enum.Enum):
    BUSY = "busy"      # call work() again right away
    IDLE = "idle"      # wait for wait_for_work()
    DONE = "done"      # the worker has finished for good


class Worker(Protocol):
    name: str

    async def work(self) -> WorkerState: ...

    async def wait_for_work(self) -> None: ...

    def status(self) -> dict[str, object]: ...


@dataclass
class WorkerInfo:
    tid: int
    worker: Worker
    state: WorkerState = WorkerState.BUSY
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


class BackgroundRunner:
    def __init__(self) -> None:
        self.workers: dict[int, WorkerInfo] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._next_tid = 1

    def spawn(self, worker: Worker) -> None:
        info = WorkerInfo(self._next_tid, worker)
        self.workers[info.tid] = info
        self._next_tid += 1
        self._tasks.append(asyncio.get_running_loop().create_task(self._run(info)))

    async def _run(self, info: WorkerInfo) -> None:
        while True:
            try:
                info.state = await info.worker.work()
                info.consecutive_errors = 0
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a worker error must not kill the node: count, back off
                info.errors += 1
                info.consecutive_errors += 1
                info.last_error = f"{type(e).__name__}: {e}"
                info.last_error_at = time.time()
                log.warning("worker %s: %s", info.worker.name, logsafe(info.last_error))
                await asyncio.sleep(min(60.0, 0.5 * 2 ** min(info.consecutive_errors, 7)))
                continue
            if info.state is WorkerState.DONE:
                return
            if info.state is WorkerState.IDLE:
                await info.worker.wait_for_work()
            else:
                await asyncio.sleep(0)

    async def shutdown(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
