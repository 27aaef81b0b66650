"""This node's end of the RPC (asyncio): its identity, endpoints, listener, and one link per
peer node (incoming or outgoing; both carry calls in both directions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable
from typing import Any

from nacl.signing import SigningKey

from ..util.listener import Listener
from .alloc import keep_freed_memory
from .conn import PRIO_NORMAL
from .peer import (
    HANDSHAKE_TIMEOUT,
    BodyStream,
    ConnectionClosed,
    Handler,
    PeerConnection,
    RpcError,
)


class NetApp:
    def __init__(self, secret: bytes, key: SigningKey, *, rpc_timeout: float = 300.0,
                 bind_outgoing: str | None = None):
        self.secret = secret
        # rpc_bind_outgoing: our connections leave from this IP (port picked by the kernel).
        self.bind_outgoing = bind_outgoing
        self.key = key
        self.id = bytes(key.verify_key)
        self.rpc_timeout = rpc_timeout
        self.handlers: dict[str, Handler] = {}
        self.links: dict[bytes, PeerConnection] = {}
        self.on_link: list[Callable[[PeerConnection], None]] = []
        self._listener: Listener | None = None
        self._all: set[PeerConnection] = set()
        keep_freed_memory()  # bulk transfers churn ~1 MiB buffers: see alloc.py

    def register(self, path: str, handler: Handler) -> None:
        self.handlers[path] = handler

    async def listen(self, host: str, port: int) -> None:
        listener = Listener(self._incoming, "RPC")
        await listener.start_tcp(host, port)
        self._listener = listener

    @property
    def port(self) -> int:
        assert self._listener is not None
        return self._listener.port

    async def connect(self, host: str, port: int, expected: bytes | None = None,
                      timeout_s: float = HANDSHAKE_TIMEOUT) -> PeerConnection:
        """An authenticated link to the node at host:port (whose id must be `expected`)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, link = await loop.create_connection(
                    lambda: self._link(initiator=True, expected=expected), host, port,
                    local_addr=(self.bind_outgoing, 0) if self.bind_outgoing else None)
                await link.ready
        except TimeoutError:
            raise ConnectionClosed(f"no RPC handshake with {host}:{port} within "
                                   f"{timeout_s:.0f} s") from None
        except OSError as e:
            raise ConnectionClosed(f"cannot reach {host}:{port}: {e}") from None
        self._established(link)
        return link

    async def call(self, peer: bytes, path: str, body: Any, *, prio: int = PRIO_NORMAL,
                   timeout_s: float | None = None,
                   stream: AsyncIterable[bytes] | bytes | None = None,
                   ) -> tuple[Any, BodyStream | None]:
        link = self.links.get(peer)
        if link is None or link.closed:
            raise ConnectionClosed(f"not connected to node {peer.hex()[:16]}")
        return await link.call(path, body, prio=prio, stream=stream,
                               timeout_s=self.rpc_timeout if timeout_s is None else timeout_s)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        for link in list(self._all):
            link.close()

    def _incoming(self) -> PeerConnection:
        link = self._link(initiator=False)

        def done(f: asyncio.Future[None]) -> None:
            if not f.cancelled() and f.exception() is None:
                self._established(link)

        link.ready.add_done_callback(done)
        return link

    def _link(self, *, initiator: bool, expected: bytes | None = None) -> PeerConnection:
        link = PeerConnection(self.secret, self.key, self.handlers, initiator=initiator,
                              expected=expected, on_close=self._closed)
        self._all.add(link)
        return link

    def _established(self, link: PeerConnection) -> None:
        if link.closed:
            return
        # The newest link to a peer carries our calls; an older one finishes its own.
        self.links[link.peer_id] = link
        for cb in self.on_link:
            cb(link)

    def _closed(self, link: PeerConnection) -> None:
        self._all.discard(link)
        if self.links.get(link.peer_id) is link:
            del self.links[link.peer_id]


__all__ = ["NetApp", "RpcError", "ConnectionClosed"]
