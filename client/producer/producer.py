"""The async producer: ``send`` queues a record and returns a future of its metadata.

``await producer.send(...)`` waits only for buffer space (up to max.block.ms) and returns a
``RecordFuture``; ``await`` that for the ``RecordMetadata`` once the broker acknowledged it.
``send_and_wait`` does both. Serialization and size errors are raised by ``send`` itself,
before anything is queued; delivery errors arrive through the future. Nothing is dropped
silently: ``stop`` flushes, and every record's future resolves or fails.

Ordering: records of one partition are stored in send order. Without idempotence (a later
version) a retry after a lost acknowledgement can store a record twice, and with
max.in.flight.requests.per.connection > 1 a retry can reorder (set it to 1 to prevent that).
"""

from __future__ import annotations

import asyncio
import logging
import time
from time import time as _time
from typing import Any

from klamm.protocol.errors import (ErrorCode, UnknownTopicOrPartitionError, error_for,
                                   is_retriable)

from ..cluster import Cluster
from ..errors import BufferExhaustedError, MessageSizeTooLargeError, ProducerClosedError
from ..serializers import apply, resolve_serializer
from ..structs import RecordMetadata, TopicPartition
from .accumulator import RECORD_OVERHEAD, RecordAccumulator, RecordFuture
from .config import ProducerConfig
from .partitioner import StickyPartitioner, partition_for_key
from .sender import Sender

log = logging.getLogger(__name__)

# What a topic reports while auto-creation or a leader election is under way: not news.
_EXPECTED_WHILE_CREATING = frozenset({ErrorCode.LEADER_NOT_AVAILABLE})


class Producer:
    def __init__(self, config: dict[str, Any] | None = None, /, **kwargs: Any) -> None:
        self.config = ProducerConfig.build(config, **kwargs)
        cfg = self.config
        self._cluster = Cluster(cfg)
        self._key_ser = resolve_serializer(cfg.key_serializer)
        self._value_ser = resolve_serializer(cfg.value_serializer)
        self._sticky = StickyPartitioner()
        self._sticky_current = self._sticky.current
        self._tps: dict[str, list[TopicPartition]] = {}  # per topic, indexed by partition
        self._max_request_size = cfg.max_request_size
        self._acc: RecordAccumulator | None = None
        self._sender: Sender | None = None
        self._sender_task: asyncio.Task[None] | None = None
        self._aging: asyncio.Task[None] | None = None  # metadata.max.age.ms refreshes
        self._closed = False
        self._started = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        cfg = self.config
        self._acc = RecordAccumulator(cfg.batch_size, cfg.linger_ms, cfg.buffer_memory,
                                      cfg.delivery_timeout_ms)
        await self._cluster.bootstrap()
        self._sender = Sender(cfg, self._cluster, self._acc)
        self._sender_task = asyncio.ensure_future(self._sender.run())
        self._aging = asyncio.ensure_future(self._refresh_every_max_age())
        self._started = True

    async def stop(self, timeout: float | None = None) -> None:
        """Send everything queued, wait for the answers, close connections. With
        ``timeout`` (seconds; 0 to give up at once), records still unanswered then fail with
        ProducerClosedError (Kafka's ``close(Duration)``)."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        sender, task = self._sender, self._sender_task
        assert sender is not None and task is not None
        sender.closing = True
        assert self._acc is not None
        self._acc.wakeup.set()
        try:
            if timeout is not None:
                done, _ = await asyncio.wait({task}, timeout=timeout)
                if not done:
                    sender.abort(ProducerClosedError(
                        f"the producer was closed before the record was acknowledged "
                        f"(stop timeout {timeout:g} s)"))
            await task
        finally:
            if self._aging is not None:
                self._aging.cancel()
                await asyncio.gather(self._aging, return_exceptions=True)
            await sender.stop()
            await self._cluster.close()

    async def __aenter__(self) -> "Producer":
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # Left because the task was cancelled (Ctrl-C): do not wait out delivery.timeout.ms
        # for records nobody will look at; they fail with ProducerClosedError at once.
        interrupted = exc_type is not None and issubclass(
            exc_type, (asyncio.CancelledError, KeyboardInterrupt))
        await self.stop(timeout=0 if interrupted else None)

    # ------------------------------------------------------------------ metadata
    async def partitions_for(self, topic: str) -> set[int]:
        """The partitions of ``topic`` (created if allow.auto.create.topics and the broker
        agrees); raises UnknownTopicOrPartitionError after max.block.ms otherwise."""
        deadline = time.monotonic() + self.config.max_block_ms / 1000
        said: int | None = None  # the topic error last logged: each new one is said once
        while True:
            md = await self._cluster.refresh(
                [topic], allow_auto_topic_creation=self.config.allow_auto_create_topics)
            parts = md.partitions_for(topic)
            info = md.topics.get(topic)
            code = info.error_code if info is not None and not parts else 0
            if code and not is_retriable(code):  # an invalid name: waiting cannot help
                raise error_for(code, info.error_message if info else f"topic {topic!r}")
            if parts:
                self._learn_partitions(topic, max(parts) + 1)
                return set(parts)
            if code and code != said and code not in _EXPECTED_WHILE_CREATING:
                said = code
                log.warning("metadata for topic %r: %s: %s (retrying until max.block.ms=%d)",
                            topic, ErrorCode(code).name, info.error_message if info else "",
                            self.config.max_block_ms)
            if time.monotonic() >= deadline:
                within = f"topic {topic!r} not available within max.block.ms=" \
                         f"{self.config.max_block_ms}"
                if code and code != ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                    message = info.error_message if info else None
                    raise error_for(code, f"{message}; {within}" if message else within)
                raise UnknownTopicOrPartitionError(within)
            await asyncio.sleep(self.config.retry_backoff_ms / 1000)

    def _learn_partitions(self, topic: str, count: int) -> None:
        """Partitions only grow: records go to every one the metadata shows."""
        known = self._tps.get(topic, [])
        if count > len(known):
            if known:
                log.info("topic %r grew from %d to %d partitions", topic, len(known), count)
            self._tps[topic] = [TopicPartition(topic, p) for p in range(count)]
            if self._acc is not None:
                self._acc.add_topic(topic, count)

    async def _refresh_every_max_age(self) -> None:
        """metadata.max.age.ms: refresh the topics sent to (0: every retry.backoff.ms), so
        added partitions start taking records and moved leaders are known before a send
        fails on them."""
        cfg = self.config
        interval = max(cfg.metadata_max_age_ms, cfg.retry_backoff_ms, 1) / 1000
        while True:
            await asyncio.sleep(interval)
            topics = sorted(self._tps)
            if not topics:
                continue
            try:
                md = await self._cluster.refresh(topics)
            except Exception as exc:  # the sender reports outages; this one tries again later
                log.debug("periodic metadata refresh failed: %s", exc)
                continue
            for topic in topics:
                parts = md.partitions_for(topic)
                if parts:
                    self._learn_partitions(topic, max(parts) + 1)

    async def _await_partition(self, topic: str, partition: int) -> None:
        """An explicit partition the metadata does not show yet (added to the topic
        meanwhile?): refresh until it appears, up to max.block.ms, as Kafka's producer does."""
        deadline = time.monotonic() + self.config.max_block_ms / 1000
        while True:
            parts = await self.partitions_for(topic)
            if partition in parts:
                return
            if time.monotonic() >= deadline:
                raise UnknownTopicOrPartitionError(
                    f"partition {partition} of topic {topic!r} (which has {len(parts)} "
                    f"partitions) is not in the metadata after max.block.ms="
                    f"{self.config.max_block_ms}")
            await asyncio.sleep(self.config.retry_backoff_ms / 1000)

    # ------------------------------------------------------------------ sending
    async def send(self, topic: str, value: Any = None, key: Any = None,
                   partition: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None,
                   timestamp: int | None = None) -> RecordFuture:
        """Queue one record; returns the awaitable of its RecordMetadata."""
        # The hot path of every producer: a few dict lookups and one list append per record.
        acc = self._acc
        if acc is None or self._closed:
            raise ProducerClosedError("the producer is not started or already stopped")
        if key is None:
            k = None
        elif type(key) is bytes and self._key_ser is None:
            k = key
        else:
            k = apply(self._key_ser, key, "key")
        if value is None:
            v = None
        elif type(value) is bytes and self._value_ser is None:
            v = value
        else:
            v = apply(self._value_ser, value, "value")
        size = RECORD_OVERHEAD + (len(k) if k else 0) + (len(v) if v else 0)
        if headers:
            headers = [(h, hv) for h, hv in headers]
            size += sum(len(h) + len(hv) + 4 for h, hv in headers)
        if size > self._max_request_size:
            raise MessageSizeTooLargeError(
                f"a record of ~{size} bytes exceeds max.request.size="
                f"{self._max_request_size}; raise it or send smaller records")
        slots = acc.slots.get(topic)
        if slots is None:
            await self.partitions_for(topic)
            slots = acc.slots[topic]
        num = len(slots)
        if partition is None:
            if k is not None:
                partition = partition_for_key(k, num)
            else:
                partition = self._sticky_current.get(topic, -1)
                if partition < 0 or partition >= num:
                    partition = self._sticky.partition(topic, num)
                elif slots[partition] is None and num > 1:
                    # its batch left (full, or lingered out): a new batch starts on the next
                    # partition (KIP-480), else slow unkeyed sends would all land on one
                    partition = self._sticky.batch_sent(topic, partition, num)
        elif not 0 <= partition < num:
            if partition < 0:
                raise UnknownTopicOrPartitionError(
                    f"partition numbers start at 0; {topic!r} has no partition {partition}")
            await self._await_partition(topic, partition)
            slots = acc.slots[topic]
            num = len(slots)
        if acc.buffered + size > acc.buffer_memory:
            await self._wait_for_memory(size)
        ts = timestamp if timestamp is not None else int(_time() * 1000)
        batch = slots[partition]
        if batch is None:
            batch = acc.new_batch(self._tps[topic][partition], ts)
            acc.wakeup.set()  # the sender starts this batch's linger clock
        elif ts > batch.max_ts:
            batch.max_ts = ts
        records = batch.records
        index = len(records)
        records.append((index, ts - batch.first_ts, k, v, headers or ()))
        batch.size += size
        acc.buffered += size
        if batch.size >= acc.batch_size:
            acc.close_batch(batch)
        return RecordFuture(batch, index, ts)

    async def send_and_wait(self, topic: str, value: Any = None, key: Any = None,
                            partition: int | None = None,
                            headers: list[tuple[str, bytes]] | None = None,
                            timestamp: int | None = None) -> RecordMetadata:
        fut = await self.send(topic, value, key, partition, headers, timestamp)
        return await fut

    async def _wait_for_memory(self, size: int) -> None:
        acc = self._acc
        assert acc is not None
        if size > acc.buffer_memory:
            raise MessageSizeTooLargeError(f"a record of ~{size} bytes exceeds buffer.memory")
        deadline = time.monotonic() + self.config.max_block_ms / 1000
        while acc.buffered + size > acc.buffer_memory:
            acc.memory_freed.clear()
            acc.close_lingered(time.monotonic(), force=True)
            acc.wakeup.set()
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    await acc.memory_freed.wait()
            except TimeoutError:
                raise BufferExhaustedError(
                    f"buffer.memory={acc.buffer_memory} stayed full for max.block.ms="
                    f"{self.config.max_block_ms}; the broker is slower than the sends "
                    f"(or unreachable)") from None

    async def flush(self) -> None:
        """Send every queued record now and wait until each has its answer (or error)."""
        acc, sender = self._acc, self._sender
        if acc is None or sender is None:
            return
        futures = [b.future for b in acc.open.values()]
        futures += [b.future for q in acc.queued.values() for b in q]
        futures += [b.future for b in sender.sending]
        sender.flushing += 1
        acc.wakeup.set()
        try:
            if futures:
                await asyncio.wait(futures)
        finally:
            sender.flushing -= 1

    def metrics(self) -> dict[str, int]:
        """Counters in records since start (Kafka's record-send/retry/error totals), produce
        requests sent, batches split after MESSAGE_TOO_LARGE, and bytes waiting in
        buffer.memory. ``klamm.client.metrics`` exports them to Prometheus."""
        sender, acc = self._sender, self._acc
        return {"record_send_total": sender.records_sent if sender else 0,
                "record_retry_total": sender.retries if sender else 0,
                "record_error_total": sender.errors if sender else 0,
                "request_total": sender.requests if sender else 0,
                "batch_split_total": sender.splits if sender else 0,
                "buffered_bytes": acc.buffered if acc else 0}

