"""Server CPU per 4 KiB PUT (or GET), and requests per second, of two pygarage source trees,
side by side in one run.

On a shared, loaded machine the CPU one request costs drifts by tens of percent from one run
to the next; two separate runs cannot show a 10 % change. Here both servers run at once and
take turns, in short bursts (alternating which goes first), so both see the same load; the
figures are the medians over the bursts of each server's CPU (user + system) per request
and of its rate (a change that only shortens waits, for the GIL say, shows in the rate
alone). GET bursts read objects PUT beforehand, untimed.

    python bench/ab_small.py --a /path/to/old/src --b src --bursts 12 --per-burst 200
    python bench/ab_small.py --a /path/to/old/src --b src --op get
    python bench/ab_small.py --a src --a-env PYGARAGE_EVENT_LOOP=asyncio --b src   # two loops
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import BUCKET, SMALL_SIZE, Signer, _proc_cpu  # noqa: E402

from pygarage.testing.node import GarageNode  # noqa: E402


def signed(signer: Signer, keys: list[str], op: str = "put") -> list[Any]:
    """One request per key, signed: a PUT of its own random body (a new block each: no
    deduplication), or a GET of what such a PUT stored."""
    if op == "put":
        return [(signer.sign("PUT", f"/{BUCKET}/{k}", {"Content-Length": str(SMALL_SIZE)}),
                 os.urandom(SMALL_SIZE)) for k in keys]
    return [(signer.sign("GET", f"/{BUCKET}/{k}"), None) for k in keys]


async def send(session: aiohttp.ClientSession, reqs: list[Any], concurrency: int,
               op: str = "put") -> None:
    """The signed requests, `concurrency` at a time; each answer checked."""
    it = iter(reqs)

    async def worker() -> None:
        for (url, headers), payload in it:
            async with session.request(op.upper(), url, data=payload, headers=headers) as r:
                body = await r.read()
                if r.status != 200 or (op == "get" and len(body) != SMALL_SIZE):
                    raise RuntimeError(f"{op}: HTTP {r.status} {body[:200]!r}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def burst(signer: Signer, session: aiohttp.ClientSession, keys: list[str],
                concurrency: int, op: str = "put") -> None:
    await send(session, signed(signer, keys, op), concurrency, op)


async def run(args: argparse.Namespace, work: Path) -> None:
    nodes: dict[str, GarageNode] = {}
    try:
        for name, src, extra in (("a", args.a, args.a_env), ("b", args.b, args.b_env)):
            node = GarageNode(work / name)
            node.start(env={"PYTHONPATH": src, **dict(kv.split("=", 1) for kv in extra)})
            nodes[name] = node
        signers = {}
        for name, node in nodes.items():
            key_id, secret = node.create_key("bench")
            node.create_bucket(BUCKET, key_id)
            signers[name] = Signer(node.endpoint, key_id, secret, "garage")
        per_req: dict[str, list[float]] = {"a": [], "b": []}
        # Wall time too: CPU per request misses time a request spends waiting (for the GIL,
        # say), which the rate shows.
        rate: dict[str, list[float]] = {"a": [], "b": []}
        conns = {n: aiohttp.TCPConnector(limit=args.concurrency) for n in nodes}
        sessions = {n: aiohttp.ClientSession(connector=conns[n]) for n in nodes}
        try:
            for n in nodes:  # warm-up, untimed
                await burst(signers[n], sessions[n], [f"warm/{i}" for i in range(50)],
                            args.concurrency)
            for b in range(args.bursts):
                order = ["a", "b"] if b % 2 == 0 else ["b", "a"]
                for n in order:
                    proc = nodes[n].proc
                    assert proc is not None
                    keys = [f"k{b}/{i}" for i in range(args.per_burst)]
                    if args.op == "get":
                        await burst(signers[n], sessions[n], keys, args.concurrency)
                        await asyncio.sleep(args.settle)  # the PUTs' background work too
                    c0, t0 = _proc_cpu(proc.pid), time.perf_counter()
                    await burst(signers[n], sessions[n], keys, args.concurrency, args.op)
                    rate[n].append(args.per_burst / (time.perf_counter() - t0))
                    # Work a burst leaves to background workers (Merkle records) counts too.
                    await asyncio.sleep(args.settle)
                    per_req[n].append((_proc_cpu(proc.pid) - c0) / args.per_burst)
        finally:
            for s in sessions.values():
                await s.close()
        op = args.op.upper()
        for n, src, extra in (("a", args.a, args.a_env), ("b", args.b, args.b_env)):
            xs = sorted(per_req[n])
            label = " ".join([src, *extra])
            print(f"{n} ({label}): server CPU per 4 KiB {op} median "
                  f"{statistics.median(xs) * 1e3:.2f} ms (quartiles "
                  f"{xs[len(xs) // 4] * 1e3:.2f}-{xs[3 * len(xs) // 4] * 1e3:.2f}),"
                  f" {statistics.median(rate[n]):.0f} {op}/s")
        ratio = statistics.median(per_req["b"]) / statistics.median(per_req["a"])
        print(f"b / a: CPU per {op} {ratio:.2f}, {op}/s "
              f"{statistics.median(rate['b']) / statistics.median(rate['a']):.2f}")
    finally:
        for node in nodes.values():
            node.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="source dir (PYTHONPATH) of server a")
    p.add_argument("--b", required=True, help="source dir (PYTHONPATH) of server b")
    p.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE",
                   help="environment of server a (repeatable), e.g. PYGARAGE_EVENT_LOOP=asyncio")
    p.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE",
                   help="environment of server b (repeatable)")
    p.add_argument("--bursts", type=int, default=12)
    p.add_argument("--per-burst", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--op", choices=("put", "get"), default="put")
    p.add_argument("--settle", type=float, default=0.5, metavar="S",
                   help="seconds after each burst before its CPU is read, so that work "
                        "left to background workers (Merkle updates) is counted")
    args = p.parse_args()
    args.a, args.b = str(Path(args.a).resolve()), str(Path(args.b).resolve())
    with tempfile.TemporaryDirectory(prefix="ab-small-") as d:
        asyncio.run(run(args, Path(d)))


if __name__ == "__main__":
    main()
