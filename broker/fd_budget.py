"""FileDescriptorBudget: how many descriptors fetch answers may hold at once, broker-wide.

A fetch answer holds a ``dup()`` of each segment file it sends from until it is sent (a
segment may be deleted meanwhile). Invariant: answers stop taking descriptors once ``held``
reaches ``limit`` (half the process's RLIMIT_NOFILE by default), so a slow or hostile reader
cannot leave the broker without descriptors for new connections and segments; partitions
left without data then are answered empty, as when max_bytes runs out. Pure counting.
"""

from __future__ import annotations

import resource


def default_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(64, (soft if soft != resource.RLIM_INFINITY else 65536) // 2)


class FileDescriptorBudget:
    def __init__(self, limit: int | None = None) -> None:
        self.limit = default_limit() if limit is None else limit
        self.held = 0

    @property
    def exhausted(self) -> bool:
        return self.held >= self.limit

    def take(self, count: int) -> None:
        self.held += count

    def give(self, count: int) -> None:
        self.held -= count
