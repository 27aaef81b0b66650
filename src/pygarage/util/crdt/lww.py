"""Last-writer-wins registers and maps, as plain (timestamp, value) pairs.

Laws (tested with hypothesis): merge is commutative, associative and idempotent. Ties on the
timestamp are broken by comparing the encoded values, so every replica picks the same winner.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..codec import packb

V = TypeVar("V")

Lww = tuple[int, Any]
LwwMap = dict[str, Lww]


def lww_merge(a: Lww, b: Lww) -> Lww:
    if a[0] != b[0]:
        return a if a[0] > b[0] else b
    return a if packb(a[1]) >= packb(b[1]) else b


def lww_map_merge(a: LwwMap, b: LwwMap) -> LwwMap:
    out = dict(a)
    for k, v in b.items():
        out[k] = lww_merge(out[k], v) if k in out else v
    return lww_map_canonical(out)


def lww_map_canonical(m: LwwMap) -> LwwMap:
    """Sorted by key: equal maps then encode to equal bytes, whatever the insertion order."""
    return dict(sorted(m.items()))


def lww_update(current: Lww | None, ts: int, value: Any) -> Lww:
    """A local write: strictly newer than what we have, whatever the wall clock says."""
    if current is not None and ts <= current[0]:
        ts = current[0] + 1
    return (ts, value)
