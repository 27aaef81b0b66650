"""The asyncio link's receive buffer: records opened in place at any offset and split in
any way by the socket, bodies of every size intact, and no large buffer for a peer that
has not authenticated."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

from nacl.signing import SigningKey

from pygarage.net import peer as peer_mod
from pygarage.net.netapp import NetApp
from pygarage.net.peer import IncomingRequest, Reply

SECRET = secrets.token_bytes(32)


async def _gen(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def _echo_node() -> NetApp:
    app = NetApp(SECRET, SigningKey.generate(), rpc_timeout=20)

    async def echo(req: IncomingRequest) -> Any:
        if req.stream is None:
            return req.body
        data = await req.stream.read_all()
        return Reply(len(data), _gen(data, 333_333))

    app.register("echo", echo)
    await app.listen("127.0.0.1", 0)
    return app


async def test_bodies_of_every_size_cross_the_buffer_intact() -> None:
    a, b = await _echo_node(), await _echo_node()
    try:
        await b.connect("127.0.0.1", a.port)
        sizes = [1, 9, 65_535, 65_536, 131_073, 524_288, 524_289, 1_048_576, 1_500_001,
                 2_097_153, 3 * 1_048_576 + 5]
        bodies = [secrets.token_bytes(n) for n in sizes]

        async def one(i: int, body: bytes) -> None:
            n, s = await b.call(a.id, "echo", None, stream=_gen(body, 100_000 + i * 7919))
            assert n == len(body) and s is not None
            assert await s.read_all() == body

        # Concurrently, with small calls in between: records of every size land at every
        # offset of both receive buffers.
        await asyncio.gather(*(one(i, x) for i, x in enumerate(bodies)),
                             *(b.call(a.id, "echo", i) for i in range(50)))
    finally:
        await a.close()
        await b.close()


async def test_no_large_receive_buffer_before_the_handshake() -> None:
    a = await _echo_node()
    try:
        _, w = await asyncio.open_connection("127.0.0.1", a.port)
        w.write(b"G")  # a peer that never completes the handshake
        await w.drain()
        await asyncio.sleep(0.2)
        links = list(a._all)
        assert links and all(len(x._rbuf) <= peer_mod._HS_RBUF for x in links)
        w.close()
        b = await _echo_node()
        try:
            link = await b.connect("127.0.0.1", a.port)
            assert len(link._rbuf) == peer_mod._RBUF
            assert (await b.call(a.id, "echo", 7))[0] == 7
        finally:
            await b.close()
    finally:
        await a.close()
