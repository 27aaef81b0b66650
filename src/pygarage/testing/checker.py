"""Consistency checker for the cluster fault tests: a history of client operations in,
anomalies out (pure: no I/O, no clock).

Every PUT writes a value no other PUT writes (its id is inside the body, see make_body),
so a GET names the write it read from. Operations carry the client's start and end times
and whether they were acknowledged. A failed write (error, timeout, reset) is
indeterminate: it may have taken effect, at any time between its start and the moment the
client gave up. Later than that it cannot win: its timestamp was fixed when it started, and
a write begun after its failure gets a newer one (the property Garage's LWW entries give
with sane clocks; a node whose clock is ahead breaks it, which the checker then reports).

Rules, per key:
- a GET may return the value of write w (a DELETE or the initial state: absent) only if w
  started before the GET ended, and no acknowledged write started after w ended and ended
  before the GET started (read-after-write for every acknowledged PUT and DELETE);
- a listing must hold every key with an acknowledged PUT ended before the listing started
  and no DELETE that could come after it. With deleted_in_listings=True, it must also
  not hold a key whose acknowledged DELETE ended before the listing with no PUT that could
  come after it. Garage does not promise that (each replica filters a range read before the
  merge, so a stale replica's live entry can outvote a delete marker it never sent);
  pygarage does (listings filter the quorum's merge: table/quorum.py), and the fault
  scenarios check it. The option stays for histories of a Garage-like store.
Read values never written, or not written yet, are reported too."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

PUT, DELETE, GET, LIST = "put", "delete", "get", "list"
INITIAL = float("-inf")


@dataclass(frozen=True)
class Op:
    kind: str  # put | delete | get | list
    key: str  # for a listing: its prefix
    start: float
    end: float
    ok: bool  # writes: acknowledged; reads: answered
    value: str | None = None  # put: value id written; get: value id read (None: absent)
    keys: frozenset[str] | None = None  # list: the keys listed
    client: int = 0
    node: int = 0  # the node the request went through
    error: str = ""
    final: bool = False  # a verification read after the scenario ended


@dataclass(frozen=True)
class Anomaly:
    kind: str  # stale_read lost_write resurrected_delete unknown_value future_read
    # missing_listing_key listed_deleted_key
    key: str
    op: Op
    detail: str

    def __str__(self) -> str:
        o = self.op
        return (f"{self.kind} on {self.key!r}: {self.detail} ({o.kind} by client {o.client} "
                f"via node {o.node}, [{o.start:.3f}, {o.end:.3f}])")


# ---------------------------------------------------------------------- bodies

_HDR = b"pgck:"


def make_body(value_id: str, size: int) -> bytes:
    """`size` bytes that name `value_id` and depend on it throughout (so a body from
    another write, truncated, or mixed with another, does not parse)."""
    head = _HDR + value_id.encode() + b":" + str(size).encode() + b"\n"
    out = bytearray(head)
    seed = hashlib.sha256(value_id.encode()).digest()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:max(size, len(head))])


def parse_body(body: bytes) -> str:
    """The value id of a body from make_body; ValueError if it is not exactly one."""
    if not body.startswith(_HDR):
        raise ValueError("not a checker body")
    line, _, _ = body.partition(b"\n")
    try:
        vid, size = line[len(_HDR):].decode().rsplit(":", 1)
        n = int(size)
    except (UnicodeDecodeError, ValueError):
        raise ValueError("bad checker header") from None
    if make_body(vid, n) != body:
        raise ValueError(f"body of {vid!r} corrupted or truncated ({len(body)} bytes)")
    return vid


# ---------------------------------------------------------------------- checking

class _KeyWrites:
    def __init__(self, writes: list[Op]):
        self.all = writes
        self.acked = [w for w in writes if w.ok]

    def superseder(self, after: float, before: float, not_op: Op | None) -> Op | None:
        """The latest-ending acknowledged write that started after `after` and ended before
        `before` (it overrides anything that ended at `after`), if any."""
        best: Op | None = None
        for w in self.acked:
            if w is not not_op and w.start > after and w.end < before and \
                    (best is None or w.end > best.end):
                best = w
        return best


def check(history: Iterable[Op], *, deleted_in_listings: bool = False) -> list[Anomaly]:
    ops = list(history)
    writes: dict[str, list[Op]] = defaultdict(list)
    by_value: dict[str, Op] = {}
    for o in ops:
        if o.kind in (PUT, DELETE):
            writes[o.key].append(o)
            if o.kind == PUT and o.value is not None:
                by_value[o.value] = o
    kw = {k: _KeyWrites(v) for k, v in writes.items()}
    empty = _KeyWrites([])
    out: list[Anomaly] = []
    for o in ops:
        if not o.ok:
            continue
        if o.kind == GET:
            a = _check_get(o, kw.get(o.key, empty), by_value)
            if a is not None:
                out.append(a)
        elif o.kind == LIST:
            out.extend(a for a in _check_list(o, kw)
                       if deleted_in_listings or a.kind != "listed_deleted_key")
    return out


def _superseded_kind(read: Op, by: Op, returned: str | None) -> str:
    if by.kind == DELETE and returned is not None:
        return "resurrected_delete"
    return "lost_write" if read.final else "stale_read"


def _check_get(r: Op, w: _KeyWrites, by_value: dict[str, Op]) -> Anomaly | None:
    if r.value is not None:
        src = by_value.get(r.value)
        if src is None or src.key != r.key:
            return Anomaly("unknown_value", r.key, r, f"read {r.value!r}, never written here")
        if src.start > r.end:
            return Anomaly("future_read", r.key, r,
                           f"read {r.value!r}, written only after the read ended")
        sup = w.superseder(src.end, r.start, src)
        if sup is None:
            return None
        return Anomaly(_superseded_kind(r, sup, r.value), r.key, r,
                       f"read {r.value!r} though {sup.kind} {sup.value or ''} "
                       f"[{sup.start:.3f}, {sup.end:.3f}] was acknowledged after it and "
                       "before the read")
    # Absent: from a DELETE (any outcome) or the initial state, if one is not overridden.
    latest = w.superseder(INITIAL, r.start, None)
    if latest is None:
        return None
    for d in w.all:
        if d.kind == DELETE and d.start < r.end and w.superseder(d.end, r.start, d) is None:
            return None
    # The last write acknowledged before the read is a PUT (a DELETE would be a source).
    return Anomaly(_superseded_kind(r, latest, None), r.key, r,
                   f"found nothing though put {latest.value!r} [{latest.start:.3f}, "
                   f"{latest.end:.3f}] was acknowledged before the read and not deleted")


def _check_list(lst: Op, kw: dict[str, _KeyWrites]) -> list[Anomaly]:
    listed = lst.keys or frozenset()
    out = []
    for key in sorted(set(kw) | set(listed)):
        if not key.startswith(lst.key):
            continue
        w = kw.get(key)
        writes = w.all if w else []
        puts = [p for p in writes if p.kind == PUT]
        dels = [d for d in writes if d.kind == DELETE]
        if key not in listed:
            p = _settled_before(lst, puts, dels)
            if p is not None:
                out.append(Anomaly("missing_listing_key", key, lst,
                                   f"put {p.value!r} [{p.start:.3f}, {p.end:.3f}] "
                                   "acknowledged before the listing, never deleted"))
            continue
        if not any(p.start < lst.end for p in puts):
            out.append(Anomaly("listed_deleted_key", key, lst, "listed but never written"))
            continue
        d = _settled_before(lst, dels, puts)
        if d is not None:
            out.append(Anomaly("listed_deleted_key", key, lst,
                               f"delete [{d.start:.3f}, {d.end:.3f}] acknowledged "
                               "before the listing, not rewritten"))
    return out


def _settled_before(lst: Op, ops: list[Op], undoers: list[Op]) -> Op | None:
    """The first of `ops` acknowledged before the listing started that none of `undoers`
    can have undone (none ran at any time between its start and the listing's end)."""
    return next((o for o in ops if o.ok and o.end < lst.start and not any(
        u.start < lst.end and u.end > o.start for u in undoers)), None)


def summary(ops: Iterable[Op]) -> dict[str, int]:
    """Operation counts: '<kind>' answered/acknowledged, '<kind>_failed' not."""
    out: dict[str, int] = defaultdict(int)
    for o in ops:
        out[o.kind if o.ok else f"{o.kind}_failed"] += 1
    return dict(out)
