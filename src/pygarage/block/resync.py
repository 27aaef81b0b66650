"""The resync queue: blocks whose local state may not match their refcount, checked by a few
workers. A block needed here but missing is fetched from another node; a block no longer
needed (refcount zero for the GC delay) is first sent to the storage nodes that still need
it, then deleted. Failures are retried with exponential backoff and recorded per block
(`garage block list-errors`). The queue lives in the metadata db: entries are added in the
transaction of the refcount change that causes them, so a crash loses none.

    block_resync_queue   when (8 bytes BE) || hash -> b""     (oldest first)
    block_resync_errors  hash -> (errors, last try, next try)  (msec)
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from ..db.base import Db, Transaction
from ..db.writer import after_commit
from ..net.conn import PRIO_BACKGROUND
from ..util.background import WorkerState
from ..util.clock import now_msec
from ..util.errors import CorruptData, GarageError, MissingBlock
from ..util.ids import HASH_LEN
from ..util.offload import offload
from .block import unpack_block_async

if TYPE_CHECKING:
    from .manager import BlockManager

log = logging.getLogger(__name__)

QUEUE_TREE = "block_resync_queue"
ERR_TREE = "block_resync_errors"
CFG_TREE = "block_resync_cfg"
_OLD_GC_TREE = "block_gc_todo"  # before the resync queue: (deletable_at, hash) -> b""

# Garage's backoff: 1 min after the first failure, doubling up to 2^6 min (~1 h).
RETRY_BASE_MS = 60_000
MAX_BACKOFF_POWER = 6
UNREACHABLE_MAX_POWER = 2  # while a holder is unreachable: at most 4 min between tries
MAX_RESYNC_WORKERS = 8
DEFAULT_TRANQUILITY = 2
# An idle worker looks at the queue again after this long even without a wake-up.
IDLE_RECHECK_S = 10.0
_CLAIM_SCAN = 64
# How long a worker lets due entries gather into a batch (pick_due_many): nothing in the
# queue is urgent to the half second (a new block's check is queued 10 s after its write).
SETTLE_MS = 500


class ResyncError(GarageError):
    pass


# -- pure parts
def retry_delay_ms(errors_before: int, base_ms: int = RETRY_BASE_MS) -> int:
    """Delay before the next try of a block that has failed `errors_before` times before
    this failure: base, 2 base, 4 base, ... at most base * 2^MAX_BACKOFF_POWER."""
    return base_ms << min(max(errors_before, 0), MAX_BACKOFF_POWER)


def queue_key(when_ms: int, h: bytes) -> bytes:
    return max(0, when_ms).to_bytes(8, "big") + h


def split_queue_key(key: bytes) -> tuple[int, bytes]:
    return int.from_bytes(key[:8], "big"), key[8:]


@dataclass(frozen=True)
class ErrorRecord:
    errors: int
    last_try_ms: int
    next_try_ms: int

    def encode(self) -> bytes:
        return msgpack.packb((self.errors, self.last_try_ms, self.next_try_ms))

    @staticmethod
    def decode(raw: bytes | None) -> ErrorRecord | None:
        if raw is None:
            return None
        e, last, nxt = msgpack.unpackb(raw)
        return ErrorRecord(int(e), int(last), int(nxt))

    def failed_again(self, now_ms: int, base_ms: int) -> ErrorRecord:
        return ErrorRecord(self.errors + 1, now_ms, now_ms + retry_delay_ms(self.errors, base_ms))

    def failed_unreachable(self, now_ms: int, base_ms: int) -> ErrorRecord:
        """Failed while a node that may hold the block was unreachable: the failure says
        little about the block, so the delay stays short (at most 4 base; the node's
        return also triggers a retry) however long the node stays away."""
        delay = retry_delay_ms(min(self.errors, UNREACHABLE_MAX_POWER), base_ms)
        return ErrorRecord(self.errors + 1, now_ms, now_ms + delay)


def first_failure(now_ms: int, base_ms: int) -> ErrorRecord:
    return ErrorRecord(1, now_ms, now_ms + retry_delay_ms(0, base_ms))


def pick_due(keys: list[bytes], busy: set[bytes], now_ms: int) -> tuple[bytes | None, int | None]:
    """From queue keys in order: -> (the first due key whose block no worker holds, or
    None; when the first not-busy one is due, if none is due yet)."""
    due, next_when = pick_due_many(keys, busy, now_ms, 1)
    return (due[0] if due else None), next_when


def pick_due_many(keys: list[bytes], busy: set[bytes], now_ms: int, limit: int,
                  settle_ms: int = 0) -> tuple[list[bytes], int | None]:
    """From queue keys in order: -> (up to `limit` due keys whose blocks no worker holds,
    one per block (a later key of a block taken waits for the next batch); when to look
    again, if none is taken).

    With settle_ms, fewer than `limit` due keys are left until the first has been due for
    settle_ms: under a stream of writes a new block's check falls due every few
    milliseconds, and each batch costs a queue read, a thread hop and a transaction
    whatever its size (one check at a time cost 0.5 ms of CPU per block, a third of the
    PUT that queued it)."""
    due: list[bytes] = []
    taken: set[bytes] = set()
    first_when: int | None = None
    for k in keys:
        when, h = split_queue_key(k)
        if h in busy or h in taken:
            continue
        if first_when is None:
            first_when = when
        if when > now_ms:
            break
        due.append(k)
        taken.add(h)
        if len(due) >= limit:
            return due, None
    if first_when is None:
        return [], None
    if not due:
        return [], first_when
    if first_when + settle_ms > now_ms:
        return [], first_when + settle_ms
    return due, None


_HEX64 = re.compile(r"[0-9a-f]{64}(?:\.zst)?")
_HEX2 = re.compile(r"[0-9a-f]{2}")


def _local_block_hashes(dirs: list[str]) -> Iterator[bytes]:
    """Blocking: every block file's hash under the data dirs (<aa>/<bb>/<hash>[.zst])."""
    for base in dirs:
        for d1 in _subdirs(base):
            for d2 in _subdirs(d1):
                with os.scandir(d2) as it:
                    for e in it:
                        if _HEX64.fullmatch(e.name):
                            yield bytes.fromhex(e.name[:64])


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return [e.path for e in it if _HEX2.fullmatch(e.name)
                    and e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _parse_int(name: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"invalid value for {name}: {value!r} (an integer)") from None


class ResyncManager:
    def __init__(self, bm: BlockManager, db: Db):
        self.bm = bm
        self.db = db
        for t in (QUEUE_TREE, ERR_TREE, CFG_TREE, _OLD_GC_TREE):
            db.open_tree(t)
        self.retry_base_ms = RETRY_BASE_MS
        self.idle_recheck_s = IDLE_RECHECK_S
        self.busy: set[bytes] = set()
        self._event: asyncio.Event | None = None
        self._cfg_event: asyncio.Event | None = None
        # When the earliest idle worker plans to look at the queue again: an entry due
        # later needs no wake-up (a large PUT queues one per block, due in 10 s).
        self.planned_wake_ms = 0
        self.n_workers = self._cfg(b"n_workers", 1)
        self.tranquility = self._cfg(b"tranquility", DEFAULT_TRANQUILITY)
        self.done = 0  # blocks resynced since start
        self.deleted = 0  # unneeded blocks deleted since start
        self.fetched = 0  # missing blocks fetched from other nodes since start
        self._migrate_gc_todo()

    def _cfg(self, name: bytes, default: int) -> int:
        raw = self.db.get(CFG_TREE, name)
        return default if raw is None else int(msgpack.unpackb(raw))

    async def set_n_workers(self, n: int) -> None:
        if not 1 <= n <= MAX_RESYNC_WORKERS:
            raise ValueError(f"resync-worker-count must be between 1 and {MAX_RESYNC_WORKERS}")
        await self.db.write_insert(CFG_TREE, b"n_workers", msgpack.packb(n))
        self.n_workers = n
        self.wake()
        if self._cfg_event is not None:
            self._cfg_event.set()

    async def set_tranquility(self, t: int) -> None:
        if not 0 <= t <= 1_000_000:
            raise ValueError("resync-tranquility must be a non-negative integer")
        await self.db.write_insert(CFG_TREE, b"tranquility", msgpack.packb(t))
        self.tranquility = t
        self.wake()

    def register_vars(self, bg_vars: Any, error: type[Exception] | None = None) -> None:
        """Worker variables (`garage worker get|set`) on a registry with
        register(name, getter, async setter taking the text value); a bad value raises
        `error`, by default the registry's own (util.background.VarError, which the admin
        API answers with a 400), so it is never an internal error."""
        from ..util import background
        err: type[Exception] = (error if error is not None
                                else getattr(background, "VarError", ValueError))
        async def set_count(v: str) -> None:
            try:
                await self.set_n_workers(_parse_int("resync-worker-count", v))
            except ValueError as e:
                raise err(str(e)) from None

        async def set_tranq(v: str) -> None:
            try:
                await self.set_tranquility(_parse_int("resync-tranquility", v))
            except ValueError as e:
                raise err(str(e)) from None
        bg_vars.register("resync-worker-count", lambda: self.n_workers, set_count)
        bg_vars.register("resync-tranquility", lambda: self.tranquility, set_tranq)

    def _migrate_gc_todo(self) -> None:
        """Blocks waiting in the former GC list go to the resync queue (once, at start)."""
        rows = self.db.range(_OLD_GC_TREE, None, None, None)
        if not rows:
            return

        def move(tx: Transaction) -> None:
            for k, _ in rows:
                at, h = split_queue_key(k)
                tx.insert(QUEUE_TREE, queue_key(at + 10_000, h), b"")
                tx.remove(_OLD_GC_TREE, k)
        self.db.transaction(move)

    # -- queueing
    @property
    def event(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    @property
    def cfg_event(self) -> asyncio.Event:
        if self._cfg_event is None:
            self._cfg_event = asyncio.Event()
        return self._cfg_event

    def wake(self) -> None:
        self.planned_wake_ms = 0
        if self._event is not None:
            self._event.set()

    def put_tx(self, tx: Transaction, h: bytes, when_ms: int) -> None:
        tx.insert(QUEUE_TREE, queue_key(when_ms, h), b"")
        if when_ms < self.planned_wake_ms or self.planned_wake_ms == 0:
            after_commit(self.wake)

    async def put(self, h: bytes, when_ms: int) -> None:
        await self.db.write(lambda tx: self.put_tx(tx, h, when_ms))

    async def put_many(self, hashes: list[bytes], when_ms: int) -> None:
        def tx_fn(tx: Transaction) -> None:
            for h in hashes:
                self.put_tx(tx, h, when_ms)
        await self.db.write(tx_fn)

    def queue_len(self) -> int:
        return self.db.tree_len(QUEUE_TREE)

    def errors_len(self) -> int:
        return self.db.tree_len(ERR_TREE)

    def error_of(self, h: bytes) -> ErrorRecord | None:
        return ErrorRecord.decode(self.db.get(ERR_TREE, h))

    def list_errors(self) -> list[tuple[bytes, ErrorRecord]]:
        out = []
        for k, v in self.db.range(ERR_TREE, None, None, None):
            rec = ErrorRecord.decode(v)
            if rec is not None:
                out.append((k, rec))
        return out

    async def retry_now(self, hashes: list[bytes] | None) -> int:
        """Clear the backoff of errored blocks (all of them with None): retried at once.
        Raises ValueError for a given block that is not in an errored state."""
        now = now_msec()

        def tx_fn(tx: Transaction) -> int:
            todo = hashes if hashes is not None else [
                k for k, _ in tx.range(ERR_TREE, None, None, None)]
            for h in todo:
                rec = ErrorRecord.decode(tx.get(ERR_TREE, h))
                if rec is None:
                    raise ValueError(f"block {h.hex()} is not in an errored state")
                tx.insert(ERR_TREE, h, ErrorRecord(rec.errors, rec.last_try_ms, now).encode())
                self.put_tx(tx, h, now)
            return len(todo)
        return await self.db.write(tx_fn)

    # -- processing
    def claim(self, now_ms: int) -> tuple[bytes | None, int | None]:
        """-> (a due queue key, now held by the caller, or None; when the next is due)."""
        due, next_when = self.claim_many(now_ms, 1)
        return (due[0] if due else None), next_when

    def claim_many(self, now_ms: int, limit: int, settle_ms: int = 0
                   ) -> tuple[list[bytes], int | None]:
        """-> (up to `limit` due queue keys, of different blocks, now held by the caller;
        when to look again, if none is taken). settle_ms: as pick_due_many."""
        keys = [k for k, _ in self.db.range(QUEUE_TREE, None, None,
                                              _CLAIM_SCAN + len(self.busy))]
        due, next_when = pick_due_many(keys, self.busy, now_ms, limit, settle_ms)
        for k in due:
            self.busy.add(split_queue_key(k)[1])
        return due, next_when

    async def process_many(self, keys: list[bytes]) -> None:
        """Claimed keys. Most need nothing: a check queued after each new block finds it
        present and referenced. Those are settled together, one thread hop and one
        transaction for all (per block, both cost more than the check); the others are
        processed one by one."""
        hashes = [split_queue_key(k)[1] for k in keys]
        try:
            if len(keys) == 1:
                await self.process(keys[0])
                return
            store = self.bm.store
            present = await offload(lambda: [store.has(h) for h in hashes])
            now = now_msec()
            settled: list[tuple[bytes, bytes]] = []
            rest: list[bytes] = []
            for k, h, exists in zip(keys, hashes, present, strict=True):
                rc = self.bm.rc.get_entry(h)
                # resync_block's two cases with work to do; anything else it leaves as is.
                if (exists and rc.is_deletable(now)) or (rc.count > 0 and not exists):
                    rest.append(k)
                else:
                    settled.append((k, h))
            if settled:
                def record(tx: Transaction) -> None:
                    for k, h in settled:
                        tx.remove(QUEUE_TREE, k)
                        tx.remove(ERR_TREE, h)
                await self.db.write(record)
                self.done += len(settled)
            for _, h in settled:
                self.busy.discard(h)
            for k in rest:
                await self.process(k)
        finally:
            for h in hashes:  # whatever was not released (an error, a cancellation)
                self.busy.discard(h)

    async def process(self, key: bytes) -> None:
        """Resync the block of a claimed key, then record the outcome (one transaction)."""
        _, h = split_queue_key(key)
        try:
            later: int | None = None
            error: str | None = None
            try:
                later = await self.resync_block(h)
            except (GarageError, OSError, ValueError) as e:
                error = f"{type(e).__name__}: {e}"
            except Exception as e:  # RpcError and the like: recorded as errors too
                error = f"{type(e).__name__}: {e}"
            now = now_msec()
            unreachable = False
            if error is not None:
                log.warning("resync of block %s failed: %s", h.hex(), error)
                unreachable = self.bm.holder_unreachable(h)
            base = self.retry_base_ms

            def record(tx: Transaction) -> None:
                tx.remove(QUEUE_TREE, key)
                if error is None:
                    tx.remove(ERR_TREE, h)
                    if later is not None:
                        self.put_tx(tx, h, later)
                    return
                old = ErrorRecord.decode(tx.get(ERR_TREE, h))
                if old is None:
                    rec = first_failure(now, base)
                elif unreachable:
                    rec = old.failed_unreachable(now, base)
                else:
                    rec = old.failed_again(now, base)
                tx.insert(ERR_TREE, h, rec.encode())
                self.put_tx(tx, h, rec.next_try_ms)
            await self.db.write(record)
            self.done += 1
        finally:
            self.busy.discard(h)

    async def run_due(self) -> int:
        """Process every entry due now, in this task (tests, tools). -> how many."""
        n = 0
        while True:
            key, _ = self.claim(now_msec())
            if key is None:
                return n
            await self.process(key)
            n += 1

    async def resync_block(self, h: bytes) -> int | None:
        """Bring this node's copy of the block in line with its refcount. -> when to look
        at it again (a young unreferenced file), or None."""
        bm = self.bm
        now = now_msec()
        exists = await asyncio.to_thread(bm.store.has, h)
        rc = bm.rc.get_entry(h)
        if exists and rc.is_deletable(now):
            if bm.count_refs is not None:
                n = await asyncio.to_thread(bm.count_refs, h)
                if n > 0:
                    await self.db.write(lambda tx: bm.rc.set_count_tx(tx, h, n, now))
                    raise ResyncError(f"refcount of block {h.hex()} was inconsistent "
                                      f"({n} live references): fixed, retrying later")
            return await self._offload_and_delete(h)
        if rc.count > 0 and not exists:
            if bm.node_id not in bm.storage_nodes(h):
                return None  # its references will move away with the metadata
            log.info("resync: fetching block %s (needed, missing here)", h.hex())
            try:
                block = await bm.fetch_remote(h, PRIO_BACKGROUND)
            except MissingBlock:
                if bm.count_refs is not None:
                    n = await asyncio.to_thread(bm.count_refs, h)
                    await self.db.write(lambda tx: bm.rc.set_count_tx(tx, h, n, now))
                raise
            await bm.write_local(h, block)
            self.fetched += 1
        return None

    async def _offload_and_delete(self, h: bytes) -> int | None:
        bm = self.bm
        young = await self._young_until(h)
        if young is not None:
            return young
        nodes = bm.storage_nodes(h)
        if len(nodes) < bm.write_quorum:
            raise ResyncError("not offloading: fewer storage nodes than the write quorum")
        others = [n for n in nodes if n != bm.node_id]
        answers = await asyncio.gather(*(bm.client.need(n, h, PRIO_BACKGROUND)
                                         for n in others))
        need = [n for n, a in zip(others, answers, strict=True) if a]
        if need:
            block = await bm.read_raw_local(h)
            if block is None:
                return None  # gone meanwhile
            try:
                await unpack_block_async(h, block)
            except CorruptData:
                await bm.corrupted(h)
                return None
            log.info("resync: block %s still needed by %d nodes: sending it", h.hex(),
                     len(need))
            await asyncio.gather(*(bm.client.put_to(n, h, block, PRIO_BACKGROUND)
                                   for n in need))
        async with bm.lock(h):
            # Under the lock no write of the block runs: a dedup write just before this
            # refreshed the file's time, so it is young and kept.
            young = await self._young_until(h)
            if young is not None:
                return young
            if not await self.db.write(lambda tx: bm.rc.clear_if_deletable(tx, h, now_msec())):
                return None  # referenced again
            await asyncio.to_thread(bm.store.delete, h)
            self.deleted += 1
        log.info("resync: deleted unneeded block %s (offloaded to %d nodes)", h.hex(),
                 len(need))
        return None

    async def _young_until(self, h: bytes) -> int | None:
        """A block file written (or rewritten by a dedup write) less than the GC delay ago
        may belong to a write whose reference is still on its way (they run concurrently):
        -> when it is old enough to delete, or None if it is already."""
        age = await asyncio.to_thread(self.bm.block_age_s, h)
        delay = self.bm.rc.delay_ms
        if age is None or age * 1000 >= delay:
            return None
        return now_msec() + delay - int(age * 1000) + 1000


class ResyncWorker:
    """One of MAX_RESYNC_WORKERS; those beyond resync-worker-count stay idle."""

    def __init__(self, index: int, mgr: ResyncManager):
        self.index = index
        self.mgr = mgr
        self.name = f"Block resync worker #{index + 1}"
        self._wait_s = 0.0

    @property
    def enabled(self) -> bool:
        return self.index < self.mgr.n_workers

    async def work(self) -> WorkerState:
        if not self.enabled:
            return WorkerState.IDLE
        now = now_msec()
        keys, next_when = self.mgr.claim_many(now, _CLAIM_SCAN, SETTLE_MS)
        if not keys:
            wait = self.mgr.idle_recheck_s
            if next_when is not None:
                wait = min(wait, max(0.0, (next_when - now) / 1000))
            self._wait_s = wait
            wake_at = now + int(wait * 1000)
            m = self.mgr
            m.planned_wake_ms = wake_at if m.planned_wake_ms == 0 \
                else min(m.planned_wake_ms, wake_at)
            return WorkerState.IDLE
        t0 = time.monotonic()
        await self.mgr.process_many(keys)
        pause = self.mgr.tranquility * (time.monotonic() - t0)
        if pause > 0:
            await asyncio.sleep(min(pause, 60.0))  # tranquility: leave room for requests
        return WorkerState.BUSY

    async def wait_for_work(self) -> None:
        if not self.enabled:  # until resync-worker-count changes
            await self.mgr.cfg_event.wait()
            self.mgr.cfg_event.clear()
            return
        ev = self.mgr.event
        if self._wait_s > 0:
            try:
                await asyncio.wait_for(ev.wait(), self._wait_s)
            except TimeoutError:
                pass
        ev.clear()
        self.mgr.planned_wake_ms = 0  # awake: until it plans again, every entry wakes

    def status(self) -> dict[str, Any]:
        if not self.enabled:
            return {"freeform": ["This worker is currently disabled"]}
        return {"queueLength": self.mgr.queue_len(),
                "persistentErrors": self.mgr.errors_len(),
                "tranquility": self.mgr.tranquility,
                "progress": f"{self.mgr.done} blocks resynced"}


async def repair_blocks(g: Any) -> int:
    """`garage repair blocks`: queue every block referenced on this node or present in its
    data dirs for a resync now. -> how many were queued."""
    bm: BlockManager = g.block_manager
    now = now_msec()
    n = 0
    start: bytes | None = None
    while True:  # referenced (refcount entries), in pages
        page = await asyncio.to_thread(bm.rc.all_hashes, start, 1000)
        page = [h for h in page if h != start]
        if not page:
            break
        await bm.resync.put_many(page, now)
        n += len(page)
        start = page[-1]
    dirs = [str(d.path) for d in bm.store.dirs]
    batch: list[bytes] = []
    it = await asyncio.to_thread(lambda: list(_local_block_hashes(dirs)))
    for h in it:
        if len(h) != HASH_LEN:
            continue
        batch.append(h)
        if len(batch) >= 1000:
            await bm.resync.put_many(batch, now)
            n += len(batch)
            batch = []
    if batch:
        await bm.resync.put_many(batch, now)
        n += len(batch)
    return n
