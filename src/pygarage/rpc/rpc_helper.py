"""Calls to other nodes by id, with quorums: what tables and the block manager use.

Nodes are named by their hex id (as in the layout). A call to this node runs the local
handler directly (no encoding, no socket), which is how a single node keeps working
without any RPC. Requests go to nodes in preference order (this node, then its zone,
then the lowest RTT) and a quorum call sends only `quorum` requests at first, sending more
only when some fail or are slow, as Garage's rpc_helper does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..net.conn import PRIO_BACKGROUND, PRIO_HIGH, PRIO_NORMAL
from ..net.peer import BodyStream, ConnectionClosed, IncomingRequest, RpcError
from ..util.errors import QuorumError
from .write_quorum import SetQuorum, describe, wait_quorum

if TYPE_CHECKING:
    from ..net.server import RpcServer
    from .system import System

log = logging.getLogger(__name__)

__all__ = ["RpcHelper", "RpcError", "QuorumError", "PRIO_HIGH", "PRIO_NORMAL",
           "PRIO_BACKGROUND", "IncomingRequest"]

Handler = Callable[[IncomingRequest], Awaitable[Any]]

# A quorum call that waits this long for its first requests sends the next ones too
# (Garage sends to more nodes than needed only when the first ones are slow or fail).
_HEDGE_AFTER_S = 1.0


class RpcHelper:
    def __init__(self, system: System):
        self.system = system
        self.node_id = system.node_id
        self._me = bytes.fromhex(system.node_id)
        self.handlers: dict[str, Handler] = {}
        self.server: RpcServer | None = None
        # Called whenever a link to another node comes up (a node joined or came back).
        self.on_peer_up: list[Callable[[str], None]] = []  # called with the node's id

    # -- endpoints
    def register(self, path: str, handler: Handler) -> None:
        """Serve `path` for other nodes (once attached) and for local calls."""
        self.handlers[path] = handler
        if self.server is not None:
            self.server.app.register(path, handler)

    def attach(self, server: RpcServer) -> None:
        """Called by the daemon once its RPC server exists: remote nodes become reachable
        and every endpoint registered so far is served."""
        self.server = server
        for path, handler in self.handlers.items():
            server.app.register(path, handler)
        server.app.on_link.append(self._peer_up)

    def _peer_up(self, link: Any) -> None:
        node = link.peer_id.hex()
        for cb in self.on_peer_up:
            cb(node)

    # -- node state
    def is_up(self, node: str) -> bool:
        if node == self.node_id:
            return True
        return self.server is not None and self.server.peering.is_up(bytes.fromhex(node))

    def rtt(self, node: str) -> float | None:
        if self.server is None:
            return None
        st = self.server.peering.peers.get(bytes.fromhex(node))
        return None if st is None else st.rtt

    def zone_of(self, node: str) -> str | None:
        role = self.system.current_layout.role(node)
        return None if role is None else role.zone

    def request_order(self, nodes: Sequence[str]) -> list[str]:
        """This node first, then nodes in its zone, then by measured RTT; nodes known to
        be down last (they are still tried: the link may come back)."""
        my_zone = self.zone_of(self.node_id)

        def key(n: str) -> tuple[int, int, int, float]:
            rtt = self.rtt(n)
            return (0 if n == self.node_id else 1,
                    0 if self.is_up(n) else 1,
                    0 if my_zone is not None and self.zone_of(n) == my_zone else 1,
                    rtt if rtt is not None else 10.0)
        return sorted(nodes, key=key)

    # -- calls
    async def call(self, node: str, path: str, body: Any, *, prio: int = PRIO_NORMAL,
                   timeout_s: float | None = None,
                   stream: AsyncIterable[bytes] | bytes | None = None,
                   ) -> tuple[Any, BodyStream | None]:
        """One call; returns the reply's head and its streamed body if any. Raises
        RpcError (ConnectionClosed, RpcTimeout, or the remote handler's message)."""
        if node == self.node_id:
            handler = self.handlers.get(path)
            if handler is None:
                raise RpcError(f"no local handler for {path}")
            if stream is not None:
                raise RpcError("local calls carry no stream: use the local API directly")
            coro = handler(IncomingRequest(self._me, path, body, None))
            res = await (coro if timeout_s is None else asyncio.wait_for(coro, timeout_s))
            return res, None
        if self.server is None:
            raise ConnectionClosed(f"no RPC: node {node[:16]} is not reachable")
        return await self.server.app.call(bytes.fromhex(node), path, body, prio=prio,
                                          timeout_s=timeout_s, stream=stream)

    async def call_body(self, node: str, path: str, body: Any, *, prio: int = PRIO_NORMAL,
                        timeout_s: float | None = None) -> Any:
        """call() for endpoints that answer with a head only."""
        res, stream = await self.call(node, path, body, prio=prio, timeout_s=timeout_s)
        if stream is not None:
            await _drain(stream)
        return res

    async def try_call_many(self, nodes: Sequence[str], path: str,
                            body: Any | Callable[[str], Any], quorum: int, *,
                            prio: int = PRIO_NORMAL, timeout_s: float | None = None,
                            send_all: bool = False, what: str = "request",
                            check: Callable[[Any], Any] | None = None,
                            ) -> list[tuple[str, Any]]:
        """Call `path` on `nodes` until `quorum` of them answered; return those answers as
        (node, reply). `body` may be a function of the node. With send_all, every node gets
        the request at once (writes: all replicas should have the data), and the call
        still returns as soon as the quorum answered: the others finish in the background.
        `check(reply)` may refuse an answer by raising (it then counts as that node's
        failure, and another node is asked); what it returns is the reply kept.
        Raises QuorumError with every node's error when the quorum cannot be reached."""
        order = self.request_order(nodes)
        if quorum > len(order):
            raise QuorumError(f"{what}: quorum {quorum} of {len(order)} nodes is impossible")
        ok: list[tuple[str, Any]] = []
        errors: list[str] = []
        pending: dict[asyncio.Task[Any], str] = {}
        todo = list(order)

        def launch(n: int) -> None:
            for _ in range(n):
                if not todo:
                    return
                node = todo.pop(0)
                b = body(node) if callable(body) else body
                pending[asyncio.ensure_future(
                    self._checked_call(node, path, b, prio, timeout_s, check))] = node

        launch(len(todo) if send_all else quorum)
        try:
            while len(ok) < quorum:
                if not pending:
                    raise QuorumError(
                        f"{what}: {len(ok)} of the {quorum} answers needed "
                        f"({len(order)} nodes); errors: " + "; ".join(errors))
                done, _ = await asyncio.wait(pending, timeout=_HEDGE_AFTER_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:  # slow nodes: ask one more, if any is left
                    launch(1)
                    continue
                for t in done:
                    node = pending.pop(t)
                    exc = t.exception()
                    if exc is None:
                        ok.append((node, t.result()))
                    else:
                        errors.append(f"{node[:16]}: {describe(exc)}")
                        launch(1)
        finally:
            # The caller got its quorum (or an error): requests still in flight finish on
            # their own (for writes, the extra copies are wanted), their errors logged.
            for t, node in pending.items():
                t.add_done_callback(_log_late_failure(node, path))
        return ok

    async def _checked_call(self, node: str, path: str, body: Any, prio: int,
                            timeout_s: float | None, check: Callable[[Any], Any] | None
                            ) -> Any:
        reply = await self.call_body(node, path, body, prio=prio, timeout_s=timeout_s)
        if check is None:
            return reply
        try:
            return check(reply)
        except Exception as e:  # a peer's answer of the wrong shape: that node failed
            raise RpcError(f"bad answer: {e}") from None

    async def try_write_many_sets(self, sets: Sequence[Sequence[str]], path: str,
                                  body: Any | Callable[[str], Any], quorum: int, *,
                                  prio: int = PRIO_NORMAL, timeout_s: float | None = None,
                                  what: str = "write") -> None:
        """A write to every node of every set (one request per node even when it is in
        several sets), acknowledged when each set has `quorum` successes: during a layout
        change both the old and the new owners must have the data."""
        q = SetQuorum(sets, quorum)
        q.check_possible(what)
        calls: dict[str, asyncio.Task[Any]] = {}
        for node in self.request_order(list(dict.fromkeys(n for s in sets for n in s))):
            b = body(node) if callable(body) else body
            calls[node] = asyncio.ensure_future(
                self.call_body(node, path, b, prio=prio, timeout_s=timeout_s))
        try:
            await wait_quorum(calls, q, what)
        finally:
            for node, t in calls.items():
                if not t.done():
                    t.add_done_callback(_log_late_failure(node, path))

    async def broadcast(self, nodes: Sequence[str], path: str, body: Any, *,
                        prio: int = PRIO_BACKGROUND, timeout_s: float | None = None,
                        ) -> list[tuple[str, Any | Exception]]:
        """Call every node, wait for all; each node's reply or exception."""
        async def one(n: str) -> Any:
            try:
                return await self.call_body(n, path, body, prio=prio, timeout_s=timeout_s)
            except (RpcError, QuorumError, OSError) as e:
                return e
        results = await asyncio.gather(*(one(n) for n in nodes))
        return list(zip(nodes, results, strict=True))


async def _drain(stream: BodyStream) -> None:
    async for _ in stream:
        pass


def _log_late_failure(node: str, path: str) -> Callable[[asyncio.Future[Any]], None]:
    def cb(t: asyncio.Future[Any]) -> None:
        if t.cancelled():
            return
        exc = t.exception()
        if exc is not None:
            log.debug("%s on node %s failed after the quorum was reached: %s", path,
                      node[:16], describe(exc))
    return cb
