"""Composition root: the database, System, block manager and every table with its
replication, wired with the hooks that cascade deletions:

    object --(version pruned/aborted)--> version --(deleted)--> block_ref --> block rc
    object --(multipart aborted)--> multipart_upload --(deleted)--> part versions
"""

from __future__ import annotations

import logging
from typing import Any

from ..block.manager import BlockGcWorker, BlockManager
from ..db.base import Db, Transaction
from ..db.open import open_db
from ..rpc.system import System
from ..table.queue import InsertQueueWorker
from ..table.replication import FullCopy, Sharded
from ..table.table import Table
from ..util.background import BackgroundRunner
from ..util.clock import OFFSET_ENV, SYSTEM_CLOCK
from ..util.config import Config
from .bucket_table import Bucket, BucketSchema
from .counters import BucketCounters
from .key_table import BucketAlias, BucketAliasSchema, Key, KeySchema
from .s3.block_ref_table import BlockRef, BlockRefSchema
from .s3.lifecycle_worker import LifecycleWorker
from .s3.mpu_table import MpuSchema, MultipartUpload
from .s3.object_table import Object, ObjectSchema, ObjectVersion
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
        self.tables: list[Table[Any]] = [self.bucket_table, self.bucket_alias_table, self.key_table,
                       self.object_table, self.version_table, self.block_ref_table,
                       self.mpu_table]
        self.runner = BackgroundRunner()

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
        self.db.close()
