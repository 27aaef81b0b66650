"""Composition root: the database, System, block manager and every table with its
replication, wired with the hooks that cascade deletions:

    object --(version pruned/aborted)--> version --(deleted)--> block_ref --> block rc
    object --(multipart aborted)--> multipart_upload --(deleted)--> part versions
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..block.manager import BlockManager
from ..block.resync import MAX_RESYNC_WORKERS, ResyncWorker
from ..block.scrub import ScrubWorker
from ..db.base import Db, Transaction
from ..db.open import open_db
from ..rpc.rpc_helper import RpcHelper
from ..rpc.system import System
from ..table.data import WriteRefused, tree_key
from ..table.gc import TableGc
from ..table.merkle_tree import MerkleUpdater
from ..table.queue import InsertQueueWorker
from ..table.replication import FullCopy, Sharded
from ..table.sync import SyncTrackerHub, TableSyncer
from ..table.table import Table
from ..util.background import BackgroundRunner, BgVars
from ..util.clock import OFFSET_ENV, SYSTEM_CLOCK
from ..util.config import Config
from .bucket_table import Bucket, BucketSchema
from .counters import BucketCounters, CounterPropagator
from .helpers.errors import NoSuchBucketErr
from .index_counter import CounterSchema
from .key_table import BucketAlias, BucketAliasSchema, Key, KeySchema
from .repair import request_block_resync
from .s3.block_ref_table import BlockRef, BlockRefSchema
from .s3.lifecycle_worker import LifecycleWorker
from .s3.mpu_table import MpuSchema, MultipartUpload
from .s3.object_table import ABORTED, UPLOADING, Object, ObjectSchema, ObjectVersion
from .s3.version_table import Version, VersionSchema
from .snapshot import AutoSnapshotWorker, async_snapshot_metadata

log = logging.getLogger(__name__)


class Garage:
    def __init__(self, config: Config, db: Db | None = None):
        self.config = config
        config.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.db = db or open_db(config.db_engine, config.metadata_dir,
                                fsync=config.metadata_fsync,
                                lmdb_map_size=config.lmdb_map_size)
        self.system = System(config)
        # Calls to other nodes; the daemon attaches its RPC server (server.py).
        self.rpc = RpcHelper(self.system)
        self.block_manager = BlockManager(self.system, config, self.db, self.rpc)
        full, sharded = FullCopy(self.system), Sharded(self.system)
        self.counters = BucketCounters(self.system, self.db, Table(
            self.system, self.db, CounterSchema(), sharded, self.rpc))

        self.bucket_table: Table[Bucket] = Table(self.system, self.db, BucketSchema(), full,
                                                 self.rpc)
        self.bucket_alias_table: Table[BucketAlias] = Table(
            self.system, self.db, BucketAliasSchema(), full, self.rpc)
        self.key_table: Table[Key] = Table(self.system, self.db, KeySchema(), full, self.rpc)
        self.block_ref_table: Table[BlockRef] = Table(
            self.system, self.db,
            BlockRefSchema(self.block_manager.incref, self.block_manager.decref), sharded,
            self.rpc)
        self.version_table: Table[Version] = Table(
            self.system, self.db, VersionSchema(self._block_unused), sharded, self.rpc)
        self.mpu_table: Table[MultipartUpload] = Table(
            self.system, self.db, MpuSchema(self._version_unused, self.counters.on_mpu),
            sharded, self.rpc)
        self.object_table: Table[Object] = Table(
            self.system, self.db, ObjectSchema(self._object_version_gone,
                                               self.counters.on_object), sharded,
            self.rpc)
        self.object_table.data.write_check = self._check_object_write
        # The check runs on every owner: its refusal travels back to the writer as is.
        self.object_table.refusals["NoSuchBucket"] = NoSuchBucketErr
        self._live_bucket: dict[bytes, bytes] = {}  # bucket id -> an encoding seen live
        # PutObject uploads under way in this process (their Uploading versions): any other
        # plain Uploading version was left by a crash and no longer keeps a bucket alive.
        self.puts_in_progress: set[bytes] = set()
        self.version_table.data.write_check = self._check_version_write
        self.tables: list[Table[Any]] = [self.bucket_table, self.bucket_alias_table, self.key_table,
                       self.object_table, self.version_table, self.block_ref_table,
                       self.mpu_table, self.counters.table]
        self.counters.initialize(self.object_table, self.mpu_table)
        # Anti-entropy: one sync worker per table; their passes drive our sync tracker.
        self.sync_hub = SyncTrackerHub(self.system)
        self.table_syncers = [TableSyncer(self.system, self.rpc, t, self.sync_hub)
                              for t in self.tables]
        # Tombstone GC of the sharded tables (Garage keeps deleted buckets and keys).
        syncer_of = {s.table.name: s for s in self.table_syncers}
        self.table_gcs = [TableGc(self.system, self.rpc, t, syncer_of[t.name]) for t in (
            self.object_table, self.version_table, self.block_ref_table, self.mpu_table)]
        self.runner = BackgroundRunner()
        # Worker variables (`garage worker get|set`); each worker registers its own.
        self.bg_vars = BgVars()
        self.repair_tids: dict[str, int] = {}  # repair type -> its latest worker
        self.scrub: ScrubWorker | None = None
        if not config.disable_scrub:
            self.scrub = ScrubWorker(self.block_manager.store, self.db,
                                     lambda h: request_block_resync(self, h))
            self.scrub.register_vars(self.bg_vars)
        self.block_manager.resync.register_vars(self.bg_vars)
        self.block_manager.count_refs = self._count_block_refs

    def _check_object_write(self, tx: Transaction, entry: Object) -> None:
        """Uploads start and finish only in a live bucket: a write of anything but aborts
        into a deleted (or unknown) bucket is refused, in the write's own transaction, and
        what it would have owned is freed. See helpers/bucket_lifecycle.py for why this
        and DeleteBucket's single transaction leave no live object in a deleted bucket."""
        if all(v.state == ABORTED for v in entry.versions):
            self._track_puts(entry)
            return
        raw = tx.get(self.bucket_table.data.store, tree_key(entry.bucket_id, b""))
        if raw is not None and self._live_bucket.get(entry.bucket_id) == raw:
            self._track_puts(entry)  # the same bytes were seen live: no need to decode
            return
        if raw is not None and not Bucket.decode(raw).deleted:
            if len(self._live_bucket) > 4096:
                self._live_bucket.clear()
            self._live_bucket[entry.bucket_id] = raw
            self._track_puts(entry)
            return
        if raw is None and len(self.system.layout.all_nodes()) > 1:
            # In a cluster the writer found the bucket live in its own full copy, which this
            # owner has not received yet: only a bucket known deleted here is refused (a
            # deletion is final, so freeing what the entry owns is then safe).
            self._track_puts(entry)
            return

        def cleanup(tx: Transaction) -> None:
            for v in entry.versions:
                if v.state != ABORTED and v.has_blocks():
                    self._object_version_gone(tx, v, entry)
        raise WriteRefused(NoSuchBucketErr("the bucket does not exist or was deleted"),
                           cleanup)

    def _track_puts(self, entry: Object) -> None:
        for v in entry.versions:
            if not v.multipart:
                if v.state == UPLOADING:
                    self.puts_in_progress.add(v.uuid)
                else:
                    self.puts_in_progress.discard(v.uuid)

    def _check_version_write(self, tx: Transaction, entry: Version) -> None:
        """Blocks listed in a version already deleted (its upload aborted, or its object
        version pruned, while they were being written) are unreferenced at once: the
        deletion hook has run already, and the merge drops them without a trace. Writers
        reference a block before listing it, so the reference exists to be dropped."""
        if entry.deleted or not entry.blocks:
            return
        raw = tx.get(self.version_table.data.store, tree_key(entry.uuid, b""))
        if raw is not None and Version.raw_is_deleted(raw):
            for b in entry.blocks.values():
                self._block_unused(tx, b.hash, entry.uuid)

    def _count_block_refs(self, h: bytes) -> int:
        """Live references to a block held on this node (blocking: for threads)."""
        return len(self.block_ref_table.data.read_range(h, None, None, 1 << 20))

    # -- hooks: they only queue inserts, in the caller's transaction
    def _block_unused(self, tx: Transaction, block: bytes, version: bytes) -> None:
        self.block_ref_table.data.queue_insert(tx, BlockRef(block, version, deleted=True))

    def _version_unused(self, tx: Transaction, version: bytes) -> None:
        self.version_table.data.queue_insert(tx, Version(version, deleted=True))

    def _object_version_gone(self, tx: Transaction, v: ObjectVersion, obj: Object) -> None:
        self.version_table.data.queue_insert(tx, Version(v.uuid, deleted=True))
        if v.multipart:
            self.mpu_table.data.queue_insert(
                tx, MultipartUpload(v.uuid, obj.bucket_id, obj.key, v.timestamp, deleted=True))

    def spawn_workers(self) -> None:
        for t in self.tables:
            self.runner.spawn(InsertQueueWorker(t))
            self.runner.spawn(MerkleUpdater(t.data.merkle))
        for i in range(MAX_RESYNC_WORKERS):  # beyond resync-worker-count: idle
            self.runner.spawn(ResyncWorker(i, self.block_manager.resync))
        self.runner.spawn(CounterPropagator(self.counters))
        for s in self.table_syncers:
            self.runner.spawn(s)
        for gc in self.table_gcs:
            self.runner.spawn(gc)
        if SYSTEM_CLOCK.offset_ms:
            log.warning("%s is set: this node's clock is shifted by %d s (for tests only)",
                        OFFSET_ENV, SYSTEM_CLOCK.offset_ms // 1000)
        lifecycle = LifecycleWorker(self)
        lifecycle.register_vars(self.bg_vars)
        self.runner.spawn(lifecycle)
        if self.scrub is not None:
            self.runner.spawn(self.scrub)
        if self.config.metadata_auto_snapshot_interval is not None:
            self.runner.spawn(AutoSnapshotWorker(lambda: async_snapshot_metadata(self),
                                                 self.config.metadata_auto_snapshot_interval))

    async def shutdown(self) -> None:
        await self.runner.shutdown()
        for t in self.tables:  # a clean stop leaves no Merkle record pending
            await t.data.merkle.apply_pending()
        await self.block_manager.shutdown()
        # Queued writes commit, then the writer thread ends, before the db closes.
        await asyncio.to_thread(self.db.stop_writer)
        self.db.close()
