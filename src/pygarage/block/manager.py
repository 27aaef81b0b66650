"""BlockManager: store and fetch content-addressed blocks on the nodes that own them, and
delete unreferenced ones after their delay.

Writes reach the write quorum of the block's partition owners; reads try owners in order.
Only this node's store is reachable until the cluster RPC lands (other owners -> QuorumError).
"""

from __future__ import annotations

import asyncio
import logging

from ..db.base import Db, Transaction
from ..rpc.system import System
from ..table.replication import Sharded
from ..util import metrics
from ..util.background import WorkerState
from ..util.byte_semaphore import ByteSemaphore
from ..util.clock import now_msec
from ..util.config import Config
from ..util.errors import CorruptData, LayoutNotReady, MissingBlock, QuorumError
from .block import DataBlock, pack_block, unpack_block
from .rc import BlockRc
from .store import BlockStore

log = logging.getLogger(__name__)

_N_LOCKS = 256


class BlockManager:
    def __init__(self, system: System, config: Config, db: Db):
        self.system = system
        self.config = config
        self.store = BlockStore(config.data_dirs, config.data_fsync)
        self.rc = BlockRc(db)
        self.db = db
        self.replication = Sharded(system)
        # Striped locks: a write and a GC delete of the same block never interleave.
        self._locks = [asyncio.Lock() for _ in range(_N_LOCKS)]
        self.corruptions = 0
        # Upload data read from clients and not yet stored, all requests together.
        self.ram_buffer = ByteSemaphore(
            config.block_ram_buffer_max,
            lambda free: metrics.block_ram_buffer_free_kb.set(free // 1024))
        metrics.block_ram_buffer_free_kb.set(config.block_ram_buffer_max // 1024)

    def _lock(self, h: bytes) -> asyncio.Lock:
        return self._locks[h[1] % _N_LOCKS]

    def _owners(self, h: bytes) -> list[str]:
        nodes = self.replication.storage_nodes(h)
        if not nodes:
            raise LayoutNotReady()
        return nodes

    # -- CPU work, for callers to run in threads
    def pack(self, data: bytes) -> tuple[bytes, DataBlock]:
        return pack_block(data, self.config.compression_level)

    # -- writes
    async def put_block(self, h: bytes, block: DataBlock) -> None:
        owners = self._owners(h)
        if self.system.node_id not in owners or self.replication.write_quorum > 1:
            raise QuorumError("block write quorum not reachable (cluster RPC not available)")
        await self.write_local(h, block)

    async def write_local(self, h: bytes, block: DataBlock) -> None:
        async with self._lock(h):
            await asyncio.to_thread(self._write_if_absent, h, block)

    def _write_if_absent(self, h: bytes, block: DataBlock) -> None:
        # The lookup runs in the worker thread too: no file system call on the event loop.
        if not self.store.has(h):
            self.store.write(h, block, absent=True)
        elif not self.config.data_fsync and not self._existing_is_sound(h, block):
            log.warning("block %s: the file on disk is damaged; writing it again", h.hex())
            self.store.write(h, block)
        # else deduplicated: same content, same address

    def _existing_is_sound(self, h: bytes, block: DataBlock) -> bool:
        """Without data_fsync, a power loss can leave a block file truncated or empty under
        its final name (the rename reached the disk before the data): check the copy on
        disk, length then hash, before trusting it to deduplicate a write."""
        found = self.store.read(h)
        if found is None:
            return False
        if not found.compressed and not block.compressed and \
                len(found.payload) != len(block.payload):
            return False
        try:
            unpack_block(h, found)
        except CorruptData:
            return False
        return True

    # -- reads
    async def get_block(self, h: bytes) -> bytes:
        owners = self._owners(h)
        if self.system.node_id not in owners:
            raise QuorumError("block owners not reachable (cluster RPC not available)")
        return await self.read_local(h)

    async def read_local(self, h: bytes) -> bytes:
        try:
            data = await asyncio.to_thread(self._read_verified, h)  # one thread hop, not two
        except CorruptData:
            self.corruptions += 1
            log.error("block %s is corrupted on disk; moved aside", h.hex())
            await asyncio.to_thread(self.store.move_corrupted, h)
            raise
        if data is None:
            raise MissingBlock(f"block {h.hex()} not found on this node")
        return data

    def _read_verified(self, h: bytes) -> bytes | None:
        block = self.store.read(h)
        return None if block is None else unpack_block(h, block)

    # -- refcount hooks (called inside block_ref table transactions)
    def incref(self, tx: Transaction, h: bytes) -> None:
        self.rc.incref(tx, h)

    def decref(self, tx: Transaction, h: bytes) -> None:
        self.rc.decref(tx, h, now_msec())

    # -- deletion of unreferenced blocks
    async def gc_once(self) -> int:
        now = now_msec()
        n = 0
        for key in self.rc.deletable(now):
            h = key[8:]
            async with self._lock(h):
                def clear(tx: Transaction, k: bytes = key) -> bool:
                    return self.rc.clear_if_deletable(tx, k, now)
                if await self.db.write(clear):
                    await asyncio.to_thread(self.store.delete, h)
                    n += 1
        return n


class BlockGcWorker:
    name = "block GC"

    def __init__(self, manager: BlockManager):
        self.manager = manager
        self.deleted = 0

    async def work(self) -> WorkerState:
        n = await self.manager.gc_once()
        self.deleted += n
        return WorkerState.BUSY if n else WorkerState.IDLE

    async def wait_for_work(self) -> None:
        await asyncio.sleep(30)

    def status(self) -> dict[str, object]:
        return {"progress": f"{self.deleted} blocks deleted"}
