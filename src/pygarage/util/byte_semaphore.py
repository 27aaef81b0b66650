"""A semaphore counted in bytes, served first come first served: bounds the data that all
requests together hold in memory (block_ram_buffer_max)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class ByteSemaphore:
    """At most `capacity` bytes held at once. Waiters are served in arrival order, so small
    requests cannot starve a large one. A request for more than the whole capacity is given
    the whole capacity: it waits until nothing else is held, then proceeds alone (never a
    deadlock). acquire() returns what was granted: release exactly that."""

    def __init__(self, capacity: int, on_change: Callable[[int], None] | None = None):
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.held = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._on_change = on_change

    @property
    def free(self) -> int:
        return self.capacity - self.held

    async def acquire(self, n: int) -> int:
        n = max(0, min(n, self.capacity))
        if not self._waiters and self.held + n <= self.capacity:
            self._take(n)
            return n
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((n, fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(n)  # granted just as we were cancelled: give it back
            else:
                self._wake()  # we may have been the head of the queue
            raise
        return n

    def release(self, n: int) -> None:
        self.held -= n
        assert self.held >= 0, "released more than was acquired"
        self._changed()
        self._wake()

    @asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[int]:
        granted = await self.acquire(n)
        try:
            yield granted
        finally:
            self.release(granted)

    def _take(self, n: int) -> None:
        self.held += n
        self._changed()

    def _wake(self) -> None:
        while self._waiters:
            n, fut = self._waiters[0]
            if fut.done():  # cancelled while waiting
                self._waiters.popleft()
                continue
            if self.held + n > self.capacity:
                return
            self._waiters.popleft()
            self._take(n)
            fut.set_result(None)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.free)
