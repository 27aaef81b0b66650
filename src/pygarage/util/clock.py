"""Time, injectable: LWW registers and version timestamps read a Clock, never the wall directly."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now_msec(self) -> int: ...


class SystemClock:
    def now_msec(self) -> int:
        return time.time_ns() // 1_000_000


SYSTEM_CLOCK = SystemClock()


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
