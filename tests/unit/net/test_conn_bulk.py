"""The bulk path: a body frame's payload sealed as a record of its own reaches the
application as the very bytes object the opener produced (no copy), and that shortcut keeps
every check of the general path (credit, frame size, a frame split elsewhere)."""

from __future__ import annotations

import secrets
import struct

from pygarage.net.conn import (
    CHUNK,
    DATA,
    MAX_FRAME,
    PRIO_NORMAL,
    TURN,
    WINDOW,
    Connection,
    Data,
    End,
    ProtocolError,
    Request,
    Response,
)
from pygarage.net.secretstream import OWN_RECORD, Opener, Sealer

KEY = secrets.token_bytes(32)


def _streamed_request(body: bytes) -> tuple[Connection, Connection, int]:
    a, b = Connection(initiator=True), Connection(initiator=False)
    sid = a.send_request("sink", None, streamed=True)
    a.send_data(sid, body)
    a.end_data(sid)
    return a, b, sid


def test_large_payloads_are_delivered_without_a_copy() -> None:
    body = secrets.token_bytes(WINDOW)
    a, b, sid = _streamed_request(body)
    sealer, opener = Sealer(KEY), Opener(KEY)
    records: list[bytes | memoryview] = []
    while a.has_data:
        wire = sealer.seal_parts(a.frames_to_send(WINDOW))
        got, used = opener.open_in_place(memoryview(bytearray(wire)))
        assert used == len(wire)
        records += got
    payloads = [r for r in records if type(r) is bytes]
    events = [e for r in records for e in b.receive_data(r)]
    data = [e.data for e in events if isinstance(e, Data)]
    assert b"".join(data) == body and isinstance(events[-1], End)
    # Every large body frame arrived as a record of its own and was handed on as it was
    # (a small remainder of a batch shares a record with the frames around it).
    large = [d for d in data if len(d) >= OWN_RECORD]
    assert sum(map(len, large)) > len(body) * 0.9
    assert all(any(d is p for p in payloads) for d in large)


def test_the_shortcut_keeps_the_credit_check() -> None:
    a, b = Connection(initiator=True), Connection(initiator=False)
    sid = a.send_request("sink", None, streamed=True)
    b.receive_data(a.data_to_send())
    events: list[object] = []
    for _ in range(WINDOW // MAX_FRAME + 1):  # one frame beyond the credit granted
        events += b.receive_data(struct.pack(">BII", DATA, sid, MAX_FRAME))
        events += b.receive_data(bytes(MAX_FRAME))
    assert isinstance(events[-1], ProtocolError) and events[-1].fatal
    assert "credit" in events[-1].message and b.closed


def test_a_payload_not_matching_the_pending_header_takes_the_general_path() -> None:
    body = secrets.token_bytes(100_000)
    a, b, sid = _streamed_request(body)
    wire = a.data_to_send(4 * WINDOW)
    hdr = wire.index(struct.pack(">BII", DATA, sid, len(body)))
    cut = hdr + 9
    # The header alone, then its payload together with the END frame after it.
    events = b.receive_data(wire[:cut]) + b.receive_data(bytes(wire[cut:]))
    assert [e.data for e in events if isinstance(e, Data)] == [body]
    assert isinstance(events[-1], End)


def test_heads_go_before_the_body_turns_of_their_priority() -> None:
    # Four bodies of one priority take turns of TURN bytes; a small call of that priority,
    # made while they are being sent, goes out in the next batch whatever their turns.
    a, b = Connection(initiator=True), Connection(initiator=False)
    bulk = [a.send_request("put", i, PRIO_NORMAL, streamed=True) for i in range(4)]
    for sid in bulk:
        a.send_data(sid, bytes(WINDOW))
    first = b.receive_data(a.data_to_send(TURN))
    assert [type(e) for e in first][:4] == [Request] * 4  # the heads before any body
    small = a.send_request("table/get", "k", PRIO_NORMAL)
    nxt = b.receive_data(a.data_to_send(CHUNK))
    assert nxt[0] == Request(small, "table/get", PRIO_NORMAL, "k", False)
    b.send_response(small, True, "v")
    for sid in bulk:  # the answers, small as they are, go before the large ones too
        b.send_response(sid, True, None, streamed=True)
        b.send_data(sid, bytes(TURN * 2))
    back = a.receive_data(b.data_to_send(CHUNK))
    assert back[0] == Response(small, True, "v", False)
    # Body frames still take turns of TURN bytes among themselves.
    rest = [e for e in b.receive_data(a.data_to_send(4 * TURN)) if isinstance(e, Data)]
    assert len({e.sid for e in rest}) >= 3 and all(len(e.data) <= TURN for e in rest)
