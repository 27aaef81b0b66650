"""Quorum listings with a filter are filtered after the merge: a replica that missed a
deletion never makes the deleted key reappear. First the pure round merge
(table/quorum.py) on hand-made answers, and the checks of a hostile replica's answer;
then Tables on the in-memory network (pages over many deletions, both orders, repairs).

With RegSchema's filter "even", an odd value stands for a deletion: the max-register merge
of a stale even value (live) and a newer odd one (deleted) fails the filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_table_replicated import A, B, C, FixedReplication, Reg, RegSchema, local, tables

from pygarage.db.base import Db
from pygarage.db.open import open_db
from pygarage.net.peer import IncomingRequest
from pygarage.table import rpc as msg
from pygarage.table import table as table_mod
from pygarage.table.quorum import check_range_keys, merge_range
from pygarage.table.table import Table
from pygarage.testing.waits import until
from pygarage.util.errors import QuorumError

S = RegSchema()


def even(e: Reg) -> bool:
    return S.matches_filter(e, "even")


def enc(*items: tuple[bytes, int]) -> list[bytes]:
    return [Reg(b"p", k, v).encode() for k, v in items]


# -- the pure round merge

@pytest.mark.parametrize("fresh_first", [True, False])
def test_a_fresh_deletion_hides_a_stale_live_copy(fresh_first: bool) -> None:
    stale = (A, enc((b"a", 2), (b"k", 2), (b"z", 4)), False)
    fresh = (B, enc((b"a", 2), (b"k", 3), (b"z", 4)), False)  # "k" deleted since
    replies = [fresh, stale] if fresh_first else [stale, fresh]
    r = merge_range(replies, S.decode, even, 10, False)
    assert [e.sk for e in r.out] == [b"a", b"z"] and r.after is None
    assert r.repairs == {A: enc((b"k", 3))}  # the deletion reaches the stale replica


def test_keys_beyond_the_nearest_stopping_point_wait_for_the_next_round() -> None:
    # B holds a run of deletions and stopped on its budget at "d"; A (stale) answered
    # the same keys live and more: nothing after "d" is trusted in this round.
    stale = (A, enc((b"a", 2), (b"b", 2), (b"c", 2), (b"d", 2), (b"e", 2), (b"f", 2)), True)
    fresh = (B, enc((b"a", 3), (b"b", 3), (b"c", 3), (b"d", 3)), True)
    r = merge_range([stale, fresh], S.decode, even, 3, False)
    assert r.out == [] and r.after == b"d"
    assert r.repairs == {A: enc((b"a", 3), (b"b", 3), (b"c", 3), (b"d", 3))}
    # Reverse: the same from the end down.
    stale = (A, enc((b"f", 2), (b"e", 2), (b"d", 2), (b"c", 2)), True)
    fresh = (B, enc((b"f", 3), (b"e", 3)), True)
    r = merge_range([stale, fresh], S.decode, even, 3, True)
    assert r.out == [] and r.after == b"e"
    assert r.repairs == {A: enc((b"f", 3), (b"e", 3))}


def test_the_page_stops_at_what_was_wanted() -> None:
    a = (A, enc((b"a", 2), (b"b", 1), (b"c", 2), (b"d", 2), (b"e", 2)), False)
    b = (B, enc((b"a", 2), (b"c", 2), (b"d", 2), (b"e", 2)), False)  # lacks "b" (odd)
    r = merge_range([a, b], S.decode, even, 2, False)
    assert [e.sk for e in r.out] == [b"a", b"c"] and r.after == b"c"
    assert r.repairs == {B: enc((b"b", 1))}  # repairs only up to the last key listed
    r = merge_range([a, b], S.decode, even, 2, True)
    assert [e.sk for e in r.out] == [b"e", b"d"] and r.after == b"d" and r.repairs == {}
    # Every replica at its end: the round covers everything.
    r = merge_range([a, b], S.decode, even, 10, False)
    assert [e.sk for e in r.out] == [b"a", b"c", b"d", b"e"] and r.after is None


def test_a_replica_that_answered_nothing_covers_nothing_more() -> None:
    r = merge_range([(A, [], False), (B, enc((b"a", 3)), True)], S.decode, even, 5, False)
    assert r.out == [] and r.after == b"a" and r.repairs == {A: enc((b"a", 3))}


def test_range_answers_of_a_hostile_replica_are_refused() -> None:
    for reply in (None, [], [[b"x"]], [[b"x"], 1], [b"x", False], [[1], False],
                  [[], True], [[b"x"] * 6, False], {"entries": [], "more": False}):
        with pytest.raises(msg.BadRequest):
            msg.parse_range_reply(reply, 5)
    a = msg.parse_range_reply([[b"x"], True], 5)
    assert a.entries == [b"x"] and a.more
    check_range_keys([b"b", b"c"], b"b", b"d", False)
    check_range_keys([b"c", b"b"], b"b", None, True)
    for keys, start, end, reverse in (([b"c", b"b"], None, None, False),
                                      ([b"b", b"b"], None, None, False),
                                      ([b"b", b"c"], None, None, True),
                                      ([b"a"], b"b", None, False),
                                      ([b"d"], None, b"d", False),
                                      ([b"e"], None, b"d", True)):
        with pytest.raises(ValueError):
            check_range_keys(keys, start, end, reverse)


# -- Tables on the in-memory network

@pytest.fixture
def dbs(tmp_path: Path) -> Any:
    out = {n: open_db("sqlite", tmp_path / n[:2]) for n in (A, B, C)}
    yield out
    for db in out.values():
        db.close()


def put(t: Table[Reg], sk: bytes, v: int) -> None:
    t.data.update_entry(Reg(b"p", sk, v))


@pytest.mark.parametrize("reader", [A, B])
async def test_a_replica_that_missed_a_delete_shows_nothing(dbs: dict[str, Db],
                                                           reader: str) -> None:
    net, t = tables(dbs, FixedReplication([[A, B, C]], [A, B, C], 2, 2))
    for n in (A, B, C):
        put(t[n], b"k", 2)
        put(t[n], b"m", 2)
    put(t[B], b"k", 3)  # deleted on B and C while A was away
    put(t[C], b"k", 3)
    net.down.add(C)  # the quorum is A (stale) and B (fresh), in either order
    got = await t[reader].get_range(b"p", filter="even", limit=10)
    assert [e.sk for e in got] == [b"m"]
    assert [e.sk for e in await t[reader].get_range(b"p", filter="even", limit=1)] == [b"m"]
    # The stale replica gets the deletion (read repair, in the background).
    await until(lambda: local(t[A], b"k") == 3, within_s=5)


async def test_pages_over_many_deletions(dbs: dict[str, Db], monkeypatch: Any) -> None:
    monkeypatch.setattr(table_mod, "_SCAN_EXTRA", 50)
    net, t = tables(dbs, FixedReplication([[A, B, C]], [A, B, C], 2, 2))
    live = {f"k{i:04}".encode() for i in range(0, 1000, 37)}
    for i in range(1000):
        sk = f"k{i:04}".encode()
        for n in (A, B, C):
            put(t[n], sk, 2)
        if sk not in live:
            put(t[B], sk, 5)  # deleted: A and C missed it
    sizes: list[int] = []
    handler = t[B].rpc.handlers["table/reg"]  # type: ignore[union-attr]

    async def spy(req: IncomingRequest) -> Any:
        reply = await handler(req)
        if req.body[0] == "range":
            sizes.append(len(reply[0]))
        return reply
    t[B].rpc.handlers["table/reg"] = spy  # type: ignore[union-attr]
    net.down.add(C)
    for reverse in (False, True):
        seen: list[bytes] = []
        start: bytes | None = None
        end: bytes | None = None
        while True:
            page = await t[A].get_range(b"p", start, "even", 4, reverse, end)
            assert all(e.value % 2 == 0 for e in page)
            seen += [e.sk for e in page]
            if len(page) < 4:  # a short page is the end
                break
            if reverse:
                end = page[-1].sk
            else:
                start = page[-1].sk + b"\x00"
        assert seen == sorted(live, reverse=reverse)
    assert sizes and max(sizes) <= 4 + 50  # answers stay within the budget
    # The first listing repaired A: the second one found nothing to hide.
    await until(lambda: all(local(t[A], f"k{i:04}".encode()) == 5 for i in range(1000)
                            if f"k{i:04}".encode() not in live), within_s=5)


async def test_a_run_of_deletions_is_read_in_bounded_rounds(dbs: dict[str, Db],
                                                            monkeypatch: Any) -> None:
    monkeypatch.setattr(table_mod, "_SCAN_EXTRA", 100)
    net, t = tables(dbs, FixedReplication([[A, B, C]], [A, B, C], 2, 2))
    for n in (A, B):
        for i in range(2000):
            put(t[n], f"d{i:05}".encode(), 1)
        put(t[n], b"z", 2)
    net.down.add(C)
    calls = len(net.calls)
    got = await t[A].get_range(b"p", filter="even", limit=10)
    assert [e.sk for e in got] == [b"z"]
    rounds = len(net.calls) - calls  # B's answers (A's own are local calls)
    assert 2000 // 110 <= rounds <= 2000 // 100 + 2
    # A page bigger than what a replica scans on the event loop: in its thread at once.
    assert [e.sk for e in await t[A].get_range(b"p", filter="even", limit=100)] == [b"z"]
    assert [e.sk for e in await t[A].get_range(b"p", limit=3)] == [b"d00000", b"d00001",
                                                                   b"d00002"]


async def test_a_hostile_range_answer_counts_as_a_failure(dbs: dict[str, Db]) -> None:
    net, t = tables(dbs, FixedReplication([[A, B, C]], [A, B, C], 2, 2))
    put(t[C], b"b", 2)

    async def liar(req: IncomingRequest) -> Any:
        return [enc((b"b", 2), (b"a", 2)), False]  # out of order
    t[B].rpc.handlers["table/reg"] = liar  # type: ignore[union-attr]
    assert [e.sk for e in await t[A].get_range(b"p", filter="even")] == [b"b"]
    net.down.add(C)
    with pytest.raises(QuorumError, match="key order"):
        await t[A].get_range(b"p", filter="even")


async def test_a_single_owner_reads_locally(dbs: dict[str, Db]) -> None:
    net, t = tables(dbs, FixedReplication([[A]], [A], 1, 1))
    put(t[A], b"a", 2)
    put(t[A], b"b", 3)
    assert [e.sk for e in await t[A].get_range(b"p", filter="even")] == [b"a"]
    assert net.calls == []
