"""Table[E]: quorum reads and writes of CRDT entries on the nodes that own them.

Each call goes to the owners of hash(partition key) only. The local node applies writes
through TableData (merge + hook in one transaction); owners on other nodes are reached by the
cluster RPC, which this single-node build does not have yet: such a layout answers QuorumError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Generic

from ..db.base import Db
from ..rpc.system import System
from ..util.errors import LayoutNotReady, QuorumError
from ..util.ids import partition_hash
from .data import TableData
from .replication import Replication
from .schema import E, TableSchema

# Range reads up to this many entries stay on the event loop (a thread hop costs more).
_INLINE_READ = 64


class Table(Generic[E]):
    def __init__(self, system: System, db: Db, schema: TableSchema[E], replication: Replication):
        self.system = system
        self.schema = schema
        self.replication = replication
        self.data: TableData[E] = TableData(db, schema)

    @property
    def name(self) -> str:
        return self.schema.name

    def _owners(self, pk: bytes) -> list[str]:
        nodes = self.replication.storage_nodes(partition_hash(pk))
        if not nodes:
            raise LayoutNotReady()
        return nodes

    def _check_local(self, nodes: list[str], quorum: int) -> None:
        reachable = [n for n in nodes if n == self.system.node_id]
        if len(reachable) < quorum:
            raise QuorumError(f"{self.name}: quorum {quorum} of {len(nodes)} nodes not "
                              "reachable (cluster RPC not available)")

    def check_local_write(self, pk: bytes) -> None:
        """For a transaction over several tables at once (only possible while every owner
        is this node): raise as insert would if this node cannot write `pk` alone."""
        self._check_local(self._owners(pk), self.replication.write_quorum)

    async def insert(self, entry: E) -> None:
        await self.insert_many([entry])

    async def insert_many(self, entries: Iterable[E]) -> None:
        """Every entry in one write transaction of the db's writer thread (one per entry
        for tables with a write check: see TableData.write_entries)."""
        batch = list(entries)
        for e in batch:
            self._check_local(self._owners(e.partition_key()), self.replication.write_quorum)
        if batch:
            await self.data.write_entries(batch)

    async def get(self, pk: bytes, sk: bytes = b"") -> E | None:
        self._check_local(self._owners(pk), self.replication.read_quorum)
        return self.data.read_entry(pk, sk)

    async def get_range(self, pk: bytes, start_sk: bytes | None = None, filter: Any = None,
                        limit: int = 1000, reverse: bool = False,
                        end_sk: bytes | None = None) -> list[E]:
        self._check_local(self._owners(pk), self.replication.read_quorum)
        if limit <= _INLINE_READ:
            return self.data.read_range(pk, start_sk, filter, limit, reverse, end_sk)
        # A listing page reads and decodes up to `limit` entries (more with a filter):
        # off the event loop.
        return await asyncio.to_thread(self.data.read_range, pk, start_sk, filter, limit,
                                       reverse, end_sk)

    async def get_all_local(self, limit: int = 100_000) -> list[E]:
        """Every entry stored on this node (for full-copy tables: the whole table)."""
        def scan() -> list[E]:
            rows = self.data.db.range(self.data.store, None, None, limit)
            return [self.schema.decode(v) for _, v in rows]
        return await asyncio.to_thread(scan)


