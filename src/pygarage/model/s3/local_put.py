"""A single-block PutObject's three entries (block reference, version, object) in ONE write
transaction, when this node alone owns all three: one writer hand-over and one commit
instead of two of each.

Only valid on a node that owns every entry (single node, or a layout giving it all three
partitions): elsewhere each table writes to its own owners at quorum. The outcome is what
the separate writes would leave: each entry goes through its table's merge, hooks and
write check; a refused object write (bucket deleted) keeps the reference and version, and
its cleanup, in the same transaction, queues the version's deletion, which frees the block
as the separate path's cleanup does.
"""

from __future__ import annotations

from typing import Any

from ...db.base import Transaction
from ...table.data import TableData, WriteRefused
from ..garage import Garage
from .block_ref_table import BlockRef
from .object_table import Object
from .version_table import Version


def owns_all(g: Garage, ref: BlockRef, version: Version, obj: Object) -> bool:
    return (g.block_ref_table.owned_locally(ref.partition_key())
            and g.version_table.owned_locally(version.partition_key())
            and g.object_table.owned_locally(obj.partition_key()))


def _write(data: TableData[Any], tx: Transaction, entry: Any) -> None:
    check = data.write_check
    if check is not None:
        check(tx, entry)
    data.update_entry_tx(tx, entry)


async def write_one_block_put(g: Garage, ref: BlockRef, version: Version, obj: Object) -> None:
    """Write the three entries in one transaction (the block file is already stored); raises
    the object's refusal (NoSuchBucket) after committing what the refusal leaves."""
    def fn(tx: Transaction) -> Exception | None:
        _write(g.block_ref_table.data, tx, ref)
        _write(g.version_table.data, tx, version)
        try:
            _write(g.object_table.data, tx, obj)
        except WriteRefused as refused:  # raised by the check, before any object write
            if refused.cleanup is not None:
                refused.cleanup(tx)
            return refused.error
        return None
    error = await g.db.write(fn)
    if error is not None:
        raise error
