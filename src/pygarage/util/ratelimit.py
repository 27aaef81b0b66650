"""A log line per interval, not per event (pure, clock injected): under an attack or a
resource shortage the same event can repeat thousands of times a second, and a log flood
is a second outage. Events are counted; a summary is due at most once per interval."""

from __future__ import annotations

from .clock import Clock


class LogRateLimiter:
    def __init__(self, interval_msec: int, clock: Clock):
        self.interval = interval_msec
        self.clock = clock
        self._pending = 0
        self._next_due: int | None = None  # None: nothing logged yet, the first is due now

    def hit(self, n: int = 1) -> int | None:
        """Count n events. -> how many to report now (this one included), or None while
        a line was written less than an interval ago (they are kept for the next one)."""
        self._pending += n
        return self.due()

    def due(self) -> int | None:
        """The count to report if an interval has passed since the last line (for a
        trailing summary after the events stop), else None."""
        now = self.clock.now_msec()
        if not self._pending or (self._next_due is not None and now < self._next_due):
            return None
        count, self._pending = self._pending, 0
        self._next_due = now + self.interval
        return count

    def msec_until_due(self) -> int:
        """How long until a held count may be reported (0: now)."""
        if self._next_due is None:
            return 0
        return max(0, self._next_due - self.clock.now_msec())

    @property
    def pending(self) -> int:
        return self._pending
