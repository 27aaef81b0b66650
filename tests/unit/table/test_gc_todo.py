"""Tombstone GC bookkeeping (pure parts) and which entries count as tombstones."""

from __future__ import annotations

import pytest

from pygarage.model.s3.object_table import (
    ABORTED,
    COMPLETE,
    DELETE_MARKER,
    INLINE,
    UPLOADING,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from pygarage.net.peer import RpcError
from pygarage.table.gc import (
    RecentTombstones,
    Todo,
    check_deletes,
    due_todos,
    group_by_nodes,
    todo_key,
)


def test_todo_keys_sort_by_time_and_parse_back() -> None:
    a, b = todo_key(1000, b"\x05key"), todo_key(999_999_999_999, b"\x01k")
    assert a < b
    t = Todo.parse(a, b"h" * 32)
    assert (t.ts, t.key, t.vhash, t.raw_key) == (1000, b"\x05key", b"h" * 32, a)


def test_due_todos_stops_at_the_first_not_due() -> None:
    rows = [(todo_key(ts, bytes([ts % 256]) + b"k"), b"h" * 32) for ts in (100, 200, 300)]
    due, nxt = due_todos(rows, now=250, delay_ms=50)
    assert [t.ts for t in due] == [100, 200] and nxt is None
    due, nxt = due_todos(rows, now=120, delay_ms=50)
    assert due == [] and nxt == 150
    assert due_todos([], 0, 0) == ([], None)


def test_group_by_nodes_leaves_this_node_out() -> None:
    todos = [Todo(b"", 0, bytes([p]) + b"k", b"h") for p in (1, 2, 3)]
    nodes = {1: ["a", "b", "c"], 2: ["c", "b", "a"], 3: ["a"]}
    g = group_by_nodes(todos, lambda p: nodes[p], "a")
    assert {k: [t.key[0] for t in v] for k, v in g.items()} == {("b", "c"): [1, 2], (): [3]}


def test_check_deletes() -> None:
    assert check_deletes([[b"k", b"h" * 32]]) == [(b"k", b"h" * 32)]
    for bad in ({}, [[b"k"]], [(b"k", b"h" * 32, 1)], [[b"k", b"h"]], [[b"", b"h" * 32]],
                [["k", b"h" * 32]], [[b"k", b"h" * 32]] * 2000):
        with pytest.raises(RpcError):
            check_deletes(bad)


def _v(i: int, state: int, kind: str | None = None, multipart: bool = False) -> ObjectVersion:
    meta = ObjectMeta(1, "e", []) if kind == INLINE else None
    return ObjectVersion(bytes([i]) * 16, i * 1000, state, multipart=multipart, kind=kind,
                         meta=meta, inline=b"x" if kind == INLINE else None)


def test_object_tombstones_are_delete_markers_alone() -> None:
    b = b"B" * 32
    marker = _v(3, COMPLETE, DELETE_MARKER)
    assert Object(b, "k", [marker]).is_tombstone()
    # Remains of finished multipart uploads before it do not keep it alive.
    mp = _v(1, ABORTED, multipart=True)
    assert Object(b, "k", [mp, marker]).is_tombstone()
    # Data, an upload in progress (even after the marker), a lone abort: not tombstones.
    assert not Object(b, "k", [_v(4, COMPLETE, INLINE)]).is_tombstone()
    assert not Object(b, "k", [_v(1, UPLOADING, multipart=True), marker]).is_tombstone()
    assert not Object(b, "k", [marker, _v(5, UPLOADING)]).is_tombstone()
    assert not Object(b, "k", [_v(2, ABORTED)]).is_tombstone()
    assert not Object(b, "k", []).is_tombstone()
    # Merging a newer PUT into a tombstone gives a live object.
    o = Object(b, "k", [marker])
    o.merge(Object(b, "k", [_v(9, COMPLETE, INLINE)]))
    assert not o.is_tombstone() and o.current() is not None


def test_recent_tombstones_expire_and_stay_bounded() -> None:
    r = RecentTombstones(grace_ms=100, max_entries=2)
    r.add(b"a", b"A", now=0)
    assert r.get(b"a", 100) == b"A" and r.get(b"a", 101) is None and len(r) == 0
    for i, k in enumerate((b"x", b"y", b"z")):
        r.add(k, k.upper(), now=i)
    assert r.get(b"x", 5) is None and r.get(b"y", 5) == b"Y" and len(r) == 2
