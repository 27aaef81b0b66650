"""HTTP Range and conditional request headers (RFC 7232 / 7233), pure functions."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from datetime import UTC

from pygarage.api.common import errors

_RANGE_RE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return (start, end_exclusive) for a single byte range, or None for the whole object.

    Malformed or multi-range headers are ignored (whole object, 200) as S3 does;
    a well-formed but unsatisfiable range raises InvalidRange (416).
    """
    if header is None:
        return None
    m = _RANGE_RE.fullmatch(header.strip())
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if first:
        start = _num(first)
        end = _num(last) + 1 if last else size
        if last and end <= start:
            # last < first makes the spec syntactically invalid (RFC 7233 2.1): ignore it.
            return None
        if start >= size:
            raise _unsatisfiable(size)
        return start, min(end, size)
    if not last:
        return None  # "bytes=-"
    suffix = _num(last)
    if suffix == 0 or size == 0:
        raise _unsatisfiable(size)
    return max(0, size - suffix), size


def _num(digits: str) -> int:
    # Saturate absurdly long numbers: int() refuses > 4300 digits, and any value this
    # large behaves the same (beyond every object size).
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 30 else 10**30


def content_range(start: int, end_exclusive: int, size: int) -> str:
    """Value of the Content-Range header for a 206 response."""
    return f"bytes {start}-{end_exclusive - 1}/{size}"


def _unsatisfiable(size: int) -> errors.S3Error:
    return errors.InvalidRange(headers={"Content-Range": f"bytes */{size}"})


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(ms: int) -> str:
    """RFC 7231 IMF-fixdate, e.g. 'Fri, 03 Feb 2006 16:45:09 GMT' (English names whatever
    the locale; what email.utils.formatdate(usegmt=True) gives, at a fraction of its cost:
    one per GET)."""
    t = time.gmtime(ms // 1000)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def _parse_http_date(value: str | None) -> int | None:
    """Seconds since epoch, or None for a missing or invalid date (which RFC 7232 ignores)."""
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt.tzinfo is None:
        # "-0000" zones parse as naive; HTTP dates are always UTC.
        dt = dt.replace(tzinfo=UTC)
    try:
        return int(dt.timestamp())
    except (OverflowError, ValueError, OSError):
        return None


def _etag_list(value: str) -> list[str]:
    """Split an If-Match style list into bare tags ('*' kept), ignoring W/ and quotes."""
    tags: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        if i >= n:
            break
        if value.startswith("W/", i):
            i += 2
        if i < n and value[i] == '"':
            j = value.find('"', i + 1)
            if j < 0:
                j = n
            tags.append(value[i + 1:j])
            i = j + 1
        else:
            j = value.find(",", i)
            if j < 0:
                j = n
            tags.append(value[i:j].strip())
            i = j
    return tags


def _etag_matches(value: str, etag: str) -> bool:
    bare = etag.strip('"')
    return any(t == "*" or t == bare for t in _etag_list(value))


def check_conditions(headers: Mapping[str, str], etag: str, last_modified_ms: int, *,
                     copy_source: bool = False, method: str = "GET") -> None:
    """Evaluate preconditions in RFC 7232 section 6 order against an existing object.

    Raises PreconditionFailed (412) or NotModified (304). With `copy_source`, the
    x-amz-copy-source-if-* headers are used and every failure is a 412, as in S3 copy.
    `method` matters only for If-None-Match/If-Modified-Since, which yield 304 on GET/HEAD.
    """
    pfx = "x-amz-copy-source-" if copy_source else ""
    if_match = headers.get(pfx + "if-match")
    if_unmodified = headers.get(pfx + "if-unmodified-since")
    if_none_match = headers.get(pfx + "if-none-match")
    if_modified = headers.get(pfx + "if-modified-since")
    # Last-Modified is sent with one-second resolution, so clients compare at that grain.
    mtime = last_modified_ms // 1000
    is_read = method.upper() in ("GET", "HEAD")

    if if_match is not None:
        if not _etag_matches(if_match, etag):
            raise errors.PreconditionFailed()
    else:
        since = _parse_http_date(if_unmodified)
        if since is not None and mtime > since:
            raise errors.PreconditionFailed()

    if if_none_match is not None:
        if _etag_matches(if_none_match, etag):
            if copy_source or not is_read:
                raise errors.PreconditionFailed()
            raise errors.NotModified()
    elif copy_source or is_read:
        since = _parse_http_date(if_modified)
        if since is not None and mtime <= since:
            if copy_source:
                raise errors.PreconditionFailed()
            raise errors.NotModified()
