"""The async consumer: manual assignment, positions, prefetching fetcher, long poll.

Shape (SPEC §7, aiokafka's verbs): ``assign``/``seek*``/``position``/``pause``/``resume``,
``getmany``/``getone``/``async for``, watermark and offset lookups, lag. Who decides the
assignment is kept out of the state and the fetcher: today the user calls ``assign``; a group
coordinator (a later version) will call the same ``SubscriptionState.assign``. Until then
``subscribe``/``commit``/``committed`` raise ``GroupsNotAvailableError``.

Polling: ``getmany`` returns buffered records at once when there are any, else waits up to
``timeout_ms`` while the fetch in flight long-polls the broker, so a record reaches the
application as soon as it is committed. The fetcher refills its buffer while the application
works on the records it was handed (see ``fetcher``).

Throughput: a poll served from the buffer never suspends, so while a fetch is in flight a
poll lets the event loop run once per YIELD_INTERVAL (to read that fetch and send the next),
and a large ``max_records`` is drained in slices (see ``Fetcher.drain``); decoding pauses the
garbage collector until the loop next runs (see ``fetcher``). ``async for`` and ``getone``
take already-decoded records without a full poll.

Interrupting: ``stop()`` from another task makes a waiting poll raise ConsumerStoppedError
(``async for`` simply ends); ``wakeup()`` from any thread makes the current or next poll raise
ConsumerWakeup once, after which the consumer is still usable (Kafka's ``wakeup()``).
One event loop owns a Consumer; only ``wakeup`` may be called from other threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from klamm.protocol.api import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from klamm.protocol.errors import KlammError

from ..cluster import Cluster
from ..errors import (ClientError, ConsumerStoppedError, ConsumerWakeup,  # noqa: F401
                      GroupsNotAvailableError, NoOffsetForPartitionError)
from ..serializers import resolve_deserializer
from ..structs import ConsumerRecord, OffsetAndTimestamp, TopicPartition
from .config import ConsumerConfig
from .fetcher import Fetcher
from .subscription import ResetStrategy, SubscriptionState

log = logging.getLogger(__name__)


_GROUPS = ("consumer groups (subscribe/commit/committed) come in a later version of Klamm; "
           "for now use assign([TopicPartition(topic, p)]) with seek()/seek_to_beginning()")

Assignment = Iterable[TopicPartition]
YIELD_INTERVAL = 0.001  # s: how often a poll served from the buffer lets the loop run


class Consumer:
    """Reads records from assigned partitions::

        async with Consumer(bootstrap_servers="localhost:9092",
                            auto_offset_reset="earliest") as consumer:
            consumer.assign([TopicPartition("events", 0)])
            async for record in consumer:
                print(record.offset, record.value)

    Only records below the high watermark (committed) are returned; positions advance only
    as records are handed out, so reconnecting after a lost connection neither loses nor
    repeats records.
    """

    def __init__(self, *topics: str, config: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        if topics:
            raise GroupsNotAvailableError(f"cannot subscribe to {', '.join(topics)}: {_GROUPS}")
        self.config = cfg = ConsumerConfig.build(config, **kwargs)
        self._cluster = Cluster(cfg)
        self._subs = SubscriptionState(cfg.auto_offset_reset)
        self._fetcher = Fetcher(cfg, self._cluster, self._subs,
                                resolve_deserializer(cfg.key_deserializer),
                                resolve_deserializer(cfg.value_deserializer))
        self._started = False
        self._closed = False
        self._wakeup = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._records_consumed = 0
        self._next_yield = 0.0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect to a bootstrap server and load the cluster metadata."""
        if self._closed:
            raise ConsumerStoppedError("this consumer was stopped; create a new one")
        self._loop = asyncio.get_running_loop()
        await self._cluster.bootstrap()
        self._started = True

    async def stop(self) -> None:
        """Stop fetching and close connections; a poll waiting in another task ends."""
        if self._closed:
            return
        self._closed = True
        await self._fetcher.close()
        await self._cluster.close()

    close = stop

    async def __aenter__(self) -> "Consumer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def wakeup(self) -> None:
        """Make the waiting (or next) poll raise ConsumerWakeup. Safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def wake() -> None:
            self._wakeup = True
            self._fetcher.data_ready.set()

        loop.call_soon_threadsafe(wake)

    # ------------------------------------------------------------------ groups (later)
    def subscribe(self, *topics: str, **kwargs: Any) -> None:
        raise GroupsNotAvailableError(_GROUPS)

    def subscription(self) -> set[str]:
        """Topics subscribed through a group: none until groups arrive."""
        return set()

    async def commit(self, offsets: Any = None) -> None:
        raise GroupsNotAvailableError(_GROUPS)

    async def committed(self, tp: TopicPartition) -> int | None:
        raise GroupsNotAvailableError(_GROUPS)

    # ------------------------------------------------------------------ assignment
    def assign(self, partitions: Assignment) -> None:
        """Read exactly these partitions; those kept from before keep their positions."""
        self._subs.assign(partitions)
        self._fetcher.forget()
        self._fetcher.data_ready.set()

    def unsubscribe(self) -> None:
        """Drop the assignment (and buffered records)."""
        self.assign([])

    def assignment(self) -> set[TopicPartition]:
        return self._subs.assigned()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next record returned from ``tp`` (buffered data is dropped)."""
        self._subs.seek(tp, offset)
        self._fetcher.forget({tp})
        self._fetcher.data_ready.set()

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Move to the log start offset (every assigned partition when none is given)."""
        await self._reset(list(partitions) or list(self._subs.partitions), "earliest")

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Move to the high watermark: only records produced from now on are returned."""
        await self._reset(list(partitions) or list(self._subs.partitions), "latest")

    async def position(self, tp: TopicPartition) -> int:
        """Offset of the next record ``getmany`` returns for ``tp`` (looked up if unknown)."""
        st = self._subs.state(tp)
        if st.position is None:
            await self._reset([tp], st.reset or self.config.auto_offset_reset)
        if st.position is None:  # a concurrent seek/reset raced the lookup: look again
            return await self.position(tp)
        return st.position

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop returning and fetching records of these partitions (buffered ones are kept)."""
        self._subs.pause(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._subs.resume(partitions)
        self._fetcher.data_ready.set()

    def paused(self) -> set[TopicPartition]:
        return self._subs.paused()

    # ------------------------------------------------------------------ watermarks
    def highwater(self, tp: TopicPartition) -> int | None:
        """High watermark seen in the latest fetch of ``tp`` (None before the first)."""
        return self._subs.state(tp).highwater

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        """Offset below which no transaction is open (the high watermark until transactions
        exist); None before the first fetch of ``tp``."""
        return self._subs.state(tp).last_stable_offset

    def lag(self, tp: TopicPartition) -> int | None:
        """Records below the high watermark not yet returned to the application."""
        return self._subs.lag(tp)

    def metrics(self) -> dict[str, Any]:
        """Counters for dashboards: a consumer that stops progressing shows it here."""
        f = self._fetcher
        return {"records_consumed": self._records_consumed, "fetch_requests": f.fetches_sent,
                "buffered_bytes": f.buffered_bytes, "offset_resets": f.offset_resets,
                "lag": {tp: self._subs.lag(tp) for tp in self._subs.partitions}}

    # ------------------------------------------------------------------ offset lookups
    async def topics(self) -> set[str]:
        return set((await self._cluster.refresh(None)).topics)

    async def partitions_for_topic(self, topic: str) -> set[int] | None:
        parts = (await self._cluster.refresh([topic])).partitions_for(topic)
        return set(parts) if parts else None

    async def beginning_offsets(self, partitions: Assignment) -> dict[TopicPartition, int]:
        found = await self._list_offsets({tp: EARLIEST_TIMESTAMP for tp in partitions})
        return {tp: offset for tp, (offset, _) in found.items()}

    async def end_offsets(self, partitions: Assignment) -> dict[TopicPartition, int]:
        """The high watermark of each partition (the offset the next record will get)."""
        found = await self._list_offsets({tp: LATEST_TIMESTAMP for tp in partitions})
        return {tp: offset for tp, (offset, _) in found.items()}

    async def offsets_for_times(self, timestamps: dict[TopicPartition, int]
                                ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """The first offset with a timestamp >= the given ms time (None: no such record)."""
        for tp, ts in timestamps.items():
            if not isinstance(ts, int) or ts < 0:
                raise ValueError(f"timestamp for {tp[0]}-{tp[1]} must be ms >= 0, got {ts!r}")
        found = await self._list_offsets(dict(timestamps))
        return {tp: None if offset < 0 else OffsetAndTimestamp(offset, ts)
                for tp, (offset, ts) in found.items()}

    async def _list_offsets(self, specs: dict[TopicPartition, int]
                            ) -> dict[TopicPartition, tuple[int, int]]:
        return await self._cluster.list_offsets(specs, check_open=self._check_open)

    async def _reset(self, tps: list[TopicPartition], strategy: ResetStrategy) -> None:
        """Look up and apply the earliest/latest offset of ``tps`` now."""
        if not tps:
            return
        if strategy == "none":
            names = ", ".join(f"{tp.topic}-{tp.partition}" for tp in tps)
            raise NoOffsetForPartitionError(f"no position for {names} and auto.offset.reset "
                                            f"is none: seek() to an offset first")
        epochs = {}
        for tp in tps:
            self._subs.request_reset(tp, strategy)
            epochs[tp] = self._subs.partitions[tp].epoch
        self._fetcher.forget(set(tps))
        ts = EARLIEST_TIMESTAMP if strategy == "earliest" else LATEST_TIMESTAMP
        found = await self._list_offsets({tp: ts for tp in tps})
        for tp, (offset, _) in found.items():
            st = self._subs.partitions.get(tp)
            replaced = st.reset_from if st is not None else None
            if self._subs.complete_reset(tp, epochs[tp], offset) and replaced is not None:
                # completes the warning given when the position was found out of range
                log.warning("%s-%d: position reset from %d to %d (auto.offset.reset=%s)",
                            tp.topic, tp.partition, replaced, offset, strategy)
        self._fetcher.data_ready.set()

    async def _resolve_positions(self) -> None:
        for strategy, tps in self._subs.awaiting_reset().items():
            await self._reset(tps, strategy)

    # ------------------------------------------------------------------ polling
    def _check_open(self) -> None:
        if self._closed:
            raise ConsumerStoppedError("the consumer was stopped")
        if not self._started:
            raise ClientError("call await consumer.start() (or use async with) first")

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None
                      ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records per partition, at most ``max_records`` (default max.poll.records) in all,
        from ``partitions`` (default: every assigned one); {} when none arrived within
        ``timeout_ms``."""
        if max_records is not None and max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records}")
        return await self._poll(partitions, max_records or self.config.max_poll_records,
                                timeout_ms / 1000)

    async def getone(self, *partitions: TopicPartition) -> ConsumerRecord:
        """The next record, waiting as long as it takes."""
        if not partitions:
            record = self._next_buffered()
            if record is not None:
                return record
        for records in (await self._poll(partitions, 1, None)).values():
            return records[0]
        raise AssertionError("a poll without timeout returned nothing")  # pragma: no cover

    def __aiter__(self) -> "Consumer":
        return self

    async def __anext__(self) -> ConsumerRecord:
        """One record at a time; the iteration ends when the consumer is stopped."""
        record = self._next_buffered()
        if record is not None:
            return record
        try:
            for records in (await self._poll((), 1, None)).values():
                return records[0]
        except ConsumerStoppedError:
            raise StopAsyncIteration from None
        raise AssertionError("a poll without timeout returned nothing")  # pragma: no cover

    def _next_buffered(self) -> ConsumerRecord | None:
        """A decoded record when nothing else needs attention (no stop, wakeup, error, or
        due event-loop turn); None sends the caller through ``_poll``."""
        if self._closed or self._wakeup or not self._started:
            return None
        fetcher = self._fetcher
        if fetcher.in_flight and self._loop is not None \
                and self._loop.time() >= self._next_yield:
            return None
        record = fetcher.next_record()
        if record is not None:
            self._records_consumed += 1
        return record

    async def _poll(self, partitions: tuple[TopicPartition, ...], limit: int,
                    timeout: float | None) -> dict[TopicPartition, list[ConsumerRecord]]:
        self._check_open()
        wanted: set[TopicPartition] | None = None
        if partitions:
            wanted = set(partitions)
            for tp in wanted:
                self._subs.state(tp)  # raises for unassigned partitions
        fetcher = self._fetcher
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        yielded = False
        try:
            while True:
                if self._closed:
                    raise ConsumerStoppedError("the consumer was stopped while polling")
                if self._wakeup:
                    self._wakeup = False
                    raise ConsumerWakeup("wakeup() interrupted the poll")
                error = fetcher.pop_error(wanted)
                if error is not None:
                    raise error
                if not yielded and fetcher.in_flight and loop.time() >= self._next_yield:
                    # A poll served from the buffer never suspends, so the loop would not
                    # read the fetch that completed meanwhile nor send the next one until
                    # the buffer ran dry: let it run (once per poll, per YIELD_INTERVAL).
                    yielded = True
                    self._next_yield = loop.time() + YIELD_INTERVAL
                    await asyncio.sleep(0)
                    continue
                fetcher.data_ready.clear()
                if self._subs.awaiting_reset():
                    await self._resolve_positions()  # retries within request.timeout.ms
                    continue
                records = fetcher.drain(wanted, limit)
                if records:
                    self._records_consumed += sum(map(len, records.values()))
                    return records
                fetcher.maybe_send()
                if deadline is None:
                    await fetcher.data_ready.wait()
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return {}
                try:
                    async with asyncio.timeout(remaining):
                        await fetcher.data_ready.wait()
                except TimeoutError:
                    pass
        except (ClientError, KlammError):
            if self._closed:
                raise ConsumerStoppedError("the consumer was stopped while polling") from None
            raise
