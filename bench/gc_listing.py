#!/usr/bin/env python3
"""ListObjectsV2 over a bucket full of delete markers, before and after tombstone GC.

Not a test: prints a table and writes bench/results/gc-listing-<timestamp>.json.
A bucket gets `--deleted` keys that were deleted (a delete marker each, written straight into
the object table of the stopped node, as DeleteObject leaves them, which also records them
for GC) and `--live` small objects whose keys sort after them. A first ListObjectsV2 page
must step over every marker to find the live keys. Then the node restarts with its clock
25 h ahead (PYGARAGE_TEST_CLOCK_OFFSET_SECS: the markers are past the 24 h GC delay), the
object table's GC worker drops the markers, and the same page is timed again.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from listing import Client, measure, node_with_bucket  # bench/listing.py
from results import save  # bench/ is on sys.path when run as a script

from pygarage.model.garage import Garage
from pygarage.model.s3.object_table import (
    COMPLETE,
    DELETE_MARKER,
    INLINE,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from pygarage.testing.node import GarageNode
from pygarage.util.clock import OFFSET_ENV
from pygarage.util.config import load_config
from pygarage.util.ids import gen_uuid

BUCKET = "bench-listing"  # the name listing.Client lists
TX_BATCH = 10_000


def populate(node: GarageNode, bucket_id: bytes, deleted: int, live: int) -> float:
    garage = Garage(load_config(node.config_path))
    data = garage.object_table.data
    ts = int(time.time() * 1000)
    body = b"x"
    etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
    t0 = time.perf_counter()
    try:
        batch: list[Object] = []

        def flush() -> None:
            garage.db.transaction(lambda tx: [data.update_entry_tx(tx, o) for o in batch])
            batch.clear()

        for i in range(deleted):
            batch.append(Object(bucket_id, f"deleted/{i:08d}", [
                ObjectVersion(gen_uuid(), ts, COMPLETE, kind=DELETE_MARKER)]))
            if len(batch) == TX_BATCH:
                flush()
        for i in range(live):
            batch.append(Object(bucket_id, f"live/{i:08d}", [ObjectVersion(
                gen_uuid(), ts, COMPLETE, kind=INLINE, meta=ObjectMeta(1, etag, []),
                inline=body)]))
            if len(batch) == TX_BATCH:
                flush()
        if batch:
            flush()
        todo = next(gc for gc in garage.table_gcs if gc.table.name == "object").todo_len()
        if todo != deleted:
            raise RuntimeError(f"{todo} markers recorded for GC, expected {deleted}")
    finally:
        garage.db.close()
    return time.perf_counter() - t0


def object_entries(node: GarageNode) -> int:
    garage = Garage(load_config(node.config_path))
    try:
        return garage.object_table.data.count()
    finally:
        garage.db.close()


def page_times(client: Client, repeat: int, live: int) -> dict[str, Any]:
    """The first page of the bucket (no delimiter: no common prefixes)."""
    return measure(client, "first page", {"list-type": "2"}, repeat, (min(live, 1000), 0))


def gc_queue(node: GarageNode) -> int:
    res = node.admin("ListWorkers", body={})
    workers = next(iter(res["success"].values()))
    return int(next(w["queueLength"] for w in workers if w["name"] == "object GC"))


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    node, key_id, secret, bucket_id = node_with_bucket(work)
    print(f"writing {args.deleted:,} delete markers and {args.live:,} live keys ...",
          flush=True)
    populate_s = populate(node, bucket_id, args.deleted, args.live)
    entries_before = object_entries(node)
    node.start()
    try:
        client = Client(node, key_id, secret)
        before = page_times(client, args.repeat, args.live)
        queued_before = gc_queue(node)
    finally:
        node.stop()
    os.environ[OFFSET_ENV] = str(25 * 3600)
    try:
        t0 = time.monotonic()
        node.start()
        try:
            while (queued := gc_queue(node)) > 0:
                if time.monotonic() - t0 > args.gc_timeout:
                    raise RuntimeError(f"GC not done after {args.gc_timeout} s: {queued} left")
                time.sleep(0.2)
            gc_s = time.monotonic() - t0
            client = Client(node, key_id, secret)
            after = page_times(client, args.repeat, args.live)
        finally:
            node.stop()
    finally:
        os.environ.pop(OFFSET_ENV, None)
    entries_after = object_entries(node)
    return {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                        "loadavg": os.getloadavg()},
            "options": {"deleted": args.deleted, "live": args.live, "repeat": args.repeat},
            "populate_s": round(populate_s, 1),
            "before_gc": {"object_entries": entries_before, "gc_queue": queued_before,
                          "first_page": before},
            "after_gc": {"object_entries": entries_after, "gc_s": round(gc_s, 1),
                         "first_page": after}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--deleted", type=int, default=100_000, help="delete markers")
    ap.add_argument("--live", type=int, default=1000, help="live keys after them")
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure (median shown)")
    ap.add_argument("--gc-timeout", type=float, default=600.0)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pygarage-gc-listing-", dir=args.workdir))
    try:
        res = bench(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    b, a = res["before_gc"], res["after_gc"]
    print(f"\n{args.deleted:,} delete markers then {args.live:,} live keys; first "
          "ListObjectsV2 page over HTTP, ms:")
    print(f"{'':<12} {'object entries':>15} {'median':>9} {'min':>9} {'max':>9}")
    for name, f in (("before GC", b), ("after GC", a)):
        p = f["first_page"]
        print(f"{name:<12} {f['object_entries']:>15,} {p['median_ms']:>9.1f} "
              f"{p['min_ms']:>9.1f} {p['max_ms']:>9.1f}")
    print(f"GC of {b['gc_queue']:,} markers: {a['gc_s']} s (from the restart)")
    save("gc-listing", res)


if __name__ == "__main__":
    main()
