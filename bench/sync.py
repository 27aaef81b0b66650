#!/usr/bin/env python3
"""Anti-entropy between 3 in-process nodes over the real RPC (RF 3): the time of a full sync
pass of every table when replicas agree, and the catch-up rate when one lacks entries.

Not a test: prints figures and writes bench/results/sync-<timestamp>.json.
Entries (versions with one block each, ~100 bytes) are written straight into each node's
version table. Then: (1) a pass over all 7 tables on node 1 with nothing to send (root
hashes compared, 256 partitions x 2 peers, in batched requests); (2) node 3 is wiped of
--missing entries' worth of writes (they go to nodes 1 and 2 only) and nodes 1 and 2 run a
pass: the time until node 3's Merkle roots equal theirs.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from results import save  # bench/ is on sys.path when run as a script

from pygarage.model.garage import Garage
from pygarage.model.s3.version_table import Version, VersionBlock
from pygarage.table.sync import repair_tables
from pygarage.testing.inproc import InprocCluster


def entries(n: int) -> list[Version]:
    return [Version(os.urandom(16), blocks={(1, 0): VersionBlock(os.urandom(32), 1 << 20)})
            for _ in range(n)]


async def write(g: Garage, es: list[Version]) -> None:
    data = g.version_table.data
    for i in range(0, len(es), 5000):
        chunk = es[i:i + 5000]
        await data.db.write(lambda tx, c=chunk: [data.update_entry_tx(tx, e) for e in c])


async def poll(cond: Callable[[], bool], step: float = 0.01) -> None:
    """The state watched is in workers with no event to wait on."""
    while True:
        if cond():
            return
        await asyncio.sleep(step)


async def passes_done(gs: list[Garage], before: dict[int, int]) -> None:
    await poll(lambda: all(s.passes > before[id(s)] for g in gs for s in g.table_syncers))


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    async with InprocCluster(root, n=3, rf=3) as c:
        g1, g2, g3 = c.garages
        common = entries(args.entries)
        for g in c.garages:
            await write(g, common)
        await asyncio.sleep(2)  # the start-up passes (nodes coming up) end
        for g in c.garages:
            await passes_done([g], {id(s): -1 for s in g.table_syncers})
        times = []
        for _ in range(args.repeat):
            before = {id(s): s.passes for s in g1.table_syncers}
            t0 = time.perf_counter()
            await repair_tables(g1)
            await passes_done([g1], before)
            times.append(time.perf_counter() - t0)
        missing = entries(args.missing)
        await write(g1, missing)
        await write(g2, missing)
        t0 = time.perf_counter()
        await repair_tables(g1)
        await repair_tables(g2)
        want = g1.version_table.data.merkle.root_hashes()
        await poll(lambda: g3.version_table.data.merkle.root_hashes() == want, 0.05)
        catch_up = time.perf_counter() - t0
        assert g3.version_table.data.count() == args.entries + args.missing
    return {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                        "loadavg": os.getloadavg()},
            "options": vars(args) | {"workdir": None},
            "pass_in_sync_ms": [round(t * 1000, 1) for t in times],
            "catch_up_s": round(catch_up, 2),
            "catch_up_entries_per_s": round(args.missing / catch_up)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=20_000, help="entries on every node")
    ap.add_argument("--missing", type=int, default=10_000, help="entries node 3 lacks")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pygarage-sync-", dir=args.workdir))
    try:
        res = asyncio.run(run(args, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"3 nodes, RF 3, {args.entries:,} version entries on each:")
    print(f"  full pass of the 7 tables, replicas in sync: "
          f"{', '.join(str(t) for t in res['pass_in_sync_ms'])} ms")
    print(f"  node 3 missing {args.missing:,} entries: caught up in {res['catch_up_s']} s "
          f"({res['catch_up_entries_per_s']:,} entries/s)")
    save("sync", res)


if __name__ == "__main__":
    main()
