"""Time, injectable: LWW registers and version timestamps read a Clock, never the wall directly."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now_msec(self) -> int: ...


# Tests only: shifts this process's clock (days pass without waiting, e.g. for the daily
# lifecycle worker). Read here and nowhere else; the server warns at start when it is set.
OFFSET_ENV = "PYGARAGE_TEST_CLOCK_OFFSET_SECS"


class SystemClock:
    def __init__(self, offset_ms: int = 0):
        self.offset_ms = offset_ms

    def now_msec(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


def offset_from_env(environ: dict[str, str] | None = None) -> int:
    raw = (os.environ if environ is None else environ).get(OFFSET_ENV, "").strip()
    if not raw:
        return 0
    try:
        return int(float(raw) * 1000)
    except (ValueError, OverflowError):
        raise ValueError(f"{OFFSET_ENV} must be a number of seconds, not {raw!r}") from None


SYSTEM_CLOCK = SystemClock(offset_from_env())


def now_msec() -> int:
    return SYSTEM_CLOCK.now_msec()


def next_timestamp(clock: Clock, newest_existing: int | None) -> int:
    """A new write's timestamp: max(now, newest + 1) so it wins even under clock skew."""
    now = clock.now_msec()
    if newest_existing is not None and newest_existing >= now:
        return newest_existing + 1
    return now


def msec_to_rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
