"""acks=all produce requests waiting for the high watermark to pass what they appended.

Kafka's ``DelayedProduce`` in its purgatory: a waiting request holds, per partition, the
offset the high watermark must reach (its last appended offset + 1). Every high-watermark move
of a partition completes the waits it satisfied, from inside the call that moved it (a follower
fetch, an ISR change): no timer re-checks. A request completes when all its partitions are
done, when ``timeout_ms`` expires (REQUEST_TIMED_OUT for the rest), or a partition's leadership
moves away (NOT_LEADER_OR_FOLLOWER). Offsets appended to one partition only grow, so each
partition's waits form a FIFO and a move pops from its front. Single-threaded (event loop).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

from klamm.protocol.errors import ErrorCode

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
# (done, enough replicas) for a required offset: Partition.enough_replicas
Check = Callable[[int], tuple[bool, bool]]


class DelayedProduce:
    """One request's waits. ``on_complete(errors)`` runs once, with the error code of each
    partition that did not succeed (empty when all did)."""

    __slots__ = ("_remaining", "_errors", "_on_complete", "_timer", "done")

    def __init__(self, required: dict[PartitionKey, int],
                 on_complete: Callable[[dict[PartitionKey, ErrorCode]], None]) -> None:
        self._remaining = dict(required)
        self._errors: dict[PartitionKey, ErrorCode] = {}
        self._on_complete = on_complete
        self._timer: asyncio.TimerHandle | None = None
        self.done = False

    def partition_done(self, key: PartitionKey, code: ErrorCode = ErrorCode.NONE) -> None:
        if self.done or self._remaining.pop(key, None) is None:
            return
        if code is not ErrorCode.NONE:
            self._errors[key] = code
        if not self._remaining:
            self._finish()

    def expire(self) -> None:
        if self.done:
            return
        for key in self._remaining:
            self._errors[key] = ErrorCode.REQUEST_TIMED_OUT
        self._remaining.clear()
        self._finish()

    def cancel(self) -> None:
        """The client went away: forget the request without answering."""
        self.done = True
        if self._timer is not None:
            self._timer.cancel()

    def _finish(self) -> None:
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._on_complete(self._errors)
        except Exception:  # the caller is a fetch or a timer: neither may fail for this
            log.exception("answering a delayed produce failed")


class ProducePurgatory:
    def __init__(self) -> None:
        self._waits: dict[PartitionKey, collections.deque[tuple[int, DelayedProduce]]] = {}

    def __len__(self) -> int:
        return len({id(op) for q in self._waits.values() for _, op in q if not op.done})

    def watch(self, op: DelayedProduce, required: dict[PartitionKey, int],
              timeout_ms: int) -> None:
        for key, offset in required.items():
            self._waits.setdefault(key, collections.deque()).append((offset, op))
        op._timer = asyncio.get_running_loop().call_later(max(timeout_ms, 0) / 1000, op.expire)

    def high_watermark_moved(self, key: PartitionKey, check: Check) -> None:
        queue = self._waits.get(key)
        if not queue:
            return
        while queue:
            offset, op = queue[0]
            if op.done:
                queue.popleft()
                continue
            finished, enough = check(offset)
            if not finished:
                break
            queue.popleft()
            op.partition_done(key, ErrorCode.NONE if enough
                              else ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND)
        if not queue:
            del self._waits[key]

    def leadership_lost(self, key: PartitionKey) -> None:
        for _, op in self._waits.pop(key, ()):
            op.partition_done(key, ErrorCode.NOT_LEADER_OR_FOLLOWER)

    def fail_all(self, code: ErrorCode) -> None:
        for key in list(self._waits):
            for _, op in self._waits.pop(key):
                op.partition_done(key, code)
