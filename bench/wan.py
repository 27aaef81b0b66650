#!/usr/bin/env python3
"""Latency of small S3 calls on a geo-distributed cluster: 5 nodes in 5 zones, RF 3, with
100 ms +- 20 ms of round trip time between zones added by the fault proxy in front of each
node's RPC port (a user-space delay: this kernel has no netem), and a client next to node 1
(straight to its S3 port, no delay). Small requests one at a time: ListBuckets,
ListObjectsV2, GetObject, PutObject, DeleteObject; median and max per call, in ms and in
RTTs. Then the MB/s of one large PUT and GET through node 1.

Garage answers Get and Put in about 1 RTT and Delete and List in 2; the aim is <= 1.3 RTT
on all five.

Not a test: prints a table and writes bench/results/wan-<timestamp>.json. Until tables and
blocks replicate (cluster part 2) it stops after the cluster probe with exit status 2 and
the reason.

    python bench/wan.py                       # 5 nodes, 100+-20 ms, 30 calls each, 100 MiB
    python bench/wan.py --calls 10 --large-mib 16 --rtt-ms 50
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from results import save  # bench/ is on sys.path when run as a script

from pygarage.testing.cluster import FaultCluster, replication_missing

MiB = 1 << 20
SMALL = 1024


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def large(s3: Any, bucket: str, mib: int) -> dict[str, Any]:
    """One PUT and one GET of `mib` MiB of random data through node 1 (content checked)."""
    data = os.urandom(mib * MiB)
    digest = hashlib.md5(data).hexdigest()
    put_s = timed(lambda: s3.put_object(Bucket=bucket, Key="large", Body=data))
    got = hashlib.md5()

    def get() -> None:
        for chunk in s3.get_object(Bucket=bucket, Key="large")["Body"].iter_chunks(MiB):
            got.update(chunk)

    get_s = timed(get)
    if got.hexdigest() != digest:
        raise SystemExit("the large object read back differs from what was written")
    mb = len(data) / 1e6
    print(f"\n{mib} MiB PUT: {mb / put_s:.1f} MB/s, GET: {mb / get_s:.1f} MB/s")
    return {"mib": mib, "put_mb_s": round(mb / put_s, 1), "get_mb_s": round(mb / get_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--rtt-ms", type=float, default=100.0, help="RTT between zones")
    ap.add_argument("--jitter-ms", type=float, default=20.0, help="+- on the RTT")
    ap.add_argument("--calls", type=int, default=30, help="calls per operation")
    ap.add_argument("--large-mib", type=int, default=100, help="0: skip the large object")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="pygarage-wan-"))
    c = FaultCluster(work, args.nodes, zones=args.nodes, replication_factor=3,
                     block_size="1M")
    try:
        t0 = time.monotonic()
        c.start()
        print(f"{args.nodes} nodes in {args.nodes} zones up with a layout in "
              f"{time.monotonic() - t0:.1f} s (state in {work})", flush=True)
        reason = replication_missing(c)  # before the delay: quick either way
        if reason:
            print(f"cannot measure: {reason}", file=sys.stderr)
            sys.exit(2)
        assert c.bucket is not None
        bucket = c.bucket
        # Each direction carries half the RTT and half its jitter.
        c.set_delay(args.rtt_ms / 2000, args.jitter_ms / 2000)
        s3 = c.s3(0)
        rtt = args.rtt_ms / 1000
        for i in range(20):  # a listing of 20 keys; links warmed up
            s3.put_object(Bucket=bucket, Key=f"list/{i:02d}", Body=os.urandom(SMALL))
        s3.put_object(Bucket=bucket, Key="get/one", Body=os.urandom(SMALL))

        calls: dict[str, list[float]] = {name: [] for name in
                                         ("ListBuckets", "ListObjectsV2", "GetObject",
                                          "PutObject", "DeleteObject")}
        for i in range(args.calls):
            calls["ListBuckets"].append(timed(lambda: s3.list_buckets()))
            calls["ListObjectsV2"].append(timed(lambda: s3.list_objects_v2(
                Bucket=bucket, Prefix="list/")))
            calls["GetObject"].append(timed(lambda: s3.get_object(
                Bucket=bucket, Key="get/one")["Body"].read()))
            key = f"put/{i:04d}"
            calls["PutObject"].append(timed(partial(s3.put_object, Bucket=bucket, Key=key,
                                                    Body=os.urandom(SMALL))))
            calls["DeleteObject"].append(timed(partial(s3.delete_object, Bucket=bucket,
                                                       Key=key)))

        figures: dict[str, Any] = {}
        print(f"\nRTT between zones {args.rtt_ms:.0f} +- {args.jitter_ms:.0f} ms; "
              f"client next to node 1; {args.calls} calls each, one at a time")
        print(f"{'call':<15} {'median ms':>10} {'max ms':>8} {'median RTT':>11} "
              f"{'max RTT':>8}")
        for name, ts in calls.items():
            med, mx = statistics.median(ts), max(ts)
            figures[name] = {"median_ms": round(med * 1000, 1), "max_ms": round(mx * 1000, 1),
                             "median_rtt": round(med / rtt, 2), "max_rtt": round(mx / rtt, 2)}
            print(f"{name:<15} {med * 1000:>10.1f} {mx * 1000:>8.1f} {med / rtt:>11.2f} "
                  f"{mx / rtt:>8.2f}")

        if args.large_mib:
            figures["large"] = large(s3, bucket, args.large_mib)
        worst = max(figures[n]["median_rtt"] for n in calls)
        print(f"worst median: {worst:.2f} RTT (aim: <= 1.3)")

        save("wan", {
            "bench": "wan", "when": datetime.now(UTC).isoformat(),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "params": {"nodes": args.nodes, "zones": args.nodes, "replication_factor": 3,
                       "rtt_ms": args.rtt_ms, "jitter_ms": args.jitter_ms,
                       "calls": args.calls},
            "figures": figures})
    finally:
        c.stop()


if __name__ == "__main__":
    main()
