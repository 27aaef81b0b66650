#!/usr/bin/env python3
"""ListObjectsV2 at scale on one pygarage node: a first page, a page starting after a key in
the middle, and delimiter listings, over a bucket of many keys.

Not a test: prints a table and writes bench/results/listing-<timestamp>.json.
The keys are written straight into the object table of a stopped node (one small inline
object each, as a PUT of a few bytes stores it), then the node is started and every figure
is a signed HTTP request to it, timed from the client, on loopback.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import platform
import shutil
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from results import save  # bench/ is on sys.path when run as a script

from pygarage.model.garage import Garage
from pygarage.model.s3.object_table import INLINE, Object, ObjectMeta, ObjectVersion
from pygarage.testing.node import GarageNode
from pygarage.util.config import load_config
from pygarage.util.ids import gen_uuid

BUCKET = "bench-listing"
TX_BATCH = 10_000  # keys per write transaction while populating


def key_of(prefix_no: int, i: int) -> str:
    return f"dir{prefix_no:05d}/object-{i:08d}"


def populate(node: GarageNode, bucket_id: bytes, keys: int, prefixes: int) -> float:
    """Write `keys` objects spread over `prefixes` directories into the stopped node's
    object table; -> seconds taken."""
    garage = Garage(load_config(node.config_path))
    data = garage.object_table.data
    per = -(-keys // prefixes)
    body = b"x"
    etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
    ts = int(time.time() * 1000)
    t0 = time.perf_counter()
    try:
        batch: list[Object] = []

        def flush() -> None:
            garage.db.transaction(lambda tx: [data.update_entry_tx(tx, o) for o in batch])
            batch.clear()

        n = 0
        for p in range(prefixes):
            for i in range(per):
                if n == keys:
                    break
                v = ObjectVersion(gen_uuid(), ts, 1, kind=INLINE,
                                  meta=ObjectMeta(len(body), etag, []), inline=body)
                batch.append(Object(bucket_id, key_of(p, i), [v]))
                n += 1
                if len(batch) == TX_BATCH:
                    flush()
            if n % 100_000 < per:
                print(f"  {n:,} keys", flush=True)
        if batch:
            flush()
    finally:
        garage.db.close()
    return time.perf_counter() - t0


class Client:
    """Signed GETs with http.client on one kept-alive connection; signing is not timed."""

    def __init__(self, node: GarageNode, key_id: str, secret: str):
        self.host = f"127.0.0.1:{node.s3_port}"
        self.auth = S3SigV4Auth(Credentials(key_id, secret), "s3", "garage")
        self.conn = http.client.HTTPConnection("127.0.0.1", node.s3_port, timeout=600)

    def list(self, query: dict[str, str]) -> tuple[float, ET.Element]:
        qs = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(query.items()))
        url = f"http://{self.host}/{BUCKET}?{qs}"
        req = AWSRequest(method="GET", url=url, headers={"Host": self.host})
        self.auth.add_auth(req)
        t0 = time.perf_counter()
        self.conn.request("GET", f"/{BUCKET}?{qs}", headers=dict(req.headers.items()))
        r = self.conn.getresponse()
        body = r.read()
        took = time.perf_counter() - t0
        if r.status != 200:
            raise RuntimeError(f"listing failed: {r.status} {body[:500]!r}")
        return took, ET.fromstring(body)


def _count(root: ET.Element, tag: str) -> int:
    return sum(1 for e in root.iter() if e.tag.rsplit("}", 1)[-1] == tag)


def measure(client: Client, name: str, query: dict[str, str], repeat: int,
            expect: tuple[int, int]) -> dict[str, Any]:
    times = []
    for _ in range(repeat):
        took, root = client.list(query)
        got = (_count(root, "Contents"), _count(root, "CommonPrefixes"))
        if got != expect:
            raise RuntimeError(f"{name}: got {got} (contents, prefixes), expected {expect}")
        times.append(took * 1000)
    return {"figure": name, "query": query, "contents": expect[0], "common_prefixes": expect[1],
            "median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
            "max_ms": round(max(times), 2), "runs": repeat}


def node_with_bucket(work: Path) -> tuple[GarageNode, str, str, bytes]:
    """A node, stopped, with a key and the bucket BUCKET: (node, key id, secret, bucket
    id). Stopped so that the caller can fill its object table directly."""
    node = GarageNode(work / "node")
    node.start()
    try:
        key_id, secret = node.create_key("bench")
        node.create_bucket(BUCKET, key_id)
        bucket_id = bytes.fromhex(node.admin("GetBucketInfo",
                                             query={"globalAlias": BUCKET})["id"])
    finally:
        node.stop()
    return node, key_id, secret, bucket_id


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    keys, prefixes = args.keys, args.prefixes
    per = -(-keys // prefixes)
    node, key_id, secret, bucket_id = node_with_bucket(work)
    print(f"writing {keys:,} keys in {prefixes:,} prefixes into the object table ...",
          flush=True)
    populate_s = populate(node, bucket_id, keys, prefixes)
    node.start()
    try:
        client = Client(node, key_id, secret)
        client.list({"list-type": "2", "max-keys": "1"})  # connection and caches warm
        middle = key_of(prefixes // 2, per // 2)
        full_prefixes = -(-keys // per)
        page = min(1000, keys)
        figures = [
            measure(client, "first page (1,000 keys)", {"list-type": "2"}, args.repeat,
                    (page, 0)),
            measure(client, "start-after in the middle (1,000 keys)",
                    {"list-type": "2", "start-after": middle}, args.repeat,
                    (min(1000, keys - (prefixes // 2) * per - per // 2 - 1), 0)),
            measure(client, f"delimiter=/ ({min(full_prefixes, 1000):,} prefixes)",
                    {"list-type": "2", "delimiter": "/"}, args.repeat,
                    (0, min(full_prefixes, 1000))),
            measure(client, "delimiter=/ from the middle",
                    {"list-type": "2", "delimiter": "/", "start-after": middle},
                    args.repeat, (0, min(full_prefixes - prefixes // 2 - 1, 1000))),
            measure(client, "prefix=<one dir>/ delimiter=/",
                    {"list-type": "2", "delimiter": "/", "prefix": f"dir{prefixes // 2:05d}/"},
                    args.repeat, (min(per, 1000), 0)),
        ]
    finally:
        node.stop()
    return {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                        "loadavg": os.getloadavg()},
            "options": {"keys": keys, "prefixes": prefixes, "repeat": args.repeat},
            "populate_s": round(populate_s, 1), "figures": figures}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keys", type=int, default=1_000_000, help="number of keys")
    ap.add_argument("--prefixes", type=int, default=1000,
                    help="number of directories the keys are spread over")
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure (median shown)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the node goes (default: a temp dir, removed at the end)")
    args = ap.parse_args()
    if not 1 <= args.prefixes <= args.keys:
        ap.error("need 1 <= --prefixes <= --keys")
    work = Path(tempfile.mkdtemp(prefix="pygarage-listing-", dir=args.workdir))
    try:
        res = bench(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.keys:,} keys in {args.prefixes:,} prefixes "
          f"(written in {res['populate_s']} s); ListObjectsV2 over HTTP, ms:")
    print(f"{'figure':<42} {'median':>9} {'min':>9} {'max':>9}")
    for f in res["figures"]:
        print(f"{f['figure']:<42} {f['median_ms']:>9.1f} {f['min_ms']:>9.1f} "
              f"{f['max_ms']:>9.1f}")
    save("listing", res)


if __name__ == "__main__":
    main()
