"""The consistency checker on hand-made histories: the anomalies it must flag (stale read,
lost write, resurrected delete, missing or deleted listing key, unknown or future value)
and the histories it must pass (overlapping writes read either way, failed writes that
may or may not have landed)."""

from __future__ import annotations

import pytest

from pygarage.testing.checker import DELETE, GET, LIST, PUT, Op, check, make_body, parse_body


def put(key: str, v: str, s: float, e: float, ok: bool = True) -> Op:
    return Op(PUT, key, s, e, ok, value=v)


def delete(key: str, s: float, e: float, ok: bool = True) -> Op:
    return Op(DELETE, key, s, e, ok)


def get(key: str, v: str | None, s: float, e: float, final: bool = False) -> Op:
    return Op(GET, key, s, e, True, value=v, final=final)


def ls(prefix: str, keys: set[str], s: float, e: float) -> Op:
    return Op(LIST, prefix, s, e, True, keys=frozenset(keys))


def kinds(history: list[Op]) -> list[str]:
    return [a.kind for a in check(history)]


# ---------------------------------------------------------------------- must flag

def test_stale_read() -> None:
    h = [put("k", "v1", 0, 1), put("k", "v2", 2, 3), get("k", "v1", 4, 5)]
    (a,) = check(h)
    assert a.kind == "stale_read" and a.key == "k" and "v1" in a.detail and "v2" in a.detail


def test_stale_absent_read_after_acknowledged_put() -> None:
    assert kinds([put("k", "v1", 0, 1), get("k", None, 2, 3)]) == ["stale_read"]


def test_lost_write_in_final_reads() -> None:
    h = [put("k", "v1", 0, 1), put("k", "v2", 2, 3), get("k", "v1", 10, 11, final=True),
         put("j", "w1", 0, 1), get("j", None, 10, 11, final=True)]
    assert kinds(h) == ["lost_write", "lost_write"]


def test_resurrected_delete() -> None:
    h = [put("k", "v1", 0, 1), delete("k", 2, 3), get("k", "v1", 4, 5)]
    assert kinds(h) == ["resurrected_delete"]
    # Also when the GET was not final, and through a failed later put that did not win.
    h2 = [put("k", "v1", 0, 1), delete("k", 2, 3), put("k", "v9", 3.5, 3.6, ok=False),
          get("k", "v1", 4, 5, final=True)]
    assert kinds(h2) == ["resurrected_delete"]


def test_missing_listing_key() -> None:
    h = [put("p/a", "v1", 0, 1), put("p/b", "v2", 0, 1), ls("p/", {"p/a"}, 2, 3)]
    (a,) = check(h)
    assert a.kind == "missing_listing_key" and a.key == "p/b"


def test_listed_deleted_or_never_written_key() -> None:
    h = [put("p/a", "v1", 0, 1), delete("p/a", 2, 3), ls("p/", {"p/a", "p/zz"}, 4, 5)]
    found = check(h, deleted_in_listings=True)
    assert sorted(a.kind for a in found) == ["listed_deleted_key", "listed_deleted_key"]
    assert check(h) == []  # not promised by Garage: only on request


def test_unknown_and_future_values() -> None:
    h = [get("k", "nobody", 0, 1), put("j", "v1", 0, 1), get("k", "v1", 2, 3),
         put("k", "late", 5, 6), get("k", "late", 2, 3)]
    assert kinds(h) == ["unknown_value", "unknown_value", "future_read"]


def test_acknowledged_delete_then_absent_then_stale_value() -> None:
    # A read returning the deleted value after an absent read: flagged, not the first.
    h = [put("k", "v1", 0, 1), delete("k", 2, 3), get("k", None, 4, 5), get("k", "v1", 6, 7)]
    assert kinds(h) == ["resurrected_delete"]


# ---------------------------------------------------------------------- must pass

def test_concurrent_overlapping_writes_read_either_way() -> None:
    h = [put("k", "v1", 0, 3), put("k", "v2", 1, 4), get("k", "v1", 5, 6),
         get("k", "v2", 7, 8), get("k", "v1", 9, 10)]
    assert check(h) == []


def test_read_concurrent_with_write_may_see_old_or_new() -> None:
    h = [put("k", "v1", 0, 1), put("k", "v2", 2, 5), get("k", "v1", 3, 4),
         get("k", "v2", 3, 4), delete("k", 6, 9), get("k", "v2", 7, 8), get("k", None, 7, 8)]
    assert check(h) == []


def test_failed_writes_may_or_may_not_have_landed() -> None:
    h = [put("k", "v1", 0, 1), put("k", "v2", 2, 3, ok=False), get("k", "v2", 4, 5),
         get("k", "v1", 6, 7), delete("k", 8, 9, ok=False), get("k", None, 10, 11),
         get("k", "v1", 12, 13, final=True), ls("", {"k"}, 14, 15), ls("", set(), 14, 15)]
    assert check(h) == []


def test_nothing_written_reads_absent_and_lists_empty() -> None:
    assert check([get("k", None, 0, 1), ls("", set(), 0, 1)]) == []


def test_rewritten_after_delete_is_live() -> None:
    h = [put("k", "v1", 0, 1), delete("k", 2, 3), put("k", "v2", 4, 5), get("k", "v2", 6, 7),
         ls("", {"k"}, 6, 7), get("k", "v2", 8, 9, final=True)]
    assert check(h) == []


def test_listing_concurrent_with_writes_may_go_either_way() -> None:
    h = [put("a", "v1", 0, 1), delete("a", 2, 5), put("b", "v2", 2, 5),
         ls("", {"a"}, 3, 4), ls("", {"b"}, 3, 4), ls("", {"a", "b"}, 3, 4)]
    assert check(h) == []


def test_failed_operations_and_other_prefixes_ignored() -> None:
    h = [put("x/a", "v1", 0, 1), Op(GET, "x/a", 2, 3, False, error="503"),
         Op(LIST, "", 2, 3, False), ls("y/", set(), 2, 3)]
    assert check(h) == []


# ---------------------------------------------------------------------- bodies

@pytest.mark.parametrize("size", [0, 10, 100, 3000, 200_000])
def test_bodies_name_their_write_and_detect_damage(size: int) -> None:
    b = make_body("c1-42", size)
    assert len(b) == max(size, len(b"pgck:c1-42:%d\n" % size))
    assert parse_body(b) == "c1-42"
    if size > 100:
        with pytest.raises(ValueError):
            parse_body(b[:-1])
        with pytest.raises(ValueError):
            parse_body(b[:50] + bytes([b[50] ^ 1]) + b[51:])
        other = make_body("c1-43", size)
        with pytest.raises(ValueError):
            parse_body(b[:size // 2] + other[size // 2:])
    with pytest.raises(ValueError):
        parse_body(b"hello")
