"""BlockManager: store and fetch content-addressed blocks on the nodes that own them.

Writes go to every node of the block partition's write sets (old and new owners during a
layout change) and return once each set has its write quorum; the other copies finish in
the background. Reads try this node first, then the others by zone and RTT, verifying every
copy against its hash. Refcount changes queue the block in the resync queue (resync.py),
which fetches missing blocks and offloads then deletes unneeded ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..db.base import Db, Transaction
from ..net.conn import PRIO_NORMAL
from ..net.peer import RpcError
from ..rpc.rpc_helper import RpcHelper
from ..rpc.system import System
from ..rpc.write_quorum import SetQuorum, describe, wait_quorum
from ..util import metrics
from ..util.byte_semaphore import ByteSemaphore
from ..util.clock import now_msec
from ..util.config import Config
from ..util.errors import CorruptData, GarageError, LayoutNotReady, MissingBlock
from ..util.ids import block_partition
from ..util.offload import offload
from . import write_helper
from .block import INLINE_MAX, DataBlock, is_small, pack_block, unpack_block, unpack_block_async
from .block_file import BlockFile, open_verified
from .rc import BlockRc
from .resync import ResyncManager
from .rpc import BlockRpcClient, register_block_endpoints
from .store import BlockStore

log = logging.getLogger(__name__)

_N_LOCKS = 256
PEER_UP_RETRY_S = 5.0
# A block newly referenced is checked this long after: its write, sent at the same time as
# the reference, is done by then (a block takes well under a second, even across sites).
# References that arrive by anti-entropy are for older writes: the sooner a node that
# missed them fetches their blocks, the sooner it holds every copy again. A check that
# comes too early only fetches the block from a peer.
INCREF_RESYNC_DELAY_MS = 10_000
# A read that has no answer from a node after this long also asks the next one.
READ_HEDGE_S = 1.0


class BlockManager:
    def __init__(self, system: System, config: Config, db: Db, rpc: RpcHelper | None = None):
        self.system = system
        self.config = config
        self.store = BlockStore(config.data_dirs, config.data_fsync,
                                config.metadata_dir / "data_layout")
        self.rc = BlockRc(db)
        self.db = db
        self.rpc = rpc if rpc is not None else RpcHelper(system)
        # Striped locks: a write and a GC delete of the same block never interleave.
        self._locks = [asyncio.Lock() for _ in range(_N_LOCKS)]
        self.corruptions = 0
        self.reads_nowait = 0  # local reads answered on the event loop, from the caches
        # Upload data read from clients (or received from peers) and not yet stored.
        self.ram_buffer = ByteSemaphore(
            config.block_ram_buffer_max,
            lambda free: metrics.block_ram_buffer_free_kb.set(free // 1024))
        metrics.block_ram_buffer_free_kb.set(config.block_ram_buffer_max // 1024)
        self.resync = ResyncManager(self, db)
        self.client = BlockRpcClient(self)
        # Set by the model: how many live block_ref entries this node holds for a hash
        # (to check a refcount before deleting, as Garage's recalculate_rc).
        self.count_refs: Callable[[bytes], int] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        # Bytes of blocks still being sent to slow nodes after the write quorum was
        # reached. Past block_ram_buffer_max, such writes are dropped instead (the node
        # fetches the block by resync once its reference arrives): a slow node cannot
        # make this one hold unbounded memory.
        self.late_write_bytes = 0
        self.incref_delay_ms = INCREF_RESYNC_DELAY_MS
        self._helper: write_helper.WriteHelper | None = None  # start_write_helper
        register_block_endpoints(self)
        self._last_peer_up: dict[str, float] = {}
        if rpc is not None:
            rpc.on_peer_up.append(self.on_peer_up)

    @property
    def node_id(self) -> str:
        return self.system.node_id

    def lock(self, h: bytes) -> asyncio.Lock:
        return self._locks[h[1] % _N_LOCKS]

    # -- where a block lives
    def write_sets(self, h: bytes) -> list[list[str]]:
        sets = [s for s in self.system.write_sets_of(block_partition(h)) if s]
        if not sets:
            raise LayoutNotReady()
        return sets

    def holder_unreachable(self, h: bytes) -> bool:
        """Is another storage node of the block not connected (so a failed fetch or
        offload may just have missed it)?"""
        try:
            nodes = self.storage_nodes(h)
        except GarageError:  # no layout yet
            return False
        return any(not self.rpc.is_up(n) for n in nodes if n != self.node_id)

    def storage_nodes(self, h: bytes) -> list[str]:
        """Every node that should hold the block in some live layout version."""
        return list(dict.fromkeys(n for s in self.write_sets(h) for n in s))

    @property
    def write_quorum(self) -> int:
        return self.system.replication.write_quorum

    # -- CPU work, for callers to run in threads
    def pack(self, data: bytes) -> tuple[bytes, DataBlock]:
        return pack_block(data, self.config.compression_level)

    # -- writes
    async def put_block(self, h: bytes, block: DataBlock, *,
                        prio: int = PRIO_NORMAL) -> None:
        """Store the block on its storage nodes: returns once every write set has its
        quorum; the remaining copies complete in the background (errors logged)."""
        sets = self.write_sets(h)
        if len(sets) == 1 and sets[0] == [self.node_id]:
            await self.write_local(h, block)  # one node: no RPC machinery at all
            return
        await self._write_sets(h, block, sets, self.write_quorum, prio)

    async def _write_sets(self, h: bytes, block: DataBlock, sets: Sequence[Sequence[str]],
                          quorum: int, prio: int) -> None:
        q = SetQuorum(sets, quorum)
        q.check_possible("block write")
        nodes = self.rpc.request_order(list(dict.fromkeys(n for s in sets for n in s)))
        tasks: dict[str, asyncio.Task[None]] = {}
        for node in nodes:
            coro = (self.write_local(h, block) if node == self.node_id
                    else self.client.put_to(node, h, block, prio))
            tasks[node] = asyncio.ensure_future(coro)
        try:
            await wait_quorum(tasks, q, f"block {h.hex()[:16]}")
        finally:
            late = [(node, t) for node, t in tasks.items() if not t.done()]
            n = len(block.payload)
            if late and self.late_write_bytes + n > self.config.block_ram_buffer_max:
                for node, t in late:
                    if node == self.node_id:  # a local write is never left half done
                        self._keep(t, f"local write of block {h.hex()[:16]}")
                        continue
                    log.info("block %s: write to slow node %s dropped (buffer full; "
                             "resync will send it)", h.hex()[:16], node[:16])
                    t.cancel()
            elif late:
                self.late_write_bytes += n
                remaining = len(late)

                def release(_: asyncio.Task[Any]) -> None:
                    nonlocal remaining
                    remaining -= 1
                    if remaining == 0:
                        self.late_write_bytes -= n
                for node, t in late:
                    t.add_done_callback(release)
                    self._keep(t, f"write of block {h.hex()[:16]} to {node[:16]}")

    def _keep(self, t: asyncio.Task[Any], what: str) -> None:
        """A task left to finish on its own: referenced until done, its error logged."""
        self._background.add(t)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.info("%s failed: %s", what, describe(t.exception()))  # type: ignore[arg-type]
        t.add_done_callback(done)

    def start_write_helper(self) -> None:
        """(A running node, in its event loop) Small blocks are written by a helper
        process from now on, where this setup allows one (write_helper.py)."""
        data_dir = self.store.single_dir()
        if self._helper is None and data_dir is not None and \
                write_helper.usable(self.config.data_fsync):
            self._helper = write_helper.WriteHelper(data_dir)

    async def write_local(self, h: bytes, block: DataBlock) -> None:
        async with self.lock(h):
            helper = self._helper
            if helper is not None and helper.alive and \
                    len(block.payload) <= write_helper.MAX_BLOCK and \
                    self.store.single_dir() == helper.data_dir:
                try:
                    if await helper.write(h, block):
                        _log_rewritten(h)
                    return
                except write_helper.WriteHelperGone:
                    pass  # the write may or may not have happened: it is idempotent
            # Off the event loop, small blocks too: a stalled disk must not hold up every
            # request of the node.
            await offload(self._write_if_absent, h, block)

    def _write_if_absent(self, h: bytes, block: DataBlock) -> None:
        # The lookup runs in the worker thread too: no file system call on the event loop.
        if self.store.write_if_absent(h, block):
            _log_rewritten(h)

    # -- reads
    async def get_block(self, h: bytes, *, prio: int = PRIO_NORMAL) -> bytes:
        """The block's plain bytes, verified: from this node if it has a sound copy, else
        from the other storage nodes (same zone first, then lowest RTT), each copy checked
        against the hash; a node that fails or sends a corrupt copy is skipped."""
        nodes = self.storage_nodes(h)
        if nodes == [self.node_id]:
            return await self.read_local(h)
        local_missing = False
        if self.node_id in nodes:
            try:
                return await self.read_local(h)
            except (MissingBlock, CorruptData, OSError):
                local_missing = True
        return await self._from_others(h, nodes, prio, repair=local_missing)

    async def _from_others(self, h: bytes, nodes: list[str], prio: int, *,
                           repair: bool) -> bytes:
        """A verified copy from the storage nodes other than this one; with repair, it
        replaces the missing or corrupt local copy too."""
        block, data = await self._fetch(h, [n for n in nodes if n != self.node_id], prio)
        if repair:
            self._repair_local(h, block)
        return data

    async def get_block_for_send(self, h: bytes, *, prio: int = PRIO_NORMAL
                                 ) -> BlockFile | bytes:
        """As get_block, but a sound plain local copy comes back as an open, verified
        BlockFile (the caller sends it with sendfile, then closes it) instead of its bytes:
        no copy of the data through Python. Anything else (compressed, missing or corrupt
        locally, on other nodes) comes back as verified bytes, as from get_block."""
        nodes = self.storage_nodes(h)
        if self.node_id not in nodes:
            return await self.get_block(h, prio=prio)
        fut = offload(open_verified, self.store, h)
        try:
            # Shielded: a cancelled read must still close the file its thread opens.
            found = await asyncio.shield(fut)
        except asyncio.CancelledError:
            fut.add_done_callback(_close_unclaimed)
            raise
        except CorruptData:
            await self.corrupted(h)
            if nodes == [self.node_id]:
                raise
            return await self._from_others(h, nodes, prio, repair=True)  # as get_block
        except OSError:
            found = None  # get_block decides (its own read, or other nodes)
        if found is None:
            return await self.get_block(h, prio=prio)
        return found

    async def fetch_remote(self, h: bytes, prio: int) -> DataBlock:
        """A verified copy of the block from another storage node (resync)."""
        block, _ = await self._fetch(h, [n for n in self.storage_nodes(h)
                                         if n != self.node_id], prio)
        return block

    async def _fetch(self, h: bytes, nodes: list[str], prio: int) -> tuple[DataBlock, bytes]:
        """Ask the nodes in preference order, one at a time; a node that errors or sends a
        corrupt copy hands over to the next at once, one that is slow to answer gets the
        next asked in parallel after READ_HEDGE_S (a hung link must not stall a GET for
        the whole RPC timeout). The first valid copy wins."""
        order = self.rpc.request_order(nodes)
        errors: list[str] = []
        pending: dict[asyncio.Task[tuple[DataBlock, bytes]], str] = {}

        def launch() -> None:
            node = order.pop(0)
            pending[asyncio.ensure_future(self._fetch_from(node, h, prio))] = node

        if order:
            launch()
        try:
            while pending:
                done, _ = await asyncio.wait(pending, timeout=READ_HEDGE_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    if order:
                        launch()
                    continue
                for t in done:
                    node = pending.pop(t)
                    exc = t.exception()
                    if exc is None:
                        return t.result()
                    if not isinstance(exc, (CorruptData, RpcError, OSError, TimeoutError)):
                        raise exc
                    errors.append(f"{node[:16]}: {describe(exc)}")
                    if order:
                        launch()
        finally:
            for t in pending:
                t.cancel()
        raise MissingBlock(f"block {h.hex()}: no node returned a valid copy"
                           + (": " + "; ".join(errors) if errors else ""))

    async def _fetch_from(self, node: str, h: bytes, prio: int) -> tuple[DataBlock, bytes]:
        block = await self.client.get_from(node, h, prio)
        try:
            data = await unpack_block_async(h, block)
        except CorruptData:
            log.warning("block %s: node %s sent a corrupt copy", h.hex(), node[:16])
            self._keep(asyncio.ensure_future(self.client.verify_on(node, h)),
                       f"check of block {h.hex()[:16]} on {node[:16]}")
            raise
        return block, data

    def _repair_local(self, h: bytes, block: DataBlock) -> None:
        """This node should have had the block (missing or moved aside as corrupt): keep
        the verified copy just fetched, if the block is still needed here."""
        if self.node_id not in self.storage_nodes(h) or \
                not self.rc.get_entry(h).is_needed(now_msec()):
            return
        self._keep(asyncio.ensure_future(self.write_local(h, block)),
                   f"local repair of block {h.hex()[:16]}")

    async def read_local(self, h: bytes) -> bytes:
        try:
            data = self._read_verified_nowait(h)
            self.reads_nowait += 1
        except BlockingIOError:  # needs the disk, or is no small sound block: the thread
            try:
                data = await offload(self._read_verified, h)  # one thread hop, not two
            except CorruptData:
                await self.corrupted(h)
                raise
        if data is None:
            raise MissingBlock(f"block {h.hex()} not found on this node")
        return data

    async def corrupted(self, h: bytes) -> None:
        """The local copy does not match its hash: moved aside, fetched again by resync."""
        self.corruptions += 1
        log.error("block %s is corrupted on disk; moved aside", h.hex())
        async with self.lock(h):
            await asyncio.to_thread(self.store.move_corrupted, h)
        await self.resync.put(h, now_msec())

    def _read_verified_nowait(self, h: bytes) -> bytes | None:
        """Not blocking: as _read_verified, for a small block the kernel has in memory.
        Raises BlockingIOError for any other, and for a copy that fails its check: the
        thread reads it again, in the canonical order, and deals with the corruption."""
        block = self.store.read_nowait(h, INLINE_MAX)
        if block is None:
            return None
        if not is_small(block):  # highly compressed, or an odd frame
            raise BlockingIOError("not a small block")
        try:
            return unpack_block(h, block)
        except CorruptData:
            raise BlockingIOError("corrupt copy: for the thread") from None

    def _read_verified(self, h: bytes) -> bytes | None:
        block = self.store.read(h)
        return None if block is None else unpack_block(h, block)

    async def read_raw_local(self, h: bytes) -> DataBlock | None:
        """The stored block as is (not verified: whoever decodes it checks the hash): read
        here if it is small and in the kernel's memory, else in a thread."""
        try:
            return self.store.read_nowait(h, INLINE_MAX)
        except BlockingIOError:
            return await offload(self.store.read, h)

    def block_age_s(self, h: bytes) -> float | None:
        """Blocking (for threads): seconds since the local file was written, or None.
        Measured on the node's clock, as the refcount delays are (a test clock offset
        ages files too)."""
        found = self.store.find(h)
        if found is None:
            return None
        try:
            return now_msec() / 1000 - os.stat(found[0]).st_mtime
        except FileNotFoundError:
            return None

    # -- refcount hooks (called inside block_ref table transactions)
    def incref(self, tx: Transaction, h: bytes) -> None:
        now = now_msec()
        if self.rc.incref(tx, h, now):
            # Newly needed: check later that it arrived (else fetch it from a peer).
            self.resync.put_tx(tx, h, now + self.incref_delay_ms)

    def on_peer_up(self, node: str) -> None:
        """A node (re)connected: blocks whose resync failed, often because that node was
        unreachable (a partition, a restart), are retried now instead of after their
        backoff (up to an hour). At most once per PEER_UP_RETRY_S for each node: after a
        partition heals, nodes reconnect one by one, and a retry made when only the first
        was back may have needed the next."""
        now = time.monotonic()
        if now - self._last_peer_up.get(node, float("-inf")) < PEER_UP_RETRY_S or \
                not self.resync.errors_len():
            return
        self._last_peer_up[node] = now
        self._keep(asyncio.ensure_future(self.resync.retry_now(None)),
                   "resync retry after a node came back")

    def set_refcount_tx(self, tx: Transaction, h: bytes, count: int, now_ms: int) -> bool:
        """Repair (garage repair block-rc): the count recomputed from the block_ref table;
        a block left unreferenced is offloaded and deleted after the delay, as by decref.
        -> whether the stored count was wrong."""
        changed = self.rc.set_count_tx(tx, h, count, now_ms)
        if changed:
            self.resync.put_tx(tx, h, now_ms + (self.rc.delay_ms if count == 0 else 0))
        return changed

    def decref(self, tx: Transaction, h: bytes) -> None:
        at = self.rc.decref(tx, h, now_msec())
        if at is not None:
            # Unreferenced: offload to whoever still needs it, then delete, after the delay.
            self.resync.put_tx(tx, h, at)

    async def gc_once(self) -> int:
        """Run the resync entries due now (tests, tools): -> blocks deleted."""
        before = self.resync.deleted
        await self.resync.run_due()
        return self.resync.deleted - before

    async def shutdown(self) -> None:
        for t in list(self._background):
            t.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._helper is not None:
            await self._helper.close()


def _log_rewritten(h: bytes) -> None:
    log.warning("block %s: the file on disk was damaged; it was written again", h.hex())


def _close_unclaimed(fut: asyncio.Future[BlockFile | bytes | None]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        found = fut.result()
        if isinstance(found, BlockFile):
            found.close()


