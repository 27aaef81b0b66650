"""A log line per interval for an event that can repeat thousands of times a second (an
attack, a resource shortage): "<what>: N time(s)", and a trailing line for what was held
back once the interval is over. The counting is util/ratelimit.py's (pure); this adds the
logging and the timer for the trailing line."""

from __future__ import annotations

import asyncio
import logging

from .clock import SYSTEM_CLOCK, Clock
from .ratelimit import LogRateLimiter

log = logging.getLogger(__name__)

LOG_INTERVAL_MSEC = 10_000


class ThrottledLog:
    """Counts one kind of event; logs "<what>: N time(s)" at most once per interval, and
    a trailing line for what was held back once the interval is over."""

    def __init__(self, what: str, level: int = logging.WARNING,
                 interval_msec: int = LOG_INTERVAL_MSEC, clock: Clock = SYSTEM_CLOCK):
        self.what = what
        self.level = level
        self.limiter = LogRateLimiter(interval_msec, clock)
        self._flush: asyncio.TimerHandle | None = None

    def hit(self, detail: str = "") -> None:
        n = self.limiter.hit()
        if n is not None:
            self._emit(n, detail)
        elif self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._flush = loop.call_later(self.limiter.msec_until_due() / 1000 + 0.01,
                                          self._trailing, detail)

    def _trailing(self, detail: str) -> None:
        self._flush = None
        n = self.limiter.due()
        if n is not None:
            self._emit(n, detail)

    def _emit(self, n: int, detail: str) -> None:
        secs = self.limiter.interval // 1000
        log.log(self.level, "%s: %d time(s)%s (at most one line per %d s)", self.what, n,
                f" ({detail})" if detail else "", secs)
