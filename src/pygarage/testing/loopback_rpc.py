"""Several RpcHelpers in one process, joined by an in-memory network (for unit tests of
quorum calls and replicated tables without sockets). Bodies go through msgpack as on the
wire; nodes can be taken down, slowed, or have every call counted. Never imported by
production code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ..net.peer import BodyStream, ConnectionClosed, IncomingRequest, RpcError
from ..rpc.rpc_helper import RpcHelper


@dataclass
class _Role:
    zone: str


@dataclass
class _Layout:
    zones: dict[str, str]

    def role(self, node: str) -> _Role | None:
        z = self.zones.get(node)
        return None if z is None else _Role(z)


@dataclass
class FakeSystem:
    """What RpcHelper and Table read from System: the node id and the zones of nodes."""
    node_id: str
    zones: dict[str, str] = field(default_factory=dict)

    @property
    def current_layout(self) -> _Layout:
        return _Layout(self.zones)


def _wire(v: Any) -> Any:
    return msgpack.unpackb(msgpack.packb(v, use_bin_type=True), raw=False,
                           strict_map_key=False)


class LoopbackNet:
    def __init__(self) -> None:
        self.helpers: dict[str, RpcHelper] = {}
        self.down: set[str] = set()
        self.delay: dict[str, float] = {}  # node -> seconds before it answers
        self.calls: list[tuple[str, str, str]] = []  # (caller, callee, path), remote only

    def node(self, node_id: str, zones: dict[str, str] | None = None) -> RpcHelper:
        h = RpcHelper(FakeSystem(node_id, zones or {}))  # type: ignore[arg-type]
        self.helpers[node_id] = h
        h.attach(_Server(self, node_id))  # type: ignore[arg-type]
        return h

    async def deliver(self, caller: str, node: str, path: str, body: Any,
                      timeout_s: float | None) -> Any:
        if node in self.down or node not in self.helpers:
            raise ConnectionClosed(f"not connected to node {node[:16]}")
        self.calls.append((caller, node, path))
        handler = self.helpers[node].handlers.get(path)
        if handler is None:
            raise RpcError(f"unknown RPC endpoint {path!r}")

        async def run() -> Any:
            if self.delay.get(node):
                await asyncio.sleep(self.delay[node])
            if node in self.down:
                raise ConnectionClosed(f"link to {node[:16]} closed")
            try:
                res = await handler(IncomingRequest(bytes.fromhex(caller), path, _wire(body),
                                                    None))
            except RpcError as e:
                raise RpcError(str(e)) from None
            except Exception as e:  # as the real server: the message, not the exception
                raise RpcError(f"internal error: {type(e).__name__}: {e}") from None
            return _wire(res)
        try:
            return await asyncio.wait_for(run(), timeout_s)
        except TimeoutError:
            raise RpcError(f"{path} to {node[:16]}: no answer within {timeout_s} s") from None


class _App:
    def __init__(self, net: LoopbackNet, me: str):
        self.net, self.me = net, me
        self.on_link: list[Any] = []  # links never come and go on this network

    def register(self, path: str, handler: Any) -> None:
        pass  # handlers are looked up in the helper's own table

    async def call(self, peer: bytes, path: str, body: Any, *, prio: int = 0,
                   timeout_s: float | None = None,
                   stream: AsyncIterable[bytes] | bytes | None = None,
                   ) -> tuple[Any, BodyStream | None]:
        if stream is not None:
            raise RpcError("the loopback network carries no streams")
        return await self.net.deliver(self.me, peer.hex(), path, body, timeout_s), None


@dataclass
class _PeerState:
    rtt: float | None = None


class _Peering:
    def __init__(self, net: LoopbackNet):
        self.net = net
        self.peers: dict[bytes, _PeerState] = {}

    def is_up(self, node_id: bytes) -> bool:
        n = node_id.hex()
        return n in self.net.helpers and n not in self.net.down


class _Server:
    def __init__(self, net: LoopbackNet, me: str):
        self.app = _App(net, me)
        self.peering = _Peering(net)
