"""Text helpers for the `garage` CLI: tables, sizes, durations, ids and dates.

Everything here is pure (strings and numbers in, strings and numbers out) so the
command modules stay about *what* to print and the tests can pin formats exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pygarage.util.duration import parse_duration

__all__ = [
    "format_ago",
    "format_bytes",
    "format_bytes_binary",
    "format_date",
    "format_perms",
    "format_table",
    "format_tags",
    "parse_duration",
    "parse_size",
    "short_id",
]

_DECIMAL_PREFIXES = ("K", "M", "G", "T", "P", "E")


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, without trailing blanks."""
    all_rows = [list(header), *[list(r) for r in rows]]
    ncols = max(len(r) for r in all_rows)
    for r in all_rows:
        r.extend([""] * (ncols - len(r)))
    widths = [max(len(r[i]) for r in all_rows) for i in range(ncols)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in all_rows
    ]
    return "\n".join(lines)


def short_id(ident: str) -> str:
    """The first 16 hex digits, which is how Garage shows node and bucket ids."""
    return ident[:16]


def _format_scaled(n: int, base: int, suffix: str) -> str:
    if n < base:
        return f"{n} B"
    value = float(n)
    for prefix in _DECIMAL_PREFIXES:
        value /= base
        if value < base or prefix == _DECIMAL_PREFIXES[-1]:
            return f"{value:.1f} {prefix}{suffix}"
    raise AssertionError("unreachable")


def format_bytes(n: int) -> str:
    """Decimal units (`1.0 GB`), as Garage prints capacities."""
    return _format_scaled(n, 1000, "B")


def format_bytes_binary(n: int) -> str:
    """Binary units (`1.2 MiB`), as Garage prints bucket sizes."""
    return _format_scaled(n, 1024, "iB")


# ASCII digits only (int() would read other scripts' digits too); fullmatch.
_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*")
_SIZE_MAX_DIGITS = 24  # far beyond any disk


def parse_size(text: str) -> int:
    """Parse `1G`, `1GB`, `100M`, `1.5T`, `1GiB`, `512` (bytes) into a byte count.

    K/M/G/T/P/E are powers of 1000; the `i` forms (KiB, Mi...) are powers of 1024.
    """
    m = _SIZE_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid size: {text!r}")
    if len(m.group(1)) > _SIZE_MAX_DIGITS:
        raise ValueError(f"invalid size: {text[:40]!r}...: too large")
    number, unit = m.group(1), m.group(2).upper()
    if unit in ("", "B"):
        multiplier = 1
    else:
        stem = unit[:-1] if unit.endswith("B") else unit
        binary = stem.endswith("I")
        stem = stem[:-1] if binary else stem
        if len(stem) != 1 or stem not in _DECIMAL_PREFIXES:
            raise ValueError(f"invalid size unit in {text!r}")
        power = _DECIMAL_PREFIXES.index(stem) + 1
        multiplier = (1024 if binary else 1000) ** power
    return int(float(number) * multiplier) if "." in number else int(number) * multiplier


def format_ago(secs: int | None) -> str:
    """`42 seconds ago`, `3 hours ago`, or `never seen` when the node never answered."""
    if secs is None:
        return "never seen"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= size:
            n = secs // size
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return f"{secs} second{'s' if secs != 1 else ''} ago"


def format_date(timestamp: str | None) -> str:
    """Keep the date and time of an RFC 3339 timestamp, dropping sub-seconds and zone."""
    if not timestamp:
        return ""
    m = re.match(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})", timestamp)
    return f"{m.group(1)} {m.group(2)}" if m else timestamp


def format_tags(tags: Sequence[str]) -> str:
    return "[" + ",".join(tags) + "]"


def format_perms(perms: dict[str, bool]) -> str:
    """`RWO` with blanks for missing rights, so columns line up (`RW `, `R  `)."""
    return "".join(
        letter if perms.get(name) else " "
        for letter, name in (("R", "read"), ("W", "write"), ("O", "owner"))
    )
