"""The messages of a table's RPC endpoint (`table/<name>`), and their validation (pure).

Requests (msgpack lists):
    ["update", checked, [encoded entry, ...]]   merge entries; `checked`: run the table's
                                                write check (client writes, not repairs)
    ["get", pk, sk]                             -> encoded entry | None
    ["range", pk, start_sk|None, end_sk|None, filter, limit, reverse, scan]
                                                -> [[encoded entry, ...], more]
                                                every entry in key order from the start,
                                                matching the filter or not, until `limit`
                                                match or `scan` were read; `more`: it
                                                stopped before the end of the range (then
                                                it covered up to its last entry, and
                                                answered at least one)

An update answers None, or {"refused": code, "message": text} when the write check refused
an entry (the entries before it were written, not it nor those after): a structured answer,
so the writer raises the same error as a local refusal would (e.g. NoSuchBucket), never a
string match on a remote error.

Every field of a request from another node is checked here; a malformed one raises
BadRequest (answered as an RPC error, never a crash of the handler).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_KEY = 64 * 1024  # partition and sort keys (object keys are at most 1 KiB in S3)
MAX_ENTRIES = 10_000  # entries in one update call
MAX_LIMIT = 100_000  # entries of one range read
MAX_SCAN = MAX_LIMIT + 10_000  # entries read for one range answer, matching or not
MAX_FILTER = 64  # filters are short names ("data", "live", "uploading") or None


class BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class Update:
    checked: bool
    entries: list[bytes]


@dataclass(frozen=True)
class Get:
    pk: bytes
    sk: bytes


@dataclass(frozen=True)
class Range:
    pk: bytes
    start_sk: bytes | None
    end_sk: bytes | None
    filter: str | None
    limit: int
    reverse: bool
    scan: int


@dataclass(frozen=True)
class RangeAnswer:
    entries: list[bytes]
    more: bool


Request = Update | Get | Range


def update_msg(checked: bool, entries: list[bytes]) -> list[Any]:
    return ["update", checked, entries]


def get_msg(pk: bytes, sk: bytes) -> list[Any]:
    return ["get", pk, sk]


def range_msg(pk: bytes, start_sk: bytes | None, end_sk: bytes | None, filter: Any,
              limit: int, reverse: bool, scan: int) -> list[Any]:
    check_filter(filter)
    return ["range", pk, start_sk, end_sk, filter, limit, reverse, scan]


def check_filter(filter: Any) -> None:
    """Filters travel as msgpack values: every schema's filter is None or a short name."""
    if filter is not None and not (isinstance(filter, str) and len(filter) <= MAX_FILTER):
        raise BadRequest(f"a table filter is None or a name of at most {MAX_FILTER} "
                         f"characters, not {type(filter).__name__}")


def refused_msg(code: str, message: str) -> dict[str, str]:
    return {"refused": code, "message": message}


def _key(v: Any, what: str, optional: bool = False) -> bytes | None:
    if v is None and optional:
        return None
    if not isinstance(v, bytes) or len(v) > MAX_KEY:
        raise BadRequest(f"{what}: bytes of at most {MAX_KEY} expected")
    return v


def _int_in(v: Any, lo: int, hi: int) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and lo <= v <= hi


def range_reply(entries: list[bytes], more: bool) -> list[Any]:
    return [entries, more]


def parse_request(body: Any) -> Request:
    if not isinstance(body, list) or not body or not isinstance(body[0], str):
        raise BadRequest("a table request is a list starting with its operation")
    op = body[0]
    if op == "update":
        if len(body) != 3 or not isinstance(body[1], bool) or not isinstance(body[2], list):
            raise BadRequest("update: [\"update\", checked, entries] expected")
        entries = body[2]
        if len(entries) > MAX_ENTRIES or not all(isinstance(e, bytes) for e in entries):
            raise BadRequest(f"update: at most {MAX_ENTRIES} encoded entries (bytes)")
        return Update(body[1], entries)
    if op == "get":
        if len(body) != 3:
            raise BadRequest("get: [\"get\", pk, sk] expected")
        pk, sk = _key(body[1], "pk"), _key(body[2], "sk")
        assert pk is not None and sk is not None
        return Get(pk, sk)
    if op == "range":
        if len(body) != 8:
            raise BadRequest("range: [\"range\", pk, start, end, filter, limit, reverse, "
                             "scan] expected")
        pk = _key(body[1], "pk")
        assert pk is not None
        limit, reverse, scan = body[5], body[6], body[7]
        if not _int_in(limit, 1, MAX_LIMIT):
            raise BadRequest(f"range: limit must be an integer in 1..{MAX_LIMIT}")
        if not isinstance(reverse, bool):
            raise BadRequest("range: reverse must be a boolean")
        if not _int_in(scan, limit, MAX_SCAN):
            raise BadRequest(f"range: scan must be an integer in limit..{MAX_SCAN}")
        check_filter(body[4])
        return Range(pk, _key(body[2], "start", True), _key(body[3], "end", True), body[4],
                     limit, reverse, scan)
    raise BadRequest(f"unknown table operation {op[:32]!r}")


def parse_get_reply(reply: Any) -> bytes | None:
    if reply is not None and not isinstance(reply, bytes):
        raise BadRequest("get: the answer is an encoded entry or nil")
    return reply


def parse_range_reply(reply: Any, scan: int) -> RangeAnswer:
    """The shape of a range answer; the keys' order and bounds are checked once decoded
    (quorum.check_range_keys)."""
    if (not isinstance(reply, list) or len(reply) != 2 or not isinstance(reply[0], list)
            or not isinstance(reply[1], bool)):
        raise BadRequest("range: the answer is [entries, more]")
    entries, more = reply
    if len(entries) > scan or not all(isinstance(e, bytes) for e in entries):
        raise BadRequest(f"range: at most {scan} encoded entries expected")
    if more and not entries:
        raise BadRequest("range: an answer that stopped early holds at least one entry")
    return RangeAnswer(entries, more)


def parse_update_reply(reply: Any) -> tuple[str, str] | None:
    """None when every entry was written; (code, message) when the write check refused."""
    if reply is None:
        return None
    if (isinstance(reply, dict) and isinstance(reply.get("refused"), str)
            and isinstance(reply.get("message"), str)):
        return reply["refused"], reply["message"]
    raise BadRequest("update: the answer is nil or a refusal")
