#!/usr/bin/env python3
"""Throughput of one pygarage node on loopback, next to the machine's limits and moto_server.

Not a test: prints a table and writes bench/results/throughput-<timestamp>.json.
See bench/README.md for how to run it and how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import mmap
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from peers import (  # bench/ is on sys.path when run as a script
    GarageCluster,
    MotoServer,
    Peer,
    SeaweedFS,
)
from results import save  # bench/ is on sys.path when run as a script
from yarl import URL

from pygarage.testing.node import GarageNode

MiB = 1 << 20
CHUNK = MiB  # client write size, disk limit I/O size
SMALL_SIZE = 4096
BUCKET = "bench"


# --------------------------------------------------------------------------- signing

class _UnsignedPayloadAuth(S3SigV4Auth):
    """SigV4 header auth with x-amz-content-sha256: UNSIGNED-PAYLOAD."""

    def _should_sha256_sign_payload(self, request: AWSRequest) -> bool:
        return False


class Signer:
    def __init__(self, endpoint: str, key_id: str, secret: str, region: str):
        self.endpoint = endpoint
        self.auth = _UnsignedPayloadAuth(Credentials(key_id, secret), "s3", region)

    def sign(self, method: str, path: str, headers: dict[str, str] | None = None
             ) -> tuple[URL, dict[str, str]]:
        url = f"{self.endpoint}{path}"
        req = AWSRequest(method=method, url=url, headers=dict(headers or {}))
        self.auth.add_auth(req)
        return URL(url, encoded=True), dict(req.headers.items())


# --------------------------------------------------------------------------- CPU accounting

def _proc_cpu(pid: int, kernel_only: bool = False) -> float:
    """utime + stime (or stime only) of a process, its reaped children and its live child
    processes (pygarage's block write helper), in seconds."""
    total = 0.0
    for p in (pid, *_children(pid)):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # utime, stime, then (of the process itself) cutime, cstime of its reaped children
        own = fields[11:15] if p == pid else fields[11:13]
        total += sum(int(f) for i, f in enumerate(own) if not kernel_only or i % 2)
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(name))
    return found


def _machine_busy() -> float:
    """CPU seconds spent by everything on the machine (all CPUs), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    busy = sum(int(f) for i, f in enumerate(fields[:8]) if i not in (3, 4))  # - idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


class Phase:
    """Wall time and CPU seconds of this process, of the server and of everything else on
    the machine (other processes compete for the same cores), for one timed phase."""

    def __init__(self, server_pid: int | None):
        self.server_pid = server_pid

    def __enter__(self) -> Phase:
        self.c0 = time.process_time()
        self.s0 = _proc_cpu(self.server_pid) if self.server_pid else 0.0
        self.k0 = _proc_cpu(self.server_pid, kernel_only=True) if self.server_pid else 0.0
        self.m0 = _machine_busy()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.client_cpu = time.process_time() - self.c0
        self.server_cpu = (_proc_cpu(self.server_pid) - self.s0) if self.server_pid else None
        self.server_sys = (_proc_cpu(self.server_pid, kernel_only=True) - self.k0
                           ) if self.server_pid else None
        self.other_cpu = max(0.0, _machine_busy() - self.m0 - self.client_cpu
                             - (self.server_cpu or 0.0))

    @staticmethod
    def total(phases: list[Phase]) -> Phase:
        """One phase standing for several of the same server: times and CPU summed."""
        t = Phase(phases[0].server_pid)
        t.wall = sum(p.wall for p in phases)
        t.client_cpu = sum(p.client_cpu for p in phases)
        t.other_cpu = sum(p.other_cpu for p in phases)
        t.server_cpu = t.server_sys = None
        if all(p.server_cpu is not None and p.server_sys is not None for p in phases):
            t.server_cpu = sum(p.server_cpu or 0.0 for p in phases)
            t.server_sys = sum(p.server_sys or 0.0 for p in phases)
        return t

    def record(self, **extra: Any) -> dict[str, Any]:
        d: dict[str, Any] = {"seconds": round(self.wall, 4),
                             "client_cpu_s": round(self.client_cpu, 3)}
        if self.server_cpu is not None and self.server_sys is not None:
            d["server_cpu_s"] = round(self.server_cpu, 3)
            d["server_kernel_cpu_s"] = round(self.server_sys, 3)  # part of server_cpu_s
        d["other_processes_cpu_s"] = round(self.other_cpu, 3)
        d.update(extra)
        return d


@contextlib.contextmanager
def profiled(pid: int | None, out_dir: Path | None, name: str) -> Iterator[None]:
    """py-spy record the server during a phase, if --profile-dir was given."""
    if pid is None or out_dir is None:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(["py-spy", "record", "-p", str(pid), "-r", "200", "-f", "raw",
                            "-o", str(out_dir / f"{name}.txt"), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield
    finally:
        spy.send_signal(2)
        spy.wait(30)


def mbps(nbytes: int, seconds: float) -> float:
    return nbytes / MiB / seconds if seconds > 0 else float("inf")


# --------------------------------------------------------------------------- machine limits

def limit_md5(mv: memoryview, size: int) -> tuple[float, str]:
    m = hashlib.md5(usedforsecurity=False)
    t0 = time.perf_counter()
    for off in range(0, size, CHUNK):
        m.update(mv[off:off + CHUNK])
    return mbps(size, time.perf_counter() - t0), m.hexdigest()


def limit_disk(mv: memoryview, size: int, directory: Path) -> tuple[float, float]:
    """-> (write+fsync MiB/s, read MiB/s) of `size` bytes in 1 MiB I/Os in `directory`."""
    path = directory / "bench-disk-limit.tmp"
    try:
        t0 = time.perf_counter()
        with open(path, "wb", buffering=0) as f:
            for off in range(0, size, CHUNK):
                f.write(mv[off:off + CHUNK])
            os.fsync(f.fileno())
        write = mbps(size, time.perf_counter() - t0)
        buf = bytearray(CHUNK)
        got = 0
        t0 = time.perf_counter()
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                got += n
        read = mbps(got, time.perf_counter() - t0)
        assert got == size
        return write, read
    finally:
        path.unlink(missing_ok=True)


def limit_tcp(mv: memoryview, size: int, file: Path | None = None) -> float:
    """A socket server thread sends `size` bytes over loopback to a client that discards:
    from memory, or (`file`) from that file with the kernel's sendfile, as a server of
    files does (no hashing, no HTTP: the most a file server could do on this machine)."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def send() -> None:
        conn, _ = srv.accept()
        with conn:
            if file is None:
                for off in range(0, size, CHUNK):
                    conn.sendall(mv[off:off + CHUNK])
                return
            with open(file, "rb") as f:
                off = 0
                while off < size:
                    off += os.sendfile(conn.fileno(), f.fileno(), off, size - off)

    th = threading.Thread(target=send, daemon=True)
    th.start()
    buf = memoryview(bytearray(CHUNK))
    got = 0
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as c:
        while got < size:
            n = c.recv_into(buf)
            if not n:
                break
            got += n
    dt = time.perf_counter() - t0
    th.join()
    srv.close()
    assert got == size, (got, size)
    return mbps(size, dt)


# --------------------------------------------------------------------------- large object

async def large_put(session: aiohttp.ClientSession, signer: Signer, key: str,
                    mv: memoryview, size: int) -> str:
    url, headers = signer.sign("PUT", f"/{BUCKET}/{key}", {"Content-Length": str(size)})

    async def body() -> AsyncIterator[memoryview]:
        for off in range(0, size, CHUNK):
            yield mv[off:off + CHUNK]

    async with session.put(url, data=body(), headers=headers) as r:
        text = await r.text()
        if r.status != 200:
            raise RuntimeError(f"large PUT: HTTP {r.status}: {text[:500]}")
        return r.headers.get("ETag", "").strip('"')


async def large_get(session: aiohttp.ClientSession, signer: Signer, key: str,
                    mv: memoryview, size: int) -> tuple[int, bool]:
    """Stream the object, comparing every byte with the source (memcmp, far cheaper than
    MD5); -> (bytes received, all equal)."""
    url, headers = signer.sign("GET", f"/{BUCKET}/{key}")
    # The mapped source: its find() restricted to [pos, pos + n) is a memcmp of the chunk
    # in place, without copying each slice out first (0.2 instead of 0.3 ms of client CPU
    # per MiB here, CPU the servers measured would otherwise share).
    src = mv.obj
    assert isinstance(src, mmap.mmap)
    pos = 0
    same = True
    async with session.get(url, headers=headers) as r:
        if r.status != 200:
            raise RuntimeError(f"large GET: HTTP {r.status}: {(await r.text())[:500]}")
        async for chunk in r.content.iter_any():
            n = len(chunk)
            if same and src.find(chunk, pos, pos + n) != pos:
                same = False
            pos += n
    return pos, same and pos == size


def raw_get(url: URL, headers: dict[str, str], mv: memoryview, size: int) -> tuple[int, bool]:
    """Blocking: the same GET as large_get with a minimal HTTP/1.1 client: one socket,
    recv_into one buffer, the same in-place compare with the source. It needs about 0.35
    ms of CPU per MiB here where the aiohttp client needs 0.55-0.6 and keeps a core busy
    at about 1,200 MiB/s: with it, the figure says what the server can send, as the
    loopback baseline's own bare client does. -> (body bytes received, all equal)."""
    src = mv.obj
    assert isinstance(src, mmap.mmap)
    assert url.host is not None and url.port is not None
    target = url.raw_path_qs
    lines = [f"GET {target} HTTP/1.1", f"Host: {url.host}:{url.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    with socket.create_connection((url.host, url.port)) as c:
        c.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            more = c.recv(65536)
            if not more:
                raise RuntimeError(f"raw GET: connection closed in the headers: {head[:200]!r}")
            head += more
        status_headers, _, body = head.partition(b"\r\n\r\n")
        status, *header_lines = status_headers.decode("latin-1").split("\r\n")
        if status.split(" ", 2)[1:2] != ["200"]:
            raise RuntimeError(f"raw GET: {status}")
        fields = {k.strip().lower(): v.strip() for k, _, v in
                  (h.partition(":") for h in header_lines)}
        if "content-length" not in fields:
            raise RuntimeError(f"raw GET: no Content-Length in {fields}")
        length = int(fields["content-length"])
        pos = len(body)
        same = src.find(body, 0, pos) == 0 if body else True
        buf = memoryview(bytearray(4 * MiB))
        while pos < length:
            n = c.recv_into(buf)
            if not n:
                break
            if same and src.find(buf[:n], pos, pos + n) != pos:
                same = False
            pos += n
    return pos, same and pos == size


# --------------------------------------------------------------------------- small objects

async def small_ops(targets: list[Target], payloads: list[bytes], concurrency: int,
                    prefix: str, bursts: int, r: int) -> dict[str, dict[str, Any]]:
    """count PUTs then count GETs of distinct keys on every target, `concurrency` at a
    time. The servers take turns in `bursts` slices of the keys (the order rotated from one
    slice to the next), so that a machine whose speed drifts over seconds (a shared VM)
    weighs on every server alike; a figure is the server's count over the sum of its
    slices' times, its CPU the sum of theirs. Requests are signed before the timed loops
    (signing is client work, not server work)."""
    count = len(payloads)
    keys = [f"{prefix}/{i:06d}" for i in range(count)]
    errors: list[str] = []

    async def run(reqs: list[tuple[URL, dict[str, str]]], lo: int, method: str,
                  session: aiohttp.ClientSession) -> None:
        it = iter(range(len(reqs)))

        async def worker() -> None:
            for j in it:
                url, headers = reqs[j]
                i = lo + j
                data = payloads[i] if method == "PUT" else None
                async with session.request(method, url, data=data, headers=headers) as r:
                    body = await r.read()
                    if r.status != 200:
                        errors.append(f"{method} {i}: HTTP {r.status} {body[:200]!r}")
                    elif method == "GET" and body != payloads[i]:
                        errors.append(f"GET {i}: wrong content")

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    out: dict[str, dict[str, Any]] = {
        t.name: {"count": count, "concurrency": concurrency, "object_size": len(payloads[0]),
                 "bursts": bursts} for t in targets}
    sessions = {t.name: aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, force_close=False),
        auto_decompress=False) for t in targets}
    try:
        for t in targets:  # warm-up (untimed): open the connections, let servers settle
            warm = [t.signer.sign("PUT", f"/{BUCKET}/{prefix}-warm/{i}",
                                  {"Content-Length": str(len(payloads[i]))})
                    for i in range(min(count, 2 * concurrency))]
            await run(warm, 0, "PUT", sessions[t.name])
        edges = [b * count // bursts for b in range(bursts + 1)]
        for method in ("PUT", "GET"):
            reqs = {t.name: [t.signer.sign(method, f"/{BUCKET}/{k}", {
                "Content-Length": str(len(payloads[i]))} if method == "PUT" else None)
                for i, k in enumerate(keys)] for t in targets}
            phases: dict[str, list[Phase]] = {t.name: [] for t in targets}
            for b in range(bursts):
                lo, hi = edges[b], edges[b + 1]
                for t in rotated(targets, r + b):
                    with Phase(t.pid) as p:
                        await run(reqs[t.name][lo:hi], lo, method, sessions[t.name])
                    phases[t.name].append(p)
            for t in targets:
                total = Phase.total(phases[t.name])
                out[t.name][method.lower()] = total.record(
                    ops_per_s=round(count / total.wall, 1))
    finally:
        for session in sessions.values():
            await session.close()
    if errors:
        raise RuntimeError(f"{len(errors)} small-object errors, first: {errors[:3]}")
    return out


# --------------------------------------------------------------------------- peers

async def create_bucket(signer: Signer, patience_s: float = 60) -> None:
    """Create BUCKET, retrying while the server is still starting (weed's S3 port opens
    before its filer reaches a volume server)."""
    deadline = time.monotonic() + patience_s
    while True:
        url, headers = signer.sign("PUT", f"/{BUCKET}")
        async with aiohttp.ClientSession() as s, s.put(url, headers=headers) as r:
            text = await r.text()
            if r.status == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"create bucket: HTTP {r.status}: {text[:500]}")
        await asyncio.sleep(0.5)


# --------------------------------------------------------------------------- main

def machine_info(workdir: Path) -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fs = ""
    with contextlib.suppress(Exception):
        fs = subprocess.run(["df", "-T", str(workdir)], capture_output=True, text=True
                            ).stdout.splitlines()[-1].split()[1]
    return {"nproc": os.cpu_count(), "affinity_cpus": len(os.sched_getaffinity(0)),
            "loadavg_at_start": os.getloadavg(),
            "cpu_model": cpu, "python": sys.version.split()[0],
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "aiohttp": aiohttp.__version__, "workdir_fs": fs,
            "mem_total_mib": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // MiB}


def make_source(path: Path, size: int) -> tuple[mmap.mmap, memoryview]:
    """`size` random (incompressible, not deduplicable) bytes in a file, mapped."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MiB)
            f.write(os.urandom(n))
            left -= n
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
    mm.madvise(mmap.MADV_WILLNEED)
    return mm, memoryview(mm)


@dataclass
class Target:
    name: str
    signer: Signer
    pid: int | None

    @property
    def endpoint(self) -> str:
        return self.signer.endpoint


def measure_limits(mv: memoryview, size: int, data_dir: Path, source: Path
                   ) -> dict[str, Any]:
    md5_rate, md5_hex = limit_md5(mv, size)
    disk_w, disk_r = limit_disk(mv, size, data_dir)
    tcp = limit_tcp(mv, size)
    tcp_file = limit_tcp(mv, size, source)
    return {"md5_mib_s": round(md5_rate, 1), "md5_hex": md5_hex,
            "disk_write_fsync_mib_s": round(disk_w, 1),
            "disk_read_mib_s": round(disk_r, 1), "tcp_loopback_mib_s": round(tcp, 1),
            "sendfile_loopback_mib_s": round(tcp_file, 1),
            "put_limit_mib_s": round(min(md5_rate, disk_w), 1),
            "get_limit_mib_s": round(min(tcp, disk_r), 1)}


async def large_object(t: Target, key: str, mv: memoryview, size: int, md5_hex: str,
                       profile_dir: Path | None, tag: str) -> dict[str, Any]:
    conn = aiohttp.TCPConnector(limit=1)
    prof = profile_dir if t.name == "pygarage" else None
    async with aiohttp.ClientSession(connector=conn, read_bufsize=4 * MiB,
                                     auto_decompress=False,
                                     timeout=aiohttp.ClientTimeout(total=3600)) as s:
        with profiled(t.pid, prof, f"large_put-{tag}"), Phase(t.pid) as p:
            etag = await large_put(s, t.signer, key, mv, size)
        put = p.record(mib_s=round(mbps(size, p.wall), 1))
        with profiled(t.pid, prof, f"large_get-{tag}"), Phase(t.pid) as p:
            got, same = await large_get(s, t.signer, key, mv, size)
        get = p.record(mib_s=round(mbps(size, p.wall), 1))
    url, headers = t.signer.sign("GET", f"/{BUCKET}/{key}")
    with Phase(t.pid) as p:
        raw_got, raw_same = await asyncio.to_thread(raw_get, url, headers, mv, size)
    get_raw = p.record(mib_s=round(mbps(size, p.wall), 1))
    if raw_got != size or not raw_same:
        raise RuntimeError(f"{t.name}: raw GET returned {raw_got} bytes, content equal: "
                           f"{raw_same}")
    if etag != md5_hex:
        raise RuntimeError(f"{t.name}: ETag {etag} != MD5 of the uploaded data {md5_hex}")
    if got != size or not same:
        raise RuntimeError(f"{t.name}: GET returned {got} bytes, content equal: {same}")
    return {"put": put, "get": get, "get_raw": get_raw}


def rotated(items: list[Target], r: int) -> list[Target]:
    """Round r starts with a different server, so none always runs first (or last)."""
    k = r % len(items)
    return items[k:] + items[:k]


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    res: dict[str, Any] = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                           "machine": machine_info(work),
                           "options": {k: str(v) if isinstance(v, Path) else v
                                       for k, v in vars(args).items()},
                           "rounds": []}
    size = args.large_mib * MiB
    node = GarageNode(work / "node", db_engine=args.db_engine)
    res["server"] = {"db_engine": args.db_engine, "block_size": "1 MiB (default)",
                     "compression_level": "1 (default)", "data_fsync": False,
                     "GARAGE_LOG": os.environ.get("GARAGE_LOG", "info")}
    peers: list[Peer] = []
    mm = None
    node.start()
    try:
        assert node.proc is not None
        key_id, secret = node.create_key("bench")
        node.create_bucket(BUCKET, key_id)
        ours = Target("pygarage", Signer(node.endpoint, key_id, secret, "garage"),
                      node.proc.pid)
        if not args.skip_seaweedfs:
            peers.append(SeaweedFS(work / "seaweedfs"))
        if not args.skip_moto:
            peers.append(MotoServer(work))
        if args.cluster:
            print(f"starting a {args.cluster}-node cluster (RF {args.cluster}) ...", flush=True)
            peers.append(GarageCluster(work / "cluster", args.cluster))
        targets = [ours]
        for peer in peers:
            t = Target(peer.name, Signer(peer.endpoint, peer.key_id, peer.secret,
                                         peer.region), peer.pid)
            await create_bucket(t.signer)
            targets.append(t)
        res["seaweedfs_version"] = _weed_version() if not args.skip_seaweedfs else None
        # moto keeps every byte in its Python process: small objects only.
        large_targets = [t for t in targets if t.name != "moto"]

        print(f"generating {args.large_mib} MiB of random data ...", flush=True)
        mm, mv = make_source(work / "source.bin", size)
        for r in range(args.rounds):
            rnd: dict[str, Any] = {"large": {}, "small": {}}
            # New contents every round: a content-addressed store (pygarage) would otherwise
            # find every block of rounds 2+ already stored and write none.
            payloads = [os.urandom(SMALL_SIZE) for _ in range(args.small_count)]
            print(f"round {r + 1}/{args.rounds}: machine limits ...", flush=True)
            rnd["limits"] = measure_limits(mv, size, node.root / "data",
                                           work / "source.bin")
            for t in rotated(large_targets, r):
                print(f"round {r + 1}: {t.name} PUT + GET of {args.large_mib} MiB ...",
                      flush=True)
                rnd["large"][t.name] = await large_object(
                    t, f"large-{r}", mv, size, rnd["limits"]["md5_hex"], args.profile_dir,
                    f"r{r}")
            print(f"round {r + 1}: {args.small_count} x 4 KiB PUT + GET on every server, "
                  f"concurrency {args.concurrency}, taking turns in {args.small_bursts} "
                  "bursts ...", flush=True)
            with profiled(ours.pid, args.profile_dir, f"small-r{r}"):
                rnd["small"] = await small_ops(targets, payloads, args.concurrency,
                                               f"small{r}", args.small_bursts, r)
            res["rounds"].append(rnd)
            print_round(r, summarize_round(rnd), flush=True)
    finally:
        if mm is not None:
            with contextlib.suppress(BufferError):
                mm.close()
        for peer in peers:
            peer.stop()
        node.stop()
    res["machine"]["loadavg_at_end"] = os.getloadavg()
    return res


def _weed_version() -> str:
    with contextlib.suppress(Exception):
        out = subprocess.run(["weed", "version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[0]
    return "?"


FIGURES = [("large PUT MiB/s", "large", "put", "mib_s"),
           ("large GET MiB/s", "large", "get", "mib_s"),
           # The same GET with a client that is not the bottleneck (see raw_get).
           ("large GET, bare client", "large", "get_raw", "mib_s"),
           ("small PUT ops/s", "small", "put", "ops_per_s"),
           ("small GET ops/s", "small", "get", "ops_per_s")]
# (figure, baseline name) -> target ratio of pygarage to it
TARGETS = {("large PUT MiB/s", "limit"): 0.5, ("large GET MiB/s", "limit"): 0.5,
           ("small PUT ops/s", "moto"): 3.0, ("small GET ops/s", "moto"): 4.0}
# Figures without targets: they explain the others.
DIAGNOSTIC = {"large GET, bare client"}
LIMIT_KEY = {"large PUT MiB/s": "put_limit_mib_s", "large GET MiB/s": "get_limit_mib_s",
             "large GET, bare client": "get_limit_mib_s"}


def summarize_round(rnd: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: pygarage's value and its ratio to every baseline of the round
    (seaweedfs, the machine limit for large objects, moto for small ones)."""
    rows = []
    for figure, group, op, unit in FIGURES:
        per = rnd[group]
        ours = per["pygarage"][op][unit]
        bases: dict[str, float] = {name: v[op][unit] for name, v in per.items()
                                   if name != "pygarage"}
        if figure in LIMIT_KEY:
            bases["limit"] = rnd["limits"][LIMIT_KEY[figure]]
        if figure.startswith("large GET") and "sendfile_loopback_mib_s" in rnd["limits"]:
            # No target: shows how much of the gap to `limit` is the kernel's file send.
            bases["sendfile"] = rnd["limits"]["sendfile_loopback_mib_s"]
        rows.append({"figure": figure, "pygarage": ours, "baselines": bases,
                     "ratios": {n: round(ours / b, 2) for n, b in bases.items() if b}})
    return rows


def print_round(r: int, rows: list[dict[str, Any]], flush: bool = False) -> None:
    print(f"  round {r + 1}: " + "; ".join(
        f"{row['figure']} {row['pygarage']:.0f} (" + ", ".join(
            f"{row['ratios'][n]:.2f}x {n}" for n in row["ratios"]) + ")" for row in rows),
        flush=flush)


def summarize(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Per figure and baseline: the range over rounds of pygarage / baseline."""
    per_round = [summarize_round(rnd) for rnd in res["rounds"]]
    out = []
    for i, (figure, *_rest) in enumerate(FIGURES):
        rows = [pr[i] for pr in per_round]
        ours = [row["pygarage"] for row in rows]
        entry: dict[str, Any] = {"figure": figure, "pygarage_min": min(ours),
                                 "pygarage_max": max(ours), "vs": {}}
        for name in rows[0]["ratios"]:
            ratios = [row["ratios"][name] for row in rows if name in row["ratios"]]
            base = [row["baselines"][name] for row in rows]
            target = None if figure in DIAGNOSTIC else TARGETS.get(
                (figure, name), 1.0 if name == "seaweedfs" else None)
            entry["vs"][name] = {"baseline_min": min(base), "baseline_max": max(base),
                                 "ratio_min": min(ratios), "ratio_max": max(ratios),
                                 "ratios": ratios, "target": target,
                                 "met_every_round": None if target is None
                                 else all(x >= target for x in ratios)}
        out.append(entry)
    return out


def cpu_summary(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Per figure and server: CPU seconds the server spent per unit of work (ms per MiB for
    large objects, ms per request for small ones) and the cores server and client kept busy
    together, as ranges over the rounds. Tells a server that needs more CPU for the same
    work from one that needs as much but can only use one core at a time (pygarage runs its
    Python in one thread at a time; a Go server uses every core). For --cluster, the CPU is
    node 1's alone."""
    large_mib = int(res["options"]["large_mib"])
    out = []
    for figure, group, op, _unit in FIGURES:
        per_server: dict[str, dict[str, list[float]]] = {}
        for rnd in res["rounds"]:
            for name, v in rnd[group].items():
                ph = v.get(op)  # results of older runs have no get_raw
                if ph is None or ph.get("server_cpu_s") is None:
                    continue
                work = large_mib if group == "large" else v["count"]
                d = per_server.setdefault(name, {"cpu_ms": [], "cores": []})
                d["cpu_ms"].append(1000 * ph["server_cpu_s"] / work)
                d["cores"].append((ph["server_cpu_s"] + ph["client_cpu_s"]) / ph["seconds"])
        out.append({"figure": figure, "unit": "ms/MiB" if group == "large" else "ms/request",
                    "servers": {n: {"cpu_ms_min": round(min(d["cpu_ms"]), 3),
                                    "cpu_ms_max": round(max(d["cpu_ms"]), 3),
                                    "cores_min": round(min(d["cores"]), 2),
                                    "cores_max": round(max(d["cores"]), 2)}
                                for n, d in per_server.items()}})
    return out


def print_cpu_summary(rows: list[dict[str, Any]]) -> None:
    print("server CPU per unit of work, and cores busy (server + client), over the rounds:")
    for row in rows:
        if not row["servers"]:
            continue  # a figure the results predate
        print(f"  {row['figure']:<22} " + "; ".join(
            f"{n} {_rng(d['cpu_ms_min'], d['cpu_ms_max'], '.2f')} {row['unit']}, "
            f"{_rng(d['cores_min'], d['cores_max'], '.2f')} cores"
            for n, d in row["servers"].items()))


def _rng(lo: float, hi: float, fmt: str) -> str:
    return f"{lo:{fmt}}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}}-{hi:{fmt}}"


def print_table(res: dict[str, Any]) -> None:
    m = res["machine"]
    print(f"\nmachine: {m['nproc']} CPUs ({m['cpu_model']}), Python {m['python']}, "
          f"db_engine={res['server']['db_engine']}, {len(res['rounds'])} rounds, "
          f"seaweedfs {res.get('seaweedfs_version')}")
    for rnd in res["rounds"]:
        lim = rnd["limits"]
        print(f"limits (MiB/s): MD5 {lim['md5_mib_s']}, disk write+fsync "
              f"{lim['disk_write_fsync_mib_s']}, disk read {lim['disk_read_mib_s']}, "
              f"TCP loopback {lim['tcp_loopback_mib_s']} (from a file by sendfile "
              f"{lim.get('sendfile_loopback_mib_s', '?')})")
    hdr = (f"{'figure':<22} {'pygarage':>11}  {'baseline':<10} {'baseline':>11} "
           f"{'ratio (per round)':<24} target")
    print(hdr)
    print("-" * len(hdr))
    for e in res["summary"]:
        first = True
        for name, v in e["vs"].items():
            ours = _rng(e["pygarage_min"], e["pygarage_max"], ".0f") if first else ""
            label = e["figure"] if first else ""
            first = False
            ratios = " ".join(f"{x:.2f}" for x in v["ratios"])
            tgt = "" if v["target"] is None else (
                f">= {v['target']}x " + ("ok" if v["met_every_round"] else "MISSED"))
            print(f"{label:<22} {ours:>11}  {name:<10} "
                  f"{_rng(v['baseline_min'], v['baseline_max'], '.0f'):>11} "
                  f"{ratios:<24} {tgt}")
    print("CPU seconds client/server/other processes (pygarage, last round): " + ", ".join(
        f"{name} {ph['client_cpu_s']}/{ph.get('server_cpu_s')}/{ph['other_processes_cpu_s']}"
        for name, ph in (("large PUT", res["rounds"][-1]["large"]["pygarage"]["put"]),
                         ("large GET", res["rounds"][-1]["large"]["pygarage"]["get"]),
                         ("small PUT", res["rounds"][-1]["small"]["pygarage"]["put"]),
                         ("small GET", res["rounds"][-1]["small"]["pygarage"]["get"]))))
    print(f"load average at start {m['loadavg_at_start'][0]:.2f}, at end "
          f"{m['loadavg_at_end'][0]:.2f} (other processes share the same CPUs)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--large-mib", type=int, default=1024, help="large object size (MiB)")
    ap.add_argument("--small-count", type=int, default=5000, help="number of 4 KiB objects")
    ap.add_argument("--concurrency", type=int, default=16, help="small-object concurrency")
    ap.add_argument("--small-bursts", type=int, default=5, metavar="N",
                    help="the servers take turns in N slices of the small objects "
                         "(1: each server does all of its objects at once)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds; each runs every server once, in a rotated order")
    ap.add_argument("--skip-seaweedfs", action="store_true", help="no SeaweedFS baseline")
    ap.add_argument("--skip-moto", action="store_true", help="no moto_server baseline")
    ap.add_argument("--cluster", type=int, default=0, metavar="N",
                    help="also run an N-node loopback cluster with replication_factor N "
                         "(the client talks to node 1; its CPU figures are node 1's)")
    ap.add_argument("--db-engine", choices=["lmdb", "sqlite"], default="lmdb")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the nodes and scratch files go (default: a temp dir)")
    ap.add_argument("--profile-dir", type=Path, default=None,
                    help="py-spy record the server per phase into this dir (needs py-spy)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if not 1 <= args.small_bursts <= args.small_count:
        ap.error("--small-bursts must be between 1 and --small-count")
    work = Path(tempfile.mkdtemp(prefix="pygarage-bench-", dir=args.workdir))
    try:
        res = asyncio.run(bench(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["summary"] = summarize(res)
    res["cpu_summary"] = cpu_summary(res)
    print_table(res)
    print_cpu_summary(res["cpu_summary"])
    save("throughput", res)


if __name__ == "__main__":
    main()
