"""Deferred Merkle updates (a running node): a write records (key -> value hash) in its own
transaction, and the updater applies the records in batches; a stopped node's records are
applied when its tables open again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_table_merkle import Reg, RegSchema, _fill, _scratch_roots

from pygarage.db.base import Db, Transaction
from pygarage.db.open import open_db
from pygarage.table.data import TableData, tree_key
from pygarage.table.merkle_tree import TODO_BATCH, MerkleUpdater
from pygarage.util.background import BackgroundRunner


@pytest.fixture(params=["lmdb", "sqlite"])
def dbpath(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield request.param, tmp_path / request.param


def _open(dbpath: tuple[str, Path]) -> Db:
    return open_db(dbpath[0], dbpath[1], lmdb_map_size=1 << 28)


def test_writes_record_and_the_records_make_the_same_tree(dbpath: tuple[str, Path]) -> None:
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    _fill(t, 50, seed=3)
    before = t.merkle.root_hashes()
    t.merkle.deferred = True
    want = _fill(t, 300, seed=4)  # new keys, overwrites and no-ops
    assert t.merkle.root_hashes() == before  # the tree waits for the records
    assert 0 < t.merkle.pending() <= len(want) + 50
    assert t.merkle.matches_entries() == []  # the check counts the pending records in
    assert t.merkle.settled_root_hashes() == _scratch_roots(t) != before
    applied = 0
    while n := db.transaction(lambda tx: t.merkle.apply_todo_tx(tx, 37)):
        applied += n
    assert t.merkle.pending() == 0 and applied > 0
    assert t.merkle.root_hashes() == _scratch_roots(t)
    db.close()


def test_a_later_write_of_a_key_replaces_its_record(dbpath: tuple[str, Path]) -> None:
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    t.merkle.deferred = True
    t.update_entry(Reg(b"p", b"s", 1))
    t.update_entry(Reg(b"p", b"s", 7))
    assert t.merkle.pending() == 1
    # A removal (tombstone GC) is a record too: the empty value.
    t.update_entry(Reg(b"q", b"", 1))
    db.transaction(lambda tx: t.remove_entry_tx(tx, b"q", b""))
    assert t.merkle.pending() == 2
    asyncio.run(t.merkle.apply_pending())
    assert t.merkle.pending() == 0
    assert t.merkle.root_hashes() == _scratch_roots(t)
    assert t.merkle.matches_entries() == []
    db.close()


def test_records_left_by_a_stop_are_applied_when_the_table_opens(
        dbpath: tuple[str, Path]) -> None:
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    t.merkle.deferred = True
    _fill(t, 200, seed=5)
    assert t.merkle.pending() > 0
    db.close()  # as a kill -9 would leave it: records committed, not applied
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    assert t.merkle.pending() == 0
    assert t.merkle.root_hashes() == _scratch_roots(t)
    db.close()


def test_a_corrupted_node_under_pending_records_is_rebuilt_at_open(
        dbpath: tuple[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    """The tree is derived data: a node that cannot be decoded must not keep the table
    (and so the node) from opening."""
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    _fill(t, 80, seed=7)
    t.merkle.deferred = True
    want = _fill(t, 80, seed=8)
    key = tree_key(*next(iter(want)))
    root = bytes([key[0]])  # the root node of that entry's partition
    db.transaction(lambda tx: tx.insert(t.merkle.tree, root, b"\x02garbage"))
    db.close()
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    assert "rebuilding it from the entries" in caplog.text
    assert t.merkle.pending() == 0
    assert t.merkle.root_hashes() == _scratch_roots(t)
    db.close()


def test_a_rebuild_drops_the_records(dbpath: tuple[str, Path]) -> None:
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    t.merkle.deferred = True
    _fill(t, 100, seed=6)
    t.merkle.rebuild()
    assert t.merkle.pending() == 0
    assert t.merkle.root_hashes() == _scratch_roots(t)
    db.close()


def test_apply_pending_stops_at_what_was_pending(dbpath: tuple[str, Path]) -> None:
    """Under a stream of writes it must end: it applies the batches pending when called."""
    db = _open(dbpath)
    t = TableData(db, RegSchema())
    t.merkle.deferred = True
    for i in range(TODO_BATCH + 10):
        t.update_entry(Reg(i.to_bytes(4, "big"), b"", 1))
    calls = 0
    real = t.merkle.apply_todo_tx

    def apply_and_write_more(tx: Transaction, limit: int = TODO_BATCH) -> int:
        nonlocal calls
        calls += 1
        t.update_entry_tx(tx, Reg(b"more" + calls.to_bytes(4, "big"), b"", 1))
        return real(tx, limit)
    t.merkle.apply_todo_tx = apply_and_write_more  # type: ignore[method-assign]
    assert asyncio.run(t.merkle.apply_pending()) == 2
    assert calls == 2
    db.close()


def test_the_updater_applies_records_after_writes(dbpath: tuple[str, Path]) -> None:
    async def main() -> None:
        db = _open(dbpath)
        t = TableData(db, RegSchema())
        runner = BackgroundRunner()
        updater = MerkleUpdater(t.merkle)
        runner.spawn(updater)
        try:
            for i in range(60):
                await t.write_entries([Reg(b"k%d" % (i % 25), b"", i)])
            assert t.merkle.deferred
            for _ in range(200):
                if t.merkle.pending() == 0 and updater.applied:
                    break
                await asyncio.sleep(0.02)
            assert t.merkle.pending() == 0
            assert t.merkle.root_hashes() == _scratch_roots(t)
            assert updater.status()["queueLength"] == 0
        finally:
            await runner.shutdown()
            await asyncio.to_thread(db.stop_writer)
            db.close()
    asyncio.run(main())
