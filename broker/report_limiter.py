"""ReportLimiter: a log line about a recurring problem at most once per interval.

Invariant: between two admitted reports at least ``interval_s`` passes; each admitted report
learns how many were held back since the one before, so nothing is hidden, only counted.
Pure: the caller passes the time.
"""

from __future__ import annotations


class ReportLimiter:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: float | None = None
        self._held = 0

    def admit(self, now: float) -> int | None:
        """None: hold this report back. Otherwise the reports held back before it."""
        if self._last is not None and now - self._last < self.interval_s:
            self._held += 1
            return None
        held, self._held, self._last = self._held, 0, now
        return held
