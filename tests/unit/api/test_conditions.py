"""Tests for Range parsing and conditional request headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pygarage.api.common import errors
from pygarage.api.s3.conditions import check_conditions, content_range, http_date, parse_range

# ------------------------------------------------------------------ Range


@pytest.mark.parametrize(("header", "size", "expected"), [
    (None, 100, None),
    ("bytes=0-0", 100, (0, 1)),
    ("bytes=0-99", 100, (0, 100)),
    ("bytes=10-19", 100, (10, 20)),
    ("bytes=10-", 100, (10, 100)),
    ("bytes=99-", 100, (99, 100)),
    ("bytes=-10", 100, (90, 100)),
    ("bytes=-100", 100, (0, 100)),
    ("bytes=-1000", 100, (0, 100)),
    ("bytes=50-1000", 100, (50, 100)),
    ("bytes=0-" + "9" * 5000, 100, (0, 100)),
    ("bytes=-" + "9" * 5000, 100, (0, 100)),
    (" bytes=1-2 ", 100, (1, 3)),
    ("bytes=00010-00019", 100, (10, 20)),
])
def test_parse_range_valid(header: str | None, size: int, expected: tuple[int, int]) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header", [
    "", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=1-2,3-4", "bytes=0-1, 5-6",
    "items=0-1", "bytes=5-3", "bytes=1 -2", "bytes=+1-2", "bytes=1_0-20", "bytes=１-2",
    "bytes=--1", "Bytes=0-1x",
])
def test_parse_range_ignored(header: str) -> None:
    assert parse_range(header, 100) is None


@pytest.mark.parametrize(("header", "size"), [
    ("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=1000-2000", 100), ("bytes=-0", 100),
    ("bytes=0-", 0), ("bytes=0-0", 0), ("bytes=-5", 0), ("bytes=" + "9" * 5000 + "-", 100),
])
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(errors.InvalidRange) as ei:
        parse_range(header, size)
    assert ei.value.status == 416
    assert ei.value.headers == {"Content-Range": f"bytes */{size}"}


@given(st.text(max_size=30), st.integers(0, 10**6))
def test_parse_range_fuzz(header: str, size: int) -> None:
    try:
        r = parse_range(header, size)
    except errors.InvalidRange:
        return
    if r is not None:
        start, end = r
        assert 0 <= start < end <= size


@given(st.integers(0, 1000), st.integers(0, 1000), st.integers(1, 1000))
def test_parse_range_property(a: int, z: int, size: int) -> None:
    try:
        r = parse_range(f"bytes={a}-{z}", size)
    except errors.InvalidRange:
        assert a >= size and z >= a
        return
    if z < a:
        assert r is None
    else:
        assert r == (a, min(z + 1, size))


def test_content_range() -> None:
    assert content_range(0, 10, 100) == "bytes 0-9/100"


# ------------------------------------------------------------------ dates

T0 = 1_138_985_109_000  # 2006-02-03T16:45:09Z
D0 = "Fri, 03 Feb 2006 16:45:09 GMT"
BEFORE = "Fri, 03 Feb 2006 16:45:08 GMT"
AFTER = "Fri, 03 Feb 2006 16:45:10 GMT"


def test_http_date() -> None:
    assert http_date(T0) == D0
    assert http_date(T0 + 999) == D0
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


def ok(headers: dict[str, str], *, copy: bool = False, method: str = "GET",
       etag: str = "abc", mtime: int = T0 + 500) -> None:
    check_conditions(headers, etag, mtime, copy_source=copy, method=method)


def fails(exc: type[errors.S3Error], headers: dict[str, str], *, copy: bool = False,
          method: str = "GET", etag: str = "abc", mtime: int = T0 + 500) -> None:
    with pytest.raises(exc) as ei:
        check_conditions(headers, etag, mtime, copy_source=copy, method=method)
    assert type(ei.value) is exc


# ------------------------------------------------------------------ If-Match


@pytest.mark.parametrize("value", [
    '"abc"', "abc", "*", 'W/"abc"', '"x", "abc"', '"x","abc"', ' "abc" ', '"x", *', "x, abc",
])
def test_if_match_ok(value: str) -> None:
    ok({"if-match": value})


@pytest.mark.parametrize("value", ['"abd"', "", '"ab"', '"abc', "x,y", '"abc-1"'])
def test_if_match_fails(value: str) -> None:
    if value == '"abc':
        ok({"if-match": value})  # unterminated quote: tolerated, same tag
        return
    fails(errors.PreconditionFailed, {"if-match": value})


def test_etag_given_quoted() -> None:
    ok({"if-match": '"abc"'}, etag='"abc"')
    fails(errors.NotModified, {"if-none-match": "abc"}, etag='"abc"')


def test_multipart_etag() -> None:
    ok({"if-match": '"abc-3"'}, etag="abc-3")


# ------------------------------------------------------------------ If-Unmodified-Since


def test_if_unmodified_since() -> None:
    ok({"if-unmodified-since": D0})  # same second: not modified since
    ok({"if-unmodified-since": AFTER})
    fails(errors.PreconditionFailed, {"if-unmodified-since": BEFORE})
    ok({"if-unmodified-since": "not a date"})
    ok({"if-unmodified-since": ""})


def test_if_match_overrides_unmodified_since() -> None:
    ok({"if-match": "abc", "if-unmodified-since": BEFORE})
    fails(errors.PreconditionFailed, {"if-match": "zzz", "if-unmodified-since": AFTER})


# ------------------------------------------------------------------ If-None-Match


def test_if_none_match() -> None:
    fails(errors.NotModified, {"if-none-match": '"abc"'})
    fails(errors.NotModified, {"if-none-match": "*"})
    fails(errors.NotModified, {"if-none-match": 'W/"abc"'})
    fails(errors.NotModified, {"if-none-match": '"abc"'}, method="head")
    ok({"if-none-match": '"x"'})
    fails(errors.PreconditionFailed, {"if-none-match": "*"}, method="PUT")


def test_if_modified_since() -> None:
    fails(errors.NotModified, {"if-modified-since": D0})
    fails(errors.NotModified, {"if-modified-since": AFTER})
    ok({"if-modified-since": BEFORE})
    ok({"if-modified-since": "garbage"})
    # Only meaningful for GET/HEAD.
    ok({"if-modified-since": AFTER}, method="PUT")


def test_if_none_match_overrides_modified_since() -> None:
    ok({"if-none-match": '"x"', "if-modified-since": AFTER})
    fails(errors.NotModified, {"if-none-match": "abc", "if-modified-since": BEFORE})


def test_precedence_412_before_304() -> None:
    fails(errors.PreconditionFailed, {"if-match": "x", "if-none-match": "abc"})
    fails(errors.PreconditionFailed, {"if-unmodified-since": BEFORE,
                                      "if-modified-since": AFTER})
    fails(errors.NotModified, {"if-match": "abc", "if-none-match": "abc"})


def test_date_formats() -> None:
    # RFC 850 and asctime forms are obsolete but still valid HTTP dates.
    fails(errors.NotModified, {"if-modified-since": "Friday, 03-Feb-06 16:45:09 GMT"})
    fails(errors.NotModified, {"if-modified-since": "Fri Feb  3 16:45:09 2006"})
    fails(errors.NotModified, {"if-modified-since": "Fri, 03 Feb 2006 16:45:09 -0000"})
    fails(errors.NotModified, {"if-modified-since": "Fri, 03 Feb 2006 17:45:09 +0100"})
    ok({"if-modified-since": "Fri, 03 Feb 2006 17:45:08 +0100"})


@given(st.text(max_size=40))
def test_garbage_dates_never_crash(value: str) -> None:
    try:
        check_conditions({"if-modified-since": value, "if-unmodified-since": value}, "e", T0)
    except (errors.NotModified, errors.PreconditionFailed):
        pass


@given(st.text(max_size=40))
def test_garbage_etags_never_crash(value: str) -> None:
    try:
        check_conditions({"if-match": value, "if-none-match": value}, "e", T0)
    except (errors.NotModified, errors.PreconditionFailed):
        pass


# ------------------------------------------------------------------ copy source


def test_copy_source_headers() -> None:
    p = "x-amz-copy-source-"
    ok({p + "if-match": '"abc"'}, copy=True)
    fails(errors.PreconditionFailed, {p + "if-match": '"x"'}, copy=True)
    fails(errors.PreconditionFailed, {p + "if-none-match": '"abc"'}, copy=True)
    fails(errors.PreconditionFailed, {p + "if-modified-since": AFTER}, copy=True)
    fails(errors.PreconditionFailed, {p + "if-unmodified-since": BEFORE}, copy=True)
    ok({p + "if-modified-since": BEFORE, p + "if-unmodified-since": AFTER}, copy=True)
    # AWS: if-match true + if-unmodified-since false -> copy proceeds.
    ok({p + "if-match": "abc", p + "if-unmodified-since": BEFORE}, copy=True)
    # AWS: if-none-match false + if-modified-since true -> 412.
    fails(errors.PreconditionFailed, {p + "if-none-match": "abc",
                                      p + "if-modified-since": BEFORE}, copy=True)


def test_copy_source_ignores_plain_headers() -> None:
    ok({"if-match": "nope", "if-none-match": "abc"}, copy=True)
    ok({"x-amz-copy-source-if-match": "nope"}, copy=False)


def test_no_headers() -> None:
    ok({})
    ok({}, copy=True)
