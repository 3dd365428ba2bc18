"""Per-partition batches waiting to be sent, and the futures users await.

``send()`` appends a record tuple ``(offset_delta, timestamp_delta, key, value, headers)`` to
the open batch of its partition; the batch is encoded with one msgpack call when it is sent.
A record's future is a tiny object (batch + index) resolved from the batch's single
asyncio future, so a send costs no per-record future. A batch the broker finds too large
(MESSAGE_TOO_LARGE) is ``split`` in two halves, sent on their own (Kafka's KIP-126): its
future completes once both halves are answered, and each record's future follows the half
that holds it. Single-threaded: one event loop.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Generator
from typing import Any

from klamm.protocol.compression import Compression
from klamm.protocol.records import build_batch_parts

from ..structs import RecordMetadata, TopicPartition

RECORD_OVERHEAD = 12  # msgpack framing per record, roughly


class ProducerBatch:
    __slots__ = ("tp", "records", "size", "first_ts", "max_ts", "created", "future",
                 "attempts", "deadline", "log_append_time", "encoded", "retry_at",
                 "last_error", "callbacks", "alone", "halves")

    def __init__(self, tp: TopicPartition, first_ts: int, deadline: float) -> None:
        self.tp = tp
        self.records: list[tuple[Any, ...]] = []
        self.size = 0
        self.first_ts = first_ts
        self.max_ts = first_ts
        self.created = time.monotonic()
        self.future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.attempts = 0
        self.deadline = deadline
        self.log_append_time = -1
        self.encoded: tuple[bytes, bytes] | None = None  # (header, records), kept for retries
        self.retry_at = 0.0
        self.last_error: BaseException | None = None  # of the last attempt, while retrying
        self.callbacks: list[Any] | None = None  # records' done callbacks (for removal)
        self.alone = False  # sent in a request of its own (it or a neighbour was too large)
        # after a split: (half, index of its first record here) for each half
        self.halves: tuple[tuple[ProducerBatch, int], ...] = ()

    def encode(self, compression: Compression) -> tuple[bytes, bytes]:
        if self.encoded is None:
            self.encoded = build_batch_parts(self.records, self.first_ts, self.max_ts,
                                             compression=compression)
        return self.encoded

    def split(self) -> tuple["ProducerBatch", "ProducerBatch"]:
        """Two batches holding the first and the second half of the records, in order, to be
        sent alone; this batch's future completes once both are answered. Needs two records."""
        assert len(self.records) > 1
        middle = len(self.records) // 2
        halves = []
        for start, records in ((0, self.records[:middle]), (middle, self.records[middle:])):
            half = ProducerBatch(self.tp, self.first_ts, self.deadline)
            half.records = [(i, ts, k, v, h) for i, (_, ts, k, v, h) in enumerate(records)]
            half.max_ts = self.first_ts + max(r[1] for r in records)
            half.size = sum(record_size(k, v, h) for _, _, k, v, h in records)
            half.created = self.created
            half.attempts = self.attempts
            half.alone = True
            halves.append((half, start))
        first, second = halves[0][0], halves[1][0]
        first.size = self.size - second.size  # what buffer memory holds for it, exactly
        self.halves = tuple(halves)
        self.encoded = None
        pending = [2]

        def half_done(_: Any) -> None:
            pending[0] -= 1
            if pending[0] == 0 and not self.future.done():
                self.future.set_result(-1)  # the records' futures read their half's answer
        first.future.add_done_callback(half_done)
        second.future.add_done_callback(half_done)
        return first, second

    def holding(self, index: int) -> tuple["ProducerBatch", int]:
        """The batch that was sent holding this batch's record ``index``, and its index there
        (itself, unless it was split)."""
        batch = self
        while batch.halves:
            for half, start in reversed(batch.halves):
                if index >= start:
                    batch, index = half, index - start
                    break
        return batch, index

    def done(self, base_offset: int, log_append_time: int) -> None:
        self.log_append_time = log_append_time
        if not self.future.done():
            self.future.set_result(base_offset)

    def fail(self, exc: BaseException) -> None:
        """The records' futures raise ``exc``. Marked retrieved at once: the producer reports
        a failure through each record's future and its callbacks, and a send whose future
        nobody awaits must not end as "Future exception was never retrieved" noise."""
        if not self.future.done():
            self.future.set_exception(exc)
            self.future.exception()


class RecordFuture:
    """Awaitable RecordMetadata of one record: ``md = await fut``; callbacks get the future."""

    __slots__ = ("_batch", "_index", "_ts")

    def __init__(self, batch: ProducerBatch, index: int, ts: int) -> None:
        self._batch = batch
        self._index = index
        self._ts = ts

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        yield from self._batch.future.__await__()
        return self.result()

    def done(self) -> bool:
        return self._batch.future.done()

    def result(self) -> RecordMetadata:
        batch, index = self._batch.holding(self._index)
        base = batch.future.result()
        tp = batch.tp
        ts = batch.log_append_time if batch.log_append_time >= 0 else self._ts
        return RecordMetadata(tp.topic, tp.partition, base + index if base >= 0 else -1, ts)

    def exception(self) -> BaseException | None:
        self._batch.future.exception()  # raises as asyncio's does while pending or cancelled
        return self._batch.holding(self._index)[0].future.exception()

    def cancelled(self) -> bool:
        return self._batch.future.cancelled()

    def cancel(self, msg: Any = None) -> bool:
        """Always False: a record handed to send() cannot be withdrawn (it may already be
        on the wire), as Kafka's producer futures cannot be cancelled."""
        return False

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._batch.future.get_loop()

    @property
    def attempts(self) -> int:
        """Produce requests that carried this record's batch so far: 0 means never sent,
        so a failed record with 0 attempts was certainly not written; after one or more,
        a failure may still have been stored (no answer is not a refusal)."""
        return self._batch.holding(self._index)[0].attempts

    def add_done_callback(self, fn: Callable[["RecordFuture"], Any], *,
                          context: Any = None) -> None:
        """``fn(this future)`` once the record is answered, as asyncio.Future's."""
        callbacks = self._callbacks()
        wrapper = _Callback(self, fn)
        callbacks.append(wrapper)
        self._batch.future.add_done_callback(wrapper, context=context)

    def remove_done_callback(self, fn: Callable[["RecordFuture"], Any]) -> int:
        """Remove ``fn`` from this record's callbacks; how many were removed."""
        removed = 0
        for wrapper in [w for w in self._callbacks() if w.fn is fn and w.owner is self]:
            removed += self._batch.future.remove_done_callback(wrapper)
            self._callbacks().remove(wrapper)
        return removed

    def _callbacks(self) -> list["_Callback"]:
        batch = self._batch
        if batch.callbacks is None:
            batch.callbacks = []
        return batch.callbacks


class _Callback:
    """A record's done callback, registered on its batch's future."""

    __slots__ = ("owner", "fn")

    def __init__(self, owner: RecordFuture, fn: Callable[[RecordFuture], Any]) -> None:
        self.owner = owner
        self.fn = fn

    def __call__(self, _future: Any) -> None:
        self.fn(self.owner)


def record_size(key: bytes | None, value: bytes | None,
                headers: Any) -> int:
    """What a record counts against batch.size and buffer.memory (``send`` inlines it)."""
    size = RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
    if headers:
        size += sum(len(h) + len(hv) + 4 for h, hv in headers)
    return size


class RecordAccumulator:
    """Open and ready batches per partition, in send order, plus the memory they hold."""

    def __init__(self, batch_size: int, linger_ms: int, buffer_memory: int,
                 delivery_timeout_ms: int) -> None:
        self.batch_size = batch_size
        self.linger = linger_ms / 1000
        self.buffer_memory = buffer_memory
        self.delivery_timeout = delivery_timeout_ms / 1000
        self.open: dict[TopicPartition, ProducerBatch] = {}
        # The same open batches indexed [topic][partition]: send() avoids hashing a key.
        self.slots: dict[str, list[ProducerBatch | None]] = {}
        # Closed batches awaiting send, per partition, oldest first (retries go to the front).
        self.queued: dict[TopicPartition, collections.deque[ProducerBatch]] = {}
        self.buffered = 0
        self.memory_freed = asyncio.Event()
        self.wakeup = asyncio.Event()

    def new_batch(self, tp: TopicPartition, ts: int) -> ProducerBatch:
        batch = ProducerBatch(tp, ts, time.monotonic() + self.delivery_timeout)
        self.open[tp] = batch
        self.slots[tp.topic][tp.partition] = batch
        return batch

    def add_topic(self, topic: str, partitions: int) -> list["ProducerBatch | None"]:
        """The topic's slot list, grown in place to ``partitions``: a send() waiting for
        buffer space holds the list, and a new list would leave it filling a stale one."""
        slots = self.slots.setdefault(topic, [])
        if len(slots) < partitions:
            slots.extend([None] * (partitions - len(slots)))
        return slots

    def close_batch(self, batch: ProducerBatch) -> None:
        """Move an open batch to its partition's send queue."""
        if self.open.get(batch.tp) is batch:
            del self.open[batch.tp]
            self.slots[batch.tp.topic][batch.tp.partition] = None
        self.queued.setdefault(batch.tp, collections.deque()).append(batch)
        self.wakeup.set()

    def requeue_front(self, batch: ProducerBatch) -> None:
        self.queued.setdefault(batch.tp, collections.deque()).appendleft(batch)

    def close_lingered(self, now: float, force: bool) -> float | None:
        """Close open batches whose linger expired (all when ``force``); next deadline or None."""
        next_deadline: float | None = None
        for batch in list(self.open.values()):
            due = batch.created + self.linger
            if force or due <= now:
                self.close_batch(batch)
            elif next_deadline is None or due < next_deadline:
                next_deadline = due
        return next_deadline

    def release(self, batch: ProducerBatch) -> None:
        self.buffered -= batch.size
        self.memory_freed.set()

    @property
    def empty(self) -> bool:
        return not self.open and not any(self.queued.values())
