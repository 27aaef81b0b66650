"""S3 listing algorithm (prefix, delimiter, marker, max-keys), independent of storage.

Keys are ordered by their UTF-8 bytes. The storage layer only has to provide a
`fetch(start_inclusive, limit)` returning items with key >= start in that order;
this module handles roll-up into common prefixes, pagination and skipping whole
prefix ranges without scanning them: after a common prefix the next fetch starts at the
prefix's successor, and fetches shrink while they keep landing inside one prefix (then grow
back while they are used), so a delimiter listing reads a few entries per common prefix.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pygarage.api.common import errors

T = TypeVar("T")

_MIN_BATCH = 100
_MAX_BATCH = 1000
_SEEK_BATCH = 1  # smallest fetch, after skipping a common prefix: one seek per prefix
_FIRST_DELIMITER_BATCH = 64
_MAX_CHAR = 0x10FFFF


@dataclass(frozen=True)
class ObjectSummary:
    key: str
    size: int
    etag: str
    last_modified_ms: int


@dataclass
class ListPage(Generic[T]):
    contents: list[T]
    common_prefixes: list[str]
    truncated: bool
    # Last key or common prefix emitted, to resume the next page (only when truncated).
    next_marker: str | None = None
    # Whether the last entry emitted was a common prefix (vs. an item), for marker building.
    last_is_prefix: bool = False


Fetch = Callable[[str, int], Awaitable[list[T]]]


def key_bytes(key: str) -> bytes:
    """Sort key for S3 ordering; surrogatepass so a stray surrogate cannot crash a listing."""
    return key.encode("utf-8", "surrogatepass")


def prefix_successor(prefix: str) -> str | None:
    """Smallest string sorting after every string that starts with `prefix`.

    UTF-8 byte order equals code point order, so bumping the last code point is exact.
    None means no such string exists (prefix is all U+10FFFF, or empty).
    """
    chars = list(prefix)
    while chars:
        c = ord(chars.pop())
        if c < _MAX_CHAR:
            nxt = c + 1
            if 0xD800 <= nxt <= 0xDFFF:
                nxt = 0xE000  # surrogates cannot appear in UTF-8 keys
            return "".join(chars) + chr(nxt)
    return None


def _default_key(item: Any) -> str:
    return str(item.key)


def common_prefix_of(key: str, prefix: str, delimiter: str | None) -> str | None:
    """The common prefix `key` rolls up into, or None if it is listed as itself."""
    if not delimiter or not key.startswith(prefix):
        return None
    idx = key.find(delimiter, len(prefix))
    if idx < 0:
        return None
    return key[:idx + len(delimiter)]


async def list_page(fetch: Fetch[T], *, prefix: str, delimiter: str | None,
                    start_after: str | None, max_keys: int,
                    key: Callable[[T], str] = _default_key,
                    tiebreak: Callable[[T], str] | None = None,
                    start_after_tiebreak: str | None = None,
                    batch_size: int | None = None) -> ListPage[T]:
    """Compute one page of an S3 listing.

    Entries (items and common prefixes, each counting as one) come after `start_after`
    (exclusive). For listings where several items share a key (multipart uploads), give
    `tiebreak` (secondary sort field, in the same order fetch uses) and optionally
    `start_after_tiebreak`: then items with key == start_after and a greater tiebreak
    are still listed. Without it, every item whose key is <= start_after is skipped.
    """
    delimiter = delimiter or None
    if max_keys <= 0:
        return ListPage([], [], False, None)
    max_limit = min(max(max_keys + 1, _MIN_BATCH), _MAX_BATCH)
    limit = batch_size or max_limit
    if delimiter and batch_size is None:
        # Most of a big batch may roll up into one prefix: start small, grow while used.
        limit = min(limit, _FIRST_DELIMITER_BATCH)
    prefix_b = key_bytes(prefix)

    # Position already consumed: (key bytes, tiebreak or None meaning "the whole key").
    pos: tuple[bytes, str | None] | None = None
    cursor: str | None = prefix
    if start_after is not None:
        pos = (key_bytes(start_after), start_after_tiebreak if tiebreak else None)
        if key_bytes(start_after) > prefix_b:
            cursor = start_after
        # A marker inside a common prefix means that prefix was already returned.
        cp = common_prefix_of(start_after, prefix, delimiter)
        if cp is not None:
            cursor = prefix_successor(cp)

    contents: list[T] = []
    prefixes: list[str] = []
    last_is_prefix = False
    count = 0
    truncated = False
    skip_prefix: str | None = None  # common prefix just emitted; its keys are skipped

    def consumed(kb: bytes, tb: str | None) -> bool:
        if pos is None:
            return False
        if kb != pos[0]:
            return kb < pos[0]
        return pos[1] is None or (tb is not None and tb <= pos[1])

    while cursor is not None:
        batch = await fetch(cursor, limit)
        exhausted = len(batch) < limit
        progressed = False
        done = False
        last_key: str | None = None
        for item in batch:
            k = key(item)
            if not k.startswith(prefix):
                # fetch starts inside or after the prefix range, so we are past its end.
                done = True
                break
            kb = key_bytes(k)
            tb = tiebreak(item) if tiebreak else None
            last_key = k
            if consumed(kb, tb):
                continue
            progressed = True
            pos = (kb, tb)
            if skip_prefix is not None:
                if k.startswith(skip_prefix):
                    continue
                skip_prefix = None
            cp = common_prefix_of(k, prefix, delimiter)
            if count == max_keys:
                truncated = True
                done = True
                break
            count += 1
            if cp is not None:
                prefixes.append(cp)
                skip_prefix = cp
                last_is_prefix = True
            else:
                contents.append(item)
                last_is_prefix = False
        if done or exhausted or last_key is None:
            break
        if skip_prefix is not None and last_key.startswith(skip_prefix):
            # Jump over the rest of the prefix range in one fetch instead of scanning it.
            cursor = prefix_successor(skip_prefix)
            pos = None
            if batch_size is None:
                # The batch was mostly keys rolled up into one prefix: fetch less next time,
                # so a delimiter listing costs per common prefix, not per key.
                limit = max(_SEEK_BATCH, limit // 8)
        elif tiebreak is None:
            # Keys are unique: appending NUL gives the immediate successor in byte order.
            cursor = last_key + "\x00"
            if batch_size is None:
                limit = min(limit * 2, max_limit, max(max_keys - count + 1, _SEEK_BATCH))
        else:
            cursor = last_key
            if not progressed:
                # A whole batch of already-seen items sharing one key: widen the window.
                limit *= 2

    next_marker: str | None = None
    if truncated:
        if last_is_prefix:
            next_marker = prefixes[-1]
        elif contents:
            next_marker = key(contents[-1])
    return ListPage(contents, prefixes, truncated, next_marker, last_is_prefix)


_TOKEN_TAG = b"k"  # version tag so the token format can evolve while staying opaque


def encode_v2_token(key: str) -> str:
    """Opaque ListObjectsV2 continuation token carrying the resume marker."""
    raw = _TOKEN_TAG + key.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_v2_token(token: str) -> str:
    """Inverse of encode_v2_token; anything else raises InvalidArgument."""
    try:
        data = token.encode("ascii")
        data += b"=" * (-len(data) % 4)
        raw = base64.b64decode(data, altchars=b"-_", validate=True)
        if not raw.startswith(_TOKEN_TAG):
            raise ValueError("bad tag")
        return raw[len(_TOKEN_TAG):].decode("utf-8")
    except (ValueError, UnicodeError, binascii.Error):
        raise errors.InvalidArgument("Invalid continuation token") from None
