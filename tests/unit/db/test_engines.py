"""One conformance suite, run on every db engine: point reads and writes, ordered ranges
(start/end/limit/reverse), transactions (all-or-nothing), tree_len, long keys, persistence.
A hypothesis model test checks each engine against a plain dict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from db_model import apply_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pygarage.db.base import Db, Transaction, TxAbort
from pygarage.db.open import open_db

ENGINES = ["lmdb", "sqlite"]


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    d = open_db(request.param, tmp_path / request.param, lmdb_map_size=1 << 28)
    d.open_tree("t")
    d.open_tree("other")
    yield d
    d.close()


def _fill(db: Db, keys: list[bytes]) -> None:
    def fn(tx: Transaction) -> None:
        for k in keys:
            tx.insert("t", k, b"v:" + k)
    db.transaction(fn)


KEYS = [b"", b"\x00", b"\x00\x00", b"a", b"a\x00", b"a\xff", b"ab", b"abc", b"b", b"ba",
        b"\x7f", b"\x80", b"\xfe\xff", b"\xff", b"\xff\xff"]
ORDERED = sorted(KEYS)


def test_get_insert_remove(db: Db) -> None:
    assert db.get("t", b"k") is None
    db.insert("t", b"k", b"v1")
    assert db.get("t", b"k") == b"v1"
    db.insert("t", b"k", b"v2")
    assert db.get("t", b"k") == b"v2"
    assert db.get("other", b"k") is None  # trees are separate
    db.remove("t", b"k")
    assert db.get("t", b"k") is None
    db.remove("t", b"k")  # removing a missing key is fine
    db.insert("t", b"empty", b"")
    assert db.get("t", b"empty") == b""
    big = bytes(range(256)) * 4096
    db.insert("t", b"big", big)
    assert db.get("t", b"big") == big


def test_binary_keys_and_order(db: Db) -> None:
    _fill(db, [k for k in KEYS if k])  # the empty key is not portable
    got = [k for k, _ in db.range("t")]
    assert got == [k for k in ORDERED if k]
    assert all(v == b"v:" + k for k, v in db.range("t"))


def test_range_bounds(db: Db) -> None:
    keys = [k for k in ORDERED if k]
    _fill(db, keys)
    bounds = [None, b"\x00", b"a", b"a\x00", b"a\x01", b"ab", b"b", b"\x80", b"\xff",
              b"\xff\xff\xff"]
    for start in bounds:
        for end in bounds:
            want = [k for k in keys if (start is None or k >= start) and (end is None or k < end)]
            assert [k for k, _ in db.range("t", start, end)] == want, (start, end)
            assert [k for k, _ in db.range("t", start, end, reverse=True)] == want[::-1], \
                (start, end)
            for limit in (0, 1, 2, 5):
                assert [k for k, _ in db.range("t", start, end, limit)] == want[:limit]
                assert [k for k, _ in db.range("t", start, end, limit, reverse=True)] == \
                    want[::-1][:limit]


def test_range_empty_tree(db: Db) -> None:
    assert db.range("t") == []
    assert db.range("t", reverse=True) == []
    assert db.range("t", b"a", b"z", 10) == []


def test_transaction_commits_and_returns(db: Db) -> None:
    def fn(tx: Transaction) -> int:
        tx.insert("t", b"a", b"1")
        tx.insert("other", b"a", b"2")
        assert tx.get("t", b"a") == b"1"  # a transaction reads its own writes
        assert [k for k, _ in tx.range("t")] == [b"a"]
        tx.remove("t", b"a")
        assert tx.get("t", b"a") is None
        tx.insert("t", b"b", b"3")
        return 42

    assert db.transaction(fn) == 42
    assert db.get("t", b"a") is None
    assert db.get("t", b"b") == b"3"
    assert db.get("other", b"a") == b"2"


@pytest.mark.parametrize("exc", [ValueError("boom"), TxAbort("abort"), KeyboardInterrupt()])
def test_transaction_rollback(db: Db, exc: BaseException) -> None:
    db.insert("t", b"keep", b"old")
    db.insert("t", b"gone", b"x")
    long_key = b"L" * 700

    def fn(tx: Transaction) -> None:
        tx.insert("t", b"keep", b"new")
        tx.insert("t", b"new", b"n")
        tx.remove("t", b"gone")
        tx.insert("other", b"o", b"o")
        tx.insert("t", long_key, b"long")
        raise exc

    with pytest.raises(type(exc)):
        db.transaction(fn)
    assert db.get("t", b"keep") == b"old"
    assert db.get("t", b"new") is None
    assert db.get("t", b"gone") == b"x"
    assert db.get("other", b"o") is None
    assert db.get("t", long_key) is None
    assert db.tree_len("t") == 2
    assert db.tree_len("other") == 0
    # Still usable after a rollback.
    db.insert("t", b"after", b"a")
    assert db.get("t", b"after") == b"a"


def test_tree_len(db: Db) -> None:
    assert db.tree_len("t") == 0
    _fill(db, [b"k%d" % i for i in range(50)])
    assert db.tree_len("t") == 50
    db.insert("t", b"k1", b"overwrite")
    assert db.tree_len("t") == 50
    db.remove("t", b"k1")
    db.remove("t", b"missing")
    assert db.tree_len("t") == 49
    assert db.tree_len("other") == 0


def test_read_snapshot(db: Db) -> None:
    db.insert("t", b"a", b"1")
    assert db.read(lambda tx: (tx.get("t", b"a"), tx.range("t"))) == (b"1", [(b"a", b"1")])


def test_long_keys(db: Db) -> None:
    """Keys longer than LMDB's 511-byte limit (a 32-byte hash + a 1024-byte S3 key)."""
    head = b"h" * 600
    keys = [head + b"b", head + b"a", head, head[:510], head[:511], head[:509] + b"z",
            head + b"\x00", head + b"\x00\x00", head[:510] + b"\x00", head[:510] + b"\x00\x01",
            b"h" * 1056, b"i" * 2000, b"g" * 800, b"short", b"h" * 509 + b"\xff" * 10]
    for k in keys:
        db.insert("t", k, b"v" + k[-3:])
    want = sorted(set(keys))
    assert db.tree_len("t") == len(want)
    for k in keys:
        assert db.get("t", k) == b"v" + k[-3:]
    assert db.get("t", head + b"c") is None
    assert [k for k, _ in db.range("t")] == want
    assert [k for k, _ in db.range("t", reverse=True)] == want[::-1]
    for start in [None, *want, head + b"a\x00", head[:510] + b"\x00\x00", b"h" * 3000]:
        for end in [None, *want, head + b"ab", b"h" * 3000]:
            w = [k for k in want if (start is None or k >= start) and (end is None or k < end)]
            assert [k for k, _ in db.range("t", start, end)] == w
            assert [k for k, _ in db.range("t", start, end, reverse=True)] == w[::-1]
            assert [k for k, _ in db.range("t", start, end, 2)] == w[:2]
            assert [k for k, _ in db.range("t", start, end, 2, reverse=True)] == w[::-1][:2]
    db.insert("t", head + b"a", b"overwritten")
    assert db.get("t", head + b"a") == b"overwritten"
    assert db.tree_len("t") == len(want)
    for k in want:
        db.remove("t", k)
        assert db.get("t", k) is None
    assert db.tree_len("t") == 0
    assert db.range("t") == []


def test_persistence(tmp_path: Path) -> None:
    for engine in ENGINES:
        d = open_db(engine, tmp_path / engine, lmdb_map_size=1 << 26)
        d.open_tree("t")
        d.insert("t", b"k", b"v")
        d.insert("t", b"x" * 900, b"long")
        d.close()
        d = open_db(engine, tmp_path / engine, lmdb_map_size=1 << 26)
        d.open_tree("t")
        assert d.get("t", b"k") == b"v"
        assert d.get("t", b"x" * 900) == b"long"
        assert d.tree_len("t") == 2
        d.close()


# ---------------------------------------------------------------- model-based

# Keys cluster around LMDB's limit so long keys share heads with each other and short keys.
_HEADS = [b"", b"p" * 505, b"p" * 510, b"p" * 511]
key_st = st.builds(lambda h, tail: h + tail, st.sampled_from(_HEADS),
                   st.binary(max_size=4) | st.sampled_from([b"\x00", b"\x00\x00", b"\xff"]))
ops_st = st.lists(st.tuples(st.sampled_from(["insert", "remove"]), key_st,
                            st.binary(max_size=3)), max_size=25)
bound_st = st.none() | key_st


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops_st, start=bound_st, end=bound_st, limit=st.none() | st.integers(0, 6),
       reverse=st.booleans(), fail=st.booleans())
def test_engine_matches_model(db: Db, ops: list[tuple[str, bytes, bytes]],
                              start: bytes | None, end: bytes | None, limit: int | None,
                              reverse: bool, fail: bool) -> None:
    # Start from an empty tree (the fixture is shared by the examples).
    for k, _ in db.range("t"):
        db.remove("t", k)
    model: dict[bytes, bytes] = {}
    half = len(ops) // 2
    for op, k, v in ops[:half]:
        if not k:
            continue
        if op == "insert":
            db.insert("t", k, v)
            model[k] = v
        else:
            db.remove("t", k)
            model.pop(k, None)
    apply_batch(db, [op for op in ops[half:] if op[1]], fail, model)
    want = sorted((k, v) for k, v in model.items()
                  if (start is None or k >= start) and (end is None or k < end))
    if reverse:
        want.reverse()
    if limit is not None:
        want = want[:limit]
    assert db.range("t", start, end, limit, reverse) == want
    assert db.tree_len("t") == len(model)
    for k in {k for _, k, _ in ops if k}:
        assert db.get("t", k) == model.get(k)
