"""Quorum accounting and reply merging of replicated table calls (pure, no I/O).

Writes: each entry goes to every node of each of its write sets (one set per live layout
version), one call per node carrying all of that node's entries; the write is acknowledged
once every entry has `quorum` successes in every one of its sets (rpc/write_quorum.py).

Reads: the replies of a read quorum are merged as CRDTs; a node whose answer differed from
the merge, or that lacked an entry it should have returned, gets the merged entry back
(read repair: merge_get, merge_range).

Listings with a filter (e.g. "objects with live data") are filtered after the merge, never
by the replicas alone: a replica that missed a DeleteObject still holds the live entry, and
if the fresh replicas had dropped the deletion from their answers (it fails the filter),
the merge would only see the stale copy and list a deleted key. So a replica answers every
entry from the start of the range, matching or not, until `limit` match or a scan budget
is spent (bounded answers even over 100k delete markers in a row), and says whether it
stopped early. The merger trusts keys only up to the nearest stopping point of the quorum
(there it holds every replica's full state), merges per key, filters, and the caller runs
another round after that point while the page is short: a page holds `limit` entries
unless the range ended, and each round advances by at least one key on every replica.
(The other option, over-fetching filtered entries, bounds nothing: any number of stale
copies can hide behind deletions.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic

from .schema import E


@dataclass
class WritePlan:
    """Which entries (by index) each node receives, and each entry's write sets."""
    per_node: dict[str, list[int]] = field(default_factory=dict)
    entry_sets: list[list[list[str]]] = field(default_factory=list)


def plan_writes(sets_per_entry: Sequence[list[list[str]]]) -> WritePlan:
    plan = WritePlan()
    for i, sets in enumerate(sets_per_entry):
        plan.entry_sets.append(sets)
        seen: set[str] = set()
        for s in sets:
            for node in s:
                if node not in seen:  # a node in several sets gets the entry once
                    seen.add(node)
                    plan.per_node.setdefault(node, []).append(i)
    return plan


def merge_get(replies: Sequence[tuple[str, bytes | None]], decode: Callable[[bytes], E]
              ) -> tuple[E | None, bytes | None, list[str]]:
    """-> (merged entry, its encoding, nodes to repair). Nodes whose answer was not the
    merged entry's encoding (an older copy, or none) get it back."""
    merged: E | None = None
    raws = {raw for _, raw in replies if raw is not None}
    if not raws:
        return None, None, []
    for raw in raws:
        e = decode(raw)
        if merged is None:
            merged = e
        else:
            merged.merge(e)
    assert merged is not None
    enc = next(iter(raws)) if len(raws) == 1 else merged.encode()
    return merged, enc, [n for n, raw in replies if raw != enc]


def check_range_keys(keys: Sequence[bytes], start: bytes | None, end: bytes | None,
                     reverse: bool) -> None:
    """A replica's range answer must be in strict key order within [start, end): an entry
    out of order or out of range would be listed twice or outside the request."""
    prev: bytes | None = None
    for sk in keys:
        if (start is not None and sk < start) or (end is not None and sk >= end):
            raise ValueError("an entry outside the requested range")
        if prev is not None and not (sk < prev if reverse else sk > prev):
            raise ValueError("entries out of key order")
        prev = sk


@dataclass
class RangeRound(Generic[E]):
    """One round of a quorum listing: `out` the merged entries that pass the filter (at
    most the `want` asked), `repairs` the merged entries each replica should get, and
    `after` the last key the round vouches for when the listing may go on past it (None:
    the quorum reached the end of the range)."""
    out: list[E]
    repairs: dict[str, list[bytes]]
    after: bytes | None


def merge_range(replies: Sequence[tuple[str, list[bytes], bool]], decode: Callable[[bytes], E],
                matches: Callable[[E], bool], want: int, reverse: bool) -> RangeRound[E]:
    """Merge the (node, entries in key order, more) answers of a read quorum to one round.

    Each replica answered every entry it holds from the start, matching the filter or not,
    up to a point: its last entry when `more`, else the end. Up to the nearest of these
    points every replica's whole state is known, so each key there is merged over the
    quorum and filtered AFTER the merge (a fresh deletion hides a stale live copy); keys
    beyond it are dropped, for the next round to read. A replica whose answer for a key
    there differs from the merge, or lacks it, is repaired with the merge (deletions
    included)."""
    by_key: dict[bytes, list[tuple[str, bytes]]] = {}
    decoded: dict[bytes, E] = {}
    bound: bytes | None = None
    for node, raws, more in replies:
        sk = b""
        for raw in raws:
            e = decode(raw)
            sk = e.sort_key()
            seen = by_key.setdefault(sk, [])
            prev = decoded.get(sk)
            if prev is None:
                decoded[sk] = e
            elif all(r != raw for _, r in seen):
                prev.merge(e)
            seen.append((node, raw))
        if more and (bound is None or (sk > bound if reverse else sk < bound)):
            bound = sk
    keys = sorted((k for k in decoded
                   if bound is None or (k >= bound if reverse else k <= bound)),
                  reverse=reverse)
    out: list[E] = []
    repairs: dict[str, list[bytes]] = {}
    for sk in keys:
        e = decoded[sk]
        answers = dict(by_key[sk])
        distinct = set(answers.values())
        enc = next(iter(distinct)) if len(distinct) == 1 else e.encode()
        for node, _, _ in replies:
            if answers.get(node) != enc:
                repairs.setdefault(node, []).append(enc)
        if matches(e):
            out.append(e)
            if len(out) >= want:
                return RangeRound(out, repairs, sk)
    return RangeRound(out, repairs, bound)
