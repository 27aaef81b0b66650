#!/usr/bin/env python3
"""Cost of PUTs whose keys share a long prefix (over LMDB's 511-byte key limit), on one node.

Not a test: writes N objects named "A"*700 + n into one bucket and prints the PUT latency
near the start and at the end, and that of PUTs into another bucket meanwhile. Before long
keys got their own storage, each such PUT rewrote every key sharing the prefix (273 ms at
7,000 keys, with unrelated requests slowed to 110-200 ms).

    python bench/long_keys.py [--keys 7000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pygarage.testing.node import GarageNode


def _median_ms(s3: Any, bucket: str, keys: list[str]) -> float:
    times = []
    for k in keys:
        t0 = time.perf_counter()
        s3.put_object(Bucket=bucket, Key=k, Body=b"x" * 100)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=7000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        node = GarageNode(Path(tmp))
        node.start()
        try:
            key, secret = node.create_key()
            node.create_bucket("long", key)
            node.create_bucket("other", key)
            s3 = node.s3(key, secret)
            head = "A" * 700
            first = _median_ms(s3, "long", [f"{head}{n}" for n in range(100)])
            other_first = _median_ms(s3, "other", [f"o{n}" for n in range(50)])
            for n in range(100, args.keys - 100):
                s3.put_object(Bucket="long", Key=f"{head}{n}", Body=b"x" * 100)
            last = _median_ms(s3, "long", [f"{head}{n}"
                                           for n in range(args.keys - 100, args.keys)])
            other_last = _median_ms(s3, "other", [f"p{n}" for n in range(50)])
            print(f"PUT, long shared-prefix key:  {first:6.1f} ms at 100 keys, "
                  f"{last:6.1f} ms at {args.keys}")
            print(f"PUT into another bucket:      {other_first:6.1f} ms then "
                  f"{other_last:6.1f} ms")
        finally:
            node.stop()


if __name__ == "__main__":
    main()
