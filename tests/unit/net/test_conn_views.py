"""The core parses records handed over as views into a receive buffer that the caller
reuses right after the call: what it delivers or keeps must not change with that buffer."""

from __future__ import annotations

import struct

from pygarage.net.conn import Connection, Data


def test_views_into_a_reused_buffer_are_copied() -> None:
    a, b = Connection(initiator=True), Connection(initiator=False)
    sid = a.send_request("sink", None, streamed=True)
    a.send_data(sid, b"A" * 1000)
    wire = a.data_to_send()
    buf = bytearray(wire)
    cut = len(wire) - 300  # the last DATA frame arrives in two pieces
    events = b.receive_data(memoryview(buf)[:cut])
    buf[:cut] = b"\xee" * cut  # the caller reuses its buffer
    events += b.receive_data(memoryview(buf)[cut:])
    buf[:] = b"\xee" * len(buf)
    data = b"".join(e.data for e in events if isinstance(e, Data))
    assert data == b"A" * 1000
    assert struct.unpack(">BII", wire[:9])[1] == sid
