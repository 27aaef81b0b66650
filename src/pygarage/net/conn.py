"""Connection core (pure, sans-IO): many requests multiplexed on one link, both directions.

Bytes in (`receive_data`) -> events out; calls (`send_request`, `send_data`, ...) queue
frames that `data_to_send` hands out by priority. No sockets, no clock: the asyncio glue
(net/peer.py) and the CLI's blocking client (net/sync_client.py) drive it.

Frame: kind(1) | stream id(4) | length(4) | payload(length <= MAX_FRAME)

A stream is one request and its response. The side that opened the connection uses odd
ids, the other even ones, so both can start requests without colliding. A message is a
msgpack head, cut into HEAD frames and closed by HEAD_END:
    request  [path, priority, body, streamed]      response  [ok, body, streamed]
and, when `streamed`, a body of DATA frames closed by END (or ABORT with a reason).
DATA is flow-controlled per stream: the receiver grants CREDIT as its application consumes,
so a slow reader holds back only its own stream. CANCEL drops a request on both sides.

Priorities (as in Garage): frames of higher-priority streams are always sent first, and
streams of equal priority take turns frame by frame, so a 1 MiB block is never in front of
an interactive call for more than one frame. Heads are cut in CHUNK frames. Body frames
are larger, as per-frame Python dominated the cost of bulk transfers: bodies of one
priority take turns of a whole frame (up to MAX_FRAME, a 1 MiB block in one piece), so
several blocks in flight cost no more frames and records each than one alone. Within a
priority, heads (and END/ABORT) go before body turns, taking turns among themselves: a
small call is not held back by the large turns of the bodies at its priority. The glue
seals about 1 MiB of frames per write, so a frame queued after a batch was built waits for
that batch whatever the frame size; within a batch, equal-priority streams still all get
a share.

Bytes handed to receive_data may be views into a buffer the caller reuses: whatever is kept
or delivered is copied, except a `bytes` piece that is exactly the payload of the DATA
frame whose header ended the previous piece (the glue opens large records into bytes of
their own): that one is delivered as it is.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

import msgpack

PRIO_HIGH = 0  # pings, interactive calls
PRIO_NORMAL = 1
PRIO_BACKGROUND = 2  # resync, anti-entropy
PRIORITIES = (PRIO_HIGH, PRIO_NORMAL, PRIO_BACKGROUND)

CHUNK = 64 * 1024
# The largest body frame: a whole 1 MiB block (Garage's default block size) is one frame,
# delivered as one bytes object; half the credit window, so the credit for one frame comes
# back while the next is on its way.
MAX_FRAME = 1024 * 1024
# Body bytes a stream sends before the next body of its priority: a whole frame. Half a
# frame (the earlier setting) split every block in two whenever several were in flight:
# twice the records, frames and deliveries, 15-20 % more CPU per MiB at both ends. Heads
# do not wait for these turns (_heads_first).
TURN = MAX_FRAME
MAX_HEAD = 64 * 1024 * 1024
WINDOW = 2 * MAX_FRAME  # initial DATA credit per stream and direction
MAX_INCOMING = 4096  # concurrent requests a peer may have open on us

HEAD, HEAD_END, DATA, END, ABORT, CANCEL, CREDIT = range(1, 8)
_HDR = struct.Struct(">BII")
_U32 = struct.Struct(">I")


@dataclass(slots=True)
class Request:
    sid: int
    path: str
    prio: int
    body: Any
    streamed: bool


@dataclass(slots=True)
class Response:
    sid: int
    ok: bool
    body: Any
    streamed: bool


@dataclass(slots=True)
class Data:
    sid: int
    data: bytes


@dataclass(slots=True)
class End:
    sid: int


@dataclass(slots=True)
class Aborted:
    """The sender of a streamed body gave up midway."""
    sid: int
    reason: str


@dataclass(slots=True)
class Cancelled:
    """The peer cancelled its request `sid`: stop working on it."""
    sid: int


@dataclass(slots=True)
class ProtocolError:
    """The peer broke the protocol. Fatal: the connection must be closed (the core ignores
    all further input). Not fatal: only stream `sid` failed (it was answered with an error)."""
    message: str
    fatal: bool
    sid: int | None = None


# Events are plain slotted records (not frozen: a frozen dataclass pays for every field in
# __init__, and one is made per frame); nobody changes them after they are handed out.
Event = Request | Response | Data | End | Aborted | Cancelled | ProtocolError


class _Fatal(Exception):
    pass


class _Stream:
    __slots__ = ("sid", "prio", "out", "out_done", "queued", "window", "head",
                 "in_head_done", "in_streamed", "in_done", "allowance", "unacked",
                 "answered", "discard")

    def __init__(self, sid: int, prio: int):
        self.sid = sid
        self.prio = prio
        self.out: deque[tuple[int, bytes | memoryview]] = deque()
        self.out_done = False  # the last frame of our message is queued
        self.queued = 0  # DATA bytes queued, not yet handed out
        self.window = WINDOW  # DATA bytes the peer lets us send
        self.head = bytearray()
        self.in_head_done = False
        self.in_streamed = False
        self.in_done = False
        self.allowance = WINDOW  # DATA bytes we let the peer send
        self.unacked = 0  # consumed by our application, not yet granted back
        self.answered = False  # incoming requests: a response is queued
        self.discard = False  # a malformed request: its body frames are dropped


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _valid_request(msg: Any) -> bool:
    return (isinstance(msg, list) and len(msg) == 4 and isinstance(msg[0], str)
            and type(msg[1]) is int and msg[1] in PRIORITIES and isinstance(msg[3], bool))


def _valid_response(msg: Any) -> bool:
    return (isinstance(msg, list) and len(msg) == 3 and isinstance(msg[0], bool)
            and isinstance(msg[2], bool))


class Connection:
    def __init__(self, *, initiator: bool):
        self._next_sid = 1 if initiator else 2
        self._parity = self._next_sid % 2
        # The peer's highest stream id seen (starting one below its first), and its lower
        # ids not seen yet: a request of higher priority overtakes the head of an earlier
        # one, so ids do not arrive in order.
        self._last_peer_sid = 0 if initiator else -1
        self._unopened: set[int] = set()
        self._streams: dict[int, _Stream] = {}
        self._incoming = 0
        self._control: list[bytes] = []
        self._ready: dict[int, deque[int]] = {p: deque() for p in PRIORITIES}
        self._buf = bytearray()
        self.closed = False  # after a fatal protocol error

    # ------------------------------------------------------------------ sending side

    def send_request(self, path: str, body: Any, prio: int = PRIO_NORMAL,
                     streamed: bool = False) -> int:
        if prio not in PRIORITIES:
            raise ValueError(f"unknown priority {prio}")
        head = _pack([path, prio, body, streamed])
        sid = self._next_sid
        self._next_sid += 2
        st = _Stream(sid, prio)
        self._streams[sid] = st
        self._queue_head(st, head, streamed)
        return sid

    def send_response(self, sid: int, ok: bool, body: Any, streamed: bool = False) -> bool:
        st = self._streams.get(sid)
        if st is None or self._mine(sid) or st.answered:
            return False
        head = _pack([ok, body, streamed])
        st.answered = True
        self._queue_head(st, head, streamed)
        return True

    def send_data(self, sid: int, data: bytes) -> bool:
        """Queue part of a streamed body; False if the stream is gone (cancelled, done)."""
        st = self._streams.get(sid)
        if st is None or st.out_done or not self._sending_body(st):
            return False
        view = memoryview(data)
        if view:  # cut into frames when sent, by then the competition is known
            st.out.append((DATA, view))
        st.queued += len(view)
        self._mark_ready(st)
        return True

    def end_data(self, sid: int) -> bool:
        return self._finish_body(sid, END, b"")

    def abort_data(self, sid: int, reason: str) -> bool:
        return self._finish_body(sid, ABORT, reason.encode()[:CHUNK])

    def cancel(self, sid: int) -> None:
        """Give up our request `sid`: the peer is told, late frames for it are ignored."""
        if self._mine(sid) and self._streams.pop(sid, None) is not None:
            self._control.append(_HDR.pack(CANCEL, sid, 0))

    def consumed(self, sid: int, n: int) -> None:
        """Our application used `n` bytes of stream `sid`'s body: let the peer send more."""
        st = self._streams.get(sid)
        if st is None or st.in_done:
            return
        st.unacked += n
        if st.unacked >= WINDOW // 4:
            st.allowance += st.unacked
            self._control.append(_HDR.pack(CREDIT, sid, 4) + _U32.pack(st.unacked))
            st.unacked = 0

    def queued(self, sid: int) -> int:
        """Body bytes of `sid` queued and not yet handed out (for back-pressure)."""
        st = self._streams.get(sid)
        return st.queued if st is not None else 0

    def is_open(self, sid: int) -> bool:
        return sid in self._streams

    @property
    def has_data(self) -> bool:
        return bool(self._control) or any(self._ready.values())

    def data_to_send(self, limit: int = 4 * CHUNK) -> bytes:
        """About `limit` bytes of frames (at least one frame if any can go), best first."""
        return b"".join(self.frames_to_send(limit))

    def frames_to_send(self, limit: int = 4 * CHUNK) -> list[bytes | memoryview]:
        """data_to_send as pieces, for a caller that gathers them itself."""
        parts: list[bytes | memoryview] = list(self._control)
        size = sum(len(p) for p in parts)
        self._control = []
        for prio in PRIORITIES:
            ring = self._ready[prio]
            if len(ring) > 1:
                size = self._heads_first(ring, parts, size, limit)
            while ring and size < limit:
                frame = self._next_frame(ring, limit - size)
                if frame is None:
                    break  # every stream of this priority waits for credit
                hdr, payload = frame
                parts.append(hdr)
                parts.append(payload)
                size += len(hdr) + len(payload)
            if size >= limit:
                break
        return parts

    def _heads_first(self, ring: deque[int], parts: list[bytes | memoryview], size: int,
                     limit: int) -> int:
        """Within a priority, the frames that are not body data (message heads, END, ABORT)
        go before the body turns, taking turns frame by frame among themselves: a small
        call waits for no body being sent at its priority. -> the new batch size."""
        progress = True
        while progress and size < limit:
            progress = False
            for sid in list(ring):
                st = self._streams.get(sid)
                if st is None or not st.out or st.out[0][0] == DATA:
                    continue
                kind, payload = st.out.popleft()
                hdr = _HDR.pack(kind, sid, len(payload))
                parts.append(hdr)
                parts.append(payload)
                size += len(hdr) + len(payload)
                progress = True
                if not st.out:
                    self._maybe_forget(st)  # left in the ring: dropped there when reached
                if size >= limit:
                    break
        return size

    def _next_frame(self, ring: deque[int],
                    room: int) -> tuple[bytes, bytes | memoryview] | None:
        for _ in range(len(ring)):
            st = self._streams.get(ring[0])
            if st is None or not st.out:
                ring.popleft()
                continue
            kind, payload = st.out[0]
            if kind == DATA:
                if st.window <= 0:
                    ring.rotate(-1)
                    continue
                # Within the caller's budget, so a batch overshoots by a CHUNK at most.
                n = min(st.window, max(CHUNK, min(TURN, room - _HDR.size)))
                if len(payload) > n:
                    st.out[0] = (DATA, payload[n:])
                    payload = payload[:n]
                else:
                    st.out.popleft()
                st.window -= len(payload)
                st.queued -= len(payload)
            else:
                st.out.popleft()
            if st.out:
                ring.rotate(-1)  # equal priorities take turns
            else:
                ring.popleft()
                self._maybe_forget(st)
            return _HDR.pack(kind, st.sid, len(payload)), payload
        return None

    def _queue_head(self, st: _Stream, head: bytes, streamed: bool) -> None:
        view = memoryview(head)
        cuts = range(0, max(len(view), 1), CHUNK)
        for i in cuts:
            last = i + CHUNK >= len(view)
            st.out.append((HEAD_END if last else HEAD, view[i:i + CHUNK]))
        st.out_done = not streamed
        self._mark_ready(st)

    def _finish_body(self, sid: int, kind: int, payload: bytes) -> bool:
        st = self._streams.get(sid)
        if st is None or st.out_done or not self._sending_body(st):
            return False
        st.out.append((kind, payload))
        st.out_done = True
        self._mark_ready(st)
        return True

    def _sending_body(self, st: _Stream) -> bool:
        # A head is queued (requests always; responses once answered) and declared a body.
        return self._mine(st.sid) or st.answered

    def _mark_ready(self, st: _Stream) -> None:
        ring = self._ready[st.prio]
        if st.sid not in ring:
            ring.append(st.sid)

    def _mine(self, sid: int) -> bool:
        return sid % 2 == self._parity

    def _maybe_forget(self, st: _Stream) -> None:
        out_complete = st.out_done and not st.out
        in_complete = st.in_head_done and (not st.in_streamed or st.in_done)
        if out_complete and in_complete and self._streams.get(st.sid) is st:
            del self._streams[st.sid]
            if not self._mine(st.sid):
                self._incoming -= 1

    # ------------------------------------------------------------------ receiving side

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed any split of the peer's bytes; never raises on hostile input."""
        if self.closed:
            return []
        if len(self._buf) == _HDR.size and type(data) is bytes:
            # The bulk path: a DATA header ended the previous piece, and this piece, an
            # immutable bytes object (the sender seals large payloads as records of their
            # own), is exactly its payload. Deliver it as it is: no copy.
            kind, sid, n = _HDR.unpack_from(self._buf)
            if kind == DATA and n == len(data) and n <= MAX_FRAME:
                self._buf = bytearray()
                events: list[Event] = []
                try:
                    self._frame(kind, sid, data, events)
                except _Fatal as e:
                    self.closed = True
                    events.append(ProtocolError(str(e), True))
                return events
        if self._buf:
            self._buf += data
            buf: bytes | bytearray | memoryview = self._buf
        else:
            buf = data  # the common case (whole frames per record): no re-buffering
        events = []
        view = memoryview(buf)
        pos = 0
        try:
            while len(buf) - pos >= _HDR.size:
                kind, sid, n = _HDR.unpack_from(buf, pos)
                if n > MAX_FRAME:
                    raise _Fatal(f"frame of {n} bytes (max {MAX_FRAME})")
                end = pos + _HDR.size + n
                if end > len(buf):
                    break
                payload = bytes(view[pos + _HDR.size:end])
                pos = end
                self._frame(kind, sid, payload, events)
        except _Fatal as e:
            view.release()
            self.closed = True
            self._buf = bytearray()
            events.append(ProtocolError(str(e), True))
            return events
        if buf is self._buf:
            view.release()
            del self._buf[:pos]
        else:
            self._buf = bytearray(view[pos:])
            view.release()
        return events

    def _frame(self, kind: int, sid: int, payload: bytes, events: list[Event]) -> None:
        if sid == 0:
            raise _Fatal("stream id 0")
        mine = self._mine(sid)
        st = self._streams.get(sid)
        if st is None:
            if mine:
                if sid >= self._next_sid:
                    raise _Fatal(f"frame for stream {sid} that was never opened")
                return  # a late frame for a request we cancelled or finished
            if sid > self._last_peer_sid:
                skipped = range(self._last_peer_sid + 2, sid, 2)
                if len(self._unopened) + len(skipped) > MAX_INCOMING:
                    raise _Fatal(f"stream id {sid} skips too many")
                self._unopened.update(skipped)
                self._last_peer_sid = sid
            elif sid in self._unopened:
                self._unopened.discard(sid)
            else:
                return  # the peer's request we answered early or that it cancelled
            if kind == CANCEL:
                return  # cancelled before its head was sent
            if kind not in (HEAD, HEAD_END):
                raise _Fatal(f"stream {sid} starts without a head")
            if self._incoming >= MAX_INCOMING:
                raise _Fatal("too many concurrent requests")
            st = _Stream(sid, PRIO_NORMAL)
            self._streams[sid] = st
            self._incoming += 1
        if kind in (HEAD, HEAD_END):
            self._head(st, mine, kind == HEAD_END, payload, events)
        elif kind in (DATA, END, ABORT):
            self._body(st, kind, payload, events)
        elif kind == CANCEL:
            if mine:
                raise _Fatal("the peer cancelled one of our requests")
            del self._streams[sid]
            self._incoming -= 1
            events.append(Cancelled(sid))
        elif kind == CREDIT:
            if len(payload) != 4:
                raise _Fatal("bad credit frame")
            st.window += _U32.unpack(payload)[0]
            if st.window > 1 << 31:
                raise _Fatal("credit overflow")
            if st.out:
                self._mark_ready(st)
        else:
            raise _Fatal(f"unknown frame kind {kind}")

    def _head(self, st: _Stream, mine: bool, last: bool, payload: bytes,
              events: list[Event]) -> None:
        if st.in_head_done:
            raise _Fatal(f"second head on stream {st.sid}")
        st.head += payload
        if len(st.head) > MAX_HEAD:
            raise _Fatal(f"message head over {MAX_HEAD} bytes")
        if not last:
            return
        st.in_head_done = True
        raw, st.head = bytes(st.head), bytearray()
        try:
            msg = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except Exception:  # msgpack raises several types on hostile input
            msg = None
        if mine:
            if not _valid_response(msg):
                del self._streams[st.sid]
                events.append(ProtocolError("malformed response", False, st.sid))
                events.append(Response(st.sid, False, "malformed response from peer", False))
                return
            st.in_streamed = msg[2]
            events.append(Response(st.sid, msg[0], msg[1], msg[2]))
        else:
            if not _valid_request(msg):
                # Answer and forget: any body frames that follow are ignored.
                st.discard = True
                st.prio = PRIO_HIGH
                self.send_response(st.sid, False, "malformed request")
                events.append(ProtocolError("malformed request", False, st.sid))
                return
            st.prio, st.in_streamed = msg[1], msg[3]
            events.append(Request(st.sid, msg[0], msg[1], msg[2], msg[3]))
        self._maybe_forget(st)

    def _body(self, st: _Stream, kind: int, payload: bytes, events: list[Event]) -> None:
        if st.discard:
            return
        if not (st.in_head_done and st.in_streamed) or st.in_done:
            raise _Fatal(f"unexpected body frame on stream {st.sid}")
        if kind == DATA:
            st.allowance -= len(payload)
            if st.allowance < 0:
                raise _Fatal(f"stream {st.sid} sent beyond its credit")
            events.append(Data(st.sid, payload))
            return
        st.in_done = True
        if kind == END:
            events.append(End(st.sid))
        else:
            events.append(Aborted(st.sid, payload.decode("utf-8", "replace")))
        self._maybe_forget(st)
