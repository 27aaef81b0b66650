"""`garage repair ...` (admin LaunchRepairOperation): background workers that walk this
node's copy of a table and replay the deletion cascades that should have happened, and the
recomputation of block refcounts; plus scrub commands and the rebalance of data dirs.

    versions    a live version whose object (or upload) no longer uses it -> deleted
    mpu         a live upload whose object has no such upload under way  -> deleted
    block-refs  a live block_ref whose version is deleted or missing       -> deleted
    block-rc    each block's refcount := its live block_refs on this node

Each deletion is a normal table write, so the table hooks cascade as usual (a deleted
version deletes its block_refs, which decrement the refcounts). Progress shows in
`garage worker list` as "<entries seen> (<repairs>)".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..block.rebalance import RebalanceWorker
from ..block.resync import repair_blocks
from ..block.scrub import ScrubCommandError
from ..db.base import prefix_end
from ..table.sync import repair_tables
from ..table.table import Table
from ..util.background import WorkerState
from ..util.clock import now_msec
from ..util.ids import partition_hash
from .s3.block_ref_table import BlockRef
from .s3.mpu_table import MultipartUpload
from .s3.object_table import ABORTED, UPLOADING
from .s3.version_table import Version

if TYPE_CHECKING:
    from .garage import Garage

log = logging.getLogger(__name__)

BATCH = 100
RC_BATCH = 64


class RepairError(Exception):
    """A repair that cannot be launched (message for the operator)."""


class RepairNotAvailable(RepairError):
    """A repair whose machinery is not built yet."""


class TableRepairWorker:
    """Walk every entry of a table stored on this node; `process` returns True when it
    repaired the entry."""

    def __init__(self, table: Table[Any], process: Callable[[Any], Awaitable[bool]]):
        self.table = table
        self.process = process
        self.name = f"{table.name} repair worker"
        self.pos: bytes | None = None
        self.counter = 0
        self.repairs = 0

    async def work(self) -> WorkerState:
        data = self.table.data
        rows = await asyncio.to_thread(data.db.range, data.store, self.pos, None, BATCH)
        if not rows:
            log.info("%s: finished, %d entries seen, %d repaired", self.name, self.counter,
                     self.repairs)
            return WorkerState.DONE
        for k, v in rows:
            if await self.process(data.schema.decode(v)):
                self.repairs += 1
            self.counter += 1
            self.pos = k + b"\x00"
        return WorkerState.BUSY

    async def wait_for_work(self) -> None:  # never idle: it walks, then is done
        await asyncio.Event().wait()

    def status(self) -> dict[str, object]:
        return {"progress": f"{self.counter} ({self.repairs})"}


def _key_bytes(key: Any) -> bytes:
    return key.encode() if isinstance(key, str) else bytes(key)


def repair_versions(g: Garage) -> TableRepairWorker:
    async def process(v: Version) -> bool:
        if v.deleted or not v.backlink:
            return False
        if v.backlink[0] == "object":
            obj = await g.object_table.get(v.backlink[1], _key_bytes(v.backlink[2]))
            used = obj is not None and any(x.uuid == v.uuid and x.state != ABORTED
                                           for x in obj.versions)
        elif v.backlink[0] == "mpu":
            mpu = await g.mpu_table.get(v.backlink[1])
            used = mpu is not None and not mpu.deleted
        else:
            return False
        if used:
            return False
        log.info("repair versions: version %s is not used, marking it deleted", v.uuid.hex())
        await g.version_table.insert(Version(v.uuid, deleted=True, backlink=v.backlink))
        return True
    return TableRepairWorker(g.version_table, process)


def repair_mpu(g: Garage) -> TableRepairWorker:
    async def process(u: MultipartUpload) -> bool:
        if u.deleted:
            return False
        obj = await g.object_table.get(u.bucket_id, u.key.encode())
        if obj is not None and any(x.uuid == u.upload_id and x.state == UPLOADING
                                   and x.multipart for x in obj.versions):
            return False
        log.info("repair mpu: upload %s is not under way, marking it deleted",
                 u.upload_id.hex())
        await g.mpu_table.insert(MultipartUpload(u.upload_id, u.bucket_id, u.key,
                                                 u.timestamp, deleted=True))
        return True
    return TableRepairWorker(g.mpu_table, process)


def repair_block_refs(g: Garage) -> TableRepairWorker:
    async def process(r: BlockRef) -> bool:
        if r.deleted:
            return False
        v = await g.version_table.get(r.version)
        if v is not None and not v.deleted:
            return False
        log.info("repair block-refs: block %s of version %s: the version is gone, marking "
                 "the reference deleted", r.block.hex(), r.version.hex())
        await g.block_ref_table.insert(BlockRef(r.block, r.version, deleted=True))
        return True
    return TableRepairWorker(g.block_ref_table, process)


class BlockRcRepairWorker:
    """Recompute the refcount of every block this node knows of: first those referenced in
    the block_ref table (grouped by block), then those only in the refcount tree."""

    name = "Block refcount repair worker"

    def __init__(self, g: Garage):
        self.g = g
        self.phase = 1
        self.pos: bytes | None = None
        self.counter = 0
        self.repairs = 0

    async def work(self) -> WorkerState:
        db = self.g.db
        if self.phase == 1:
            store = self.g.block_ref_table.data.store
            rows = await asyncio.to_thread(db.range, store, self.pos, None, RC_BATCH * 4)
            if not rows:
                self.phase, self.pos = 2, None
                return WorkerState.BUSY
            blocks: list[bytes] = []
            for _k, v in rows:
                b = BlockRef.decode(v).block
                if not blocks or blocks[-1] != b:
                    blocks.append(b)
            # Skip past the last block's references (they may go on in the next rows).
            self.pos = prefix_end(partition_hash(blocks[-1]))
            await self._recount(blocks)
            if self.pos is None:
                self.phase = 2
            return WorkerState.BUSY
        rc = self.g.block_manager.rc
        rows = await asyncio.to_thread(db.range, "block_local_rc", self.pos, None, RC_BATCH)
        if not rows:
            log.info("%s: finished, %d blocks seen, %d refcounts fixed", self.name,
                     self.counter, self.repairs)
            return WorkerState.DONE
        self.pos = rows[-1][0] + b"\x00"
        await self._recount([k for k, _ in rows if rc.get(k) > 0], unreferenced_only=True)
        return WorkerState.BUSY

    async def _recount(self, blocks: list[bytes], unreferenced_only: bool = False) -> None:
        """unreferenced_only (phase 2): blocks with references were done in phase 1."""
        store = self.g.block_ref_table.data.store
        bm = self.g.block_manager
        now = now_msec()

        def fix(tx: Any) -> tuple[int, int]:
            fixed = seen = 0
            for b in blocks:
                ph = partition_hash(b)
                refs = tx.range(store, ph, prefix_end(ph))
                if unreferenced_only and refs:
                    continue
                seen += 1
                live = sum(1 for _k, v in refs if not BlockRef.decode(v).deleted)
                if bm.set_refcount_tx(tx, b, live, now):
                    log.warning("repair block-rc: block %s had a wrong refcount, now %d",
                                b.hex(), live)
                    fixed += 1
            return fixed, seen
        fixed, seen = await self.g.db.write(fix)
        self.repairs += fixed
        self.counter += seen

    async def wait_for_work(self) -> None:
        await asyncio.Event().wait()

    def status(self) -> dict[str, object]:
        return {"progress": f"{self.counter} ({self.repairs})",
                "freeform": [f"Phase {self.phase} of 2: "
                             + ("blocks with references" if self.phase == 1
                                else "blocks only in the refcount tree")]}


# -- what the lead wires once the cluster-wide machinery lands

async def launch_table_sync(g: Garage) -> None:
    """`repair tables`: a full anti-entropy sync of every table, starting now (progress in
    each table's sync worker)."""
    await repair_tables(g)


async def launch_block_repair(g: Garage) -> None:
    """`repair blocks`: queue every block of the refcount tree and of the data dirs for a
    resync (progress: the resync workers' queue length)."""
    n = await repair_blocks(g)
    log.info("repair blocks: %d block(s) queued for a resync", n)


async def request_block_resync(g: Garage, h: bytes) -> None:
    """A local copy of block h was corrupted and has been moved aside (scrub, rebalance):
    the resync queue fetches a good copy from another node."""
    log.warning("block %s: no good copy on this node; queued to be fetched from another "
                "node", h.hex())
    await g.block_manager.resync.put(h, now_msec())


# -- LaunchRepairOperation

_TABLE_REPAIRS: dict[str, Callable[[Garage], Any]] = {
    "versions": repair_versions,
    "multipartUploads": repair_mpu,
    "blockRefs": repair_block_refs,
    "blockRc": BlockRcRepairWorker,
}


async def launch_repair(g: Garage, repair_type: Any) -> None:
    if isinstance(repair_type, dict) and set(repair_type) == {"scrub"}:
        if g.scrub is None:
            raise RepairError("the scrub is disabled on this node (disable_scrub = true)")
        try:
            await g.scrub.command(str(repair_type["scrub"]))
        except ScrubCommandError as e:
            raise RepairError(f"scrub: {e}") from None
        return
    if repair_type == "tables":
        await launch_table_sync(g)
        return
    if repair_type == "blocks":
        await launch_block_repair(g)
        return
    if repair_type == "aliases":  # in the foreground, as in Garage
        # Imported here: it imports garage.py, which imports this module.
        from .helpers.repair_aliases import repair_aliases

        await repair_aliases(g)
        return
    make: Callable[[Garage], Any] | None = _TABLE_REPAIRS.get(repair_type) \
        if isinstance(repair_type, str) else None
    if repair_type == "rebalance":
        bm = g.block_manager
        make = lambda g: RebalanceWorker(  # noqa: E731
            bm.store, bm.lock, lambda h: request_block_resync(g, h))
    if make is None:
        raise RepairError(f"unknown repair type: {repair_type!r}")
    running = g.repair_tids.get(str(repair_type))
    if running is not None and g.runner.workers[running].state is not WorkerState.DONE:
        raise RepairError(f"a {repair_type} repair is already running (worker {running})")
    tid = g.runner.spawn(make(g))
    g.repair_tids[str(repair_type)] = tid
    log.info("repair %s launched (worker %d)", repair_type, tid)
