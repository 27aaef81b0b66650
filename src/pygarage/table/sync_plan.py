"""Anti-entropy decisions, pure (no I/O): which partitions a full sync visits, which subtrees
of two Merkle tries to descend into, when a partition counts as synced, and what each
table's finished passes say about this node's sync tracker.

A sync only pushes: this node sends the entries the other replica lacks or holds
differently; the other replica's own sync pushes the other way, so both converge.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .merkle import EMPTY, Intermediate, Leaf, Node


@dataclass(frozen=True)
class SyncPartition:
    partition: int
    storage_sets: tuple[tuple[str, ...], ...]  # the partition's nodes in each live version
    retain: bool  # False: this node no longer stores it (offload, then delete locally)


@dataclass
class FullSync:
    """One pass over a table's partitions, started for layout version `version`."""
    version: int
    todo: list[SyncPartition]
    total: int
    failed: int = 0

    @property
    def done(self) -> int:
        return self.total - len(self.todo)


def plan_full_sync(me: str, version: int, sets_of: Callable[[int], list[list[str]]],
                   has_data: Callable[[int], bool], n_partitions: int = 256,
                   rng: random.Random | None = None) -> FullSync:
    """Every partition this node stores in a live version (synced with the other nodes of
    its sets), and every other partition it still holds entries of (offloaded); in random
    order, as Garage does, so nodes do not all start on the same partitions."""
    todo = []
    for p in range(n_partitions):
        sets = tuple(tuple(s) for s in sets_of(p) if s)
        if not sets:
            continue
        retain = any(me in s for s in sets)
        if retain or has_data(p):
            todo.append(SyncPartition(p, sets, retain))
    (rng or random).shuffle(todo)
    return FullSync(version, todo, len(todo))


def peers_of(me: str, sp: SyncPartition) -> list[str]:
    return sorted({n for s in sp.storage_sets for n in s} - {me})


def partition_synced(sp: SyncPartition, me: str, ok: set[str], quorum: int) -> bool:
    """Synced when, counting this node and the peers synced with successfully, every
    storage set of the partition reached the write quorum (layout.md §4)."""
    good = ok | {me}
    return all(sum(1 for n in s if n in good) >= min(quorum, len(s))
               for s in sp.storage_sets)


@dataclass
class CatchUp:
    """Partitions a peer is known to lack writes of: a pass counted them as synced (a
    write quorum reached) although that peer was not (down, cut off, too slow), or a copy
    of a write failed on it. Each such peer gets them again soon (at once when it comes
    back up, else after a short backoff), not only at the next full pass ten minutes
    later: a healed partition then converges within seconds."""
    base_s: float = 5.0
    max_s: float = 120.0
    behind: dict[str, set[int]] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    # Every miss gets the next number. A sync clears only the misses numbered at or below
    # the mark it took before reading its Merkle roots: a write missed while it ran is
    # not in what it compared.
    gen: int = 0
    gen_of: dict[tuple[str, int], int] = field(default_factory=dict)

    def mark(self) -> int:
        return self.gen

    def missed(self, peer: str, parts: set[int], now: float) -> None:
        if not parts:
            return
        if not self.behind.get(peer):
            self.due[peer] = now + self.base_s
            self.delay[peer] = self.base_s
        self.gen += 1
        for p in parts:
            self.gen_of[(peer, p)] = self.gen
        self.behind.setdefault(peer, set()).update(parts)

    def synced(self, peer: str, parts: set[int], mark: int | None = None) -> None:
        """`parts` are synced with `peer` as of `mark` (None: whatever was missed)."""
        left = self.behind.get(peer)
        if left is None:
            return
        done = {p for p in parts & left
                if mark is None or self.gen_of.get((peer, p), 0) <= mark}
        left -= done
        for p in done:
            self.gen_of.pop((peer, p), None)
        if not left:
            del self.behind[peer], self.due[peer], self.delay[peer]

    def failed_again(self, peer: str, now: float) -> None:
        if peer in self.behind:
            self.delay[peer] = min(self.max_s, 2 * self.delay[peer])
            self.due[peer] = now + self.delay[peer]

    def came_up(self, peer: str, now: float) -> None:
        if peer in self.behind:
            self.due[peer] = now
            self.delay[peer] = self.base_s

    def next_due(self, now: float, is_up: Callable[[str], bool], limit: int
                 ) -> tuple[str, list[int]] | None:
        """A peer that is up and due, with at most `limit` of its partitions."""
        for peer in sorted(self.due, key=self.due.__getitem__):
            if self.due[peer] > now:
                break
            if is_up(peer):
                return peer, sorted(self.behind[peer])[:limit]
        return None


@dataclass(frozen=True)
class Step:
    """What to do at one prefix of a partition's trie, once both sides' nodes are known."""
    descend: tuple[bytes, ...] = ()  # child prefixes whose hashes differ
    send_key: bytes | None = None  # a local leaf: send this entry
    send_all: bool = False  # the other side has no comparable subtree: send all local leaves


def plan_step(local: Node, remote: Node | None, prefix: bytes) -> Step:
    """`remote` is None when it is not needed (local empty or leaf). Only local content is
    ever sent: a child only the remote side has is its own sync's business."""
    if local is EMPTY:
        return Step()
    if isinstance(local, Leaf):
        return Step(send_key=local.key)
    assert isinstance(local, Intermediate)
    if not isinstance(remote, Intermediate):
        return Step(send_all=True)
    theirs = dict(remote.children)
    return Step(descend=tuple(prefix + bytes([pos]) for pos, h in local.children
                              if theirs.get(pos) != h))


def needs_remote(local: Node) -> bool:
    return isinstance(local, Intermediate)


@dataclass
class SyncTrackers:
    """Per table, the layout version its last complete pass was for; this node's sync
    tracker is their minimum (Garage's sync_table_until)."""
    tables: dict[str, int] = field(default_factory=dict)

    def add_table(self, name: str, version: int) -> None:
        self.tables.setdefault(name, version)

    def table_done(self, name: str, version: int) -> int | None:
        """Record a finished pass; the new node-wide value (None while tables are missing)."""
        self.tables[name] = max(self.tables.get(name, version), version)
        return min(self.tables.values()) if self.tables else None

    def synced_until(self) -> int | None:
        return min(self.tables.values()) if self.tables else None


def batch_by_size(items: Sequence[bytes], max_count: int, max_bytes: int) -> list[list[bytes]]:
    """Items in batches of at most max_count items and about max_bytes (a single larger item
    goes alone)."""
    out: list[list[bytes]] = []
    cur: list[bytes] = []
    size = 0
    for it in items:
        if cur and (len(cur) >= max_count or size + len(it) > max_bytes):
            out.append(cur)
            cur, size = [], 0
        cur.append(it)
        size += len(it)
    if cur:
        out.append(cur)
    return out
