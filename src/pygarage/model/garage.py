"""Composition root: the database, System, block manager and every table with its
replication, wired with the hooks that cascade deletions:

    object --(version pruned/aborted)--> version --(deleted)--> block_ref --> block rc
    object --(multipart aborted)--> multipart_upload --(deleted)--> part versions
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..block.manager import BlockGcWorker, BlockManager
from ..db.base import Db, Transaction
from ..db.open import open_db
from ..rpc.system import System
from ..table.data import WriteRefused, tree_key
from ..table.queue import InsertQueueWorker
from ..table.replication import FullCopy, Sharded
from ..table.table import Table
from ..util.background import BackgroundRunner
from ..util.clock import OFFSET_ENV, SYSTEM_CLOCK
from ..util.config import Config
from .bucket_table import Bucket, BucketSchema
from .counters import BucketCounters
from .helpers.errors import NoSuchBucketErr
from .key_table import BucketAlias, BucketAliasSchema, Key, KeySchema
from .s3.block_ref_table import BlockRef, BlockRefSchema
from .s3.lifecycle_worker import LifecycleWorker
from .s3.mpu_table import MpuSchema, MultipartUpload
from .s3.object_table import ABORTED, UPLOADING, Object, ObjectSchema, ObjectVersion
from .s3.version_table import Version, VersionSchema

log = logging.getLogger(__name__)


class Garage:
    def __init__(self, config: Config, db: Db | None = None):
        self.config = config
        config.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.db = db or open_db(config.db_engine, config.metadata_dir,
                                fsync=config.metadata_fsync,
                                lmdb_map_size=config.lmdb_map_size)
        self.system = System(config)
        self.block_manager = BlockManager(self.system, config, self.db)
        self.counters = BucketCounters(self.db)
        full, sharded = FullCopy(self.system), Sharded(self.system)

        self.bucket_table: Table[Bucket] = Table(self.system, self.db, BucketSchema(), full)
        self.bucket_alias_table: Table[BucketAlias] = Table(
            self.system, self.db, BucketAliasSchema(), full)
        self.key_table: Table[Key] = Table(self.system, self.db, KeySchema(), full)
        self.block_ref_table: Table[BlockRef] = Table(
            self.system, self.db,
            BlockRefSchema(self.block_manager.incref, self.block_manager.decref), sharded)
        self.version_table: Table[Version] = Table(
            self.system, self.db, VersionSchema(self._block_unused), sharded)
        self.mpu_table: Table[MultipartUpload] = Table(
            self.system, self.db, MpuSchema(self._version_unused, self.counters.on_mpu),
            sharded)
        self.object_table: Table[Object] = Table(
            self.system, self.db, ObjectSchema(self._object_version_gone,
                                               self.counters.on_object), sharded)
        self.object_table.data.write_check = self._check_object_write
        self._live_bucket: dict[bytes, bytes] = {}  # bucket id -> an encoding seen live
        # PutObject uploads under way in this process (their Uploading versions): any other
        # plain Uploading version was left by a crash and no longer keeps a bucket alive.
        self.puts_in_progress: set[bytes] = set()
        self.version_table.data.write_check = self._check_version_write
        self.tables: list[Table[Any]] = [self.bucket_table, self.bucket_alias_table, self.key_table,
                       self.object_table, self.version_table, self.block_ref_table,
                       self.mpu_table]
        self.runner = BackgroundRunner()

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
        self.runner.spawn(BlockGcWorker(self.block_manager))
        if SYSTEM_CLOCK.offset_ms:
            log.warning("%s is set: this node's clock is shifted by %d s (for tests only)",
                        OFFSET_ENV, SYSTEM_CLOCK.offset_ms // 1000)
        self.runner.spawn(LifecycleWorker(self))

    async def shutdown(self) -> None:
        await self.runner.shutdown()
        # Queued writes commit, then the writer thread ends, before the db closes.
        await asyncio.to_thread(self.db.stop_writer)
        self.db.close()
