"""Long-poll fetches parked until appends bring them enough bytes.

An append calls ``notify`` with the partition and the bytes it added; every parked fetch whose
``min_bytes`` is now met is answered from inside that call, before the append's own reply is
written: no task, no timer that re-checks, no loop iteration between the append and the
consumer's answer (each one cost tens of microseconds of end-to-end latency). A parked fetch
also fires after its ``max_wait_ms`` (a loop timer) or when ``wake`` says its partition went
away. The wake-up callback runs at most once and is never allowed to raise into the append
that triggered it. Single-threaded: all calls come from the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]


class ParkedFetch:
    """One waiting fetch; ``cancel`` drops it without calling back (its client went away)."""

    __slots__ = ("_owner", "_keys", "needed", "_timer", "_callback")

    def __init__(self, owner: "FetchWaiters", keys: list[PartitionKey], needed: int,
                 callback: Callable[[], None]) -> None:
        self._owner = owner
        self._keys = keys
        self.needed = needed
        self._timer: asyncio.TimerHandle | None = None
        self._callback: Callable[[], None] | None = callback

    @property
    def pending(self) -> bool:
        return self._callback is not None

    def cancel(self) -> None:
        self._detach()

    def fire(self) -> None:
        callback = self._detach()
        if callback is None:
            return
        try:
            callback()
        except Exception:  # the caller is an append or a timer: neither may fail for this
            log.exception("answering a parked fetch failed")

    def _detach(self) -> Callable[[], None] | None:
        callback, self._callback = self._callback, None
        if callback is not None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._owner._remove(self, self._keys)
        return callback


class FetchWaiters:
    def __init__(self) -> None:
        self._by_key: dict[PartitionKey, set[ParkedFetch]] = {}

    def __len__(self) -> int:
        return len({w for ws in self._by_key.values() for w in ws})

    def park(self, keys: Iterable[PartitionKey], needed_bytes: int, timeout: float,
             callback: Callable[[], None]) -> ParkedFetch:
        """Call ``callback`` once ``needed_bytes`` more bytes were appended to ``keys``, or
        after ``timeout`` seconds, whichever comes first (never both, never after cancel)."""
        keys = list(keys)
        parked = ParkedFetch(self, keys, max(needed_bytes, 1), callback)
        for key in keys:
            self._by_key.setdefault(key, set()).add(parked)
        parked._timer = asyncio.get_running_loop().call_later(timeout, parked.fire)
        return parked

    def notify(self, key: PartitionKey, nbytes: int) -> None:
        bucket = self._by_key.get(key)
        if not bucket:
            return
        ready = []
        for parked in bucket:
            parked.needed -= nbytes
            if parked.needed <= 0:
                ready.append(parked)
        for parked in ready:  # firing edits the buckets: not while iterating one
            parked.fire()

    def wake(self, key: PartitionKey) -> None:
        """Answer every fetch parked on ``key`` now (partition deleted or moved)."""
        for parked in list(self._by_key.get(key, ())):
            parked.fire()

    def wake_all(self) -> None:
        for key in list(self._by_key):
            self.wake(key)

    def _remove(self, parked: ParkedFetch, keys: list[PartitionKey]) -> None:
        for key in keys:
            bucket = self._by_key.get(key)
            if bucket is not None:
                bucket.discard(parked)
                if not bucket:
                    del self._by_key[key]
