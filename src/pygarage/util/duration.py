"""Durations as people write them (`30s`, `10m`, `1h30m`, `7d`, `2 days`): for the CLI
and for config keys such as metadata_auto_snapshot_interval."""

from __future__ import annotations

import re

_DURATION_UNITS: dict[str, int] = {}
for _names, _secs in (
    (("s", "sec", "secs", "second", "seconds"), 1),
    (("m", "min", "mins", "minute", "minutes"), 60),
    (("h", "hr", "hrs", "hour", "hours"), 3600),
    (("d", "day", "days"), 86400),
    (("w", "week", "weeks"), 7 * 86400),
):
    for _name in _names:
        _DURATION_UNITS[_name] = _secs

# ASCII digits only (int() would read other scripts' digits too).
_DURATION_PART_RE = re.compile(r"([0-9]+)\s*([a-zA-Z]*)")
_MAX_DIGITS = 12  # 10^12 s: 30,000 years


def parse_duration(text: str) -> int:
    """Parse `30s`, `10m`, `2h`, `1d`, `1h30m` or `2 days` into seconds (bare number = seconds)."""
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    total = 0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART_RE.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration: {text!r}")
        if len(m.group(1)) > _MAX_DIGITS:
            raise ValueError(f"invalid duration: {text[:40]!r}: too long")
        unit = m.group(2).lower() or "s"
        if unit not in _DURATION_UNITS:
            raise ValueError(f"invalid duration unit {m.group(2)!r} in {text!r}")
        total += int(m.group(1)) * _DURATION_UNITS[unit]
        pos = m.end()
        while pos < len(s) and s[pos] in " ,":
            pos += 1
    return total
