"""RequestMemoryPool: the bytes all connections' large request frames may hold at once
(``queued.max.request.bytes``).

Invariant: a large frame is read only once its declared size is reserved here; the pool
grants a reservation while any memory is left (so one frame bigger than the whole pool
still gets through, alone, as Kafka's non-strict memory pool allows), and the reserved total
can exceed the limit by at most one frame. A connection refused waits in FIFO order with its
reading paused; memory given back grants the waiters in turn, each reservation made on the
waiter's behalf before it is woken, so nobody overtakes it.

Small frames live in each connection's fixed scratch buffer and are not counted. Pure
logic: waking a waiter is a callback; no loop, no sockets.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

Wake = Callable[[int], None]  # called with the bytes reserved for the waiter


class RequestMemoryPool:
    def __init__(self, limit_bytes: int) -> None:
        """``limit_bytes`` < 0: unbounded (every reservation is granted)."""
        self.limit = limit_bytes
        self.available = limit_bytes
        self._waiters: collections.OrderedDict[object, tuple[int, Wake]] = \
            collections.OrderedDict()

    @property
    def bounded(self) -> bool:
        return self.limit >= 0

    @property
    def reserved(self) -> int:
        return self.limit - self.available if self.bounded else 0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_reserve(self, nbytes: int) -> bool:
        """Reserve ``nbytes`` now if memory is left and nobody waits ahead."""
        if not self.bounded:
            return True
        if self.available <= 0 or self._waiters:
            return False
        self.available -= nbytes
        return True

    def wait(self, who: object, nbytes: int, wake: Wake) -> None:
        """Queue ``who`` for ``nbytes``; ``wake(nbytes)`` runs once they are reserved."""
        self._waiters[who] = (nbytes, wake)

    def cancel(self, who: object) -> None:
        self._waiters.pop(who, None)

    def release(self, nbytes: int) -> None:
        if not self.bounded:
            return
        self.available += nbytes
        while self._waiters and self.available > 0:
            _, (size, wake) = self._waiters.popitem(last=False)
            self.available -= size
            wake(size)
