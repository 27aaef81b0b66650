"""Tests for the storage-independent S3 listing algorithm."""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pygarage.api.common import errors
from pygarage.api.s3.listing import (
    ListPage,
    ObjectSummary,
    common_prefix_of,
    decode_v2_token,
    encode_v2_token,
    list_page,
    prefix_successor,
)


def b(s: str) -> bytes:
    return s.encode("utf-8")


class Store:
    """In-memory sorted key space, with a fetch matching the listing contract."""

    def __init__(self, keys: list[str]) -> None:
        self.items = [ObjectSummary(k, len(k), "e" + str(i), 1000 * i)
                      for i, k in enumerate(sorted(set(keys), key=b))]
        self.index = [b(o.key) for o in self.items]
        self.calls: list[tuple[str, int]] = []
        self.returned = 0  # items fetched: what a real store decodes

    async def fetch(self, start: str, limit: int) -> list[ObjectSummary]:
        self.calls.append((start, limit))
        i = bisect.bisect_left(self.index, b(start))
        out = self.items[i:i + limit]
        self.returned += len(out)
        return out


def naive(keys: list[str], prefix: str, delimiter: str | None,
          start_after: str | None = None) -> list[tuple[str, str]]:
    """Reference listing: ("K", key) / ("P", common prefix) entries in order."""
    skip_cp = common_prefix_of(start_after, prefix, delimiter) if start_after else None
    out: list[tuple[str, str]] = []
    for k in sorted(set(keys), key=b):
        if not k.startswith(prefix):
            continue
        if start_after is not None and b(k) <= b(start_after):
            continue
        cp = common_prefix_of(k, prefix, delimiter)
        if cp is None:
            out.append(("K", k))
        elif cp != skip_cp and (not out or out[-1] != ("P", cp)):
            out.append(("P", cp))
    return out


def entries(page: ListPage[ObjectSummary]) -> list[tuple[str, str]]:
    merged = [("K", o.key) for o in page.contents] + [("P", p) for p in page.common_prefixes]
    return sorted(merged, key=lambda e: b(e[1]))


async def page_all(store: Store, *, prefix: str = "", delimiter: str | None = None,
                   max_keys: int = 1000, v2: bool = False, start_after: str | None = None,
                   batch_size: int | None = None) -> tuple[list[tuple[str, str]], int]:
    """Walk all pages like a client would; returns (entries, number of pages)."""
    out: list[tuple[str, str]] = []
    marker, token, pages = start_after, None, 0
    while True:
        if v2 and token is not None:
            marker = decode_v2_token(token)
        page = await list_page(store.fetch, prefix=prefix, delimiter=delimiter,
                               start_after=marker, max_keys=max_keys, batch_size=batch_size)
        pages += 1
        got = entries(page)
        assert len(got) <= max_keys
        out.extend(got)
        if not page.truncated:
            assert page.next_marker is None
            return out, pages
        assert page.next_marker is not None
        assert got and page.next_marker == got[-1][1]
        if v2:
            token = encode_v2_token(page.next_marker)
        else:
            marker = page.next_marker
        assert pages < 100_000


# ------------------------------------------------------------------ helpers


def test_prefix_successor() -> None:
    assert prefix_successor("a/") == "a0"
    assert prefix_successor("a\U0010ffff") == "b"
    assert prefix_successor("a\U0010ffff\U0010ffff") == "b"
    assert prefix_successor("\U0010ffff") is None
    assert prefix_successor("") is None
    assert prefix_successor("x\ud7ff") == "x\ue000"
    assert prefix_successor("\uffff") == "\U00010000"


@given(st.text(min_size=1, max_size=4), st.text(max_size=4))
def test_prefix_successor_bounds(p: str, tail: str) -> None:
    p = "".join(c for c in p if not 0xD800 <= ord(c) <= 0xDFFF) or "a"
    tail = "".join(c for c in tail if not 0xD800 <= ord(c) <= 0xDFFF)
    nxt = prefix_successor(p)
    if nxt is not None:
        assert b(p + tail) < b(nxt)
        nxt.encode("utf-8")  # always a valid key


def test_common_prefix_of() -> None:
    assert common_prefix_of("a/b/c", "", "/") == "a/"
    assert common_prefix_of("a/b/c", "a/", "/") == "a/b/"
    assert common_prefix_of("a/b", "a/", "/") is None
    assert common_prefix_of("a--b--c", "a--", "--") == "a--b--"
    assert common_prefix_of("x/y", "z", "/") is None
    assert common_prefix_of("x/y", "", None) is None
    assert common_prefix_of("x/y", "", "") is None


def test_token_roundtrip() -> None:
    for key in ["a", "dir/é/\U0001f600", " spaced ", "x" * 1024]:
        tok = encode_v2_token(key)
        assert tok.isascii() and "=" not in tok
        assert decode_v2_token(tok) == key
    assert encode_v2_token("a") != "a"


@pytest.mark.parametrize("bad", ["", "!!!", "a", "é", "AAAA", "a b", "YQ", "a\x00"])
def test_token_invalid(bad: str) -> None:
    with pytest.raises(errors.InvalidArgument) as ei:
        decode_v2_token(bad)
    assert ei.value.message == "Invalid continuation token"


@given(st.text())
def test_token_fuzz(tok: str) -> None:
    try:
        decode_v2_token(tok)
    except errors.InvalidArgument:
        pass


# ------------------------------------------------------------------ basic listings


async def test_empty_store() -> None:
    page = await list_page(Store([]).fetch, prefix="", delimiter="/", start_after=None,
                           max_keys=10)
    assert page == ListPage([], [], False, None)


async def test_max_keys_zero() -> None:
    store = Store(["a", "b"])
    page = await list_page(store.fetch, prefix="", delimiter=None, start_after=None,
                           max_keys=0)
    assert (page.contents, page.common_prefixes, page.truncated) == ([], [], False)
    assert store.calls == []


async def test_simple_and_truncation() -> None:
    store = Store(["a", "b", "c"])
    page = await list_page(store.fetch, prefix="", delimiter=None, start_after=None,
                           max_keys=2)
    assert [o.key for o in page.contents] == ["a", "b"]
    assert page.truncated and page.next_marker == "b"
    page = await list_page(store.fetch, prefix="", delimiter=None, start_after="b",
                           max_keys=2)
    assert [o.key for o in page.contents] == ["c"]
    assert not page.truncated and page.next_marker is None


async def test_exact_fit_not_truncated() -> None:
    store = Store(["a", "b"])
    page = await list_page(store.fetch, prefix="", delimiter=None, start_after=None,
                           max_keys=2)
    assert not page.truncated


async def test_max_keys_one_paging() -> None:
    keys = ["a/1", "a/2", "b", "c/x", "d"]
    got, pages = await page_all(Store(keys), delimiter="/", max_keys=1)
    assert got == [("P", "a/"), ("K", "b"), ("P", "c/"), ("K", "d")]
    assert pages == 4


async def test_delimiter_and_prefix() -> None:
    keys = ["photos/2006/jan/1.jpg", "photos/2006/feb/2.jpg", "photos/2006/index",
            "photos/2007/x", "photos/readme", "video/1", "root"]
    store = Store(keys)
    page = await list_page(store.fetch, prefix="", delimiter="/", start_after=None,
                           max_keys=100)
    assert page.common_prefixes == ["photos/", "video/"]
    assert [o.key for o in page.contents] == ["root"]
    page = await list_page(store.fetch, prefix="photos/", delimiter="/", start_after=None,
                           max_keys=100)
    assert page.common_prefixes == ["photos/2006/", "photos/2007/"]
    assert [o.key for o in page.contents] == ["photos/readme"]
    page = await list_page(store.fetch, prefix="photos/2006/", delimiter="/",
                           start_after=None, max_keys=100)
    assert page.common_prefixes == ["photos/2006/feb/", "photos/2006/jan/"]
    assert [o.key for o in page.contents] == ["photos/2006/index"]
    # Prefix that is not a directory boundary.
    page = await list_page(store.fetch, prefix="ph", delimiter="/", start_after=None,
                           max_keys=100)
    assert page.common_prefixes == ["photos/"]
    assert page.contents == []


async def test_multichar_delimiter() -> None:
    store = Store(["x--y--z", "x--y--w", "x--w", "q", "x-y"])
    page = await list_page(store.fetch, prefix="", delimiter="--", start_after=None,
                           max_keys=10)
    assert page.common_prefixes == ["x--"]
    assert [o.key for o in page.contents] == ["q", "x-y"]
    page = await list_page(store.fetch, prefix="x--", delimiter="--", start_after=None,
                           max_keys=10)
    assert page.common_prefixes == ["x--y--"]
    assert [o.key for o in page.contents] == ["x--w"]


async def test_key_equal_to_prefix() -> None:
    store = Store(["a/", "a/b", "a"])
    page = await list_page(store.fetch, prefix="a/", delimiter="/", start_after=None,
                           max_keys=10)
    assert [o.key for o in page.contents] == ["a/", "a/b"]
    page = await list_page(store.fetch, prefix="", delimiter="/", start_after=None,
                           max_keys=10)
    assert page.common_prefixes == ["a/"]
    assert [o.key for o in page.contents] == ["a"]


async def test_start_after_inside_common_prefix() -> None:
    store = Store(["a/1", "a/2", "a/3", "b/1", "c"])
    for marker in ["a/1", "a/", "a/2zzz", "a/9"]:
        page = await list_page(store.fetch, prefix="", delimiter="/", start_after=marker,
                               max_keys=10)
        assert page.common_prefixes == ["b/"], marker
        assert [o.key for o in page.contents] == ["c"]
    # Without a delimiter the marker is just a position.
    page = await list_page(store.fetch, prefix="", delimiter=None, start_after="a/1",
                           max_keys=10)
    assert [o.key for o in page.contents] == ["a/2", "a/3", "b/1", "c"]


async def test_start_after_before_and_beyond_prefix() -> None:
    store = Store(["a", "b/1", "b/2", "c"])
    page = await list_page(store.fetch, prefix="b/", delimiter=None, start_after="a",
                           max_keys=10)
    assert [o.key for o in page.contents] == ["b/1", "b/2"]
    page = await list_page(store.fetch, prefix="b/", delimiter=None, start_after="bz",
                           max_keys=10)
    assert page.contents == [] and not page.truncated


async def test_marker_in_max_code_point_prefix() -> None:
    store = Store(["\U0010ffff/a", "\U0010ffff/b"])
    page = await list_page(store.fetch, prefix="", delimiter="\U0010ffff",
                           start_after="\U0010ffff", max_keys=10)
    assert page == ListPage([], [], False, None)


async def test_unicode_byte_order() -> None:
    keys = ["z", "é", "\ue000", "\uffff", "\U0001f600", "\U00010000", "A", "\x7f"]
    got, _ = await page_all(Store(keys), max_keys=3)
    assert [k for _, k in got] == sorted(keys, key=b)
    # Byte order check against literal expectations, including BMP > U+E000 vs astral.
    assert [k for _, k in got][-4:] == ["\ue000", "\uffff", "\U00010000", "\U0001f600"]


async def test_unicode_delimiter() -> None:
    store = Store(["a→b→c", "a→d", "e"])
    page = await list_page(store.fetch, prefix="a→", delimiter="→", start_after=None,
                           max_keys=5)
    assert page.common_prefixes == ["a→b→"]
    assert [o.key for o in page.contents] == ["a→d"]


# ------------------------------------------------------------------ large listings


def _big_keys() -> list[str]:
    keys = [f"dir{i % 10}/sub{i % 7}/file{i:05d}" for i in range(10_000)]
    keys += [f"top{i:04d}" for i in range(500)]
    return keys


@pytest.mark.parametrize("v2", [False, True])
async def test_10k_keys_paging(v2: bool) -> None:
    keys = _big_keys()
    store = Store(keys)
    got, pages = await page_all(store, max_keys=1000, v2=v2)
    assert got == naive(keys, "", None)
    assert len(got) == 10_500 and pages == 11
    assert len({k for _, k in got}) == len(got)


@pytest.mark.parametrize("v2", [False, True])
async def test_10k_keys_delimiter(v2: bool) -> None:
    keys = _big_keys()
    got, _ = await page_all(Store(keys), delimiter="/", max_keys=7, v2=v2)
    assert got == naive(keys, "", "/")
    assert [e for e in got if e[0] == "P"] == [("P", f"dir{i}/") for i in range(10)]
    got, _ = await page_all(Store(keys), prefix="dir3/", delimiter="/", max_keys=3, v2=v2)
    assert got == [("P", f"dir3/sub{j}/") for j in range(7)]
    got, _ = await page_all(Store(keys), prefix="dir3/sub2/", delimiter="/", max_keys=250)
    assert got == naive(keys, "dir3/sub2/", "/") and len(got) == 10_000 // 70 + 1


async def test_big_prefix_is_skipped_not_scanned() -> None:
    keys = [f"big/{i:06d}" for i in range(100_000)] + ["a", "big0", "c/1", "d"]
    store = Store(keys)
    page = await list_page(store.fetch, prefix="", delimiter="/", start_after=None,
                           max_keys=1000)
    assert page.common_prefixes == ["big/", "c/"]
    assert [o.key for o in page.contents] == ["a", "big0", "d"]
    assert len(store.calls) <= 4
    assert sum(limit for _, limit in store.calls) <= 4000
    # Resuming right after the big prefix must not rescan it either.
    store.calls.clear()
    page = await list_page(store.fetch, prefix="", delimiter="/", start_after="big/",
                           max_keys=1000)
    assert [o.key for o in page.contents] == ["big0", "d"]
    assert len(store.calls) <= 2


async def test_delimiter_listing_costs_per_prefix_not_per_key() -> None:
    """The issue's case: 50,000 keys in 100 prefixes; a delimiter listing used to read
    every key (320 ms); it must read a few entries per common prefix."""
    keys = [f"p{d:03d}/{i:05d}" for d in range(100) for i in range(500)]
    store = Store(keys)
    page = await list_page(store.fetch, prefix="", delimiter="/", start_after=None,
                           max_keys=1000)
    assert page.common_prefixes == [f"p{d:03d}/" for d in range(100)]
    assert not page.truncated
    assert store.returned <= 1000 + 100 * 20, store.returned
    assert len(store.calls) <= 110
    # Plain keys between the prefixes still come in growing batches.
    keys2 = keys + [f"p{d:03d}x{i}" for d in range(100) for i in range(30)]
    store = Store(keys2)
    got, pages = await page_all(store, delimiter="/", max_keys=1000)
    assert got == naive(keys2, "", "/") and pages == 4
    # Each page starts with one full batch; then about two reads per entry listed.
    assert store.returned <= pages * 1000 + 2 * len(got) + 100 * 20, store.returned
    assert store.returned < len(keys2) / 4


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dirs=st.lists(st.tuples(st.sampled_from(["a", "b/", "c", "é", "a/b"]),
                               st.integers(0, 300), st.sampled_from(["/", "-", ""])),
                     max_size=8),
       delimiter=st.sampled_from(["/", "-", "a", "/0"]),
       prefix=st.sampled_from(["", "a", "b/"]),
       start_after=st.none() | st.sampled_from(["a", "b/", "b/0", "c/1", "é/"]),
       max_keys=st.sampled_from([1, 3, 50, 1000]),
       v2=st.booleans())
def test_adaptive_batches_match_naive(dirs: list[tuple[str, int, str]], delimiter: str,
                                      prefix: str, start_after: str | None, max_keys: int,
                                      v2: bool) -> None:
    """Big common prefixes between plain keys: shrinking and growing fetches list exactly
    what the naive model lists."""
    keys = [f"{d}{j}{sep}{i}" for j, (d, n, sep) in enumerate(dirs) for i in range(n)]
    keys += [f"{d}{j}" for j, (d, _, _) in enumerate(dirs)]
    store = Store(keys)
    got, _ = asyncio.run(page_all(store, prefix=prefix, delimiter=delimiter,
                                  max_keys=max_keys, v2=v2, start_after=start_after))
    assert got == naive(keys, prefix, delimiter, start_after)


async def test_batch_size_bounds() -> None:
    store = Store([f"k{i}" for i in range(5)])
    await list_page(store.fetch, prefix="", delimiter=None, start_after=None, max_keys=1)
    await list_page(store.fetch, prefix="", delimiter=None, start_after=None, max_keys=5000)
    assert [limit for _, limit in store.calls] == [100, 1000]


# ------------------------------------------------------------------ property tests

ALPHABET = ["a", "b", "/", "-", "é", "\uff21", "\U0001f600"]
key_st = st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=6).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(key_st, max_size=40),
       prefix=st.lists(st.sampled_from(ALPHABET), max_size=2).map("".join),
       delimiter=st.sampled_from([None, "/", "a/", "//", "b", "\U0001f600"]),
       max_keys=st.integers(1, 7),
       v2=st.booleans(),
       batch_size=st.sampled_from([None, 1, 2, 3, 5]))
def test_paging_matches_naive(keys: list[str], prefix: str, delimiter: str | None,
                              max_keys: int, v2: bool, batch_size: int | None) -> None:
    store = Store(keys)
    got, _ = asyncio.run(page_all(store, prefix=prefix, delimiter=delimiter,
                                  max_keys=max_keys, v2=v2, batch_size=batch_size))
    assert got == naive(keys, prefix, delimiter)
    assert len(set(got)) == len(got)


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(key_st, max_size=30),
       prefix=st.lists(st.sampled_from(ALPHABET), max_size=2).map("".join),
       delimiter=st.sampled_from([None, "/", "a/", "b"]),
       start_after=key_st,
       max_keys=st.integers(1, 5),
       batch_size=st.sampled_from([None, 1, 2]))
def test_start_after_matches_naive(keys: list[str], prefix: str, delimiter: str | None,
                                   start_after: str, max_keys: int,
                                   batch_size: int | None) -> None:
    store = Store(keys)
    got, _ = asyncio.run(page_all(store, prefix=prefix, delimiter=delimiter,
                                  max_keys=max_keys, start_after=start_after,
                                  batch_size=batch_size))
    assert got == naive(keys, prefix, delimiter, start_after)


# ------------------------------------------------------------------ non-unique keys


@dataclass(frozen=True)
class Upload:
    key: str
    upload_id: str


class UploadStore:
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = sorted({Upload(k, u) for k, u in items}, key=lambda x: (b(x.key), x.upload_id))
        self.index = [b(x.key) for x in self.items]

    async def fetch(self, start: str, limit: int) -> list[Upload]:
        i = bisect.bisect_left(self.index, b(start))
        return self.items[i:i + limit]


def naive_uploads(store: UploadStore, prefix: str,
                  delimiter: str | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for u in store.items:
        if not u.key.startswith(prefix):
            continue
        cp = common_prefix_of(u.key, prefix, delimiter)
        if cp is None:
            out.append(("U", f"{u.key}#{u.upload_id}"))
        elif not out or out[-1] != ("P", cp):
            out.append(("P", cp))
    return out


async def page_all_uploads(store: UploadStore, prefix: str, delimiter: str | None,
                           max_keys: int, batch_size: int | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    key_marker: str | None = None
    id_marker: str | None = None
    for _ in range(10_000):
        page = await list_page(store.fetch, prefix=prefix, delimiter=delimiter,
                               start_after=key_marker, max_keys=max_keys,
                               tiebreak=lambda u: u.upload_id,
                               start_after_tiebreak=id_marker, batch_size=batch_size)
        merged = [(b(u.key), u.upload_id, ("U", f"{u.key}#{u.upload_id}"))
                  for u in page.contents]
        merged += [(b(p), "", ("P", p)) for p in page.common_prefixes]
        out.extend(e for _, _, e in sorted(merged))
        if not page.truncated:
            return out
        key_marker = page.next_marker
        id_marker = None if page.last_is_prefix else page.contents[-1].upload_id
    raise AssertionError("listing did not terminate")


async def test_uploads_many_per_key() -> None:
    items = [("k", f"{i:04d}") for i in range(250)] + [("a/x", "1"), ("z", "1")]
    store = UploadStore(items)
    got = await page_all_uploads(store, "", "/", max_keys=7, batch_size=None)
    assert got == naive_uploads(store, "", "/")
    got = await page_all_uploads(store, "", None, max_keys=3, batch_size=2)
    assert got == naive_uploads(store, "", None)


async def test_uploads_start_after_without_tiebreak_skips_key() -> None:
    store = UploadStore([("a", "1"), ("a", "2"), ("b", "1")])
    page = await list_page(store.fetch, prefix="", delimiter=None, start_after="a",
                           max_keys=10, tiebreak=lambda u: u.upload_id)
    assert page.contents == [Upload("b", "1")]
    page = await list_page(store.fetch, prefix="", delimiter=None, start_after="a",
                           max_keys=10, tiebreak=lambda u: u.upload_id,
                           start_after_tiebreak="1")
    assert page.contents == [Upload("a", "2"), Upload("b", "1")]


@settings(max_examples=200, deadline=None)
@given(items=st.lists(st.tuples(key_st, st.sampled_from("0123456789")), max_size=30),
       prefix=st.sampled_from(["", "a", "a/", "é"]),
       delimiter=st.sampled_from([None, "/", "b"]),
       max_keys=st.integers(1, 5),
       batch_size=st.sampled_from([None, 1, 2, 3]))
def test_uploads_paging_matches_naive(items: list[tuple[str, str]], prefix: str,
                                      delimiter: str | None, max_keys: int,
                                      batch_size: int | None) -> None:
    store = UploadStore(items)
    got = asyncio.run(page_all_uploads(store, prefix, delimiter, max_keys, batch_size))
    assert got == naive_uploads(store, prefix, delimiter)
