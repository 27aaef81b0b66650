"""RPC listener: handshake, then request frames [id, path, body] -> [id, ok, result].

Handlers are registered by path; today the path "admin" carries the CLI's admin calls, and
the cluster work adds table, block and gossip endpoints on the same link.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nacl.signing import SigningKey

from . import handshake as hs
from .framing import FrameError, Opener, Sealer, frame_len

log = logging.getLogger(__name__)

RpcHandler = Callable[[Any], Awaitable[Any]]


class RpcError(Exception):
    """Raised by handlers: the message goes back to the caller."""


class RpcServer:
    def __init__(self, secret: bytes, key: SigningKey):
        self.secret = secret
        self.key = key
        self.pub = bytes(key.verify_key)
        self.handlers: dict[str, RpcHandler] = {}
        self._server: asyncio.Server | None = None

    def register(self, path: str, handler: RpcHandler) -> None:
        self.handlers[path] = handler

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._conn, host, port, reuse_address=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            shake = hs.ServerHandshake(self.secret, self.key)
            async with asyncio.timeout(10):
                while not shake.done:
                    data = await reader.read(4096)
                    if not data:
                        raise hs.HandshakeError("connection closed during the handshake")
                    out = shake.receive(data)
                    if out:
                        writer.write(out)
                        await writer.drain()
            assert shake.session is not None
            opener, sealer = Opener(shake.session.recv_key), Sealer(shake.session.send_key)
            pending = bytearray(shake.rest())

            async def readexactly(n: int) -> bytes:
                while len(pending) < n:
                    data = await reader.read(max(n - len(pending), 65536))
                    if not data:
                        raise asyncio.IncompleteReadError(bytes(pending), n)
                    pending.extend(data)
                out = bytes(pending[:n])
                del pending[:n]
                return out

            while True:
                try:
                    header = await readexactly(4)
                except asyncio.IncompleteReadError:
                    return
                msg = opener.open(await readexactly(frame_len(header)))
                req_id, path, body = msg
                writer.write(sealer.seal(await self._dispatch(req_id, path, body)))
                await writer.drain()
        except (hs.HandshakeError, FrameError) as e:
            log.warning("RPC connection from %s rejected: %s", peer, e)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    async def _dispatch(self, req_id: int, path: str, body: Any) -> list[Any]:
        handler = self.handlers.get(path)
        if handler is None:
            return [req_id, False, f"unknown RPC endpoint {path!r}"]
        try:
            return [req_id, True, await handler(body)]
        except RpcError as e:
            return [req_id, False, str(e)]
        except Exception as e:
            log.exception("RPC %s failed", path)
            return [req_id, False, f"internal error: {type(e).__name__}: {e}"]
