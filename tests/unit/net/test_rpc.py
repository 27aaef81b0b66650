"""asyncio RPC over loopback in one process: calls both ways, streamed bodies, timeouts and
cancellation reaching the handler, ping, peering reconnect and dead-peer detection, and bad
peers dropped while the node keeps serving."""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from nacl.signing import SigningKey

from pygarage.net import conn as core
from pygarage.net import handshake as hs
from pygarage.net.netapp import NetApp
from pygarage.net.peer import (
    ConnectionClosed,
    IncomingRequest,
    Reply,
    RpcError,
    RpcTimeout,
)
from pygarage.net.peering import Peering
from pygarage.net.secretstream import Opener, Sealer
from pygarage.testing.waits import until

SECRET = secrets.token_bytes(32)


async def _node(key: SigningKey | None = None, port: int = 0) -> NetApp:
    app = NetApp(SECRET, key or SigningKey.generate(), rpc_timeout=5)

    async def echo(req: IncomingRequest) -> Any:
        if req.stream is not None:
            data = await req.stream.read_all()
            return Reply(len(data), _chunks(data[::-1]))
        return req.body

    async def fail(req: IncomingRequest) -> Any:
        raise RpcError("no such bucket")

    async def whoami(req: IncomingRequest) -> Any:
        return req.peer

    app.register("echo", echo)
    app.register("fail", fail)
    app.register("whoami", whoami)
    await app.listen("127.0.0.1", port)
    return app


async def _repeat(chunk: bytes, times: int) -> AsyncIterator[bytes]:
    for _ in range(times):
        yield chunk


async def _chunks(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def test_calls_both_ways_on_one_link() -> None:
    a, b = await _node(), await _node()
    try:
        link = await b.connect("127.0.0.1", a.port, expected=a.id)
        assert link.peer_id == a.id
        assert (await b.call(a.id, "echo", {"x": [1, b"\x00"]}))[0] == {"x": [1, b"\x00"]}
        assert (await b.call(a.id, "whoami", None))[0] == b.id
        for _ in range(100):
            if b.id in a.links:
                break
            await asyncio.sleep(0.01)
        # a calls b over the link b opened.
        assert (await a.call(b.id, "whoami", None))[0] == a.id
        with pytest.raises(RpcError, match="no such bucket"):
            await b.call(a.id, "fail", None)
        with pytest.raises(RpcError, match="unknown RPC endpoint"):
            await b.call(a.id, "nope", None)
        assert await link.ping(1.0) > 0
    finally:
        await a.close()
        await b.close()


async def test_streamed_bodies_and_concurrent_calls() -> None:
    a, b = await _node(), await _node()
    try:
        await b.connect("127.0.0.1", a.port)
        data = secrets.token_bytes(3 * 1024 * 1024 + 7)
        n, stream = await b.call(a.id, "echo", None, stream=_chunks(data))
        assert n == len(data) and stream is not None
        assert await stream.read_all() == data[::-1]
        n, stream = await b.call(a.id, "echo", None, stream=b"abc")
        assert stream is not None and await stream.read_all() == b"cba"
        got = await asyncio.gather(*(b.call(a.id, "echo", i) for i in range(200)))
        assert [r[0] for r in got] == list(range(200))
    finally:
        await a.close()
        await b.close()


async def test_out_of_order_responses_and_priority_over_bulk() -> None:
    a, b = await _node(), await _node()

    async def slow(req: IncomingRequest) -> Any:
        await asyncio.sleep(req.body)
        return req.body

    a.register("slow", slow)
    try:
        link = await b.connect("127.0.0.1", a.port)
        order: list[float] = []

        async def one(d: float) -> None:
            order.append((await link.call("slow", d))[0])

        await asyncio.gather(one(0.3), one(0.1), one(0.2))
        assert order == [0.1, 0.2, 0.3]
        # 256 MiB of background data (one 1 MiB buffer sent again and again): long enough on
        # a quiet machine too for the ping to overtake it (32 MiB could finish first).
        bulk = asyncio.create_task(link.call("echo", None, prio=core.PRIO_BACKGROUND,
                                             stream=_repeat(bytes(1 << 20), 256)))
        await asyncio.sleep(0.05)
        rtt = await link.ping(5.0)
        assert not bulk.done()  # the ping overtook the background data
        _, s = await bulk
        assert s is not None and len(await s.read_all()) == 256 << 20
        assert rtt < 1.0
    finally:
        await a.close()
        await b.close()


async def test_timeout_and_cancellation_reach_the_handler() -> None:
    a, b = await _node(), await _node()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def hang(req: IncomingRequest) -> Any:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    a.register("hang", hang)
    try:
        link = await b.connect("127.0.0.1", a.port)
        with pytest.raises(RpcTimeout):
            await link.call("hang", None, timeout_s=0.2)
        await asyncio.wait_for(cancelled.wait(), 2)
        started.clear()
        cancelled.clear()
        task = asyncio.create_task(link.call("hang", None))
        await asyncio.wait_for(started.wait(), 2)
        task.cancel()
        await asyncio.wait_for(cancelled.wait(), 2)
        assert (await link.call("echo", "still fine"))[0] == "still fine"
    finally:
        await a.close()
        await b.close()


async def test_wrong_secret_and_wrong_identity_are_refused(
        caplog: pytest.LogCaptureFixture) -> None:
    a = await _node()
    other = NetApp(secrets.token_bytes(32), SigningKey.generate())
    b = await _node()
    try:
        with caplog.at_level(logging.WARNING, "pygarage.net"):
            with pytest.raises(ConnectionClosed):
                await other.connect("127.0.0.1", a.port)
            with pytest.raises(ConnectionClosed, match="not the expected"):
                await b.connect("127.0.0.1", a.port, expected=b.id)
            await asyncio.sleep(0.1)
        assert other.id not in a.links
        assert any("does not know our rpc_secret" in r.getMessage() for r in caplog.records)
        assert (await (await b.connect("127.0.0.1", a.port)).call("echo", 1))[0] == 1
    finally:
        await a.close()
        await b.close()
        await other.close()


async def _raw_session(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter,
                                           Sealer, Opener]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    shake = hs.ClientHandshake(SECRET, SigningKey.generate())
    writer.write(shake.start())
    writer.write(shake.receive(await reader.readexactly(hs.MSG2_LEN)))
    assert shake.session is not None
    return reader, writer, Sealer(shake.session.send_key), Opener(shake.session.recv_key)


async def _read_events(reader: asyncio.StreamReader, opener: Opener, c: core.Connection,
                       ) -> list[core.Event]:
    while True:
        data = await asyncio.wait_for(reader.read(65536), 5)
        if not data:
            return []
        evs = [e for rec in opener.feed(data) for e in c.receive_data(rec)]
        if evs:
            return evs


async def test_malformed_request_is_answered_and_link_keeps_working() -> None:
    """A message that is not [path, prio, body, streamed] (e.g. the old [id, path, body])
    gets an error answer; the connection task survives and serves the next call."""
    a = await _node()
    try:
        reader, writer, sealer, opener = await _raw_session(a.port)
        c = core.Connection(initiator=True)
        c.send_request("placeholder", None)
        c.data_to_send()  # stream 1 is ours on paper; the raw bytes below replace its head
        bad = msgpack.packb([7, "admin", {}])
        writer.write(sealer.seal(struct.pack(">BII", core.HEAD_END, 1, len(bad)) + bad))
        assert await _read_events(reader, opener, c) == [
            core.Response(1, False, "malformed request", False)]
        sid = c.send_request("echo", "ok")
        writer.write(sealer.seal(c.data_to_send()))
        assert await _read_events(reader, opener, c) == [core.Response(sid, True, "ok", False)]
        # A frame that breaks the framing closes the link.
        writer.write(sealer.seal(struct.pack(">BII", 42, 5, 0)))
        assert await _read_events(reader, opener, c) == []
        writer.close()
    finally:
        await a.close()


async def test_peering_reconnects_and_detects_a_dead_peer() -> None:
    key = SigningKey.generate()
    a, b = await _node(key), await _node()
    port = a.port
    peering = Peering(b, ping_timeout=0.2, ping_interval=0.05, loop_delay=0.02,
                      retry_min=0.05, retry_max=0.2)
    peering.add_peer(a.id, "127.0.0.1", port)
    peering.start()

    try:
        await until(lambda: peering.is_up(a.id))
        await until(lambda: peering.peers[a.id].rtt is not None)
        await a.close()
        await until(lambda: not peering.is_up(a.id))
        a = await _node(key, port)  # restarted: b reconnects by itself
        await until(lambda: peering.is_up(a.id))
        # A peer that stops answering (its reads paused) is closed after 4 failed pings.
        link = b.links[a.id]
        for srv in list(a.links.values()):
            assert srv._transport is not None
            srv._transport.pause_reading()
        await until(lambda: link.closed)
        await until(lambda: peering.is_up(a.id) and b.links[a.id] is not link)
    finally:
        await peering.stop()
        await a.close()
        await b.close()


async def test_default_timeout_is_rpc_timeout_and_config_is_wired() -> None:
    from pygarage.net.server import RpcServer

    srv = RpcServer(SECRET, SigningKey.generate(), rpc_timeout_msec=250,
                    rpc_ping_timeout_msec=700)
    assert srv.app.rpc_timeout == 0.25 and srv.peering.ping_timeout == 0.7
    gate = asyncio.Event()

    async def hang(body: Any) -> Any:
        await gate.wait()

    srv.register("hang", hang)
    await srv.start("127.0.0.1", 0)
    client = NetApp(SECRET, SigningKey.generate(), rpc_timeout=0.25)
    try:
        await client.connect("127.0.0.1", srv.app.port)
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(RpcTimeout):
            await client.call(srv.app.id, "hang", None)
        assert 0.2 < asyncio.get_running_loop().time() - t0 < 2
    finally:
        gate.set()
        await client.close()
        await srv.close()
