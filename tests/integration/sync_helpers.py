"""Helpers for the in-process cluster tests of table sync and tombstone GC."""

from __future__ import annotations

import os
from typing import Any

from pygarage.model.garage import Garage
from pygarage.model.s3.version_table import Version, VersionBlock
from pygarage.table.table import Table
from pygarage.testing.inproc import InprocCluster
from pygarage.testing.waits import until  # noqa: F401  (the tests import it from here)


async def write_local(g: Garage, table: Table[Any], entries: list[Any]) -> None:
    """A write on this node only (as if the other replicas missed it)."""
    data = table.data
    await data.db.write(lambda tx: [data.update_entry_tx(tx, e) for e in entries])


def versions(n: int, tag: int) -> list[Version]:
    return [Version(os.urandom(16), blocks={(1, 0): VersionBlock(bytes([tag]) * 32, i)})
            for i in range(n)]


def contents(g: Garage, table: str) -> dict[bytes, bytes]:
    data = next(t for t in g.tables if t.name == table).data
    return dict(data.db.range(data.store, None, None))


def roots(g: Garage, table: str) -> list[bytes]:
    """As they will be once the Merkle records pending now are applied: a node's updater
    applies them a moment after each write (table/merkle_tree.py)."""
    return next(t for t in g.tables if t.name == table).data.merkle.settled_root_hashes()


def same_everywhere(c: InprocCluster, table: str) -> bool:
    live = [nd.garage for nd in c.nodes if nd.running]
    first = roots(live[0], table)
    return all(roots(g, table) == first for g in live[1:])
