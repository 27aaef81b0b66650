"""Numbers and header values from the wire: only what a client can mean gets through."""

from __future__ import annotations

import pytest

from pygarage.api.common import errors
from pygarage.api.common.wire import (
    MAX_DIGITS,
    check_header_value,
    is_ascii_uint,
    parse_part_number,
    parse_uint,
    printable,
    strict_json,
)

# What Python's int()/isdigit() let through or choke on, and what a header/query may carry.
HOSTILE = ["\u00b2", "\u0666\u0660", "9" * 5000, "", "\r\n", "1\r\n", "+1", "-1", " 1", "1 ",
           "1_000", "0x10", "1e3", "1.0", "\uff11", "\u0661", "١٢", None]


@pytest.mark.parametrize("value", HOSTILE)
def test_parse_uint_refuses(value: str | None) -> None:
    with pytest.raises(errors.InvalidArgument):
        parse_uint(value, "max-keys")
    if value is not None:
        assert not is_ascii_uint(value)


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("7", 7), ("0010", 10),
                                                 ("9" * MAX_DIGITS, 10**MAX_DIGITS - 1)])
def test_parse_uint_accepts_ascii_digits(value: str, expected: int) -> None:
    assert parse_uint(value, "n") == expected
    assert is_ascii_uint(value)


def test_parse_uint_bounds_and_error_class() -> None:
    assert parse_uint("1000", "n", max_value=1000) == 1000
    with pytest.raises(errors.InvalidArgument, match="at most 1000"):
        parse_uint("1001", "n", max_value=1000)
    with pytest.raises(errors.AuthorizationQueryParametersError, match="nope"):
        parse_uint("x", "n", error=errors.AuthorizationQueryParametersError, message="nope")
    with pytest.raises(errors.InvalidArgument):
        parse_uint("1" * (MAX_DIGITS + 1), "n")


@pytest.mark.parametrize("value", [*HOSTILE, "0", "10001", "00000"])
def test_part_number_refuses(value: str | None) -> None:
    with pytest.raises(errors.InvalidArgument, match="between 1 and 10000"):
        parse_part_number(value)


def test_part_number_accepts() -> None:
    assert [parse_part_number(v) for v in ("1", "10000", "0042")] == [1, 10000, 42]


@pytest.mark.parametrize("value", ["plain", "caf\u00e9", "=?UTF-8?B?w6k=?=", "a\tb", "\u4e2d",
                                   ""])
def test_header_value_sendable(value: str) -> None:
    assert check_header_value(value, "x-amz-meta-a") == value


@pytest.mark.parametrize(("value", "what"), [
    ("a\udcffb", "UTF-8"), ("\udcc3", "UTF-8"), ("a\r\nX-Injected: 1", "control"),
    ("a\nb", "control"), ("nul\x00", "control"), ("del\x7f", "control"), ("\x1b[31m", "control"),
])
def test_header_value_refused(value: str, what: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=what):
        check_header_value(value, "x-amz-meta-a")


def test_printable_escapes_only_what_xml_and_headers_cannot_carry() -> None:
    assert printable("caf\u00e9 \u4e2d\ttab") == "caf\u00e9 \u4e2d\ttab"
    assert printable("a\udcffb\x1bc\r\nd\x7f\x00") == "a\\udcffb\\x1bc\\r\\nd\\x7f\\x00"


def test_strict_json() -> None:
    assert strict_json(b'{"a": [1, "\\u00e9t\\u00e9", {"b": null}], "\\u00e9": true}') == \
        {"a": [1, "\u00e9t\u00e9", {"b": None}], "\u00e9": True}
    # Lone surrogates (in a value or a key), NaN and Infinity (Python's json takes them),
    # bytes that are not UTF-8, nesting past the parser.
    for raw in (b'"\\ud800"', b'{"\\udcff": 1}', b'["ok", ["\\udfff"]]', b"NaN",
                b'{"a": -Infinity}', b"[Infinity]", b'"\xff"', b"{", b""):
        with pytest.raises(ValueError):
            strict_json(raw)
    with pytest.raises(RecursionError):
        strict_json(b"[" * 100_000 + b"]" * 100_000)
    assert strict_json(b'"\\ud83d\\ude00"') == "\U0001f600"  # a pair is one character
