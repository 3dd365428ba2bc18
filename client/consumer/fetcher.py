"""Fetching and decoding: keeps a fetch in flight per broker while the application works.

Raw fetch responses are buffered (bounded by fetch.max.bytes) and decoded only when the
application asks for records, one msgpack call per batch. A partition's next fetch starts at
its ``fetch_position``, after what is already buffered, so the pipeline never idles while the
application processes. Results of fetches sent before a seek are dropped by epoch.
One event loop owns a Fetcher.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from klamm.protocol.api import ApiKey
from klamm.protocol.errors import ErrorCode, KlammError, error_for
from klamm.protocol.records import (CODEC_MASK, HEADER_SIZE, TIMESTAMP_TYPE_LOG_APPEND,
                                    CorruptBatch, decode_raw_records, iter_batches,
                                    validate_batch)

from ..cluster import Cluster
from ..errors import ClientError
from ..structs import ConsumerRecord, TopicPartition
from .config import ConsumerConfig
from .subscription import SubscriptionState

log = logging.getLogger(__name__)

_new = tuple.__new__
_METADATA_ERRORS = {ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.FENCED_LEADER_EPOCH}


@dataclass(slots=True)
class CompletedFetch:
    """One partition's bytes from one fetch response, consumed batch by batch."""

    tp: TopicPartition
    data: bytes
    epoch: int
    batches: collections.deque[tuple[Any, int]] = field(default_factory=collections.deque)
    pending: list[ConsumerRecord] = field(default_factory=list)


class Fetcher:
    def __init__(self, config: ConsumerConfig, cluster: Cluster, subs: SubscriptionState,
                 key_deserializer: Callable[[bytes], Any] | None,
                 value_deserializer: Callable[[bytes], Any] | None) -> None:
        self.config = config
        self.cluster = cluster
        self.subs = subs
        self.key_deser = key_deserializer
        self.value_deser = value_deserializer
        self.completed: collections.deque[CompletedFetch] = collections.deque()
        self.buffered_bytes = 0
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.data_ready = asyncio.Event()
        self.errors: dict[TopicPartition, KlammError] = {}
        self._backoff_until: dict[int, float] = {}
        self.closed = False

    # ------------------------------------------------------------------ sending
    def maybe_send(self) -> None:
        """Start a fetch to every broker that leads a fetchable partition and has none."""
        if self.closed or self.buffered_bytes >= self.config.fetch_max_bytes:
            return
        md = self.cluster.metadata
        by_node: dict[int, list[TopicPartition]] = {}
        loop_time = asyncio.get_running_loop().time()
        for tp in self.subs.fetchable():
            if tp in self.errors:
                continue
            leader = md.leader_for(tp.topic, tp.partition)
            if leader is None:
                self._spawn_refresh()
                continue
            if leader in self.in_flight or self._backoff_until.get(leader, 0) > loop_time:
                continue
            by_node.setdefault(leader, []).append(tp)
        for node, tps in by_node.items():
            self.in_flight[node] = asyncio.ensure_future(self._fetch(node, tps))

    async def _fetch(self, node: int, tps: list[TopicPartition]) -> None:
        cfg = self.config
        subs = self.subs
        epochs = {tp: subs.partitions[tp].epoch for tp in tps}
        offsets: dict[TopicPartition, int] = {}
        for tp in tps:
            position = subs.partitions[tp].fetch_position
            assert position is not None  # fetchable() only yields positioned partitions
            offsets[tp] = position
        topics: dict[str, list[dict[str, int]]] = {}
        for tp in tps:
            topics.setdefault(tp.topic, []).append(
                {"partition": tp.partition, "fetch_offset": offsets[tp],
                 "partition_max_bytes": cfg.max_partition_fetch_bytes})
        body = {"replica_id": -1, "max_wait_ms": cfg.fetch_max_wait_ms,
                "min_bytes": cfg.fetch_min_bytes, "max_bytes": cfg.fetch_max_bytes,
                "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]}
        try:
            conn = await self.cluster.connection(node)
            response = await conn.request(
                ApiKey.FETCH, body,
                timeout=(cfg.request_timeout_ms + cfg.fetch_max_wait_ms) / 1000)
            self._handle(response.body, bytes(response.payload), epochs, offsets)
        except (ClientError, KlammError) as exc:
            if not self.closed:
                log.warning("fetch from broker %d failed (%s); retrying after %d ms", node,
                            exc, cfg.reconnect_backoff_ms)
                self._backoff(node)
                self._spawn_refresh()
        finally:
            self.in_flight.pop(node, None)
            self.data_ready.set()

    def _handle(self, body: Any, payload: bytes, epochs: dict[TopicPartition, int],
                offsets: dict[TopicPartition, int]) -> None:
        if "topics" not in body:
            raise error_for(body.get("error_code", -1), body.get("error_message"))
        pos = 0
        for t in body["topics"]:
            topic = t["topic"]
            for p in t["partitions"]:
                size = p.get("records_size", 0)
                data = payload[pos:pos + size]
                pos += size
                tp = TopicPartition(topic, p["partition"])
                st = self.subs.partitions.get(tp)
                if st is None or st.epoch != epochs.get(tp):
                    continue  # unassigned or sought since the fetch left
                code = p["error_code"]
                if code:
                    self._partition_error(tp, code, p.get("error_message"))
                    continue
                st.highwater = p["high_watermark"]
                st.log_start_offset = p["log_start_offset"]
                if not data:
                    continue
                done = CompletedFetch(tp, data, st.epoch)
                next_offset = st.fetch_position
                for header, bpos in iter_batches(data):
                    done.batches.append((header, bpos))
                    next_offset = header.next_offset
                if not done.batches:
                    continue
                st.fetch_position = next_offset
                self.completed.append(done)
                self.buffered_bytes += len(data)

    def _partition_error(self, tp: TopicPartition, code: int, message: str | None) -> None:
        if code == ErrorCode.OFFSET_OUT_OF_RANGE:
            strategy = self.config.auto_offset_reset
            if strategy == "none":
                self.errors[tp] = error_for(code, f"{tp.topic}-{tp.partition}: {message}; "
                                                  f"auto.offset.reset=none")
            else:
                log.info("%s-%d: offset out of range, resetting to %s", tp.topic, tp.partition,
                         strategy)
                self.subs.request_reset(tp, strategy)
        elif code in _METADATA_ERRORS:
            self._spawn_refresh()
        else:
            self.errors[tp] = error_for(code, f"{tp.topic}-{tp.partition}: {message}")

    def _backoff(self, node: int) -> None:
        loop = asyncio.get_running_loop()
        self._backoff_until[node] = loop.time() + self.config.reconnect_backoff_ms / 1000
        loop.call_later(self.config.reconnect_backoff_ms / 1000, self.data_ready.set)

    _refreshing: "asyncio.Task[None] | None" = None

    def _spawn_refresh(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        await asyncio.sleep(self.config.retry_backoff_ms / 1000)  # back off before asking again
        try:
            await self.cluster.refresh(sorted({tp.topic for tp in self.subs.partitions}))
        except Exception as exc:
            log.warning("metadata refresh failed: %s", exc)
        self.data_ready.set()

    # ------------------------------------------------------------------ draining
    def drain(self, wanted: set[TopicPartition] | None,
              max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Hand out up to ``max_records`` buffered records, advancing positions."""
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        budget = max_records
        kept: collections.deque[CompletedFetch] = collections.deque()
        subs = self.subs.partitions
        while self.completed and budget > 0:
            done = self.completed.popleft()
            st = subs.get(done.tp)
            if st is None or st.epoch != done.epoch:
                self.buffered_bytes -= len(done.data)
                continue
            if (wanted is not None and done.tp not in wanted) or st.paused:
                kept.append(done)
                continue
            records = self._take(done, budget, st.position or 0)
            if records:
                out.setdefault(done.tp, []).extend(records)
                budget -= len(records)
                st.position = records[-1].offset + 1
            if done.pending or done.batches:
                kept.append(done)
            else:
                self.buffered_bytes -= len(done.data)
        kept.extend(self.completed)
        self.completed = kept
        return out

    def _take(self, done: CompletedFetch, budget: int, position: int) -> list[ConsumerRecord]:
        taken: list[ConsumerRecord] = []
        while budget > len(taken):
            if not done.pending:
                if not done.batches:
                    break
                header, pos = done.batches.popleft()
                if header.next_offset <= position:
                    continue
                done.pending = self._decode(done, header, pos, position)
                continue
            room = budget - len(taken)
            if room >= len(done.pending):
                taken.extend(done.pending)
                done.pending = []
            else:
                taken.extend(done.pending[:room])
                del done.pending[:room]
        return taken

    def _decode(self, done: CompletedFetch, header: Any, pos: int,
                position: int) -> list[ConsumerRecord]:
        tp = done.tp
        if self.config.check_crcs:
            try:
                validate_batch(done.data, pos)
            except CorruptBatch as exc:
                raise error_for(ErrorCode.CORRUPT_MESSAGE,
                                f"{tp.topic}-{tp.partition} batch at offset "
                                f"{header.base_offset}: {exc}") from None
        attrs = header.attributes
        section = memoryview(done.data)[pos + HEADER_SIZE:pos + header.size]
        try:
            raw = decode_raw_records(section, attrs & CODEC_MASK)
        except CorruptBatch as exc:
            raise error_for(ErrorCode.CORRUPT_MESSAGE,
                            f"{tp.topic}-{tp.partition} batch at offset "
                            f"{header.base_offset}: {exc}") from None
        topic, part, base = tp.topic, tp.partition, header.base_offset
        CR = ConsumerRecord
        # Building thousands of tuples triggers GC passes that cost more than the building.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            if attrs & TIMESTAMP_TYPE_LOG_APPEND:
                ts = header.max_timestamp
                recs = [_new(CR, (topic, part, base + r[0], ts, 1, r[2], r[3], r[4]))
                        for r in raw]
            else:
                t0 = header.first_timestamp
                recs = [_new(CR, (topic, part, base + r[0], t0 + r[1], 0, r[2], r[3], r[4]))
                        for r in raw]
        finally:
            if gc_was_enabled:
                gc.enable()
        if base < position:
            recs = [r for r in recs if r.offset >= position]
        kd, vd = self.key_deser, self.value_deser
        if kd is not None or vd is not None:
            recs = [r._replace(key=kd(r.key) if kd and r.key is not None else r.key,
                               value=vd(r.value) if vd and r.value is not None else r.value)
                    for r in recs]
        return recs

    def clear(self, tp: TopicPartition | None = None) -> None:
        kept: collections.deque[CompletedFetch] = collections.deque()
        for done in self.completed:
            if tp is None or done.tp == tp:
                self.buffered_bytes -= len(done.data)
            else:
                kept.append(done)
        self.completed = kept

    async def close(self) -> None:
        self.closed = True
        tasks = list(self.in_flight.values())
        if self._refreshing is not None:
            tasks.append(self._refreshing)
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self.data_ready.set()
