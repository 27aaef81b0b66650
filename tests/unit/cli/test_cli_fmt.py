"""Pure helpers of the `garage` CLI: sizes, durations, tables, json-api payloads."""

from __future__ import annotations

import click
import pytest

from pygarage.cli.fmt import (
    format_ago,
    format_bytes,
    format_bytes_binary,
    format_date,
    format_perms,
    format_table,
    parse_duration,
    parse_size,
    short_id,
)
from pygarage.cli.misc import split_payload
from pygarage.cli.params import DURATION, OPTIONAL_COUNT, OPTIONAL_SIZE, SIZE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("512", 512),
        ("1B", 1),
        ("1k", 1000),
        ("1K", 1000),
        ("1KB", 1000),
        ("100M", 100_000_000),
        ("1G", 10**9),
        ("1GB", 10**9),
        ("1 GB", 10**9),
        ("10T", 10 * 10**12),
        ("2P", 2 * 10**15),
        ("1.5T", 1_500_000_000_000),
        ("1KiB", 1024),
        ("1MiB", 1024**2),
        ("1GiB", 1024**3),
        ("1Gi", 1024**3),
        ("2TiB", 2 * 1024**4),
        ("1gib", 1024**3),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


# Other scripts' digits (int() reads them), 5,000 digits, a float overflow.
@pytest.mark.parametrize("text", ["", "G", "1X", "1GX", "-1G", "1.2.3G", "one", "\u0663",
                                  "\u0661G", "1\u0660", "9" * 5000, "1" * 400 + ".5", "1e400"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("90", 90),
        ("1h30m", 5400),
        ("1d 2h", 93600),
        ("2 days", 172800),
        ("5 minutes", 300),
    ],
)
def test_parse_duration(text: str, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "d", "1y", "1x", "abc", "-1d", "\u0663s", "1\u0660m",
                                  "9" * 5000, "9" * 13])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_bytes_decimal_and_binary() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(999) == "999 B"
    assert format_bytes(1000) == "1.0 KB"
    assert format_bytes(10**9) == "1.0 GB"
    assert format_bytes(1_500_000_000_000) == "1.5 TB"
    assert format_bytes_binary(1023) == "1023 B"
    assert format_bytes_binary(1024) == "1.0 KiB"
    assert format_bytes_binary(int(1.2 * 1024**2)) == "1.2 MiB"
    assert format_bytes_binary(3 * 1024**3) == "3.0 GiB"


def test_format_table_aligns_columns_without_trailing_spaces() -> None:
    out = format_table(["ID", "Name", "X"], [["a", "longer", ""], ["bbbb", "n", "y"]])
    assert out.splitlines() == [
        "ID    Name    X",
        "a     longer",
        "bbbb  n       y",
    ]


def test_small_formatters() -> None:
    assert short_id("563e1ac825ee3323aa441e72") == "563e1ac825ee3323"
    assert format_perms({"read": True, "write": True, "owner": False}) == "RW "
    assert format_perms({"read": True, "write": True, "owner": True}) == "RWO"
    assert format_perms({"owner": True}) == "  O"
    assert format_ago(None) == "never seen"
    assert format_ago(1) == "1 second ago"
    assert format_ago(59) == "59 seconds ago"
    assert format_ago(120) == "2 minutes ago"
    assert format_ago(3700) == "1 hour ago"
    assert format_ago(3 * 86400) == "3 days ago"
    assert format_date("2024-05-01T12:34:56.789Z") == "2024-05-01 12:34:56"
    assert format_date(None) == ""


def test_param_types() -> None:
    assert SIZE.convert("1G", None, None) == 10**9
    assert OPTIONAL_SIZE.convert("none", None, None) is None
    assert OPTIONAL_SIZE.convert("2MiB", None, None) == 2 * 1024**2
    assert OPTIONAL_COUNT.convert("none", None, None) is None
    assert OPTIONAL_COUNT.convert("42", None, None) == 42
    assert DURATION.convert("1d", None, None) == 86400
    assert OPTIONAL_COUNT.convert("9" * 19, None, None) == int("9" * 19)
    hostile = [(OPTIONAL_COUNT, "\u00b2"), (OPTIONAL_COUNT, "\u0663"), (OPTIONAL_COUNT, "9" * 20),
               (OPTIONAL_COUNT, "9" * 5000), (OPTIONAL_COUNT, ""), (SIZE, "\u0663G"),
               (SIZE, "9" * 5000), (DURATION, "\u0663d"), (DURATION, "9" * 5000)]
    for ptype, bad in ((SIZE, "lots"), (SIZE, "none"), (OPTIONAL_COUNT, "-3"), (DURATION, "x"),
                       *hostile):
        with pytest.raises(click.BadParameter):
            ptype.convert(bad, None, None)


def test_split_payload_query_body_and_node() -> None:
    assert split_payload("GetBucketInfo", {"search": "b"}) == ({"search": "b"}, None)
    assert split_payload("GetKeyInfo", {"id": "GK1", "showSecretKey": True}) == (
        {"id": "GK1", "showSecretKey": "true"},
        None,
    )
    assert split_payload("UpdateBucket", {"id": "x", "body": {"quotas": {}}}) == (
        {"id": "x"},
        {"quotas": {}},
    )
    assert split_payload("CreateBucket", {"globalAlias": "b"}) == (None, {"globalAlias": "b"})
    assert split_payload("ListWorkers", {"busyOnly": True}) == (
        {"node": "self"},
        {"busyOnly": True},
    )
    assert split_payload("ListWorkers", {"node": "*", "body": {"errorOnly": True}}) == (
        {"node": "*"},
        {"errorOnly": True},
    )
    assert split_payload("PurgeBlocks", ["aa"]) == ({"node": "self"}, ["aa"])
    assert split_payload("ConnectClusterNodes", ["id@h:1"]) == (None, ["id@h:1"])
    assert split_payload("GetClusterStatus", None) == (None, None)
