#!/usr/bin/env python3
"""Where a small request's CPU goes inside one node: per thread of the server (the event
loop, the database writer, the block I/O threads, others), user and kernel time, per
request, for 4 KiB PUTs then GETs at --concurrency.

Why it matters: only one thread runs Python at a time (the GIL), so the requests per
second of a node cannot exceed 1 / (user CPU of all its threads per request), however idle
the second core is; kernel time (file creation, socket I/O) runs in parallel. Compare the
user total with the rate printed next to it.

Not a test: prints a table and writes bench/results/server_threads-<timestamp>.json.

    python bench/server_threads.py                     # 3,000 PUTs then GETs, 16 at a time
    python bench/server_threads.py --count 1000 --db-engine sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab_small import send, signed  # noqa: E402
from results import save  # noqa: E402
from throughput import BUCKET, Signer  # noqa: E402

from pygarage.testing.node import GarageNode  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, tuple[float, float]]:
    """(user, system) seconds of each live thread of `pid`, by role: its kernel name
    (util/thread_name.py), "event loop" for the main thread."""
    out: dict[str, tuple[float, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        role = "event loop" if tid == str(pid) else name
        out[f"{role}/{tid}"] = (int(fields[11]) / _TICK, int(fields[12]) / _TICK)
    return out


def by_role(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]],
            n: int) -> dict[str, dict[str, float]]:
    """Per role: user and system microseconds per request, and how many threads."""
    roles: dict[str, dict[str, float]] = defaultdict(lambda: {"user_us": 0.0, "sys_us": 0.0,
                                                              "threads": 0})
    for key, (u, s) in after.items():
        u0, s0 = before.get(key, (0.0, 0.0))
        r = roles[key.rsplit("/", 1)[0]]
        r["user_us"] += (u - u0) / n * 1e6
        r["sys_us"] += (s - s0) / n * 1e6
        r["threads"] += 1
    return dict(roles)


async def phase(node: GarageNode, signer: Signer, session: aiohttp.ClientSession, op: str,
                keys: list[str], concurrency: int) -> dict[str, Any]:
    reqs = signed(signer, keys, op.lower())  # client work, outside the timing
    assert node.proc is not None
    before = thread_cpu(node.proc.pid)
    t0 = time.perf_counter()
    await send(session, reqs, concurrency, op.lower())
    seconds = time.perf_counter() - t0
    roles = by_role(before, thread_cpu(node.proc.pid), len(keys))
    user = sum(r["user_us"] for r in roles.values())
    return {"ops_per_s": len(keys) / seconds, "seconds": seconds, "roles": roles,
            "user_us_total": user, "sys_us_total": sum(r["sys_us"] for r in roles.values()),
            "gil_bound_ops_per_s": 1e6 / user if user else None}


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    node = GarageNode(work / "node", db_engine=args.db_engine)
    node.start()
    try:
        key_id, secret = node.create_key("bench")
        node.create_bucket(BUCKET, key_id)
        signer = Signer(node.endpoint, key_id, secret, "garage")
        conn = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=conn) as session:
            warm = [f"warm/{i}" for i in range(200)]
            await phase(node, signer, session, "PUT", warm, args.concurrency)
            keys = [f"k/{i:06d}" for i in range(args.count)]
            return {op: await phase(node, signer, session, op, keys, args.concurrency)
                    for op in ("PUT", "GET")}
    finally:
        node.stop()


def _print(res: dict[str, Any]) -> None:
    for op in ("PUT", "GET"):
        r = res[op]
        print(f"\n4 KiB {op}: {r['ops_per_s']:.0f}/s; server CPU per request (us):")
        print(f"  {'thread':<16} {'n':>3} {'user':>7} {'kernel':>7}")
        for role, v in sorted(r["roles"].items(),
                              key=lambda kv: -(kv[1]["user_us"] + kv[1]["sys_us"])):
            if v["user_us"] + v["sys_us"] >= 1:
                print(f"  {role:<16} {v['threads']:>3} {v['user_us']:>7.0f} "
                      f"{v['sys_us']:>7.0f}")
        print(f"  {'total':<16} {'':>3} {r['user_us_total']:>7.0f} {r['sys_us_total']:>7.0f}")
        if r["gil_bound_ops_per_s"]:
            print(f"  one thread at a time in Python caps this at "
                  f"{r['gil_bound_ops_per_s']:.0f}/s (1 / user total)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=3000, help="PUTs, then GETs of them")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--db-engine", choices=("lmdb", "sqlite"), default="lmdb")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="server-threads-") as d:
        res = asyncio.run(run(args, Path(d)))
    _print(res)
    res["options"] = vars(args)
    res["machine"] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                      "loadavg": os.getloadavg(),
                      "date": datetime.now(UTC).isoformat(timespec="seconds")}
    save("server_threads", res)


if __name__ == "__main__":
    main()
