"""The db writer thread (db/writer.py), on every engine: order, per-caller results and
exceptions, group commit (one commit for the fns queued during a commit), rollback of a
failing fn alone, after-commit callbacks, reads not waiting for writes, clean close."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pygarage.db.base import Db, Transaction
from pygarage.db.open import open_db
from pygarage.db.writer import after_commit
from pygarage.testing.loop_ticks import ticks_during

ENGINES = ["lmdb", "sqlite"]


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    d = open_db(request.param, tmp_path / request.param, fsync=True, lmdb_map_size=1 << 28)
    d.open_tree("t")
    yield d
    d.close()


class Gate:
    """A fn that holds the writer thread until opened: what is submitted meanwhile queues."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, tx: Transaction) -> str:
        tx.insert("t", b"gate", b"1")
        self.entered.set()
        assert self.release.wait(10)
        return "gate"

    async def hold(self, db: Db) -> asyncio.Task[str]:
        task = asyncio.create_task(db.write(self))
        assert await asyncio.to_thread(self.entered.wait, 10)
        return task


def _bump(i: int):  # type: ignore[no-untyped-def]
    def fn(tx: Transaction) -> tuple[int, int]:
        raw = tx.get("t", b"n")
        n = int(raw) if raw is not None else 0
        tx.insert("t", b"n", str(n + 1).encode())
        return i, n
    return fn


async def test_fns_run_in_submission_order_each_seeing_the_earlier(db: Db) -> None:
    results = await asyncio.gather(*(db.write(_bump(i)) for i in range(50)))
    assert results == [(i, i) for i in range(50)]
    assert db.get("t", b"n") == b"50"


async def test_fns_queued_during_a_commit_share_one_commit(db: Db) -> None:
    gate = Gate()
    held = await gate.hold(db)
    before = db.commits
    tasks = [asyncio.create_task(db.write(_bump(i))) for i in range(32)]
    await asyncio.sleep(0.05)  # every fn is queued behind the gate
    gate.release.set()
    assert await held == "gate"
    assert [await t for t in tasks] == [(i, i) for i in range(32)]
    assert db.commits - before == 2  # the gate's batch, then all 32 at once
    assert db.writer.batches == 2


async def test_a_failing_fn_rolls_back_alone_and_its_caller_gets_the_error(db: Db) -> None:
    class Boom(Exception):
        pass

    def failing(tx: Transaction) -> None:
        tx.insert("t", b"bad", b"written then rolled back")
        tx.insert("t", b"n", b"999")
        raise Boom("mine")

    gate = Gate()
    held = await gate.hold(db)
    before = db.commits
    t1 = asyncio.create_task(db.write(_bump(1)))
    t2 = asyncio.create_task(db.write(failing))
    t3 = asyncio.create_task(db.write(_bump(3)))
    await asyncio.sleep(0.05)
    gate.release.set()
    await held
    assert await t1 == (1, 0)
    with pytest.raises(Boom, match="mine"):
        await t2
    assert await t3 == (3, 1)  # saw t1's write, not the failed fn's
    assert db.commits - before == 2
    assert db.get("t", b"bad") is None
    assert db.get("t", b"n") == b"2"


async def test_a_failed_commit_fails_every_fn_of_its_batch_and_the_writer_goes_on(
        db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    real = db.run_batch
    calls = []

    def broken(fns):  # type: ignore[no-untyped-def]
        calls.append(len(fns))
        if len(calls) == 1:
            raise OSError("disk on fire")
        return real(fns)
    monkeypatch.setattr(db, "run_batch", broken)
    with pytest.raises(OSError, match="disk on fire"):
        await db.write(_bump(0))
    assert db.get("t", b"n") is None
    assert await db.write(_bump(1)) == (1, 0)


async def test_after_commit_callbacks_run_on_the_loop_once_committed(db: Db) -> None:
    seen: list[tuple[bytes | None, bool]] = []
    loop_thread = threading.get_ident()

    def cb() -> None:
        seen.append((db.get("t", b"k"), threading.get_ident() == loop_thread))

    def fn(tx: Transaction) -> None:
        tx.insert("t", b"k", b"v")
        after_commit(cb)
        after_commit(cb)  # once per fn is enough

    def failing(tx: Transaction) -> None:
        after_commit(cb)
        raise ValueError("dropped")

    await db.write(fn)
    with pytest.raises(ValueError):
        await db.write(failing)
    await asyncio.sleep(0.01)
    assert seen == [(b"v", True)]


async def test_reads_do_not_wait_for_a_write_in_progress(db: Db) -> None:
    db.insert("t", b"k", b"old")
    gate = Gate()
    held = await gate.hold(db)
    try:
        # The gate holds the write transaction (and, for SQLite, the writer connection).
        got = await asyncio.wait_for(asyncio.to_thread(db.get, "t", b"k"), 2)
        assert got == b"old"
        assert db.get("t", b"gate") is None  # not committed yet
        assert db.range("t") == [(b"k", b"old")]
    finally:
        gate.release.set()
        await held
    assert db.get("t", b"gate") == b"1"


async def test_the_loop_keeps_running_while_a_write_is_slow(db: Db) -> None:
    def slow(tx: Transaction) -> None:
        tx.insert("t", b"k", b"v")
        threading.Event().wait(0.5)  # as a slow fsync would

    assert await ticks_during(db.write(slow)) >= 10


async def test_close_commits_what_is_queued_then_refuses(db: Db, tmp_path: Path) -> None:
    gate = Gate()
    held = await gate.hold(db)
    tasks = [asyncio.create_task(db.write(_bump(i))) for i in range(5)]
    await asyncio.sleep(0.05)
    gate.release.set()
    await asyncio.to_thread(db.stop_writer)  # blocks until the queue is drained
    await held
    assert [await t for t in tasks] == [(i, i) for i in range(5)]
    assert db.get("t", b"n") == b"5"
    with pytest.raises(RuntimeError, match="closed"):
        await db.write(_bump(9))


async def test_callbacks_have_run_when_the_caller_resumes(db: Db) -> None:
    # The writer hands over the outcome and the callbacks from its thread: the caller must
    # never resume first (an entry cache relies on it). Many rounds, to meet the race.
    db.open_tree("t")
    for i in range(300):
        ran: list[int] = []

        def fn(tx: Transaction, i: int = i, ran: list[int] = ran) -> None:
            tx.insert("t", b"k", str(i).encode())
            after_commit(lambda: ran.append(i))
        await db.write(fn)
        assert ran == [i]
