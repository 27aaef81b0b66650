"""Values taken from the wire (query parameters, header values), checked before use.

Numbers: `str.isdigit()` accepts '²' (which int() then refuses), int() accepts '٦٠', ' 1',
'+1' and '1_000', and refuses more than 4300 digits with a ValueError. Every number a client
sends goes through parse_uint instead: ASCII digits only, bounded length, an S3 error naming
the field.

Header values: aiohttp decodes them as UTF-8 with surrogateescape, so a non-UTF-8 byte shows up
as a lone surrogate, which can neither be stored nor sent back; and it refuses to send control
characters (header injection), dropping the connection instead of answering. A value that is
stored or echoed goes through check_header_value first.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import errors

MAX_DIGITS = 19  # any value a field can mean fits in 19 digits (int64)
MAX_PART_NUMBER = 10000

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
# Control characters aiohttp refuses in a response header (HTAB is allowed), and lone
# surrogates (non-UTF-8 bytes as decoded by aiohttp).
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def parse_uint(value: str | None, name: str, *, max_value: int | None = None,
               error: type[errors.S3Error] = errors.InvalidArgument,
               message: str | None = None) -> int:
    """A non-negative decimal integer: ASCII digits only, no sign, no blanks, at most
    MAX_DIGITS digits and at most max_value; otherwise `error` (InvalidArgument by default)."""
    if value is None or len(value) > MAX_DIGITS or not _DIGITS.fullmatch(value):
        raise error(message or f"{name} must be a non-negative integer")
    n = int(value)
    if max_value is not None and n > max_value:
        raise error(message or f"{name} must be at most {max_value}")
    return n


def parse_part_number(value: str | None) -> int:
    """partNumber (UploadPart, UploadPartCopy, GetObject, HeadObject): 1 to 10000."""
    message = f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
    n = parse_uint(value, "partNumber", max_value=MAX_PART_NUMBER, message=message)
    if n < 1:
        raise errors.InvalidArgument(message)
    return n


def is_ascii_uint(value: str) -> bool:
    """True for 1 to MAX_DIGITS ASCII digits: the values parse_uint accepts."""
    return len(value) <= MAX_DIGITS and _DIGITS.fullmatch(value) is not None


def check_header_value(value: str, name: str) -> str:
    """`value`, if it can be stored and sent back in a response header byte for byte;
    InvalidArgument otherwise (non-UTF-8 bytes, control characters)."""
    bad = _UNSENDABLE.search(value)
    if bad is not None:
        what = "is not valid UTF-8" if "\ud800" <= bad.group() <= "\udfff" \
            else "contains a control character"
        raise errors.InvalidArgument(f"The value of {name} {what}")
    return value


def printable(text: str) -> str:
    """`text` with control characters and non-UTF-8 bytes written as escapes (\\x1b,
    \\udcff): for client input quoted in error messages, which must stay valid XML."""
    return _UNSENDABLE.sub(lambda m: m.group().encode("unicode_escape",
                                                      "backslashreplace").decode(), text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes) -> Any:
    """A JSON document as the JSON RFC has it, as Garage's parser reads it: UTF-8, no NaN or
    Infinity (Python's json takes them), no lone surrogate escape such as "\\ud800" (a
    string no store or UTF-8 output can take: a 500 deep in a handler). ValueError for
    anything else, RecursionError for absurd nesting."""
    doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    # One encoding of the whole document meets every string, keys included.
    json.dumps(doc, ensure_ascii=False).encode("utf-8")
    return doc
