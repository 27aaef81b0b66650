"""The daemon's RPC endpoint: a NetApp listening on rpc_bind_addr, and Peering keeping
links to the other nodes up (with pings under rpc_ping_timeout_msec). Calls made through
`app` time out after rpc_timeout_msec.

Handlers registered here take and return msgpack values; the path "admin" carries the
CLI's admin calls, and the cluster work adds table, block and gossip endpoints.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nacl.signing import SigningKey

from .netapp import NetApp
from .peer import IncomingRequest, RpcError
from .peering import Peering

__all__ = ["RpcError", "RpcServer"]


class RpcServer:
    def __init__(self, secret: bytes, key: SigningKey, *, rpc_timeout_msec: int = 300_000,
                 rpc_ping_timeout_msec: int = 10_000, bind_outgoing: str | None = None):
        self.app = NetApp(secret, key, rpc_timeout=rpc_timeout_msec / 1000,
                          bind_outgoing=bind_outgoing)
        self.peering = Peering(self.app, ping_timeout=rpc_ping_timeout_msec / 1000)

    def register(self, path: str, handler: Callable[[Any], Awaitable[Any]]) -> None:
        async def serve(req: IncomingRequest) -> Any:
            return await handler(req.body)

        self.app.register(path, serve)

    async def start(self, host: str, port: int) -> None:
        await self.app.listen(host, port)
        self.peering.start()

    async def close(self) -> None:
        await self.peering.stop()
        await self.app.close()
