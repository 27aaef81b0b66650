"""The PRNG Garage's layout computation shuffles with (Rust `rand` 0.8 `StdRng`, i.e. ChaCha
with 12 rounds), so `layout show` and `layout apply` agree and our assignments match Garage's.

Only what the layout needs: a u32/u64 stream, `gen_index` (rand's `gen_range(0..n)` for u32)
and a Fisher-Yates `shuffle` consuming the stream exactly as rand's `SliceRandom::shuffle`.
"""

from __future__ import annotations

import struct
from typing import TypeVar

T = TypeVar("T")

_MASK = 0xFFFFFFFF
_CONSTANTS = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"


def _block(key: tuple[int, ...], counter: int, rounds: int) -> list[int]:
    init = [*_CONSTANTS, *key, counter & _MASK, counter >> 32, 0, 0]
    x = list(init)

    def qr(a: int, b: int, c: int, d: int) -> None:
        xa, xb, xc, xd = x[a], x[b], x[c], x[d]
        xa = (xa + xb) & _MASK
        xd ^= xa
        xd = ((xd << 16) | (xd >> 16)) & _MASK
        xc = (xc + xd) & _MASK
        xb ^= xc
        xb = ((xb << 12) | (xb >> 20)) & _MASK
        xa = (xa + xb) & _MASK
        xd ^= xa
        xd = ((xd << 8) | (xd >> 24)) & _MASK
        xc = (xc + xd) & _MASK
        xb ^= xc
        xb = ((xb << 7) | (xb >> 25)) & _MASK
        x[a], x[b], x[c], x[d] = xa, xb, xc, xd

    for _ in range(rounds // 2):
        qr(0, 4, 8, 12)
        qr(1, 5, 9, 13)
        qr(2, 6, 10, 14)
        qr(3, 7, 11, 15)
        qr(0, 5, 10, 15)
        qr(1, 6, 11, 12)
        qr(2, 7, 8, 13)
        qr(3, 4, 9, 14)
    return [(a + b) & _MASK for a, b in zip(x, init, strict=True)]


class StdRng:
    """ChaCha12 keyed by a 32-byte seed, 64-bit block counter from 0, nonce 0."""

    def __init__(self, seed: bytes, rounds: int = 12):
        if len(seed) != 32:
            raise ValueError("seed must be 32 bytes")
        self._key = struct.unpack("<8I", seed)
        self._rounds = rounds
        self._counter = 0
        self._buf: list[int] = []
        self._pos = 0

    def next_u32(self) -> int:
        if self._pos >= len(self._buf):
            self._buf = _block(self._key, self._counter, self._rounds)
            self._counter += 1
            self._pos = 0
        v = self._buf[self._pos]
        self._pos += 1
        return v

    def next_u64(self) -> int:
        lo = self.next_u32()
        return lo | (self.next_u32() << 32)

    def gen_index(self, bound: int) -> int:
        """Uniform in [0, bound), bound < 2**32: widening multiply with rand's rejection zone."""
        zone = ((bound << (32 - bound.bit_length())) - 1) & _MASK
        while True:
            t = self.next_u32() * bound
            if (t & _MASK) <= zone:
                return t >> 32

    def shuffle(self, items: list[T]) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.gen_index(i + 1)
            items[i], items[j] = items[j], items[i]
