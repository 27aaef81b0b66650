"""A fault-injecting TCP proxy for cluster tests and the WAN bench: one listener in front of
each node's RPC port. Nodes advertise the listener (rpc_public_addr, bootstrap_peers) and
dial from their own loopback IP (rpc_bind_outgoing), so each connection's source IP names
the node that opened it and the listener names the node it goes to. Per pair of nodes it
can:

- cut the link, "reset": open connections are reset (RST) and new ones are reset at once,
  as when a peer's host is down or a firewall rejects;
- cut the link, "blackhole": nothing moves any more, in either direction, and nothing is
  closed: new connections are accepted and then hang. A hung network, which only ping
  timeouts reveal. Healed, held bytes flow again (TCP retransmitting after the partition);
- delay each direction (mean +- uniform jitter, per chunk read), keeping the byte order of
  each connection: every chunk gets a delivery time no earlier than the one before it and
  a separate writer delivers it then, so reading goes on meanwhile (delay adds latency, not
  a bandwidth cap);
- cap the bandwidth of each direction of a connection (bytes per second).

Connections from unknown IPs (the CLI, clients) pass untouched.

It runs in the test process, on its own event loop in a thread (ProxyThread): a cut or heal
returns once done (connections already reset), which keeps tests deterministic without a
control protocol; nothing outlives the test process; the thread is idle between packets
(the node processes do the real work). FaultProxy itself is plain asyncio, so unit tests
can also run it on their own loop. Never imported by production code."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

CHUNK = 64 * 1024
QUEUE_CHUNKS = 256  # per direction: at most 16 MiB read ahead of delivery
RESET = "reset"
BLACKHOLE = "blackhole"


@dataclass(frozen=True)
class Delay:
    mean_s: float
    jitter_s: float = 0.0

    def sample(self, rng: random.Random) -> float:
        return max(0.0, self.mean_s + rng.uniform(-self.jitter_s, self.jitter_s))


@dataclass
class _Node:
    name: str
    ip: str
    upstream: tuple[str, int]
    server: asyncio.Server | None = None


@dataclass(eq=False)  # kept in a set: identity
class _Conn:
    src: str | None
    dst: str
    gate: asyncio.Event
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def abort(self) -> None:
        """Reset both sides (RST, not FIN: the peers see the link fail, not end)."""
        for w in self.writers:
            _abort(w)
        for t in self.tasks:
            t.cancel()


def _abort(w: asyncio.StreamWriter) -> None:
    sock = w.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.transport.abort()


def _pairs(a: Iterable[str], b: Iterable[str]) -> set[frozenset[str]]:
    bs = list(b)
    return {frozenset((x, y)) for x in a for y in bs if x != y}


class FaultProxy:
    """One listener per node; every method but add_node/close is synchronous and must be
    called on the proxy's loop (ProxyThread does that for threaded callers)."""

    def __init__(self, seed: int = 0):
        self.nodes: dict[str, _Node] = {}
        self._by_ip: dict[str, str] = {}
        self._cuts: dict[frozenset[str], str] = {}
        self._gates: dict[frozenset[str], asyncio.Event] = {}
        self._delays: dict[tuple[str, str], Delay] = {}
        self._rates: dict[tuple[str, str], float] = {}
        self._conns: set[_Conn] = set()
        self._open_gate: asyncio.Event | None = None
        self._rng = random.Random(seed)
        self.bytes_forwarded = 0
        self.refused = 0

    # ------------------------------------------------------------------ setup

    async def add_node(self, name: str, ip: str, upstream: tuple[str, int],
                       listen: tuple[str, int] | None = None) -> tuple[str, int]:
        """Listen for connections to node `name` (whose own connections come from `ip`)
        and forward them to `upstream`. Returns the listening address."""
        node = _Node(name, ip, upstream)
        host, port = listen or (ip, 0)
        node.server = await asyncio.start_server(
            lambda r, w: self._accept(node, r, w), host, port, reuse_address=True)
        self.nodes[name] = node
        self._by_ip[ip] = name
        addr = node.server.sockets[0].getsockname()
        return addr[0], addr[1]

    def set_upstream(self, name: str, upstream: tuple[str, int]) -> None:
        """A restarted node listening elsewhere (new connections only)."""
        self.nodes[name].upstream = upstream

    async def close(self) -> None:
        for n in self.nodes.values():
            if n.server is not None:
                n.server.close()
        for c in list(self._conns):
            c.abort()
        tasks = [t for c in self._conns for t in c.tasks]
        await asyncio.gather(*tasks, return_exceptions=True)
        for n in self.nodes.values():
            if n.server is not None:
                await n.server.wait_closed()

    # ------------------------------------------------------------------ faults

    def cut(self, a: Iterable[str], b: Iterable[str], mode: str = RESET) -> None:
        """Cut every link between a node of `a` and a node of `b`, both ways."""
        if mode not in (RESET, BLACKHOLE):
            raise ValueError(f"mode must be {RESET!r} or {BLACKHOLE!r}")
        pairs = _pairs(a, b)
        for p in pairs:
            self._cuts[p] = mode
            self._gate(p).clear()
        if mode == RESET:
            for c in list(self._conns):
                if c.src is not None and frozenset((c.src, c.dst)) in pairs:
                    c.abort()

    def partition(self, *groups: Iterable[str], mode: str = RESET) -> None:
        """Nodes talk only within their group."""
        gs = [list(g) for g in groups]
        for i, g in enumerate(gs):
            for h in gs[i + 1:]:
                self.cut(g, h, mode)

    def heal(self, a: Iterable[str] | None = None, b: Iterable[str] | None = None) -> None:
        """Restore the links between `a` and `b` (every link without arguments)."""
        pairs = set(self._cuts) if a is None else _pairs(a, b if b is not None else a)
        for p in pairs:
            self._cuts.pop(p, None)
            self._gate(p).set()

    def set_delay(self, a: Iterable[str], b: Iterable[str], mean_s: float,
                  jitter_s: float = 0.0) -> None:
        """Every byte from a node of `a` to one of `b`, and back, is delivered after
        mean_s +- jitter_s (uniform); 0 removes the delay."""
        bs = list(b)
        for x in a:
            for y in bs:
                if x == y:
                    continue
                for key in ((x, y), (y, x)):
                    if mean_s or jitter_s:
                        self._delays[key] = Delay(mean_s, jitter_s)
                    else:
                        self._delays.pop(key, None)

    def set_bandwidth(self, a: Iterable[str], b: Iterable[str],
                      bytes_per_s: float | None) -> None:
        """Cap each direction of each connection between `a` and `b` (None: no cap)."""
        bs = list(b)
        for x in a:
            for y in bs:
                for key in ((x, y), (y, x)):
                    if bytes_per_s:
                        self._rates[key] = float(bytes_per_s)
                    else:
                        self._rates.pop(key, None)

    def connections(self, a: str | None = None, b: str | None = None) -> int:
        """Open proxied connections (between a and b, either way, if given)."""
        if a is None:
            return len(self._conns)
        return sum(1 for c in self._conns if {c.src, c.dst} == {a, b})

    def tasks(self) -> int:
        return sum(len(c.tasks) for c in self._conns)

    # ------------------------------------------------------------------ forwarding

    def _gate(self, pair: frozenset[str]) -> asyncio.Event:
        g = self._gates.get(pair)
        if g is None:
            g = self._gates[pair] = asyncio.Event()
            if pair not in self._cuts:
                g.set()
        return g

    async def _accept(self, node: _Node, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        src = self._by_ip.get(peer[0]) if isinstance(peer, tuple) else None
        if src is not None and src != node.name:
            pair = frozenset((src, node.name))
            gate = self._gate(pair)
            if self._cuts.get(pair) == RESET:
                self.refused += 1
                _abort(writer)
                return
        else:
            if self._open_gate is None:
                self._open_gate = asyncio.Event()
                self._open_gate.set()
            gate, src = self._open_gate, None
        conn = _Conn(src, node.name, gate, [writer])
        self._conns.add(conn)
        me = asyncio.current_task()
        if me is not None:
            conn.tasks.add(me)
        try:
            await gate.wait()  # a black-holed link: accepted, then nothing
            try:
                up_r, up_w = await asyncio.open_connection(*node.upstream)
            except OSError:
                _abort(writer)  # the node is down: as if its port refused
                return
            conn.writers.append(up_w)
            a = asyncio.create_task(self._pump(conn, src, node.name, reader, up_w))
            b = asyncio.create_task(self._pump(conn, node.name, src, up_r, writer))
            conn.tasks |= {a, b}
            done, _ = await asyncio.wait({a, b}, return_when=asyncio.FIRST_EXCEPTION)
            if any(t.exception() for t in done if not t.cancelled()):
                conn.abort()
            await asyncio.gather(a, b, return_exceptions=True)
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(conn)
            for w in conn.writers:
                w.close()
            for w in conn.writers:
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    async def _pump(self, conn: _Conn, src: str | None, dst: str | None,
                    reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One direction: a reader stamping chunks with their delivery time, a writer
        delivering them in order at that time."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)
        key = (src or "", dst or "")

        async def read() -> None:
            last = 0.0
            while True:
                await conn.gate.wait()
                data = await reader.read(CHUNK)
                delay = self._delays.get(key)
                at = loop.time() + (delay.sample(self._rng) if delay else 0.0)
                last = max(last, at)  # never before the previous chunk: no reordering
                await queue.put((last, data))
                if not data:
                    return

        async def write() -> None:
            next_free = 0.0
            while True:
                at, data = await queue.get()
                wait = at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await conn.gate.wait()
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                rate = self._rates.get(key)
                if rate:
                    now = loop.time()
                    next_free = max(next_free, now)
                    if next_free > now:
                        await asyncio.sleep(next_free - now)
                    next_free += len(data) / rate
                writer.write(data)
                await writer.drain()
                self.bytes_forwarded += len(data)

        tasks = [asyncio.create_task(read()), asyncio.create_task(write())]
        try:
            await asyncio.gather(*tasks)  # a reset on either side raises here
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class ProxyThread:
    """FaultProxy on its own event loop in a daemon thread; every method is thread-safe
    and returns once the change is in force."""

    def __init__(self, seed: int = 0):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fault-proxy",
                                        daemon=True)
        self._thread.start()
        self.proxy: FaultProxy = self._run(self._make(seed))

    @staticmethod
    async def _make(seed: int) -> FaultProxy:
        return FaultProxy(seed)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def _call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        async def go() -> T:
            return fn(*args, **kw)

        return self._run(go())

    def add_node(self, name: str, ip: str, upstream: tuple[str, int],
                 listen: tuple[str, int] | None = None) -> tuple[str, int]:
        return self._run(self.proxy.add_node(name, ip, upstream, listen))

    def set_upstream(self, name: str, upstream: tuple[str, int]) -> None:
        self._call(self.proxy.set_upstream, name, upstream)

    def cut(self, a: Iterable[str], b: Iterable[str], mode: str = RESET) -> None:
        self._call(self.proxy.cut, list(a), list(b), mode)

    def partition(self, *groups: Iterable[str], mode: str = RESET) -> None:
        self._call(self.proxy.partition, *[list(g) for g in groups], mode=mode)

    def heal(self, a: Iterable[str] | None = None, b: Iterable[str] | None = None) -> None:
        self._call(self.proxy.heal, None if a is None else list(a),
                   None if b is None else list(b))

    def set_delay(self, a: Iterable[str], b: Iterable[str], mean_s: float,
                  jitter_s: float = 0.0) -> None:
        self._call(self.proxy.set_delay, list(a), list(b), mean_s, jitter_s)

    def set_bandwidth(self, a: Iterable[str], b: Iterable[str],
                      bytes_per_s: float | None) -> None:
        self._call(self.proxy.set_bandwidth, list(a), list(b), bytes_per_s)

    def connections(self, a: str | None = None, b: str | None = None) -> int:
        return self._call(self.proxy.connections, a, b)

    def tasks(self) -> int:
        return self._call(self.proxy.tasks)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self._run(self.proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
