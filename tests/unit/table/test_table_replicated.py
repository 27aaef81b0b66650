"""Replicated Table without sockets: several nodes in one process (in-memory network, one
sqlite db each). Per-node batching, write sets of two layout versions, quorum failures,
read merging and read repair, range merges in both orders, write-check refusals coming
back as the writer's error, and hostile requests answered with an RPC error. The pure
parts (plan, tracker, merges, message checks) are tested on their own first; last, the
insert queue worker shipping to owners, keeping what failed, backing off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from pygarage.db.base import Db, Transaction
from pygarage.db.open import open_db
from pygarage.net.peer import IncomingRequest, RpcError
from pygarage.rpc.write_quorum import SetQuorum
from pygarage.table import rpc as msg
from pygarage.table.data import WriteRefused
from pygarage.table.queue import InsertQueueWorker
from pygarage.table.quorum import merge_get, merge_range, plan_writes
from pygarage.table.table import Table
from pygarage.testing.loopback_rpc import FakeSystem, LoopbackNet
from pygarage.testing.waits import until
from pygarage.util.background import WorkerState
from pygarage.util.errors import QuorumError
from pygarage.util.ids import partition_hash

A, B, C, D = ("aa" * 32, "bb" * 32, "cc" * 32, "dd" * 32)


@dataclass
class Reg:
    """A max-register CRDT keyed by (pk, sk)."""
    pk: bytes
    sk: bytes
    value: int

    def partition_key(self) -> bytes:
        return self.pk

    def sort_key(self) -> bytes:
        return self.sk

    def merge(self, other: Reg) -> None:
        if other.value == 13:  # stands for an entry that decodes but cannot merge
            raise TypeError("unlucky")
        self.value = max(self.value, other.value)

    def is_tombstone(self) -> bool:
        return False

    def encode(self) -> bytes:
        return msgpack.packb([self.pk, self.sk, self.value])


class RegSchema:
    name = "reg"

    def decode(self, data: bytes) -> Reg:
        pk, sk, v = msgpack.unpackb(data)
        if not isinstance(pk, bytes) or not isinstance(sk, bytes) or not isinstance(v, int):
            raise ValueError("not a Reg")
        return Reg(pk, sk, v)

    def updated(self, tx: Transaction, old: Reg | None, new: Reg | None) -> None:
        pass

    def matches_filter(self, entry: Reg, filter: Any) -> bool:
        return filter is None or (filter == "even" and entry.value % 2 == 0)


class Refused(Exception):
    pass


class FixedReplication:
    """Every partition on the same sets (tests choose them)."""

    def __init__(self, write_sets: list[list[str]], read: list[str], rq: int, wq: int):
        self.sets, self.read, self.read_quorum, self.write_quorum = write_sets, read, rq, wq

    def write_sets(self, h: bytes) -> list[list[str]]:
        return self.sets

    def read_nodes(self, h: bytes) -> list[str]:
        return self.read


# -- pure parts

def test_plan_sends_each_node_its_entries_once() -> None:
    plan = plan_writes([[[A, B, C]], [[A, B, C], [B, C, D]], [[D]]])
    assert plan.per_node == {A: [0, 1], B: [0, 1], C: [0, 1], D: [1, 2]}


def test_tracker_needs_the_quorum_in_every_set() -> None:
    plan = plan_writes([[[A, B, C], [B, C, D]], [[A, B, C]]])

    def tracker() -> SetQuorum:
        return SetQuorum((s for sets in plan.entry_sets for s in sets), 2)
    t = tracker()
    assert len(t.sets) == 2 and not t.impossible()
    t.success(A)
    t.success(D)
    assert not t.done and not t.lost
    t.success(B)
    assert t.done
    t2 = tracker()
    t2.failure(C)
    t2.failure(D)
    assert t2.lost  # {B, C, D} has only B left
    assert SetQuorum([[A]], 2).impossible()


def test_merge_get_repairs_those_that_differ() -> None:
    s = RegSchema()
    old, new = Reg(b"p", b"s", 1).encode(), Reg(b"p", b"s", 5).encode()
    e, enc, stale = merge_get([(A, new), (B, old), (C, None)], s.decode)
    assert e == Reg(b"p", b"s", 5) and enc == new and stale == [B, C]
    assert merge_get([(A, new), (B, new)], s.decode)[2] == []
    assert merge_get([(A, None), (B, None)], s.decode) == (None, None, [])


def test_merge_range_keeps_order_limit_and_finds_stale_replicas() -> None:
    s = RegSchema()

    def enc(*items: tuple[bytes, int]) -> list[bytes]:
        return [Reg(b"p", k, v).encode() for k, v in items]

    def every(e: Reg) -> bool:
        return True
    # A is behind on "b"; B lacks "a"; both answered a full page of 3 (more may follow).
    replies = [(A, enc((b"a", 1), (b"b", 1), (b"c", 1)), True),
               (B, enc((b"b", 2), (b"c", 1), (b"d", 1)), True)]
    r = merge_range(replies, s.decode, every, 3, False)
    assert [(e.sk, e.value) for e in r.out] == [(b"a", 1), (b"b", 2), (b"c", 1)]
    assert r.repairs == {A: enc((b"b", 2)), B: enc((b"a", 1))} and r.after == b"c"
    # Reverse order: pages go down from the end; "a" is beyond B's page (not trusted yet).
    replies = [(A, enc((b"d", 1), (b"b", 1), (b"a", 1)), True),
               (B, enc((b"d", 1), (b"c", 1)), True)]
    r = merge_range(replies, s.decode, every, 3, True)
    assert [e.sk for e in r.out] == [b"d", b"c"] and r.after == b"c"
    assert r.repairs == {A: enc((b"c", 1))}


def test_requests_are_validated() -> None:
    assert msg.parse_request(msg.get_msg(b"p", b"")) == msg.Get(b"p", b"")
    assert msg.parse_request(msg.range_msg(b"p", None, b"z", "data", 10, True, 20)) == \
        msg.Range(b"p", None, b"z", "data", 10, True, 20)
    assert msg.parse_request(msg.update_msg(True, [b"x"])) == msg.Update(True, [b"x"])
    bad: list[Any] = [
        None, [], [1], ["nope"], ["get", "p", b""], ["get", b"p"], ["get", b"x" * 70000, b""],
        ["range", b"p", None, None, None, 0, False, 5],
        ["range", b"p", None, None, None, True, False, 5],
        ["range", b"p", None, None, None, 10**9, False, 10**9],
        ["range", b"p", None, None, None, 5, 1, 5],
        ["range", b"p", None, None, {"x": 1}, 5, False, 5],
        ["range", b"p", 3, None, None, 5, False, 5],
        ["range", b"p", None, None, None, 5, False],  # no scan budget
        ["range", b"p", None, None, None, 5, False, 4],  # a budget below the limit
        ["range", b"p", None, None, None, 5, False, True],
        ["range", b"p", None, None, None, 5, False, msg.MAX_SCAN + 1],
        ["update", 1, []], ["update", True, [1]], ["update", True, b"x"],
        ["update", True, [b""] * (msg.MAX_ENTRIES + 1)]]
    for body in bad:
        with pytest.raises(msg.BadRequest):
            msg.parse_request(body)
    with pytest.raises(msg.BadRequest):
        msg.range_msg(b"p", None, None, object(), 10, False, 10)
    for reply in (1, {"refused": 1, "message": ""}, "x"):
        with pytest.raises(msg.BadRequest):
            msg.parse_update_reply(reply)
    assert msg.parse_update_reply({"refused": "X", "message": "m"}) == ("X", "m")


# -- replicated tables in one process

@pytest.fixture
def dbs(tmp_path: Path) -> Iterator[dict[str, Db]]:
    out = {n: open_db("sqlite", tmp_path / n[:2]) for n in (A, B, C, D)}
    yield out
    for db in out.values():
        db.close()


def tables(dbs: dict[str, Db], repl: FixedReplication, nodes: tuple[str, ...] = (A, B, C)
           ) -> tuple[LoopbackNet, dict[str, Table[Reg]]]:
    net = LoopbackNet()
    out: dict[str, Table[Reg]] = {}
    for n in nodes:
        rpc = net.node(n)
        out[n] = Table(FakeSystem(n), dbs[n], RegSchema(), repl, rpc)  # type: ignore[arg-type]
        out[n].refusals["Refused"] = Refused
    return net, out


def local(t: Table[Reg], sk: bytes = b"s") -> int | None:
    e = t.data.read_entry(b"p", sk)
    return None if e is None else e.value


async def test_one_call_per_node_and_quorum(dbs: dict[str, Db]) -> None:
    net, t = tables(dbs, FixedReplication([[A, B, C]], [A, B, C], 2, 2))
    await t[A].insert_many([Reg(b"p", b"s", 1), Reg(b"q", b"s", 1), Reg(b"r", b"s", 1)])
    await until(lambda: all(local(t[n]) == 1 for n in (A, B, C)), within_s=5)
    assert sorted(c for _, c, _ in net.calls) == [B, C]  # A's share written directly
    net.down.add(C)
    await t[A].insert(Reg(b"p", b"s", 2))
    assert local(t[C]) == 1
    net.down.add(B)
    with pytest.raises(QuorumError, match="write quorum 2"):
        await t[A].insert(Reg(b"p", b"s", 3))


async def test_write_sets_of_two_layout_versions(dbs: dict[str, Db]) -> None:
    net, t = tables(dbs, FixedReplication([[A, B, C], [B, C, D]], [A, B, C], 2, 2),
                    (A, B, C, D))
    await t[A].insert(Reg(b"p", b"s", 1))
    await until(lambda: all(local(t[n]) == 1 for n in (A, B, C, D)),  # old and new owners
                within_s=5)
    net.down |= {B, D}  # the new set keeps only C
    with pytest.raises(QuorumError):
        await t[A].insert(Reg(b"p", b"s", 2))


async def test_get_merges_and_repairs(dbs: dict[str, Db]) -> None:
    net, t = tables(dbs, FixedReplication([[A, B, C]], [A, B, C], 2, 2))
    t[B].data.update_entry(Reg(b"p", b"s", 7))
    t[A].data.update_entry(Reg(b"p", b"s", 3))
    net.down.add(C)
    e = await t[A].get(b"p", b"s")
    assert e is not None and e.value == 7
    net.down.clear()
    # The stale replica that answered is repaired, and so is the one not asked.
    await until(lambda: local(t[A]) == 7 and local(t[C]) == 7, within_s=5)
    assert await t[A].get(b"p", b"nothing") is None


async def test_get_range_merges_pages(dbs: dict[str, Db]) -> None:
    net, t = tables(dbs, FixedReplication([[A, B, C]], [A, B, C], 2, 2))
    for sk, v in ((b"a", 2), (b"b", 1), (b"c", 4)):
        t[A].data.update_entry(Reg(b"p", sk, v))
    for sk, v in ((b"b", 6), (b"d", 8)):
        t[B].data.update_entry(Reg(b"p", sk, v))
    net.down.add(C)
    got = await t[A].get_range(b"p", limit=10)
    assert [(e.sk, e.value) for e in got] == [(b"a", 2), (b"b", 6), (b"c", 4), (b"d", 8)]
    got = await t[A].get_range(b"p", limit=2, reverse=True)
    assert [e.sk for e in got] == [b"d", b"c"]
    got = await t[A].get_range(b"p", b"b", filter="even", limit=10)
    assert [e.sk for e in got] == [b"b", b"c", b"d"]
    await until(lambda: local(t[A], b"d") == 8 and local(t[B], b"a") == 2
                and local(t[A], b"b") == 6, within_s=5)


async def test_refusal_on_an_owner_is_the_writers_error(dbs: dict[str, Db]) -> None:
    net, t = tables(dbs, FixedReplication([[A, B, C]], [A, B, C], 2, 2))

    def check(tx: Transaction, e: Reg) -> None:
        if e.value < 0:
            raise WriteRefused(Refused("negative values refused"))
    # Owners B and C know better than A (as nodes that received a bucket's deletion): A
    # alone cannot make the quorum, and the first refusal is the writer's error.
    t[B].data.write_check = t[C].data.write_check = check
    with pytest.raises(Refused, match="negative"):
        await t[A].insert(Reg(b"p", b"s", -1))
    assert local(t[B]) is None
    # Queues and repairs ship unchecked.
    await t[A].insert_many([Reg(b"p", b"s", -2)], checked=False)
    # Acknowledged at quorum 2: B's copy may still be in flight (A and C may answer first).
    await until(lambda: local(t[B]) == -2, within_s=5)
    # An unknown refusal code from a peer is a failed node, not a crash.
    del t[A].refusals["Refused"]
    net.down.add(C)
    with pytest.raises(QuorumError, match="write refused"):
        await t[A].insert(Reg(b"p", b"s", -3))


async def test_hostile_requests_answer_rpc_errors(dbs: dict[str, Db]) -> None:
    _, t = tables(dbs, FixedReplication([[A, B, C]], [A, B, C], 2, 2))
    handler = t[A].rpc.handlers["table/reg"]  # type: ignore[union-attr]
    for body in (["update", False, [b"\xc1garbage"]], ["update", False, [msgpack.packb([1])]],
                 ["range", b"p", None, None, None, -1, False, 5], "x"):
        with pytest.raises(RpcError):
            await handler(IncomingRequest(bytes.fromhex(B), "table/reg", body, None))
    assert local(t[A]) is None
    t[A].data.update_entry(Reg(b"p", b"s", 1))
    with pytest.raises(RpcError, match="not applied"):
        await handler(IncomingRequest(bytes.fromhex(B), "table/reg",
                                      msg.update_msg(False, [Reg(b"p", b"s", 13).encode()]),
                                      None))
    assert local(t[A]) == 1


class SplitReplication(FixedReplication):
    """Even partitions on A, B, C; odd ones on A, C, D."""

    def write_sets(self, h: bytes) -> list[list[str]]:
        return [[A, B, C]] if h[0] % 2 == 0 else [[A, C, D]]


def pk_in(parity: int) -> bytes:
    i = 0
    while partition_hash(b"k%d" % i)[0] % 2 != parity:
        i += 1
    return b"k%d" % i


async def test_insert_queue_ships_keeps_failures_and_backs_off(dbs: dict[str, Db]) -> None:
    net, t = tables(dbs, SplitReplication([], [A], 1, 2), (A, B, C, D))
    even, odd = pk_in(0), pk_in(1)
    worker = InsertQueueWorker(t[A])

    def queue(*entries: Reg) -> None:
        t[A].data.db.transaction(lambda tx: [t[A].data.queue_insert(tx, e) for e in entries])
    queue(Reg(even, b"", 1), Reg(odd, b"", 1))
    net.down |= {B, D}  # the odd partition (A, C, D) still has 2; the even one too
    assert await worker.work() is WorkerState.BUSY
    assert t[A].data.queued(10) == [] and t[C].data.read_entry(odd, b"") is not None
    net.down = {C, D}  # odd partition: A alone; even: A and B
    queue(Reg(even, b"", 2), Reg(odd, b"", 2))
    assert await worker.work() is WorkerState.IDLE
    left = t[A].data.queued(10)
    assert [RegSchema().decode(v).pk for _, v in left] == [odd]  # the even one shipped
    e = t[B].data.read_entry(even, b"")
    assert e is not None and e.value == 2
    assert worker.backoff_s() == 1.0 and "write quorum" in str(worker.status()["lastError"])
    assert await worker.work() is WorkerState.IDLE
    assert worker.backoff_s() == 2.0  # doubling
    net.down.clear()
    assert await worker.work() is WorkerState.BUSY
    assert t[A].data.queued(10) == [] and worker.backoff_s() == 0
    assert "lastError" not in worker.status()
    # Shipped at quorum (A and C): D's copy may still be in flight.
    await until(lambda: t[D].data.read_entry(odd, b"") is not None, within_s=5)
    e = t[D].data.read_entry(odd, b"")
    assert e is not None and e.value == 2


async def test_answers_of_another_key_count_as_failures(dbs: dict[str, Db]) -> None:
    net, t = tables(dbs, FixedReplication([[A, B, C]], [A, B, C], 2, 2))

    async def liar(req: IncomingRequest) -> Any:
        other = Reg(b"other", b"s", 1).encode()
        return other if req.body[0] == "get" else [[other], False]
    t[B].rpc.handlers["table/reg"] = liar  # type: ignore[union-attr]
    t[C].data.update_entry(Reg(b"p", b"s", 4))
    # B's answer counts as a failure: C is asked instead.
    e = await t[A].get(b"p", b"s")
    assert e is not None and e.value == 4
    assert [(x.sk, x.value) for x in await t[A].get_range(b"p")] == [(b"s", 4)]
    net.down.add(C)
    with pytest.raises(QuorumError, match="another key"):
        await t[A].get(b"p", b"s")
    with pytest.raises(QuorumError, match="another key"):
        await t[A].get_range(b"p")
