"""Boxed stream: records round-trip in any split; tampered, replayed, reordered, oversized or
truncated records are refused and the stream stays failed."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

from pygarage.net.secretstream import (
    MAC_LEN,
    MAX_RECORD,
    OWN_RECORD,
    Opener,
    Sealer,
    StreamError,
)

KEY = secrets.token_bytes(32)


def _has_aesni() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " aes " in line + " " for line in f)
    except OSError:
        return False


def _records(n: int = 3) -> list[bytes]:
    s = Sealer(KEY)
    return [s.seal(f"record {i}".encode() * (i + 1)) for i in range(n)]


def test_roundtrip_split_at_every_offset() -> None:
    wire = b"".join(_records())
    want = [f"record {i}".encode() * (i + 1) for i in range(3)]
    for cut in range(len(wire) + 1):
        o = Opener(KEY)
        assert o.feed(wire[:cut]) + o.feed(wire[cut:]) == want
        assert o.buffered == 0
    o = Opener(KEY)
    assert [r for b in wire for r in o.feed(bytes([b]))] == want


def test_large_plaintext_split_into_records() -> None:
    data = secrets.token_bytes(MAX_RECORD * 2 + 5)
    recs = Sealer(KEY).seal_all(data)
    assert len(recs) == 3
    assert b"".join(Opener(KEY).feed(b"".join(recs))) == data


def test_tampered_at_every_byte() -> None:
    wire = _records(1)[0]
    for i in range(len(wire)):
        bad = bytearray(wire)
        bad[i] ^= 0x01
        o = Opener(KEY)
        try:
            got = o.feed(bytes(bad))
        except StreamError:
            with pytest.raises(StreamError):
                o.feed(wire)
            continue
        # A length made longer only waits for more bytes: it is a truncation at EOF.
        assert got == [] and o.buffered > 0


def test_replayed_and_reordered() -> None:
    r = _records()
    o = Opener(KEY)
    o.feed(r[0])
    with pytest.raises(StreamError):
        o.feed(r[0])
    o = Opener(KEY)
    with pytest.raises(StreamError):
        o.feed(r[1])
    with pytest.raises(StreamError):
        Opener(secrets.token_bytes(32)).feed(r[0])


def test_bad_lengths_and_truncation() -> None:
    with pytest.raises(StreamError, match="length"):
        Opener(KEY).feed(b"\xff\xff\xff\xff")
    with pytest.raises(StreamError, match="length"):
        Opener(KEY).feed(b"\x00\x00\x00\x01x")
    o = Opener(KEY)
    assert o.feed(_records(1)[0][:-1]) == [] and o.buffered > 0


def test_seal_parts_matches_seal() -> None:
    parts: list[bytes | memoryview] = [b"head", memoryview(b"0123456789")[2:7], b"", b"tail"]
    a, b = Sealer(KEY), Sealer(KEY)
    for _ in range(3):
        assert b.seal_parts(parts) == a.seal(b"".join(parts))
    assert Sealer(KEY).seal_parts([]) == b""


def test_seal_parts_seals_large_parts_alone() -> None:
    # Small parts share a record; a part of OWN_RECORD bytes or more is a record of its
    # own (sealed where it lies); one over a record's capacity is cut. The opener gives the
    # large ones back as bytes of their own, the others as views into the receive buffer.
    big = secrets.token_bytes(OWN_RECORD)
    huge = secrets.token_bytes(MAX_RECORD + 10)
    parts: list[bytes | memoryview] = [b"h1", b"h2", big, b"h3", memoryview(huge), b"t"]
    wire = Sealer(KEY).seal_parts(parts)
    step = MAX_RECORD - MAC_LEN  # the small tail of `huge` is a record of its own too
    got, used = Opener(KEY).open_in_place(memoryview(bytearray(wire)))
    assert used == len(wire)
    assert [bytes(g) for g in got] == [b"h1h2", big, b"h3", huge[:step], huge[step:], b"t"]
    assert [type(g) for g in got] == [memoryview, bytes, memoryview, bytes, memoryview,
                                      memoryview]
    assert b"".join(Opener(KEY).feed(wire)) == b"".join(bytes(p) for p in parts)


def test_open_in_place_matches_feed_at_every_split() -> None:
    wire = b"".join(_records())
    want = [f"record {i}".encode() * (i + 1) for i in range(3)]
    for cut in range(len(wire) + 1):
        o = Opener(KEY)
        buf = bytearray(wire)
        got, used = o.open_in_place(memoryview(buf)[:cut])
        rest, used2 = o.open_in_place(memoryview(buf)[used:])
        assert [bytes(r) for r in got + rest] == want
        assert used + used2 == len(wire)


def test_open_in_place_refuses_tampered_replayed_and_bad_lengths() -> None:
    wire = _records(1)[0]
    for i in range(len(wire)):
        bad = bytearray(wire)
        bad[i] ^= 0x01
        o = Opener(KEY)
        try:
            got, used = o.open_in_place(memoryview(bad))
        except StreamError:
            with pytest.raises(StreamError):
                o.open_in_place(memoryview(bytearray(wire)))
            continue
        assert got == [] and used == 0  # a longer length only waits for more bytes
    o = Opener(KEY)
    o.open_in_place(memoryview(bytearray(wire)))
    with pytest.raises(StreamError):
        o.open_in_place(memoryview(bytearray(wire)))  # replayed
    with pytest.raises(StreamError, match="length"):
        Opener(KEY).open_in_place(memoryview(bytearray(b"\x00\x00\x00\x01x")))


@pytest.mark.skipif(not _has_aesni(), reason="no AES-NI: libsodium runs portable AEGIS")
def test_aegis_runs_the_accelerated_code_when_imported_alone() -> None:
    # libsodium selects its AES-NI AEGIS only in sodium_init(); the portable fallback is
    # ~100x slower (1 MiB: ~100 ms instead of ~1 ms). secretstream must not depend on some
    # other module having imported nacl.bindings first.
    code = (
        "import time\n"
        "from pygarage.net.secretstream import Sealer\n"
        "s, d = Sealer(bytes(32)), bytes(1 << 19)\n"
        "t = time.process_time(); [s.seal(d) for _ in range(8)]\n"
        "print((time.process_time() - t) / 8)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert float(out.stdout) < 0.015, out.stdout


def test_empty_records_leave_the_shared_empty_bytes_alone() -> None:
    s = Sealer(KEY)
    wire = s.seal(b"") + s.seal(b"x")
    got = Opener(KEY).feed(wire)
    assert got == [b"", b"x"] and b"" == bytes(0)
    got2, used = Opener(KEY).open_in_place(memoryview(bytearray(wire)))
    assert [bytes(g) for g in got2] == [b"", b"x"] and used == len(wire)
