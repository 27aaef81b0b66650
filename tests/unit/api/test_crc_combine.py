"""CRC combination for FULL_OBJECT multipart checksums: crc(A + B) from crc(A), crc(B) and
len(B), checked against awscrt / zlib over the whole data."""

from __future__ import annotations

import base64
import zlib

import pytest
from awscrt import checksums as crt
from hypothesis import given, settings
from hypothesis import strategies as st

from pygarage.api.common.signature.checksum import combine_b64, crc_combine

FNS = {"crc32": zlib.crc32, "crc32c": crt.crc32c, "crc64nvme": crt.crc64nvme}
SIZES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(FNS)), st.binary(max_size=300), st.binary(max_size=300))
def test_combine_two(algo: str, a: bytes, b: bytes) -> None:
    f = FNS[algo]
    assert crc_combine(algo, f(a), f(b), len(b)) == f(a + b)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(FNS)), st.lists(st.binary(max_size=100), max_size=6))
def test_combine_parts(algo: str, parts: list[bytes]) -> None:
    f, size = FNS[algo], SIZES[algo]

    def b64(n: int) -> str:
        return base64.b64encode(n.to_bytes(size, "big")).decode()
    got = combine_b64(algo, [(b64(f(p)), len(p)) for p in parts])
    assert got == b64(f(b"".join(parts)))


def test_large_lengths() -> None:
    a, b = b"head", bytes(5 * 1024 * 1024 + 7)
    for algo, f in FNS.items():
        assert crc_combine(algo, f(a), f(b), len(b)) == f(a + b)


def test_refuses_what_cannot_combine() -> None:
    with pytest.raises(ValueError):
        crc_combine("sha256", 0, 0, 1)
    with pytest.raises(ValueError):
        combine_b64("crc32", [("not base64!", 3)])
