"""Concurrent S3 clients for the fault tests: threads doing PUT/GET/DELETE/LIST on a small
key space through random nodes, recording every operation (start, end, outcome) for
testing/checker.py; then verification reads of every key and listings through every node.
Never imported by production code."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .checker import DELETE, GET, LIST, PUT, Op, make_body, parse_body

ClientFactory = Callable[[int], Any]  # node index -> a boto3 S3 client for that node


@dataclass
class Mix:
    put: float = 0.4
    get: float = 0.35
    delete: float = 0.15
    listing: float = 0.1  # the rest: ListObjectsV2 of the prefix
    # (probability, min, max) body sizes: small ones are stored inline in the object entry,
    # large ones go to blocks (with a small block_size, several).
    sizes: list[tuple[float, int, int]] = field(
        default_factory=lambda: [(0.85, 100, 2500), (0.15, 20_000, 150_000)])


class Workload:
    def __init__(self, client_for: ClientFactory, nodes: list[int], bucket: str, *,
                 prefix: str = "ck/", keys: int = 40, seed: int = 0, mix: Mix | None = None):
        self.client_for = client_for
        self.nodes = nodes
        self.bucket = bucket
        self.prefix = prefix
        self.keys = [f"{prefix}k{i:03d}" for i in range(keys)]
        self.seed = seed
        self.mix = mix or Mix()
        self.history: list[Op] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._count = 0
        self._target = 0

    # ------------------------------------------------------------------ running

    def start(self, ops: int, threads: int = 6) -> None:
        """Run `ops` operations over `threads` clients in the background (wait())."""
        self._target = self._count + ops
        self._stop.clear()
        for t in range(threads):
            th = threading.Thread(target=self._client, args=(len(self._threads) + t,),
                                  name=f"workload-{t}", daemon=True)
            self._threads.append(th)
            th.start()

    def wait(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        for th in self._threads:
            th.join(max(0.0, deadline - time.monotonic()))
        alive = [th for th in self._threads if th.is_alive()]
        self._threads = []
        if alive:
            self._stop.set()
            raise AssertionError(f"{len(alive)} workload client(s) still running after "
                                 f"{timeout} s")

    def stop(self) -> None:
        self._stop.set()
        self.wait(120)

    @property
    def done(self) -> int:
        return self._count

    def run(self, ops: int, threads: int = 6, timeout: float = 600) -> None:
        self.start(ops, threads)
        self.wait(timeout)

    def _take(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self._count >= self._target:
                return False
            self._count += 1
            return True

    def _client(self, cid: int) -> None:
        rng = random.Random(self.seed * 1000 + cid)
        clients: dict[int, Any] = {}
        seq = 0
        m = self.mix
        while self._take():
            node = rng.choice(self.nodes)
            c = clients.get(node)
            if c is None:
                c = clients[node] = self.client_for(node)
            key = rng.choice(self.keys)
            r = rng.random()
            if r < m.put:
                seq += 1
                self._record(self.put(c, key, f"c{self.seed}.{cid}.{seq}",
                                      self._size(rng), cid, node))
            elif r < m.put + m.get:
                self._record(self.get(c, key, cid, node))
            elif r < m.put + m.get + m.delete:
                self._record(self.delete(c, key, cid, node))
            else:
                self._record(self.listing(c, cid, node))

    def _size(self, rng: random.Random) -> int:
        x = rng.random()
        for p, lo, hi in self.mix.sizes:
            if x < p:
                return rng.randint(lo, hi)
            x -= p
        return self.mix.sizes[-1][1]

    def _record(self, op: Op) -> None:
        with self._lock:
            self.history.append(op)

    # ------------------------------------------------------------------ operations

    def put(self, c: Any, key: str, vid: str, size: int, cid: int, node: int) -> Op:
        body = make_body(vid, size)
        t0 = time.monotonic()
        try:
            c.put_object(Bucket=self.bucket, Key=key, Body=body)
        except Exception as e:  # noqa: BLE001 - any failure leaves the write indeterminate
            return Op(PUT, key, t0, time.monotonic(), False, value=vid, client=cid,
                      node=node, error=_err(e))
        return Op(PUT, key, t0, time.monotonic(), True, value=vid, client=cid, node=node)

    def get(self, c: Any, key: str, cid: int, node: int, final: bool = False) -> Op:
        t0 = time.monotonic()
        try:
            body = c.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as e:  # noqa: BLE001
            if _code(e) == "NoSuchKey":
                return Op(GET, key, t0, time.monotonic(), True, None, client=cid, node=node,
                          final=final)
            return Op(GET, key, t0, time.monotonic(), False, client=cid, node=node,
                      error=_err(e), final=final)
        end = time.monotonic()
        try:
            vid: str | None = parse_body(body)
        except ValueError as e:
            vid = f"<unparsable: {e}>"  # the checker reports it as a value never written
        return Op(GET, key, t0, end, True, vid, client=cid, node=node, final=final)

    def delete(self, c: Any, key: str, cid: int, node: int) -> Op:
        t0 = time.monotonic()
        try:
            c.delete_object(Bucket=self.bucket, Key=key)
        except Exception as e:  # noqa: BLE001
            return Op(DELETE, key, t0, time.monotonic(), False, client=cid, node=node,
                      error=_err(e))
        return Op(DELETE, key, t0, time.monotonic(), True, client=cid, node=node)

    def listing(self, c: Any, cid: int, node: int, final: bool = False) -> Op:
        t0 = time.monotonic()
        keys: set[str] = set()
        try:
            token = None
            while True:
                kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix,
                                      "MaxKeys": 1000}
                if token:
                    kw["ContinuationToken"] = token
                page = c.list_objects_v2(**kw)
                keys.update(o["Key"] for o in page.get("Contents", []))
                if not page.get("IsTruncated"):
                    break
                token = page["NextContinuationToken"]
        except Exception as e:  # noqa: BLE001
            return Op(LIST, self.prefix, t0, time.monotonic(), False, client=cid, node=node,
                      error=_err(e), final=final)
        return Op(LIST, self.prefix, t0, time.monotonic(), True, keys=frozenset(keys),
                  client=cid, node=node, final=final)

    def verify(self, nodes: list[int] | None = None) -> None:
        """After the scenario: every key read, and the prefix listed, through each node."""
        for node in nodes or self.nodes:
            c = self.client_for(node)
            for key in self.keys:
                self._record(self.get(c, key, -1, node, final=True))
            self._record(self.listing(c, -1, node, final=True))

    def errors(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.history:
            if not o.ok:
                out[o.error] = out.get(o.error, 0) + 1
        return out


def _code(e: Exception) -> str:
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", ""))
    return ""


def _err(e: Exception) -> str:
    code = _code(e)
    if code:
        status = getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{status} {code}"
    return type(e).__name__
