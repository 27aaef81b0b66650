"""The db's writer thread: every write transaction of a running server runs here, so a
commit (an fsync with metadata_fsync = true) never stalls the event loop.

Group commit: the fns queued while a commit was under way run together in ONE write
transaction, each in a nested transaction of its own (LMDB child txn, SQLite SAVEPOINT), and
are committed by one commit (one fsync). A fn that raises rolls back only its own nested
transaction: the others of its batch still commit, and its exception goes to its caller
alone. If the commit itself fails (disk full, I/O error), every fn of the batch gets that
exception: none of them was written.

Ordering: fns run in the order they were submitted, each seeing what the earlier ones wrote.
A caller cancelled while its fn waits or runs does not stop it: the write may still commit
(callers that must know use asyncio.shield, as the PUT path does).

Hand-overs: waking a thread costs far more than a small write (a futex wake, then the two
threads contend for the GIL). The fns one event loop submits during one of its iterations
(the several table writes of one PUT, the writes of concurrent requests) go to the thread
together, in one queue put, and their outcomes come back to the loop in one call.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..util.thread_name import name_os_thread

if TYPE_CHECKING:
    from .base import Db, Transaction

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_BATCH = 256  # fns per commit: bounds how long one batch holds the write lock

_local = threading.local()  # .callbacks: the running fn's after-commit list, if any


def after_commit(cb: Callable[[], None]) -> None:
    """Call cb (on the submitter's event loop) once the running write has committed; called
    at once when not inside the writer (a synchronous transaction commits before the loop
    runs anything else). Dropped if the fn fails."""
    pending: list[Callable[[], None]] | None = getattr(_local, "callbacks", None)
    if pending is None:
        cb()
    elif cb not in pending:
        pending.append(cb)


@dataclass
class _Item:
    fn: Callable[[Transaction], Any]
    loop: asyncio.AbstractEventLoop
    fut: asyncio.Future[Any]
    callbacks: list[Callable[[], None]] = field(default_factory=list)


def _settle(item: _Item, ok: bool, value: Any) -> None:
    if item.fut.done():
        return  # the caller was cancelled: nothing to tell
    if ok:
        item.fut.set_result(value)
    else:
        item.fut.set_exception(value)


def _finish(item: _Item, ok: bool, value: Any) -> None:
    """(item's loop) The after-commit callbacks, then the outcome: in one step, so the
    caller never resumes before its callbacks ran (two separate hand-overs could be run by
    the loop in between, the caller first)."""
    if ok:
        for cb in item.callbacks:
            try:
                cb()
            except Exception:
                log.exception("after-commit callback failed")
    _settle(item, ok, value)


def _finish_all(done: list[tuple[_Item, bool, Any]]) -> None:
    for item, ok, value in done:
        _finish(item, ok, value)


def _deliver(done: list[tuple[_Item, bool, Any]]) -> None:
    """(writer thread) Hand the outcomes and, on success, the callbacks to the items'
    loops: one wake-up per loop, not one per item."""
    per_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, bool, Any]]] = {}
    for d in done:
        per_loop.setdefault(d[0].loop, []).append(d)
    for loop, items in per_loop.items():
        try:
            loop.call_soon_threadsafe(_finish_all, items)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more


class DbWriter:
    def __init__(self, db: Db, max_batch: int = MAX_BATCH):
        self.db = db
        self.max_batch = max_batch
        self._q: queue.SimpleQueue[list[_Item] | None] = queue.SimpleQueue()
        # Per event loop: the items submitted during its current iteration, queued together
        # by a callback at the end of it (_flush).
        self._pending: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._closed = False
        self._close_lock = threading.Lock()
        self.batches = 0  # commits done (for tests and status)
        self.fns = 0
        self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)
        self._thread.start()

    async def transaction(self, fn: Callable[[Transaction], T]) -> T:
        """Run fn(tx) in the writer thread inside a write transaction; its result or
        exception comes back here once committed (or rolled back)."""
        loop = asyncio.get_running_loop()
        item = _Item(fn, loop, loop.create_future())
        with self._close_lock:
            if self._closed:
                raise RuntimeError("the database is closed")
            pending = self._pending.get(loop)
            if pending is None:
                self._pending[loop] = [item]
                loop.call_soon(self._flush, loop)
            else:
                pending.append(item)
        result: T = await item.fut
        return result

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._close_lock:
            items = self._pending.pop(loop, None)
            if items and not self._closed:
                self._q.put(items)

    def _flush_all(self) -> None:
        """(under _close_lock) Queue what every loop submitted, before closing."""
        for items in self._pending.values():
            self._q.put(items)
        self._pending.clear()

    def close(self) -> None:
        """Run what is queued, then stop the thread (blocks until it has)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._flush_all()
            self._q.put(None)
        self._thread.join()

    def _run(self) -> None:
        name_os_thread("pg-db-writer")
        stop = False
        while not stop:
            first = self._q.get()
            if first is None:
                break
            batch = list(first)
            # Whatever queued up meanwhile (typically during the previous commit's fsync)
            # joins this commit.
            while len(batch) < self.max_batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.extend(nxt)
            for i in range(0, len(batch), self.max_batch):
                self._run_batch(batch[i:i + self.max_batch])

    def _run_batch(self, batch: list[_Item]) -> None:
        def wrap(item: _Item) -> Callable[[Transaction], Any]:
            def run(tx: Transaction) -> Any:
                item.callbacks.clear()  # a retried fn starts afresh
                _local.callbacks = item.callbacks
                try:
                    return item.fn(tx)
                finally:
                    _local.callbacks = None
            return run
        try:
            outcomes = self.db.run_batch([wrap(i) for i in batch])
        except Exception as e:  # the commit failed: nothing of the batch was written
            log.error("db write of %d transactions failed: %s", len(batch), e)
            _deliver([(item, False, e) for item in batch])
            return
        except BaseException as e:  # keep the thread serving: callers must not hang
            err = RuntimeError(f"db writer: {e!r}")
            _deliver([(item, False, err) for item in batch])
            return
        self.batches += 1
        self.fns += len(batch)
        _deliver([(item, ok, value)
                  for item, (ok, value) in zip(batch, outcomes, strict=True)])
