"""OutageLog: what a client says about a peer it cannot reach, once per state change.

A producer retrying a dead broker fails every ``retry.backoff.ms``; one log line per attempt
buried the terminal in a thousand identical warnings. An outage is reported when it starts,
then at most every ``repeat_s`` while it lasts (with the attempts since), and once when it
ends. Pure bookkeeping: the caller passes the clock and logs the lines returned.
"""

from __future__ import annotations

from dataclasses import dataclass

REPEAT_S = 30.0


@dataclass(slots=True)
class _Outage:
    since: float
    reported: float
    attempts: int = 1
    last_error: str = ""


class OutageLog:
    def __init__(self, repeat_s: float = REPEAT_S) -> None:
        self.repeat_s = repeat_s
        self._outages: dict[str, _Outage] = {}

    def failed(self, peer: str, error: object, now: float, retry_ms: int) -> str | None:
        """A failed attempt on ``peer``; a line to log when the outage starts or has gone on
        for another ``repeat_s``, else None."""
        outage = self._outages.get(peer)
        if outage is None:
            self._outages[peer] = _Outage(now, now, 1, str(error))
            return f"{peer}: {error}; retrying every {retry_ms} ms"
        outage.attempts += 1
        outage.last_error = str(error)
        if now - outage.reported < self.repeat_s:
            return None
        outage.reported = now
        return (f"{peer}: still failing after {now - outage.since:.0f} s and "
                f"{outage.attempts} attempts; last error: {error}")

    def succeeded(self, peer: str, now: float) -> str | None:
        """A successful exchange with ``peer``; a line when it ends an outage."""
        outage = self._outages.pop(peer, None)
        if outage is None:
            return None
        return (f"{peer}: reachable again after {now - outage.since:.1f} s "
                f"({outage.attempts} failed attempt(s))")

    def failing(self, peer: str) -> bool:
        return peer in self._outages
