#!/usr/bin/env python3
"""RPC latency and throughput between two processes on loopback, beside a raw TCP echo of
the same payloads measured in the same run.

Not a test: prints a table and writes bench/results/rpc-<timestamp>.json.
See bench/README.md for how to run it and how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey
from results import save  # bench/ is on sys.path when run as a script

from pygarage.net.conn import PRIO_BACKGROUND, PRIO_HIGH, PRIO_NORMAL
from pygarage.net.netapp import NetApp
from pygarage.net.peer import IncomingRequest, PeerConnection, Reply

MiB = 1 << 20
SMALL = 64  # bytes of a small call's payload


# --------------------------------------------------------------------------- server process

class _Echo(asyncio.Protocol):
    """Raw TCP baseline with the RPC's message pattern: a message is kind(1) | length(4) |
    payload; once it has fully arrived the answer is the payload itself (kind "e") or a
    single byte (kind "a"). No framing, no encryption, no copy of the payload in Python:
    received chunks are kept as they are and written back as they are."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.t = transport
        self.head = b""
        self.chunks: list[memoryview] = []
        self.left = -1  # payload bytes still to come; -1 while reading a header

    def data_received(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.left < 0:
                need = 5 - len(self.head)
                self.head += bytes(view[:need])
                view = view[need:]
                if len(self.head) == 5:
                    self.left = int.from_bytes(self.head[1:], "big")
                continue
            take = view[:self.left]
            view = view[len(take):]
            self.left -= len(take)
            if self.head[0] == ord("e"):
                self.chunks.append(take)
            if self.left == 0:
                for c in self.chunks or [memoryview(b"k")]:
                    self.t.write(c)
                self.head, self.chunks, self.left = b"", [], -1


async def _all(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


async def _serve(secret: bytes) -> None:
    app = NetApp(secret, SigningKey.generate())

    # Like the raw echo: keep the received chunks as they are (no join) and send them back;
    # the sink only counts, as the raw server does for an upload.
    async def echo(req: IncomingRequest) -> Any:
        if req.stream is None:
            return req.body
        chunks = [c async for c in req.stream]
        return Reply(sum(len(c) for c in chunks), _all(chunks))

    async def sink(req: IncomingRequest) -> Any:
        assert req.stream is not None
        n = 0
        async for c in req.stream:
            n += len(c)
        return n

    app.register("echo", echo)
    app.register("sink", sink)
    await app.listen("127.0.0.1", 0)
    raw = await asyncio.get_running_loop().create_server(_Echo, "127.0.0.1", 0)
    raw_port = raw.sockets[0].getsockname()[1]
    print(json.dumps({"rpc": app.port, "raw": raw_port, "id": app.id.hex()}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF


# --------------------------------------------------------------------------- raw client

class _RawClient(asyncio.Protocol):
    """Send one message, wait for its whole answer."""

    def __init__(self) -> None:
        self.want = 0
        self.got = 0
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= self.want and self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def send(self, payload: bytes, echo: bool) -> None:
        self.want, self.got = (len(payload) if echo else 1), 0
        self.done = asyncio.get_running_loop().create_future()
        self.t.write((b"e" if echo else b"a") + len(payload).to_bytes(4, "big"))
        self.t.write(payload)
        await self.done


# --------------------------------------------------------------------------- measurements

async def _timed(n: int, fn: Callable[[], Awaitable[None]]) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    return out


async def _rate(seconds: float, conc: int, fn: Callable[[], Awaitable[None]]) -> float:
    """Operations per second with `conc` workers running `fn` in a loop."""
    count = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await fn()
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return count / (time.perf_counter() - t0)


async def _rate_cpu(seconds: float, conc: int, fn: Callable[[], Awaitable[None]],
                    server_pid: int) -> dict[str, float]:
    """_rate, with the CPU time (user + system) both processes spent per operation."""
    c0, s0 = time.process_time(), _proc_cpu(server_pid)
    t0 = time.perf_counter()
    rate = await _rate(seconds, conc, fn)
    ops = rate * (time.perf_counter() - t0)
    return {"rate": rate, "cpu_ms_client": (time.process_time() - c0) / ops * 1e3,
            "cpu_ms_server": (_proc_cpu(server_pid) - s0) / ops * 1e3}


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _lat(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50_us": statistics.median(s) * 1e6, "p99_us": s[int(len(s) * 0.99)] * 1e6}


async def bench(args: argparse.Namespace, secret: bytes, ports: dict[str, Any],
                server_pid: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    app = NetApp(secret, SigningKey.generate())
    link: PeerConnection = await app.connect("127.0.0.1", ports["rpc"],
                                             expected=bytes.fromhex(ports["id"]))
    raws = [(await loop.create_connection(_RawClient, "127.0.0.1", ports["raw"]))[1]
            for _ in range(args.concurrency)]
    small = secrets.token_bytes(SMALL)
    big = secrets.token_bytes(MiB)
    free = list(raws)

    async def rpc_small() -> None:
        await link.call("echo", small, prio=PRIO_NORMAL)

    async def rpc_echo() -> None:
        n, s = await link.call("echo", None, stream=big)
        assert n == MiB and s is not None
        got = 0
        async for c in s:  # counted, not joined: the raw client only counts too
            got += len(c)
        assert got == MiB

    async def rpc_upload() -> None:
        n, _ = await link.call("sink", None, stream=big)
        assert n == MiB

    def raw(payload: bytes, echo: bool) -> Callable[[], Awaitable[None]]:
        async def go() -> None:
            c = free.pop()
            try:
                await c.send(payload, echo)
            finally:
                free.append(c)
        return go

    raw_small, raw_echo, raw_upload = raw(small, True), raw(big, True), raw(big, False)
    for fn in (rpc_small, raw_small, rpc_echo, raw_echo, rpc_upload, raw_upload):
        for _ in range(20):  # warm up
            await fn()
    res: dict[str, Any] = {}
    res["latency_small"] = {"rpc": _lat(await _timed(args.samples, rpc_small)),
                            "raw": _lat(await _timed(args.samples, raw_small))}
    res["latency_1mib_echo"] = {"rpc": _lat(await _timed(args.samples // 10, rpc_echo)),
                                "raw": _lat(await _timed(args.samples // 10, raw_echo))}
    conc = f"concurrency_{args.concurrency}"
    res["small_calls_per_s"] = {
        "sequential": {"rpc": await _rate(args.seconds, 1, rpc_small),
                       "raw": await _rate(args.seconds, 1, raw_small)},
        conc: {"rpc": await _rate(args.seconds, args.concurrency, rpc_small),
               "raw": await _rate(args.seconds, args.concurrency, raw_small)},
    }
    # Several rounds, RPC and raw alternating, so that load from elsewhere on the machine
    # hits both alike; medians are reported, the per-round figures kept in the JSON.
    for name, r_fn, w_fn in (("mib_per_s_1mib_upload", rpc_upload, raw_upload),
                             ("mib_per_s_1mib_echo", rpc_echo, raw_echo)):
        res[name] = {}
        for mode, conc_n in (("sequential", 1), ("concurrency_4", 4)):
            rounds = []
            for _ in range(args.rounds):
                rounds.append({
                    "rpc": await _rate_cpu(args.seconds, conc_n, r_fn, server_pid),
                    "raw": await _rate_cpu(args.seconds, conc_n, w_fn, server_pid)})
            res[name][mode] = {
                side: statistics.median(r[side]["rate"] for r in rounds)
                for side in ("rpc", "raw")}
            res[name][mode]["ratio"] = statistics.median(
                r["rpc"]["rate"] / r["raw"]["rate"] for r in rounds)
            res[name][mode]["cpu_ms_per_mib"] = {
                side: {who: statistics.median(r[side][f"cpu_ms_{who}"] for r in rounds)
                       for who in ("client", "server")} for side in ("rpc", "raw")}
            res[name][mode]["rounds"] = rounds
    # Priorities: interactive calls while 4 background uploads keep the link full.
    stop = False

    async def background() -> None:
        while not stop:
            n, _ = await link.call("sink", None, stream=big, prio=PRIO_BACKGROUND)
            assert n == MiB

    bulk = [asyncio.create_task(background()) for _ in range(4)]
    await asyncio.sleep(0.2)

    samples = []
    for _ in range(max(args.samples // 5, 50)):
        t0 = time.perf_counter()
        await link.call("echo", small, prio=PRIO_HIGH)
        samples.append(time.perf_counter() - t0)
        await asyncio.sleep(0.001)  # a caller, not a flood
    res["latency_small_high_prio_under_bulk"] = _lat(samples)
    stop = True
    await asyncio.gather(*bulk)
    res["cpu_seconds"] = {"client": time.process_time(), "server": _proc_cpu(server_pid)}
    await app.close()
    for r in raws:
        r.t.close()
    return res


def _print(res: dict[str, Any]) -> None:
    print(f"{'figure':<44} {'rpc':>10} {'raw tcp':>10} {'ratio':>7}")
    for name in ("latency_small", "latency_1mib_echo"):
        r, w = res[name]["rpc"]["p50_us"], res[name]["raw"]["p50_us"]
        print(f"{name + ' p50 (us)':<44} {r:>10.0f} {w:>10.0f} {w / r:>7.2f}")
    for name, v in res["small_calls_per_s"].items():
        r, w = v["rpc"], v["raw"]
        print(f"{'small_calls_per_s ' + name:<44} {r:>10.0f} {w:>10.0f} {r / w:>7.2f}")
    for name in ("mib_per_s_1mib_upload", "mib_per_s_1mib_echo"):
        for mode, v in res[name].items():
            print(f"{name + ' ' + mode:<44} {v['rpc']:>10.0f} {v['raw']:>10.0f} "
                  f"{v['ratio']:>7.2f}")
    print("CPU ms per 1 MiB (median; client + server):")
    for name in ("mib_per_s_1mib_upload", "mib_per_s_1mib_echo"):
        for mode, v in res[name].items():
            cpu = v["cpu_ms_per_mib"]
            print(f"  {name + ' ' + mode:<42} rpc {cpu['rpc']['client']:.2f} + "
                  f"{cpu['rpc']['server']:.2f}   raw {cpu['raw']['client']:.2f} + "
                  f"{cpu['raw']['server']:.2f}")
    pb = res["latency_small_high_prio_under_bulk"]
    print(f"small call at high priority under 4 background 1 MiB uploads (us): "
          f"p50 {pb['p50_us']:.0f}, p99 {pb['p99_us']:.0f}")
    up = res["mib_per_s_1mib_upload"]["concurrency_4"]
    ok = up["ratio"] >= 0.5
    print(f"1 MiB bodies (upload, concurrency 4) at >= 50% of raw TCP: "
          f"{'ok' if ok else 'MISSED'}")
    print(f"CPU seconds: client {res['cpu_seconds']['client']:.1f}, "
          f"server {res['cpu_seconds']['server']:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--serve", metavar="SECRET_HEX", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each rate figure")
    ap.add_argument("--samples", type=int, default=2000, help="latency samples (small calls)")
    ap.add_argument("--concurrency", type=int, default=16, help="small calls in flight")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each 1 MiB figure")
    args = ap.parse_args()
    if args.serve:
        asyncio.run(_serve(bytes.fromhex(args.serve)))
        return
    secret = secrets.token_bytes(32)
    proc = subprocess.Popen([sys.executable, __file__, "--serve", secret.hex()],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        assert proc.stdout is not None
        ports = json.loads(proc.stdout.readline())
        res = asyncio.run(bench(args, secret, ports, proc.pid))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    res["machine"] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                      "loadavg": os.getloadavg(),
                      "date": datetime.now(UTC).isoformat(timespec="seconds")}
    _print(res)
    save("rpc", res)


if __name__ == "__main__":
    main()
