"""TimeSlicer: long loops on the event loop give other work a turn.

Invariant: between two ``maybe_yield`` calls that do not yield, at most ``slice_s`` of wall
time has passed since the loop last got control from this loop (plus one item's work), so a
request, a fetch wake-up or a coordination heartbeat waits at most about that long.
"""

from __future__ import annotations

import asyncio
import time


class TimeSlicer:
    def __init__(self, slice_s: float) -> None:
        self.slice_s = slice_s
        self._since = time.monotonic()

    async def maybe_yield(self) -> None:
        now = time.monotonic()
        if now - self._since >= self.slice_s:
            await asyncio.sleep(0)
            self._since = time.monotonic()
