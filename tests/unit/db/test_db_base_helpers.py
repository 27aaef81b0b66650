"""prefix_end: the end bound of a range over every key with a prefix."""

from __future__ import annotations

from pygarage.db.base import prefix_end


def test_prefix_end() -> None:
    assert prefix_end(b"ab") == b"ac"
    assert prefix_end(b"a\xff\xff") == b"b"
    assert prefix_end(b"\xff\xff") is None
    assert prefix_end(b"") is None
    for p in (b"\x00", b"a\xfe", b"k\x00\xff"):
        end = prefix_end(p)
        assert end is not None and p < end and not end.startswith(p)
        assert p + b"\xff" * 8 < end
