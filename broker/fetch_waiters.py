"""Long-poll fetches parked until appends bring them enough bytes.

An append calls ``notify`` with the partition and the bytes it added, which resolves every
waiter whose ``min_bytes`` is now met: the wake-up is the append itself, never a timer that
re-checks. Waiters time out after the fetch's ``max_wait_ms`` (the caller's asyncio.timeout).
Single-threaded: all calls come from the event loop.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable

PartitionKey = tuple[str, int]


class _Waiter:
    __slots__ = ("future", "needed")

    def __init__(self, future: "asyncio.Future[None]", needed: int) -> None:
        self.future = future
        self.needed = needed


class FetchWaiters:
    def __init__(self) -> None:
        self._by_key: dict[PartitionKey, set[_Waiter]] = defaultdict(set)

    def __len__(self) -> int:
        return len({w for ws in self._by_key.values() for w in ws})

    async def wait(self, keys: Iterable[PartitionKey], needed_bytes: int, timeout: float) -> bool:
        """Wait until ``needed_bytes`` more bytes were appended to ``keys`` or the timeout.

        Returns True when woken by data, False on timeout.
        """
        keys = list(keys)
        waiter = _Waiter(asyncio.get_running_loop().create_future(), max(needed_bytes, 1))
        for key in keys:
            self._by_key[key].add(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
            return True
        except TimeoutError:
            return False
        finally:
            for key in keys:
                bucket = self._by_key.get(key)
                if bucket is not None:
                    bucket.discard(waiter)
                    if not bucket:
                        del self._by_key[key]

    def notify(self, key: PartitionKey, nbytes: int) -> None:
        bucket = self._by_key.get(key)
        if not bucket:
            return
        for waiter in bucket:
            waiter.needed -= nbytes
            if waiter.needed <= 0 and not waiter.future.done():
                waiter.future.set_result(None)

    def wake(self, key: PartitionKey) -> None:
        """Wake every waiter on ``key`` regardless of bytes (partition deleted or moved)."""
        for waiter in self._by_key.get(key, ()):
            if not waiter.future.done():
                waiter.future.set_result(None)

    def wake_all(self) -> None:
        for key in list(self._by_key):
            self.wake(key)
