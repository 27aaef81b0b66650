"""Decoded entries of a rarely written table (keys, buckets, bucket aliases), kept between
requests so the hot S3 paths skip a database read and a decode per lookup.

Never stale: every local write of the table (TableData.update_entry_tx, the only way entries
change, whether the write comes from this node or, later, from the cluster) bumps the
table's generation, and a changed generation empties the cache before the next lookup.

Entries are shared between requests: callers must treat them as read-only. Code that
modifies an entry before writing it back (bucket and key administration) reads its own copy
from the table instead.
"""

from __future__ import annotations

from typing import Generic

from .schema import E
from .table import Table

MAX_ENTRIES = 4096  # lookups of unknown names are cached too: bounded, then no more caching


class EntryCache(Generic[E]):
    def __init__(self, table: Table[E], max_entries: int = MAX_ENTRIES):
        self.table = table
        self.max_entries = max_entries
        self._generation = -1
        self._items: dict[tuple[bytes, bytes], E | None] = {}

    def get(self, pk: bytes, sk: bytes = b"") -> E | None:
        """The entry as Table.get would return it (local read: these tables are full copies,
        on every node)."""
        data = self.table.data
        if data.generation != self._generation:
            self._items.clear()
            self._generation = data.generation
        k = (pk, sk)
        try:
            return self._items[k]
        except KeyError:
            pass
        entry = data.read_entry(pk, sk)
        if len(self._items) < self.max_entries:
            self._items[k] = entry
        return entry
