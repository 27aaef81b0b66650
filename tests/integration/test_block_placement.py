"""A block lives on the nodes of its block_ref partition: those that store it are those
that hold its reference count, so one that missed it learns it needs it (from the
references anti-entropy brings) and fetches it. With blocks placed by another partition
than their references, a node missing a block would never know: the fault scenario with a
whole zone down caught blocks left on 2 of 3 nodes for good."""

from __future__ import annotations

import os
from pathlib import Path

from pygarage.testing.inproc import InprocCluster
from pygarage.util.ids import partition_hash


async def test_blocks_live_where_their_references_do(tmp_path: Path) -> None:
    # 5 nodes in 3 zones, RF 3: each partition on 3 of the 5, so a mismatch shows.
    async with InprocCluster(tmp_path, n=5, rf=3, zones=3, workers=False) as c:
        g = c.garages[0]
        differ = 0
        for _ in range(300):
            h = os.urandom(32)
            refs = g.block_ref_table.replication.write_sets(partition_hash(h))
            assert g.block_manager.write_sets(h) == refs
            differ += sorted(refs[0]) != sorted(g.system.write_sets_of(h[0])[0])
        assert differ > 0  # the test can tell the two placements apart
