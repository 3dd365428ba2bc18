"""The async consumer: manual assignment, positions, prefetching fetcher, long poll.

``getmany`` returns buffered records at once when the fetcher has any, else waits (up to
``timeout_ms``) for the fetch in flight; the broker parks that fetch until data arrives (long
poll), so a record reaches the application as soon as it is committed. ``stop()`` from another
task makes a waiting ``getmany`` raise ConsumerStoppedError; ``wakeup()`` from any thread makes
it raise ConsumerWakeup once (Kafka's wakeup()). Consumer groups arrive in a later version:
``subscribe``/``commit``/``committed`` raise a clear error until then.
One event loop owns a Consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from klamm.protocol.api import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from klamm.protocol.errors import ErrorCode, error_for

from ..cluster import Cluster
from ..errors import ClientClosedError, ClientError
from ..serializers import resolve_deserializer
from ..structs import ConsumerRecord, TopicPartition
from .config import ConsumerConfig
from .fetcher import Fetcher
from .subscription import SubscriptionState


class ConsumerStoppedError(ClientClosedError):
    """The consumer was stopped (possibly while this call waited)."""


class ConsumerWakeup(ClientError):
    """wakeup() interrupted a waiting poll; the consumer is still usable."""


class GroupsNotAvailableError(ClientError):
    """Consumer groups (subscribe, commit) are not available in this version yet."""


_GROUPS = ("consumer groups (subscribe/commit/committed) are not available in this version; "
           "use assign() with seek()/seek_to_beginning()")


class Consumer:
    def __init__(self, *topics: str, config: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        if topics:
            raise GroupsNotAvailableError(f"subscribing to {', '.join(topics)}: {_GROUPS}")
        self.config = ConsumerConfig.build(config, **kwargs)
        cfg = self.config
        self._cluster = Cluster(cfg)
        self._subs = SubscriptionState(cfg.auto_offset_reset)
        self._fetcher = Fetcher(cfg, self._cluster, self._subs,
                                resolve_deserializer(cfg.key_deserializer),
                                resolve_deserializer(cfg.value_deserializer))
        self._closed = False
        self._wakeup = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._cluster.bootstrap()

    async def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._fetcher.close()
        await self._cluster.close()

    async def __aenter__(self) -> "Consumer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def wakeup(self) -> None:
        """Interrupt a waiting getmany from any thread; it raises ConsumerWakeup."""
        loop = self._loop
        if loop is None:
            return

        def wake() -> None:
            self._wakeup = True
            self._fetcher.data_ready.set()
        loop.call_soon_threadsafe(wake)

    # ------------------------------------------------------------------ assignment
    def subscribe(self, *topics: str, **kwargs: Any) -> None:
        raise GroupsNotAvailableError(_GROUPS)

    async def commit(self, offsets: Any = None) -> None:
        raise GroupsNotAvailableError(_GROUPS)

    async def committed(self, tp: TopicPartition) -> int | None:
        raise GroupsNotAvailableError(_GROUPS)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._subs.assign(list(partitions))
        self._fetcher.clear()
        for tp in list(self._fetcher.errors):
            if tp not in self._subs.partitions:
                del self._fetcher.errors[tp]

    def assignment(self) -> set[TopicPartition]:
        return set(self._subs.partitions)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._subs.seek(tp, offset)
        self._fetcher.clear(tp)
        self._fetcher.errors.pop(tp, None)

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        await self._reset(list(tps) or list(self._subs.partitions), "earliest")

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        await self._reset(list(tps) or list(self._subs.partitions), "latest")

    async def position(self, tp: TopicPartition) -> int:
        st = self._subs.state(tp)
        if st.position is None:
            await self._reset([tp], st.reset or self.config.auto_offset_reset)
        assert st.position is not None
        return st.position

    def pause(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self._subs.state(tp).paused = True

    def resume(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self._subs.state(tp).paused = False
        self._fetcher.data_ready.set()

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, st in self._subs.partitions.items() if st.paused}

    def highwater(self, tp: TopicPartition) -> int | None:
        """High watermark seen in the last fetch of ``tp`` (None before the first)."""
        return self._subs.state(tp).highwater

    def lag(self, tp: TopicPartition) -> int | None:
        """Records committed on the broker but not yet returned to the application."""
        return self._subs.lag(tp)

    # ------------------------------------------------------------------ metadata/offsets
    async def topics(self) -> set[str]:
        return set((await self._cluster.refresh(None)).topics)

    async def partitions_for_topic(self, topic: str) -> set[int] | None:
        parts = (await self._cluster.refresh([topic])).partitions_for(topic)
        return set(parts) if parts else None

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: o for tp, (o, _) in (await self._list_offsets(
            {tp: EARLIEST_TIMESTAMP for tp in tps})).items()}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: o for tp, (o, _) in (await self._list_offsets(
            {tp: LATEST_TIMESTAMP for tp in tps})).items()}

    async def offsets_for_times(self, timestamps: dict[TopicPartition, int]
                                ) -> dict[TopicPartition, tuple[int, int] | None]:
        found = await self._list_offsets(dict(timestamps))
        return {tp: (None if o < 0 else (o, ts)) for tp, (o, ts) in found.items()}

    async def _list_offsets(self, specs: dict[TopicPartition, int]
                            ) -> dict[TopicPartition, tuple[int, int]]:
        return await self._cluster.list_offsets(specs)

    async def _reset(self, tps: list[TopicPartition], strategy: str) -> None:
        if strategy == "none":
            raise error_for(ErrorCode.OFFSET_OUT_OF_RANGE,
                            f"no position for {', '.join(f'{t.topic}-{t.partition}' for t in tps)}"
                            f" and auto.offset.reset=none; seek() first")
        for tp in tps:
            self._subs.request_reset(tp, strategy)
            self._fetcher.clear(tp)
            self._fetcher.errors.pop(tp, None)
        ts = EARLIEST_TIMESTAMP if strategy == "earliest" else LATEST_TIMESTAMP
        found = await self._list_offsets({tp: ts for tp in tps})
        for tp, (offset, _) in found.items():
            st = self._subs.partitions.get(tp)
            if st is not None and st.reset == strategy:
                self._subs.seek(tp, offset)
        self._fetcher.data_ready.set()

    async def _resolve_positions(self) -> None:
        pending: dict[str, list[TopicPartition]] = {}
        for tp, st in self._subs.partitions.items():
            if st.position is None:
                pending.setdefault(st.reset or self.config.auto_offset_reset, []).append(tp)
        for strategy, tps in pending.items():
            await self._reset(tps, strategy)

    # ------------------------------------------------------------------ polling
    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None
                      ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records per partition, at most ``max_records`` (max.poll.records) in all; {} when
        none arrived within ``timeout_ms``."""
        if self._closed:
            raise ConsumerStoppedError("the consumer is stopped")
        fetcher = self._fetcher
        wanted = set(partitions) if partitions else None
        limit = max_records or self.config.max_poll_records
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while True:
            if self._closed:
                raise ConsumerStoppedError("the consumer was stopped while polling")
            if self._wakeup:
                self._wakeup = False
                raise ConsumerWakeup("wakeup() interrupted the poll")
            for tp, exc in list(fetcher.errors.items()):
                if wanted is None or tp in wanted:
                    del fetcher.errors[tp]
                    raise exc
            if any(st.position is None for st in self._subs.partitions.values()):
                await self._resolve_positions()
            fetcher.data_ready.clear()
            records = fetcher.drain(wanted, limit)
            fetcher.maybe_send()  # prefetch while the application processes these
            if records:
                return records
            remaining = deadline - loop.time()
            if remaining <= 0:
                return {}
            try:
                async with asyncio.timeout(remaining):
                    await fetcher.data_ready.wait()
            except TimeoutError:
                if not fetcher.completed:
                    return {}

    async def getone(self, *partitions: TopicPartition) -> ConsumerRecord:
        """The next record, waiting as long as it takes."""
        while True:
            batch = await self.getmany(*partitions, timeout_ms=60_000, max_records=1)
            for records in batch.values():
                return records[0]

    def __aiter__(self) -> AsyncIterator[ConsumerRecord]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ConsumerRecord]:
        while True:
            try:
                batch = await self.getmany(timeout_ms=60_000)
            except ConsumerStoppedError:
                return
            for records in batch.values():
                for record in records:
                    yield record
