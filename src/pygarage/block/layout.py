"""Which data directory holds which blocks (pure: no I/O but the `nonempty` callable).

Block hashes fall in 1024 slots (bytes 2-3 of the hash, so the split is independent of the
<aa>/<bb> directories and of the cluster's 256 partitions). Each slot has one primary
directory, where its blocks are written, chosen among the writable directories in
proportion to their capacity; and secondary directories, where some of its blocks may
still be (read-only directories, or the slot's former primary until a rebalance moves
them). Reads look in the primary, then the secondaries.

When the configured directories change, only as many slots as needed change primary
(a directory that must shrink gives up slots, which go to the ones that must grow), and
the old primary becomes a secondary, so no block is lost before the rebalance moves it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgpack

N_SLOTS = 1024
MARKER = b"PGdlay1"
# The capacity of a lone `data_dir = "/path"`: any value works, there is no other dir.
SINGLE_DIR_CAPACITY = 1_000_000_000


@dataclass(frozen=True)
class LayoutDir:
    path: str
    capacity: int | None  # None: read-only

    @property
    def writable(self) -> bool:
        return self.capacity is not None


def slot_of(h: bytes) -> int:
    return int.from_bytes(h[2:4], "big") % N_SLOTS


def _targets(dirs: Sequence[LayoutDir]) -> list[int]:
    """How many slots each directory should be primary for: proportional to capacity,
    cumulative rounding so the counts add up to N_SLOTS exactly."""
    total = sum(d.capacity or 0 for d in dirs)
    if total <= 0:
        raise ValueError("data_dir: no writable directory with a capacity")
    out, cum = [], 0
    for d in dirs:
        begin = cum * N_SLOTS // total
        cum += d.capacity or 0
        out.append(cum * N_SLOTS // total - begin)
    return out


@dataclass
class DataLayout:
    dirs: list[LayoutDir]
    prim: list[int]         # slot -> index in dirs
    sec: list[list[int]]    # slot -> indexes in dirs, in the order to look

    @staticmethod
    def initialize(dirs: Sequence[LayoutDir], nonempty: Callable[[str], bool]) -> DataLayout:
        prim: list[int] = []
        for i, n in enumerate(_targets(dirs)):
            prim += [i] * n
        # Directories holding blocks already (from before this layout existed) are
        # secondaries of every slot: nothing they hold is lost.
        full = [i for i, d in enumerate(dirs) if nonempty(d.path)]
        sec = [[i for i in full if i != p] for p in prim]
        return DataLayout(list(dirs), prim, sec)

    def updated(self, dirs: Sequence[LayoutDir],
                nonempty: Callable[[str], bool]) -> DataLayout:
        """The layout for a new set of directories, moving as few slots as possible."""
        dirs = list(dirs)
        if dirs == self.dirs:
            return self
        new_index = {d.path: i for i, d in enumerate(dirs)}
        old2new = [new_index.get(d.path) for d in self.dirs]
        sec2 = [[j for j in (old2new[i] for i in s) if j is not None] for s in self.sec]
        owned: list[list[int]] = [[] for _ in dirs]  # new dir -> slots it keeps as primary
        for slot, p in enumerate(self.prim):
            np_ = old2new[p]
            if np_ is not None:
                owned[np_].append(slot)
        targets = _targets(dirs)
        # Shrink: a directory over its share keeps its first slots; the others become
        # free, and it stays a secondary for them until the rebalance.
        for i, slots in enumerate(owned):
            while len(slots) > targets[i]:
                slot = slots.pop()
                if i not in sec2[slot]:
                    sec2[slot].append(i)
        prim: list[int | None] = [None] * N_SLOTS
        for i, slots in enumerate(owned):
            for slot in slots:
                prim[slot] = i
        free = [slot for slot in range(N_SLOTS) if prim[slot] is None]
        # Grow: directories under their share take free slots.
        for i, slots in enumerate(owned):
            for _ in range(targets[i] - len(slots)):
                slot = free.pop()
                prim[slot] = i
                sec2[slot] = [j for j in sec2[slot] if j != i]
        assert not free and all(p is not None for p in prim)
        final = [p for p in prim if p is not None]
        # A directory new to the layout that already holds blocks (removed, then put
        # back) is a secondary of every slot.
        known = {d.path for d in self.dirs}
        for i, d in enumerate(dirs):
            if d.path not in known and nonempty(d.path):
                for slot in range(N_SLOTS):
                    if final[slot] != i and i not in sec2[slot]:
                        sec2[slot].append(i)
        return DataLayout(dirs, final, sec2)

    def primary(self, h: bytes) -> int:
        return self.prim[slot_of(h)]

    def secondaries(self, h: bytes) -> list[int]:
        return self.sec[slot_of(h)]

    def without_secondaries(self) -> DataLayout:
        """After a rebalance: every block is in its primary directory."""
        return DataLayout(self.dirs, self.prim, [[] for _ in self.prim])

    def slot_counts(self) -> list[int]:
        out = [0] * len(self.dirs)
        for p in self.prim:
            out[p] += 1
        return out

    def has_secondaries(self) -> bool:
        return any(self.sec)

    # -- persistence (metadata_dir/data_layout)
    def encode(self) -> bytes:
        return MARKER + msgpack.packb([[[d.path, d.capacity] for d in self.dirs],
                                       self.prim, self.sec])

    @staticmethod
    def decode(raw: bytes) -> DataLayout:
        if not raw.startswith(MARKER):
            raise ValueError("not a pygarage data layout")
        dirs, prim, sec = msgpack.unpackb(raw[len(MARKER):])
        out = DataLayout([LayoutDir(p, c) for p, c in dirs], list(prim),
                         [list(s) for s in sec])
        n = len(out.dirs)
        if len(prim) != N_SLOTS or len(sec) != N_SLOTS or \
                any(not 0 <= p < n for p in prim) or any(not 0 <= i < n for s in sec for i in s):
            raise ValueError("corrupted data layout")
        return out
