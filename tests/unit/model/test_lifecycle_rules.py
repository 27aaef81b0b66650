"""Lifecycle rule matching and scheduling (pure): which day an object or upload expires."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from pygarage.model.lifecycle import (
    LifecycleRule,
    aborts,
    expires,
    midnight_ms,
    parse_lifecycle_date,
    stored_rules,
)
from pygarage.model.s3.lifecycle_worker import seconds_until_next_pass
from pygarage.util.clock import OFFSET_ENV, offset_from_env


def ms(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> int:
    return int(datetime(y, m, d, h, mi, tzinfo=UTC).timestamp() * 1000)


def test_days_count_from_the_next_midnight() -> None:
    r = LifecycleRule("r", True, expiration_days=1)
    written = ms(2030, 5, 10, 23, 59)
    assert not expires(r, "k", 1, written, date(2030, 5, 10))
    assert not expires(r, "k", 1, written, date(2030, 5, 11))
    assert expires(r, "k", 1, written, date(2030, 5, 12))
    assert expires(r, "k", 1, ms(2030, 5, 10), date(2030, 5, 12))
    assert expires(LifecycleRule("r", True, expiration_days=30), "k", 1, written,
                   date(2030, 6, 10))
    assert not expires(LifecycleRule("r", True, expiration_days=30), "k", 1, written,
                       date(2030, 6, 9))


def test_date_expires_everything_from_that_day() -> None:
    r = LifecycleRule("r", True, expiration_date="2030-01-31")
    assert not expires(r, "k", 1, ms(2020, 1, 1), date(2030, 1, 30))
    assert expires(r, "k", 1, ms(2020, 1, 1), date(2030, 1, 31))
    assert expires(r, "k", 1, ms(2031, 1, 1), date(2031, 1, 2))


def test_filters_and_status() -> None:
    base = {"expiration_days": 1}
    old, today = ms(2030, 1, 1), date(2030, 2, 1)
    assert expires(LifecycleRule("r", True, prefix="logs/", **base), "logs/a", 5, old, today)
    assert not expires(LifecycleRule("r", True, prefix="logs/", **base), "log", 5, old, today)
    assert not expires(LifecycleRule("r", False, **base), "a", 5, old, today)
    gt = LifecycleRule("r", True, size_gt=5, **base)
    assert not expires(gt, "a", 5, old, today) and expires(gt, "a", 6, old, today)
    lt = LifecycleRule("r", True, size_lt=5, **base)
    assert expires(lt, "a", 4, old, today) and not expires(lt, "a", 5, old, today)
    # A rule with only an abort action expires nothing.
    assert not expires(LifecycleRule("r", True, abort_mpu_days=1), "a", 1, old, today)


def test_aborts() -> None:
    r = LifecycleRule("r", True, prefix="up/", abort_mpu_days=2)
    started = ms(2030, 3, 1, 12)
    assert not aborts(r, "up/x", started, date(2030, 3, 3))
    assert aborts(r, "up/x", started, date(2030, 3, 4))
    assert not aborts(r, "other", started, date(2030, 3, 4))
    assert not aborts(LifecycleRule("r", False, abort_mpu_days=2), "up/x", started,
                      date(2030, 3, 9))
    assert not aborts(LifecycleRule("r", True, expiration_days=1), "a", started,
                      date(2030, 3, 9))


def test_stored_form_round_trips() -> None:
    r = LifecycleRule("r", True, "p", 1, 9, None, "2030-01-01", 3)
    assert stored_rules([r.to_stored()]) == [r]
    assert stored_rules(None) == []


@pytest.mark.parametrize("text,reason", [("2030-1-1", "format"), ("2030-13-01", "invalid"),
                                         ("2030-01-01T00:00:01Z", "midnight"),
                                         ("2030-01-01T00:00:00-01:00", "midnight")])
def test_parse_date_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_lifecycle_date(text)


def test_next_pass_waits_for_midnight() -> None:
    assert seconds_until_next_pass(date(2030, 1, 1), ms(2030, 1, 1, 23)) == 3600
    assert seconds_until_next_pass(date(2030, 1, 1), ms(2030, 1, 3)) == 0
    assert midnight_ms(date(2030, 1, 2)) == ms(2030, 1, 2)


def test_clock_offset_from_env() -> None:
    assert offset_from_env({}) == 0
    assert offset_from_env({OFFSET_ENV: "86400"}) == 86_400_000
    for bad in ("tomorrow", "inf", "nan"):
        with pytest.raises(ValueError, match=OFFSET_ENV):
            offset_from_env({OFFSET_ENV: bad})
