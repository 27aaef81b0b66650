#!/usr/bin/env python3
"""Metadata writes with metadata_fsync = true: the db writer thread (group commit) against
one fsynced commit per write on the event loop.

Not a test: prints two tables.

A. In process, per engine: object-table inserts (one small object entry each) by 1 and by
   32 concurrent writers, either as before the writer thread (`sync`: TableData.update_entry,
   one commit and fsync per insert, run on the event loop) or through it (`writer`:
   Table.insert, whose concurrent inserts share commits). Figures: inserts/s, commits.
B. A real `garage server` with metadata_fsync = true: the latency of GETs of a small object,
   one at a time, alone and then while `--flood` client threads PUT small objects as fast
   as they can. `--server-src DIR` runs the server from another source tree (e.g. a checkout
   of the code before the writer thread) to compare.

    python bench/db_writer.py [--inserts 2000] [--seconds 10] [--flood 32]
                              [--server-src DIR] [--skip-a] [--skip-b]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from pygarage.api.admin.cluster import ensure_single_node_layout
from pygarage.model.bucket_table import Bucket
from pygarage.model.garage import Garage
from pygarage.model.s3.object_table import INLINE, Object, ObjectMeta, ObjectVersion
from pygarage.testing.node import GarageNode
from pygarage.util.config import config_from_dict
from pygarage.util.ids import gen_uuid

BUCKET_ID = b"B" * 32


# --------------------------------------------------------------------------- A: in process

def _obj(i: int) -> Object:
    v = ObjectVersion(gen_uuid(), 1000, 1, kind=INLINE, meta=ObjectMeta(1, "etag", []),
                      inline=b"x")
    return Object(BUCKET_ID, f"obj-{i:08d}", [v])


async def _inserts(g: Garage, mode: str, writers: int, total: int) -> float:
    per = total // writers

    async def writer(w: int) -> None:
        for i in range(per):
            o = _obj(w * per + i)
            if mode == "sync":
                g.object_table.data.update_entry(o)  # the old path: commit on the loop
                await asyncio.sleep(0)  # as Table.insert_many did, letting others run
            else:
                await g.object_table.insert(o)
    t0 = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return per * writers / (time.perf_counter() - t0)


def part_a(work: Path, total: int) -> list[dict[str, Any]]:
    rows = []
    for engine in ("lmdb", "sqlite"):
        for mode in ("sync", "writer"):
            for writers in (1, 32):
                d = work / f"a-{engine}-{mode}-{writers}"
                cfg = config_from_dict({
                    "metadata_dir": str(d / "m"), "data_dir": str(d / "d"),
                    "rpc_bind_addr": "127.0.0.1:1", "rpc_secret": "33" * 32,
                    "replication_factor": 1, "db_engine": engine, "metadata_fsync": True})
                g = Garage(cfg)
                ensure_single_node_layout(g)
                g.bucket_table.data.update_entry(Bucket(BUCKET_ID))
                c0 = g.db.commits
                n = total if writers > 1 or mode == "writer" else total // 4
                n = n // writers * writers
                rate = asyncio.run(_inserts(g, mode, writers, n))
                commits = g.db.commits - c0
                g.db.close()
                shutil.rmtree(d)
                rows.append({"engine": engine, "mode": mode, "writers": writers,
                             "inserts": n, "inserts_s": round(rate), "commits": commits})
                print(f"  {engine:6} {mode:6} {writers:2} writers: {rate:8.0f} inserts/s, "
                      f"{commits} commits for {n} inserts", flush=True)
    return rows


# --------------------------------------------------------------------------- B: a server

class _Unsigned(S3SigV4Auth):
    def _should_sha256_sign_payload(self, request: AWSRequest) -> bool:
        return False


class Client:
    def __init__(self, node: GarageNode, key_id: str, secret: str):
        self.port = node.s3_port
        self.host = f"127.0.0.1:{node.s3_port}"
        self.auth = _Unsigned(Credentials(key_id, secret), "s3", "garage")
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[float, int]:
        req = AWSRequest(method=method, url=f"http://{self.host}{path}",
                         headers={"Host": self.host})
        self.auth.add_auth(req)
        t0 = time.perf_counter()
        self.conn.request(method, path, body=body or None, headers=dict(req.headers.items()))
        r = self.conn.getresponse()
        r.read()
        took = time.perf_counter() - t0
        if r.status != 200:
            raise RuntimeError(f"{method} {path}: {r.status}")
        return took, r.status


def _gets(c: Client, seconds: float) -> list[float]:
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append(c.request("GET", "/bench/small")[0] * 1000)
        time.sleep(0.005)
    return out


def _summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
            "max_ms": round(ms[-1], 2)}


def part_b(work: Path, seconds: float, flood: int, engine: str) -> dict[str, Any]:
    node = GarageNode(work / f"b-{engine}", db_engine=engine, extra="metadata_fsync = true")
    node.start()
    try:
        key_id, secret = node.create_key("bench")
        node.create_bucket("bench", key_id)
        probe = Client(node, key_id, secret)
        probe.request("PUT", "/bench/small", b"hello")
        idle = _gets(probe, min(seconds, 3))
        stop = threading.Event()
        puts = [0] * flood

        def flooder(n: int) -> None:
            c = Client(node, key_id, secret)
            i = 0
            while not stop.is_set():
                c.request("PUT", f"/bench/flood-{n}-{i}", b"y" * 100)
                i += 1
            puts[n] = i
        threads = [threading.Thread(target=flooder, args=(n,)) for n in range(flood)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        t0 = time.perf_counter()
        busy = _gets(probe, seconds)
        took = time.perf_counter() - t0
        stop.set()
        for t in threads:
            t.join()
    finally:
        node.stop()
    res = {"engine": engine, "idle": _summary(idle), "flood": _summary(busy),
           "flood_puts_s": round(sum(puts) / (took + 0.5))}
    print(f"  {engine:6} GET alone: {res['idle']}\n"
          f"  {engine:6} GET during {flood} PUT flooders ({res['flood_puts_s']} PUT/s): "
          f"{res['flood']}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inserts", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--flood", type=int, default=32)
    ap.add_argument("--server-src", help="run the server from this source dir")
    ap.add_argument("--engines", default="lmdb,sqlite")
    ap.add_argument("--skip-a", action="store_true")
    ap.add_argument("--skip-b", action="store_true")
    args = ap.parse_args()
    if args.server_src:
        os.environ["PYTHONPATH"] = args.server_src
    work = Path(tempfile.mkdtemp(prefix="bench-dbw-"))
    try:
        if not args.skip_a:
            print("A. object-table inserts, metadata_fsync = true")
            part_a(work, args.inserts)
        if not args.skip_b:
            print(f"B. GET latency on a server with metadata_fsync = true"
                  f"{' (server from ' + args.server_src + ')' if args.server_src else ''}")
            for engine in args.engines.split(","):
                part_b(work, args.seconds, args.flood, engine)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
