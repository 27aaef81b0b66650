"""Bucket lifecycle rules (pure): what is stored in the bucket's `lifecycle` register, and
which objects and uploads a rule expires on a given day.

Days are UTC calendar days, as in S3 and Garage: an object written on day D is one day old
from the midnight that ends D, so `Days = N` expires it in the daily pass of day D + 1 + N.
A `Date` rule expires every matching object from that day on. Incomplete uploads (multipart
ones, and plain PUTs whose client vanished) are aborted `DaysAfterInitiation` days after
their start, counted the same way. The size filter applies to objects only: an incomplete
upload has no size yet (the API refuses rules that would need one).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

MS_PER_DAY = 86_400_000

_DATE_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?)?",
    re.ASCII)


@dataclass(frozen=True)
class LifecycleRule:
    id: str | None
    enabled: bool
    prefix: str | None = None
    size_gt: int | None = None           # object size must be > this
    size_lt: int | None = None           # object size must be < this
    expiration_days: int | None = None
    expiration_date: str | None = None   # YYYY-MM-DD
    abort_mpu_days: int | None = None

    def to_stored(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_stored(d: dict[str, Any]) -> LifecycleRule:
        fields = LifecycleRule.__dataclass_fields__
        return LifecycleRule(**{k: v for k, v in d.items() if k in fields})


def stored_rules(value: Any) -> list[LifecycleRule]:
    """The rules held in a bucket's lifecycle register value (None: no configuration)."""
    return [LifecycleRule.from_stored(d) for d in value or []]


def parse_lifecycle_date(text: str) -> date:
    """`2025-01-31` or `2025-01-31T00:00:00[.000](Z|+00:00)`; ValueError (with the reason)
    for other forms, impossible dates, or times other than midnight UTC."""
    m = _DATE_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError("invalid date format")
    try:
        day = date.fromisoformat(m.group(1))
    except ValueError:
        raise ValueError("invalid date") from None
    if m.group(2) is None:
        return day
    try:
        tz = m.group(6) or "Z"
        when = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}:{m.group(3)}:{m.group(4)}"
                                      + ("+00:00" if tz == "Z" else tz)).astimezone(UTC)
    except ValueError:
        raise ValueError("invalid date") from None
    if (when.hour, when.minute, when.second) != (0, 0, 0) or int(m.group(5) or "0") != 0:
        raise ValueError("date must be at midnight GMT")
    return when.date()


def day_of(ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).date()


def midnight_ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def _age_days(ts_ms: int, today: date) -> int:
    """Whole days since the midnight that followed `ts_ms`."""
    return (today - (day_of(ts_ms) + timedelta(days=1))).days


def matches_key(rule: LifecycleRule, key: str) -> bool:
    return rule.prefix is None or key.startswith(rule.prefix)


def matches_size(rule: LifecycleRule, size: int) -> bool:
    return (rule.size_gt is None or size > rule.size_gt) and \
        (rule.size_lt is None or size < rule.size_lt)


def expires(rule: LifecycleRule, key: str, size: int, ts_ms: int, today: date) -> bool:
    """Does `rule` expire, on day `today`, the object `key` of `size` bytes written at
    `ts_ms`?"""
    if not rule.enabled or not matches_key(rule, key) or not matches_size(rule, size):
        return False
    if rule.expiration_days is not None:
        return _age_days(ts_ms, today) >= rule.expiration_days
    if rule.expiration_date is not None:
        return today >= date.fromisoformat(rule.expiration_date)
    return False


def aborts(rule: LifecycleRule, key: str, started_ms: int, today: date) -> bool:
    """Does `rule` abort, on day `today`, an incomplete upload of `key` started at
    `started_ms`?"""
    return rule.enabled and rule.abort_mpu_days is not None and matches_key(rule, key) \
        and _age_days(started_ms, today) >= rule.abort_mpu_days
