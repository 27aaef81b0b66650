"""Connection core (sans-IO): framing in any split, multiplexing both ways, priorities, flow
control, cancellation, and hostile frames turned into error events (never exceptions)."""

from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygarage.net import conn as c
from pygarage.net.conn import (
    CHUNK,
    PRIO_BACKGROUND,
    PRIO_HIGH,
    PRIO_NORMAL,
    WINDOW,
    Aborted,
    Cancelled,
    Connection,
    Data,
    End,
    Event,
    ProtocolError,
    Request,
    Response,
)


def _pair() -> tuple[Connection, Connection]:
    return Connection(initiator=True), Connection(initiator=False)


def _pump(src: Connection, dst: Connection) -> list[Event]:
    events: list[Event] = []
    while True:
        out = src.data_to_send()
        if not out:
            return events
        events += dst.receive_data(out)


def _frame(kind: int, sid: int, payload: bytes) -> bytes:
    return struct.pack(">BII", kind, sid, len(payload)) + payload


def _head(msg: object) -> bytes:
    return msgpack.packb(msg, use_bin_type=True)


def test_request_response_roundtrip() -> None:
    a, b = _pair()
    sid = a.send_request("admin", {"endpoint": "GetClusterStatus"}, PRIO_NORMAL)
    assert _pump(a, b) == [Request(sid, "admin", PRIO_NORMAL, {"endpoint": "GetClusterStatus"},
                                   False)]
    assert b.send_response(sid, True, [1, b"\x00"])
    assert _pump(b, a) == [Response(sid, True, [1, b"\x00"], False)]
    assert not a.is_open(sid) and not b.is_open(sid)
    assert not b.send_response(sid, True, None)  # answered streams are gone


def _streamed_wire() -> tuple[bytes, bytes]:
    a, b = _pair()
    sid = a.send_request("block/put", {"hash": b"h" * 32}, PRIO_BACKGROUND, streamed=True)
    a.send_data(sid, bytes(range(256)))  # 4 frames
    a.end_data(sid)
    req = a.data_to_send(limit=1 << 30)
    b.receive_data(req)
    b.send_response(sid, True, "ok", streamed=True)
    b.send_data(sid, b"reply")
    b.abort_data(sid, "disk gone")
    return req, b.data_to_send()


def test_fed_byte_by_byte_and_split_at_every_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(c, "CHUNK", 64)  # many small frames keep the O(n^2) loop fast
    monkeypatch.setattr(c, "MAX_FRAME", 64)
    monkeypatch.setattr(c, "TURN", 64)
    req, resp = _streamed_wire()
    want_req = Connection(initiator=False).receive_data(req)
    assert [type(e) for e in want_req] == [Request, Data, Data, Data, Data, End]
    assert b"".join(e.data for e in want_req if isinstance(e, Data)) == bytes(range(256))
    for wire, initiator in ((req, False), (resp, True)):
        ref = Connection(initiator=initiator)
        if initiator:
            ref.send_request("block/put", {"hash": b"h" * 32}, PRIO_BACKGROUND, True)
        want = ref.receive_data(wire)
        assert not any(isinstance(e, ProtocolError) for e in want)
        for cut in range(len(wire) + 1):
            r = Connection(initiator=initiator)
            if initiator:
                r.send_request("block/put", {"hash": b"h" * 32}, PRIO_BACKGROUND, True)
            assert r.receive_data(wire[:cut]) + r.receive_data(wire[cut:]) == want
        r = Connection(initiator=initiator)
        if initiator:
            r.send_request("block/put", {"hash": b"h" * 32}, PRIO_BACKGROUND, True)
        assert [e for x in wire for e in r.receive_data(bytes([x]))] == want
    assert want[-2:] == [Data(1, b"reply"), Aborted(1, "disk gone")]


def test_multiplexed_both_ways_with_interleaved_responses() -> None:
    a, b = _pair()
    sids = [a.send_request("echo", i) for i in range(5)]
    assert sids == [1, 3, 5, 7, 9]
    reqs = _pump(a, b)
    assert [e.body for e in reqs if isinstance(e, Request)] == list(range(5))
    # b calls a on the same link while a's calls are in flight.
    back = b.send_request("gossip", "hi", PRIO_HIGH)
    assert back == 2
    for sid in reversed(sids[1:]):
        b.send_response(sid, True, sid * 10)
    evs = _pump(b, a)
    assert evs[0] == Request(2, "gossip", PRIO_HIGH, "hi", False)  # high priority first
    assert [e.body for e in evs[1:] if isinstance(e, Response)] == [90, 70, 50, 30]
    a.send_response(2, True, "hello")
    b.send_response(1, True, 10)
    assert _pump(a, b) == [Response(2, True, "hello", False)]
    assert _pump(b, a) == [Response(1, True, 10, False)]


def test_interactive_frames_overtake_background_bulk() -> None:
    a, b = _pair()
    bulk = a.send_request("block/put", None, PRIO_BACKGROUND, streamed=True)
    a.send_data(bulk, b"x" * (WINDOW - CHUNK))
    a.end_data(bulk)
    first = b.receive_data(a.data_to_send(limit=CHUNK))
    assert [type(e) for e in first] == [Request, Data]
    ping = a.send_request("ping", 1, PRIO_HIGH)
    evs = b.receive_data(a.data_to_send(limit=CHUNK))
    assert evs[0] == Request(ping, "ping", PRIO_HIGH, 1, False)
    evs += _pump(a, b)
    assert isinstance(evs[-1], End) and evs[-1].sid == bulk


def test_equal_priorities_take_turns_frame_by_frame() -> None:
    a, b = _pair()
    s1 = a.send_request("p", 1, PRIO_NORMAL, streamed=True)
    s2 = a.send_request("p", 2, PRIO_NORMAL, streamed=True)
    turns = c.WINDOW // c.TURN  # what each may send before its first credit
    a.send_data(s1, b"1" * turns * c.TURN)
    a.send_data(s2, b"2" * turns * c.TURN)
    evs = [e for e in b.receive_data(a.data_to_send(limit=8 * c.TURN))
           if isinstance(e, Data)]
    assert turns >= 2 and [e.sid for e in evs] == [s1, s2] * turns
    assert {len(e.data) for e in evs} == {c.TURN}


def test_a_body_sending_alone_goes_in_large_frames_within_the_budget() -> None:
    a, b = _pair()
    sid = a.send_request("put", None, PRIO_NORMAL, streamed=True)
    a.send_data(sid, bytes(WINDOW))
    a.end_data(sid)
    sizes = [len(e.data) for e in b.receive_data(a.data_to_send(limit=4 * WINDOW))
             if isinstance(e, Data)]
    assert sizes == [c.MAX_FRAME] * (WINDOW // c.MAX_FRAME)
    # A small budget (the glue's record size) cuts frames to fit it: a batch overshoots
    # its budget by one CHUNK frame at most, so records never need splitting.
    sid = a.send_request("put", None, PRIO_NORMAL, streamed=True)
    a.send_data(sid, bytes(WINDOW))
    for limit in (CHUNK // 2, 3 * CHUNK, c.MAX_FRAME + 1000):
        out = a.data_to_send(limit=limit)
        assert limit <= len(out) <= limit + CHUNK + 9
        assert not any(isinstance(e, ProtocolError) for e in b.receive_data(out))
    # Anything of higher priority goes first, in the same batch.
    ping = a.send_request("ping", None, PRIO_HIGH)
    evs = b.receive_data(a.data_to_send(limit=c.MAX_FRAME))
    assert evs[0] == Request(ping, "ping", PRIO_HIGH, None, False)
    assert isinstance(evs[1], Data) and evs[1].sid == sid


def test_flow_control_holds_back_until_consumed() -> None:
    a, b = _pair()
    sid = a.send_request("put", None, PRIO_NORMAL, streamed=True)
    a.send_data(sid, b"z" * (3 * WINDOW))
    got = sum(len(e.data) for e in _pump(a, b) if isinstance(e, Data))
    assert got == WINDOW and a.queued(sid) == 2 * WINDOW
    assert a.data_to_send() == b""  # blocked: the peer has not consumed
    b.consumed(sid, WINDOW)
    assert _pump(b, a) == []  # credit frames carry no events
    got += sum(len(e.data) for e in _pump(a, b) if isinstance(e, Data))
    assert got == 2 * WINDOW


def test_sending_beyond_credit_is_fatal() -> None:
    _, b = _pair()
    wire = _frame(c.HEAD_END, 1, _head(["put", 1, None, True]))
    wire += b"".join(_frame(c.DATA, 1, b"\0" * CHUNK) for _ in range(WINDOW // CHUNK + 1))
    evs = b.receive_data(wire)
    assert isinstance(evs[-1], ProtocolError) and evs[-1].fatal and "credit" in evs[-1].message


def test_cancellation_both_sides() -> None:
    a, b = _pair()
    sid = a.send_request("slow", None, PRIO_NORMAL, streamed=True)
    a.send_data(sid, b"part")
    _pump(a, b)
    b.send_response(sid, True, "late", streamed=True)  # already on its way
    late = b.data_to_send()
    a.cancel(sid)
    assert not a.send_data(sid, b"more") and not a.is_open(sid)
    assert _pump(a, b) == [Cancelled(sid)]
    assert not b.send_data(sid, b"x") and not b.is_open(sid)
    assert a.receive_data(late) == []  # ignored, not an error
    # The link still works.
    s2 = a.send_request("next", None)
    assert _pump(a, b) == [Request(s2, "next", PRIO_NORMAL, None, False)]


@pytest.mark.parametrize("body", [
    _head([1, 2, 3]), _head("x"), _head({"a": 1}), _head(["p", 9, None, False]),
    _head(["p", True, None, False]), _head(["p", 1, None, "yes"]), _head([7, "admin", {}]),
    b"\xc1", _head(["p", 1, None, False])[:-1], _head(["p", 1, None, False]) + b"\x00",
    b"", _head({(1,): 2})[:3] + b"\x91\x91\x91",
])
def test_malformed_request_heads_are_answered_not_fatal(body: bytes) -> None:
    a, b = _pair()
    a.send_request("p", None)  # a's stream 1, whose head the test replaces
    evs = b.receive_data(_frame(c.HEAD_END, 1, body) + _frame(c.DATA, 1, b"x"))
    assert evs == [ProtocolError("malformed request", False, 1)]
    assert a.receive_data(b.data_to_send()) == [Response(1, False, "malformed request", False)]
    assert not b.is_open(1)
    # The link keeps working for the next request.
    b.receive_data(_frame(c.HEAD_END, 3, _head(["ok", 0, None, False])))
    assert b.send_response(3, True, "fine")


@pytest.mark.parametrize("wire, why", [
    (_frame(c.DATA, 1, b"x"), "without a head"),
    (_frame(c.HEAD_END, 0, _head(["p", 1, None, False])), "id 0"),
    (struct.pack(">BII", c.DATA, 1, c.MAX_FRAME + 1), "frame of"),
    (struct.pack(">BII", c.HEAD, 1, 0xFFFFFFFF), "frame of"),
    (_frame(c.HEAD_END, 1, _head(["p", 1, None, True])) + _frame(99, 1, b""),
     "unknown frame kind"),
    (_frame(c.HEAD_END, 2, _head([True, None, False])), "never opened"),
    (_frame(c.CANCEL, 2, b""), "never opened"),
    (_frame(c.HEAD_END, 1, _head(["p", 1, None, False])) + _frame(c.DATA, 1, b"x"),
     "unexpected body"),
    (_frame(c.HEAD_END, 1, _head(["p", 1, None, False])) * 2, "second head"),
    (_frame(c.HEAD_END, 1, _head(["p", 1, None, True])) + _frame(c.CREDIT, 1, b"xx"),
     "credit frame"),
    (_frame(c.HEAD_END, 1, _head(["p", 1, None, True]))
     + _frame(c.CREDIT, 1, b"\xff\xff\xff\xff"), "overflow"),
])
def test_hostile_frames_are_fatal_errors(wire: bytes, why: str) -> None:
    _, b = _pair()
    evs = b.receive_data(wire)
    assert isinstance(evs[-1], ProtocolError) and evs[-1].fatal, evs
    assert why in evs[-1].message
    assert b.closed and b.receive_data(_frame(c.HEAD_END, 3, _head(["p", 1, 0, False]))) == []


def test_huge_head_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(c, "MAX_HEAD", 3 * CHUNK)
    _, b = _pair()
    evs = b.receive_data(b"".join(_frame(c.HEAD, 1, b"\0" * CHUNK) for _ in range(4)))
    assert evs == [ProtocolError(f"message head over {3 * CHUNK} bytes", True)]


def test_malformed_response_fails_only_that_call() -> None:
    a, _ = _pair()
    sid = a.send_request("p", None)
    evs = a.receive_data(_frame(c.HEAD_END, sid, _head(["not", "a", "response"])))
    assert evs == [ProtocolError("malformed response", False, sid),
                   Response(sid, False, "malformed response from peer", False)]


def test_large_heads_are_chunked() -> None:
    a, b = _pair()
    big = bytes(3 * CHUNK + 5)
    sid = a.send_request("p", big)
    assert _pump(a, b) == [Request(sid, "p", PRIO_NORMAL, big, False)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_random_bytes_never_raise(junk: bytes, step: int) -> None:
    for initiator in (True, False):
        r = Connection(initiator=initiator)
        r.send_request("p", None, streamed=True)
        for i in range(0, len(junk), step):
            for e in r.receive_data(junk[i:i + step]):
                assert isinstance(e, (Request, Response, Data, End, Aborted, Cancelled,
                                      ProtocolError))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 7), st.integers(0, 6), st.binary(max_size=40)),
                max_size=12))
def test_random_frames_never_raise(frames: list[tuple[int, int, bytes]]) -> None:
    r = Connection(initiator=False)
    r.send_request("p", None)
    wire = b"".join(_frame(k, sid, p) for k, sid, p in frames)
    for e in r.receive_data(wire):
        assert not isinstance(e, Exception)
    r.data_to_send()


def test_a_request_overtaken_by_a_higher_priority_one_still_arrives() -> None:
    # The head of a high-priority call goes before that of an earlier background call, so
    # the peer sees stream ids out of order: the earlier one is a new request, not a late
    # frame of a finished one (it used to be dropped silently and its caller hung).
    a, b = _pair()
    bulk = a.send_request("block/put", None, PRIO_BACKGROUND, streamed=True)
    a.send_data(bulk, b"x" * 10)
    a.end_data(bulk)
    ping = a.send_request("ping", None, PRIO_HIGH)
    evs = _pump(a, b)
    assert [(type(e), e.sid) for e in evs] == [
        (Request, ping), (Request, bulk), (Data, bulk), (End, bulk)]
    # Both ways round: answered, the ids are closed; late frames for them are ignored.
    b.send_response(ping, True, None)
    b.send_response(bulk, True, 10)
    assert [e.sid for e in _pump(b, a) if isinstance(e, Response)] == [ping, bulk]
    assert b.receive_data(_frame(c.DATA, bulk, b"late")) == []


def test_cancelled_before_its_head_was_sent() -> None:
    a, b = _pair()
    first = a.send_request("slow", None, PRIO_BACKGROUND)
    ping = a.send_request("ping", None, PRIO_HIGH)
    b.receive_data(a.data_to_send(limit=1))  # only the ping's head goes
    a.cancel(first)
    evs = _pump(a, b)
    assert not any(isinstance(e, ProtocolError) for e in evs)
    assert b.send_response(ping, True, None)
    # A peer skipping ids far beyond what it could have in flight is refused.
    _, b2 = _pair()
    evs = b2.receive_data(_frame(c.HEAD_END, 2 * c.MAX_INCOMING + 1001,
                                 _head(["p", 1, None, False])))
    assert isinstance(evs[-1], ProtocolError) and "skips" in evs[-1].message
