"""TableData keeps each table's Merkle tree in step with its entries, in the same
transaction, on both engines; a database without a tree gets one at startup."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from pygarage.db.base import Db, Transaction
from pygarage.db.open import open_db
from pygarage.table import merkle
from pygarage.table.data import TableData, WriteRefused, tree_key
from pygarage.table.merkle_tree import STATE_TREE


@dataclass
class Reg:
    """A max-register entry: enough CRDT to write, overwrite and no-op."""
    pk: bytes
    sk: bytes
    value: int

    def partition_key(self) -> bytes:
        return self.pk

    def sort_key(self) -> bytes:
        return self.sk

    def merge(self, other: Reg) -> None:
        self.value = max(self.value, other.value)

    def is_tombstone(self) -> bool:
        return False

    def encode(self) -> bytes:
        return msgpack.packb([self.pk, self.sk, self.value])


class RegSchema:
    name = "reg"

    def __init__(self) -> None:
        self.hook_calls: list[tuple[Reg | None, Reg | None]] = []

    def decode(self, data: bytes) -> Reg:
        return Reg(*msgpack.unpackb(data))

    def updated(self, tx: Transaction, old: Reg | None, new: Reg | None) -> None:
        self.hook_calls.append((old, new))

    def matches_filter(self, entry: Reg, filter: Any) -> bool:
        return True


@pytest.fixture(params=["lmdb", "sqlite"])
def dbpath(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield request.param, tmp_path / request.param


def _open(dbpath: tuple[str, Path]) -> Db:
    return open_db(dbpath[0], dbpath[1], lmdb_map_size=1 << 28)


def _fill(t: TableData[Reg], n: int, seed: int = 1) -> dict[tuple[bytes, bytes], int]:
    rnd = random.Random(seed)
    want: dict[tuple[bytes, bytes], int] = {}
    for _ in range(n):
        pk = f"p{rnd.randrange(40)}".encode()
        # Some sort keys longer than LMDB's 511-byte key limit (stored split by the engine).
        sk = rnd.choice([b"", b"a", b"b" * 600, f"s{rnd.randrange(30)}".encode()])
        v = rnd.randrange(5)
        t.update_entry(Reg(pk, sk, v))
        want[(pk, sk)] = max(want.get((pk, sk), -1), v)
    return want


def _scratch_roots(t: TableData[Reg]) -> list[bytes]:
    """Roots of trees built from scratch from what the table stores."""
    items: dict[int, list[tuple[bytes, bytes]]] = {}
    for k, v in t.db.range(t.store):
        items.setdefault(k[0], []).append((k, merkle.value_hash(v)))
    out = []
    for p in range(256):
        s = merkle.DictNodeStore()
        out.append(merkle.build(s, p, items.get(p, [])))
    return out


def test_writes_keep_the_tree_equal_to_a_rebuild(dbpath: tuple[str, Path]) -> None:
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    want = _fill(t, 400)
    assert t.count() == len(want)
    assert t.merkle.matches_entries() == []
    assert t.merkle.root_hashes() == _scratch_roots(t)
    used = {tree_key(pk, sk)[0] for pk, sk in want}
    assert all((t.merkle_root(p) == merkle.EMPTY_HASH) == (p not in used)
               for p in range(256))
    db.close()


def test_unchanged_encoding_leaves_the_tree_alone(dbpath: tuple[str, Path]) -> None:
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    t.update_entry(Reg(b"p", b"s", 3))
    p = tree_key(b"p", b"s")[0]
    root = t.merkle.root_hash(p)
    t.update_entry(Reg(b"p", b"s", 1))  # merges to the same encoding
    assert t.merkle.root_hash(p) == root
    t.update_entry(Reg(b"p", b"s", 4))
    assert t.merkle.root_hash(p) != root
    assert t.merkle.matches_entries() == []
    db.close()


def test_rolled_back_write_rolls_back_the_tree(dbpath: tuple[str, Path]) -> None:
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    _fill(t, 50)
    before = t.merkle.root_hashes()

    def refuse(tx: Transaction, e: Reg) -> None:
        raise WriteRefused(ValueError("no"))
    t.write_check = refuse
    with pytest.raises(ValueError):
        t.update_entry(Reg(b"new", b"x", 1))

    def fails_after(tx: Transaction) -> None:
        t.update_entry_tx(tx, Reg(b"new2", b"y", 1))
        raise RuntimeError("crash inside the transaction")
    with pytest.raises(RuntimeError):
        db.transaction(fails_after)
    assert t.merkle.root_hashes() == before
    assert t.merkle.matches_entries() == []
    db.close()


def test_remove_entry_updates_the_tree(dbpath: tuple[str, Path]) -> None:
    db = _open(dbpath)
    schema = RegSchema()
    t = TableData(db, schema)
    _fill(t, 60)
    before = t.merkle.root_hashes()
    t.update_entry(Reg(b"gone", b"k", 2))
    raw = db.get(t.store, tree_key(b"gone", b"k"))
    assert raw is not None
    # Only when still stored as expected (a newer write wins over GC).
    assert not db.transaction(lambda tx: t.remove_entry_tx(tx, b"gone", b"k", b"other"))
    assert db.transaction(lambda tx: t.remove_entry_tx(tx, b"gone", b"k", raw))
    assert t.read_entry(b"gone", b"k") is None
    assert schema.hook_calls[-1] == (Reg(b"gone", b"k", 2), None)
    assert t.merkle.root_hashes() == before
    assert not db.transaction(lambda tx: t.remove_entry_tx(tx, b"gone", b"k"))
    db.close()


def test_startup_builds_a_missing_tree_once(dbpath: tuple[str, Path],
                                            caplog: pytest.LogCaptureFixture) -> None:
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    _fill(t, 300)
    good = t.merkle.root_hashes()

    # As a database written before Merkle trees: entries, no tree, no state.
    def drop(tx: Transaction) -> None:
        for k, _v in tx.range(t.merkle.tree):
            tx.remove(t.merkle.tree, k)
        tx.remove(STATE_TREE, b"reg")
    db.transaction(drop)
    db.close()

    db = _open(dbpath)
    with caplog.at_level(logging.INFO, logger="pygarage.table.merkle_tree"):
        t = TableData(db, RegSchema())
    assert "merkle rebuild of reg: done" in caplog.text
    assert t.merkle.root_hashes() == good
    assert t.merkle.matches_entries() == []
    db.close()

    caplog.clear()
    db = _open(dbpath)
    with caplog.at_level(logging.INFO, logger="pygarage.table.merkle_tree"):
        TableData(db, RegSchema())
    assert "merkle rebuild" not in caplog.text  # complete: not rebuilt again
    db.close()


def test_interrupted_rebuild_starts_over(dbpath: tuple[str, Path]) -> None:
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    _fill(t, 200)
    good = t.merkle.root_hashes()
    # A crash mid-rebuild: state not complete, a stale/partial tree left (here: a stray
    # leaf and a wrong root in some partitions).
    stray = merkle.TxNodeStore
    db.transaction(lambda tx: tx.remove(STATE_TREE, b"reg"))
    db.transaction(lambda tx: merkle.update(stray(tx, t.merkle.tree), b"\x05stale", b"x" * 32))
    assert not t.merkle.is_complete()
    db.close()
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    assert t.merkle.is_complete()
    assert t.merkle.root_hashes() == good
    db.close()


def test_node_reads_for_a_sync(dbpath: tuple[str, Path]) -> None:
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    _fill(t, 100)
    mem = merkle.DictNodeStore()
    for k, v in db.range(t.store):
        merkle.update(mem, k, merkle.value_hash(v))
    for p in range(256):
        assert merkle.diff(lambda pre, p=p: t.merkle.read_node(p, pre),
                           merkle.lookup_in(mem, p)) == []
    k = tree_key(b"p1", b"zz")
    t.update_entry(Reg(b"p1", b"zz", 9))
    assert merkle.diff(lambda pre: t.merkle.read_node(k[0], pre),
                       merkle.lookup_in(mem, k[0])) == [k]
    db.close()
