"""One authenticated link to a peer (asyncio): handshake, boxed stream, and the sans-IO
connection core, with request/response calls both ways, streamed bodies and back-pressure.

The protocol logic lives in handshake.py, secretstream.py and conn.py; this module only
moves bytes between them and the socket and turns events into futures and tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from nacl.signing import SigningKey

from . import conn as core
from . import handshake as hs
from .secretstream import MAX_RECORD, Opener, Sealer, StreamError

log = logging.getLogger("pygarage.net")

HANDSHAKE_TIMEOUT = 10.0
PING_PATH = "net/ping"
_WRITE_HIGH = 512 * 1024  # body bytes queued per stream before its writer waits
# Frame bytes sealed per write (records of their own for large body frames, one record for
# the small frames around them): a 1 MiB body and its head go in one write, so the peer
# wakes once for it, and an interactive frame queued meanwhile waits for at most about
# 1 MiB of it; frames_to_send may overshoot by one CHUNK.
_SEND_BATCH = 1024 * 1024 + core.CHUNK
# Bytes the socket's user-space buffer may hold before we stop producing frames: enough to
# keep the socket busy while the next record is encrypted, small enough that an
# interactive frame never waits behind more than a few milliseconds of bulk data.
_TRANSPORT_HIGH = 1024 * 1024
_RBUF = 2 * (MAX_RECORD + 4)  # receive buffer once authenticated: two whole records
_HS_RBUF = 16 * 1024  # before: the handshake keeps its own (small) buffer


class RpcError(Exception):
    """A call failed: raised by handlers (the message goes back to the caller) and by
    calls (the remote handler's message, or why the link failed)."""


class RpcTimeout(RpcError, TimeoutError):
    pass


class ConnectionClosed(RpcError):
    pass


@dataclass
class Reply:
    """What a handler returns to send a streamed body after the head `body`."""
    body: Any
    stream: AsyncIterable[bytes] | None = None


@dataclass
class IncomingRequest:
    peer: bytes  # the caller's node id (ed25519 public key)
    path: str
    body: Any
    stream: BodyStream | None


Handler = Callable[[IncomingRequest], Awaitable[Any]]
_Answer = tuple[core.Response, "BodyStream | None"]


class BodyStream:
    """A streamed body being received: iterate for chunks; credit goes back as they are
    taken, so an unread body holds back only its own stream."""

    def __init__(self, link: PeerConnection, sid: int):
        self._link = link
        self._sid = sid
        self._chunks: deque[bytes] = deque()
        self._done = False
        self._error: RpcError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.discard = False  # nobody will read: grant credit on arrival

    def _push(self, data: bytes) -> None:
        if self.discard:
            self._link._consumed(self._sid, len(data))
            return
        self._chunks.append(data)
        self._wake()

    def _finish(self, error: RpcError | None = None) -> None:
        self._done = True
        self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self._chunks:
            if self._done:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        data = self._chunks.popleft()
        self._link._consumed(self._sid, len(data))
        return data

    async def read_all(self, limit: int = 1 << 30) -> bytes:
        parts, n = [], 0
        async for chunk in self:
            n += len(chunk)
            if n > limit:
                raise RpcError(f"streamed body over {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)


class PeerConnection(asyncio.BufferedProtocol):
    def __init__(self, secret: bytes, key: SigningKey, handlers: dict[str, Handler], *,
                 initiator: bool, expected: bytes | None = None,
                 on_close: Callable[[PeerConnection], None] | None = None):
        self._handlers = handlers
        self._initiator = initiator
        self._hs: hs.ClientHandshake | hs.ServerHandshake = (
            hs.ClientHandshake(secret, key, expected) if initiator
            else hs.ServerHandshake(secret, key))
        self._on_close = on_close
        self._core = core.Connection(initiator=initiator)
        self._sealer: Sealer | None = None
        self._opener: Opener | None = None
        self._transport: asyncio.Transport | None = None
        # Received bytes land here (recv_into) and records are opened in place.
        self._rbuf = bytearray(_HS_RBUF)  # no large buffer for unauthenticated peers
        self._rview = memoryview(self._rbuf)
        self._rstart = self._rend = 0
        self._paused = False
        self._flush_soon = False
        self._pending: dict[int, asyncio.Future[_Answer]] = {}
        self._in_streams: dict[int, BodyStream] = {}
        self._serving: dict[int, asyncio.Task[None]] = {}
        self._writers: dict[int, asyncio.Future[None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.peer_id = b""
        self.remote = "?"
        self.rtt: float | None = None
        self.closed = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio's: no isinstance check).
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=_TRANSPORT_HIGH)
        addr = transport.get_extra_info("peername")
        self.remote = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(HANDSHAKE_TIMEOUT, self._drop, "handshake timed out")
        if isinstance(self._hs, hs.ClientHandshake):
            transport.write(self._hs.start())

    def get_buffer(self, sizehint: int) -> memoryview:
        # The incomplete record at the front is moved down only when it could not be
        # completed in place; as the buffer holds two whole records, that is rare.
        start, end = self._rstart, self._rend
        if start:
            need = 4 + MAX_RECORD
            if end - start >= 4:
                need = 4 + int.from_bytes(self._rbuf[start:start + 4], "big")
            if start + need > len(self._rbuf):
                self._rview[:end - start] = self._rview[start:end]  # memmove
                self._rstart, self._rend = 0, end - start
        return self._rview[self._rend:]

    def buffer_updated(self, nbytes: int) -> None:
        self._rend += nbytes
        if self.closed:
            self._rstart = self._rend = 0
            return
        if self._opener is None:
            data = bytes(self._rview[self._rstart:self._rend])
            self._rstart = self._rend = 0
            try:
                out = self._hs.receive(data)
            except hs.HandshakeError as e:
                self._drop(str(e))
                return
            if out:
                self._write_raw(out)
            if not self._hs.done:
                return
            self._established()
            self._rbuf = bytearray(_RBUF)
            self._rview = memoryview(self._rbuf)
            rest = self._hs.rest()
            self._rview[:len(rest)] = rest
            self._rend = len(rest)
            if not rest:
                return
        assert self._opener is not None
        with self._rview[self._rstart:self._rend] as view:
            try:
                records, used = self._opener.open_in_place(view)
            except StreamError as e:
                self._drop(str(e))
                return
            # The plaintexts are views into the receive buffer: the core copies what it
            # keeps before we return and the buffer is reused.
            for rec in records:
                for ev in self._core.receive_data(rec):
                    self._event(ev)
                if isinstance(rec, memoryview):
                    rec.release()
                if self.closed:
                    return
        self._rstart += used
        if self._rstart == self._rend:
            self._rstart = self._rend = 0
        self._flush_now()

    def eof_received(self) -> bool | None:
        if self._opener is not None and self._rend > self._rstart:
            self._drop("stream truncated")
        return None

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._flush_now()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed and not self._hs.done:
            self._log_drop("connection closed during the handshake")
            self._teardown("connection closed during the handshake")
        self._teardown("connection closed")

    # ------------------------------------------------------------------ calls

    async def call(self, path: str, body: Any, *, prio: int = core.PRIO_NORMAL,
                   timeout_s: float | None = None,
                   stream: AsyncIterable[bytes] | bytes | None = None,
                   ) -> tuple[Any, BodyStream | None]:
        """-> (response body, its streamed body or None). Raises RpcError (remote error,
        link closed) or RpcTimeout (then the request is cancelled on the peer too)."""
        if self.closed:
            raise ConnectionClosed(f"link to {self.remote} is closed")
        sid = self._core.send_request(path, body, prio, streamed=stream is not None)
        fut: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
        self._pending[sid] = fut
        writer = None
        if isinstance(stream, bytes | bytearray | memoryview):
            self._core.send_data(sid, bytes(stream))
            self._core.end_data(sid)
        elif stream is not None:
            writer = asyncio.create_task(self._send_body(sid, stream))
        self._flush()
        try:
            if timeout_s is None:
                resp, body_stream = await fut
            else:
                async with asyncio.timeout(timeout_s):
                    resp, body_stream = await fut
        except BaseException as e:
            self._pending.pop(sid, None)
            self._core.cancel(sid)
            self._flush()
            if writer is not None:
                writer.cancel()
            if isinstance(e, TimeoutError):
                raise RpcTimeout(f"{path} to {self.remote}: no answer within "
                                 f"{timeout_s} s") from None
            raise
        if not resp.ok:
            if writer is not None:
                writer.cancel()
            raise RpcError(str(resp.body))
        return resp.body, body_stream

    async def ping(self, timeout_s: float) -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await self.call(PING_PATH, None, prio=core.PRIO_HIGH, timeout_s=timeout_s)
        self.rtt = loop.time() - t0
        return self.rtt

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._teardown("closed by us")

    # ------------------------------------------------------------------ internals

    def _established(self) -> None:
        session = self._hs.session
        assert session is not None
        if self._timer is not None:
            self._timer.cancel()
        self.peer_id = session.peer_pub
        self._sealer = Sealer(session.send_key)
        self._opener = Opener(session.recv_key)
        if not self.ready.done():
            self.ready.set_result(None)

    def _event(self, ev: core.Event) -> None:
        if isinstance(ev, core.Data):
            bs = self._in_streams.get(ev.sid)
            if bs is not None:
                bs._push(ev.data)
            else:
                self._core.consumed(ev.sid, len(ev.data))
        elif isinstance(ev, core.Request):
            bs = BodyStream(self, ev.sid) if ev.streamed else None
            if bs is not None:
                self._in_streams[ev.sid] = bs
            req = IncomingRequest(self.peer_id, ev.path, ev.body, bs)
            self._serving[ev.sid] = asyncio.create_task(self._serve(ev.sid, req))
        elif isinstance(ev, core.Response):
            bs = BodyStream(self, ev.sid) if ev.streamed else None
            if bs is not None:
                self._in_streams[ev.sid] = bs
            fut = self._pending.pop(ev.sid, None)
            if fut is not None and not fut.done():
                fut.set_result((ev, bs))
            elif bs is not None:  # the caller is gone
                bs.discard = True
        elif isinstance(ev, core.End | core.Aborted):
            bs = self._in_streams.pop(ev.sid, None)
            if bs is not None:
                err = RpcError(f"body aborted: {ev.reason}") if isinstance(
                    ev, core.Aborted) else None
                bs._finish(err)
        elif isinstance(ev, core.Cancelled):
            task = self._serving.pop(ev.sid, None)
            if task is not None:
                task.cancel()
            bs = self._in_streams.pop(ev.sid, None)
            if bs is not None:
                bs._finish(RpcError("request cancelled by the caller"))
        elif isinstance(ev, core.ProtocolError):
            if ev.fatal:
                self._drop(f"protocol error: {ev.message}")
            else:
                log.warning("RPC peer %s %s: %s on stream %s", self.remote,
                            self.peer_id.hex()[:16], ev.message, ev.sid)

    async def _serve(self, sid: int, req: IncomingRequest) -> None:
        try:
            if req.path == PING_PATH:
                result: Any = None
            else:
                handler = self._handlers.get(req.path)
                if handler is None:
                    raise RpcError(f"unknown RPC endpoint {req.path!r}")
                result = await handler(req)
        except asyncio.CancelledError:
            return
        except RpcError as e:
            self._respond(sid, False, str(e))
            return
        except Exception as e:
            log.exception("RPC %s from %s failed", req.path, self.peer_id.hex()[:16])
            self._respond(sid, False, f"internal error: {type(e).__name__}: {e}")
            return
        finally:
            self._serving.pop(sid, None)
            if req.stream is not None:
                req.stream.discard = True  # the unread rest of the body is dropped
                while req.stream._chunks:
                    self._consumed(sid, len(req.stream._chunks.popleft()))
        if isinstance(result, Reply) and result.stream is not None:
            if self._core.send_response(sid, True, result.body, streamed=True):
                await self._send_body(sid, result.stream)
            self._flush()
        else:
            self._respond(sid, True, result.body if isinstance(result, Reply) else result)

    def _respond(self, sid: int, ok: bool, body: Any) -> None:
        try:
            self._core.send_response(sid, ok, body)
        except (TypeError, ValueError) as e:  # not msgpack-serialisable: a handler bug
            log.error("RPC response on stream %d cannot be encoded: %s", sid, e)
            self._core.send_response(sid, False, "internal error: unencodable response")
        self._flush()

    async def _send_body(self, sid: int, stream: AsyncIterable[bytes]) -> None:
        try:
            async for chunk in stream:
                if not self._core.send_data(sid, chunk):
                    return  # cancelled or link gone
                self._flush()
                while self._core.queued(sid) > _WRITE_HIGH and not self.closed:
                    fut = asyncio.get_running_loop().create_future()
                    self._writers[sid] = fut
                    await fut
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._core.abort_data(sid, f"{type(e).__name__}: {e}")
        else:
            self._core.end_data(sid)
        finally:
            self._writers.pop(sid, None)
        self._flush()

    def _consumed(self, sid: int, n: int) -> None:
        self._core.consumed(sid, n)
        self._flush()

    def _flush(self) -> None:
        """Send what the core has, once the callbacks ready now have run: their frames
        (credit, responses, calls) then share one record and one send."""
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_soon = False
        if self._sealer is None or self._transport is None or self.closed:
            return
        while not self._paused and self._core.has_data:
            parts = self._core.frames_to_send(_SEND_BATCH)
            if not parts:
                break
            # A view: a partial send then slices it without copying the rest.
            self._transport.write(memoryview(self._sealer.seal_parts(parts)))
        for sid, fut in list(self._writers.items()):
            if self._core.queued(sid) <= _WRITE_HIGH // 2 or not self._core.is_open(sid):
                del self._writers[sid]
                if not fut.done():
                    fut.set_result(None)

    def _write_raw(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def _log_drop(self, why: str) -> None:
        who = self.peer_id.hex()[:16] if self.peer_id else "unauthenticated peer"
        log.warning("RPC connection with %s (%s) dropped: %s", self.remote, who, why)

    def _drop(self, why: str) -> None:
        if self.closed:
            return
        self._log_drop(why)
        if self._transport is not None:
            self._transport.abort()
        self._teardown(why)

    def _teardown(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        err = ConnectionClosed(f"link to {self.remote}: {why}")
        if not self.ready.done():
            self.ready.set_exception(err)
            self.ready.exception()  # retrieved: nobody may be waiting
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()
        for bs in self._in_streams.values():
            bs._finish(err)
        self._in_streams.clear()
        for task in self._serving.values():
            task.cancel()
        self._serving.clear()
        for w in self._writers.values():
            if not w.done():
                w.set_result(None)
        if self._on_close is not None:
            self._on_close(self)
