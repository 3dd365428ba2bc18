"""Fetching: keeps one fetch in flight per broker, ahead of the application, within a bound.

A fetch is sent to every broker that leads a fetchable partition as soon as the previous one
to that broker completes, as long as fewer than ``fetch.max.bytes`` undelivered bytes are
buffered or asked for; each request asks for at most its share of the room left, so buffered
plus in-flight data stays within ``fetch.max.bytes`` (plus at most one batch per broker, which
the broker sends whole so that a consumer always progresses). Raw response bytes are kept
as zero-copy slices of the received frame and decoded only when the application asks for
records (``records.PartitionRecords``).

A partition's next fetch starts at its ``fetch_position`` (after what is buffered); its
``position`` moves only when ``drain`` hands records out, so a lost connection loses nothing
and duplicates nothing: positions are untouched and the fetch is repeated after a backoff.
Results of fetches sent before a seek, reset or reassignment are dropped by epoch.

Garbage collector: decoding creates thousands of GC-tracked records per batch, and a young
generation pass while the application still holds them costs more than decoding (measured:
~30% of consume time at 100-byte records). So ``drain`` pauses the collector and re-enables it
with ``call_soon``: when the application next yields to the event loop. By then it has usually
dropped the records, which refcounting already freed, so the pass has nothing to do. The
collector is back on as soon as the event loop runs its next callbacks, and ``close``
re-enables it.

``data_ready`` is set whenever something a waiting poll cares about happened (records
buffered, an error, a fetch failed, a backoff ended). One event loop owns a Fetcher.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from klamm.protocol.api import CONSUMER_REPLICA_ID, ApiKey
from klamm.protocol.errors import ErrorCode, KlammError, OffsetOutOfRangeError, error_for

from ..cluster import METADATA_ERRORS, Cluster
from ..errors import ClientError
from ..outage_log import OutageLog
from ..structs import ConsumerRecord, TopicPartition
from .config import ConsumerConfig
from .records import PartitionRecords, scan_batches
from .subscription import PartitionState, SubscriptionState

log = logging.getLogger(__name__)

Requested = dict[TopicPartition, tuple[int, int]]  # tp -> (epoch, fetch offset)
DRAIN_SLICE = 0.002  # s of decoding per poll while a fetch waits to be read
TAKE_CHUNK = 2048  # records decoded between two looks at the clock


class Fetcher:
    def __init__(self, config: ConsumerConfig, cluster: Cluster, subs: SubscriptionState,
                 key_deserializer: Callable[[bytes], Any] | None,
                 value_deserializer: Callable[[bytes], Any] | None) -> None:
        self.config = config
        self.cluster = cluster
        self.subs = subs
        self.key_deserializer = key_deserializer
        self.value_deserializer = value_deserializer
        self.buffer: collections.deque[PartitionRecords] = collections.deque()
        self.buffered_bytes = 0
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.in_flight_bytes = 0  # max_bytes asked for by the fetches in flight
        self.data_ready = asyncio.Event()
        self.errors: dict[TopicPartition, Exception] = {}
        self.fetches_sent = 0
        self.offset_resets = 0  # positions found out of range and reset by auto.offset.reset
        self._failures: dict[int, int] = {}
        self.outages = OutageLog()
        self._backoff_until: dict[int, float] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self.closed = False
        self._gc_held = False  # this fetcher disabled the GC and owes the re-enable
        self._gc_release_scheduled = False

    # ------------------------------------------------------------------ sending
    def maybe_send(self) -> None:
        """Start a fetch to every broker that leads a fetchable partition and has none."""
        room = self.config.fetch_max_bytes - self.buffered_bytes - self.in_flight_bytes
        if self.closed or room <= 0:
            return
        md = self.cluster.metadata
        now = asyncio.get_running_loop().time()
        by_node: dict[int, Requested] = {}
        parts = self.subs.partitions
        for tp in self.subs.fetchable():
            if tp in self.errors:
                continue
            leader = md.leader_for(tp.topic, tp.partition)
            if leader is None:
                self._spawn_refresh()
                continue
            if leader in self.in_flight or self._backoff_until.get(leader, 0.0) > now:
                continue
            st = parts[tp]
            assert st.fetch_position is not None  # fetchable() yields positioned partitions
            by_node.setdefault(leader, {})[tp] = (st.epoch, st.fetch_position)
        if not by_node:
            return
        share = max(1, room // len(by_node))  # brokers split the room; their answers fit
        for node, requested in by_node.items():
            self.in_flight_bytes += share
            self.in_flight[node] = asyncio.ensure_future(self._fetch(node, requested, share))
            self.fetches_sent += 1

    def _request_body(self, requested: Requested, room: int) -> dict[str, Any]:
        cfg = self.config
        topics: dict[str, list[dict[str, int]]] = {}
        for tp, (_, offset) in requested.items():
            topics.setdefault(tp.topic, []).append(
                {"partition": tp.partition, "fetch_offset": offset,
                 "partition_max_bytes": cfg.max_partition_fetch_bytes})
        return {"replica_id": CONSUMER_REPLICA_ID, "max_wait_ms": cfg.fetch_max_wait_ms,
                "min_bytes": cfg.fetch_min_bytes, "max_bytes": min(cfg.fetch_max_bytes, room),
                "isolation_level": 0 if cfg.isolation_level == "read_uncommitted" else 1,
                "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]}

    async def _fetch(self, node: int, requested: Requested, room: int) -> None:
        cfg = self.config
        try:
            conn = await self.cluster.connection(node)
            response = await conn.request(
                ApiKey.FETCH, self._request_body(requested, room),
                timeout=(cfg.request_timeout_ms + cfg.fetch_max_wait_ms) / 1000)
            if self._handle(response.body, response.payload, requested):
                self._backoff(node, "a partition's leader moved")
            else:
                self._failures.pop(node, None)
                back = self.outages.succeeded(f"broker {node}", time.monotonic())
                if back is not None:  # as loud as the outage line, so whoever saw it sees this
                    log.warning("%s", back)
        except (ClientError, KlammError) as exc:
            if not self.closed:
                self._backoff(node, str(exc))
        except Exception as exc:  # an answer we cannot read: say so once, then back off
            if not self.closed:
                log.exception("cannot handle the fetch response of broker %d", node)
                self._backoff(node, f"{type(exc).__name__}: {exc}")
        finally:
            self.in_flight.pop(node, None)
            self.in_flight_bytes -= room
            if not self.closed:
                self.maybe_send()  # prefetch: keep the pipeline busy while the app works
            self.data_ready.set()

    # ------------------------------------------------------------------ receiving
    def _handle(self, body: Any, payload: memoryview, requested: Requested) -> bool:
        """Buffer one response; True when some partition needs fresh metadata."""
        if not isinstance(body, dict) or "topics" not in body:
            code = body.get("error_code", -1) if isinstance(body, dict) else -1
            raise error_for(code, body.get("error_message") if isinstance(body, dict) else None)
        subs = self.subs.partitions
        cfg = self.config
        stale = False
        pos = 0
        for t in body["topics"]:
            topic = t["topic"]
            for p in t["partitions"]:
                size = p.get("records_size", 0)
                data = payload[pos:pos + size]
                pos += size
                tp = TopicPartition(topic, p["partition"])
                asked = requested.get(tp)
                st = subs.get(tp)
                if asked is None or st is None or st.epoch != asked[0] \
                        or st.fetch_position != asked[1]:
                    continue  # unassigned, sought or reset since the fetch left
                code = p["error_code"]
                if code:
                    stale |= self._partition_error(tp, code, p.get("error_message"), asked[1],
                                                   p)
                    continue
                self.subs.update_watermarks(tp, p["high_watermark"], p["log_start_offset"],
                                            p.get("last_stable_offset"))
                if not size:
                    continue
                positions, next_offset, error = scan_batches(data, tp)
                if not positions:
                    if error is not None:
                        self.errors[tp] = error
                    else:
                        log.warning("%s-%d: fetch at offset %d returned %d bytes but no whole "
                                    "batch", topic, tp.partition, asked[1], size)
                    continue
                part = PartitionRecords(
                    tp, st.epoch, data, positions, next_offset, error=error,
                    check_crcs=cfg.check_crcs, key_deserializer=self.key_deserializer,
                    value_deserializer=self.value_deserializer)
                # After a bad header nothing can be framed: stop fetching until drain() has
                # raised the error and reset fetch_position to the position.
                st.fetch_position = next_offset if error is None else None
                self.buffer.append(part)
                self.buffered_bytes += part.nbytes
        return stale

    def _partition_error(self, tp: TopicPartition, code: int, message: str | None,
                         offset: int, answer: dict[str, Any] | None = None) -> bool:
        name = f"{tp.topic}-{tp.partition}"
        if code == ErrorCode.OFFSET_OUT_OF_RANGE:
            answer = answer or {}
            start = answer.get("log_start_offset", -1)
            end = answer.get("log_end_offset", -1)
            bounds = f" [{start}, {end}]" if start is not None and start >= 0 else ""
            strategy = self.config.auto_offset_reset
            if strategy == "none":
                self.errors[tp] = OffsetOutOfRangeError(
                    f"{name} has no offset {offset}{bounds}; auto.offset.reset=none, so "
                    f"seek() to a valid offset (see beginning_offsets/end_offsets)",
                    partitions={tp: offset})
            else:
                self.offset_resets += 1
                why = (" (beyond the leader's log end: records were lost, e.g. in an unclean "
                       "leader election)" if end is not None and 0 <= end < offset
                       else " (before the log start: deleted by retention)"
                       if start is not None and offset < start else "")
                log.warning("%s: position %d is out of the leader's log%s%s; resetting to "
                            "%s (auto.offset.reset)", name, offset, bounds, why, strategy)
                self.subs.request_reset(tp, strategy, out_of_range=offset)
            return False
        if code in METADATA_ERRORS:
            log.info("%s: %s; refreshing metadata", name, ErrorCode(code).name)
            self._spawn_refresh()
            return True
        self.errors[tp] = error_for(code, f"{name}: {message}" if message else name)
        return False

    def _backoff(self, node: int, why: str) -> None:
        """Exponential backoff (reconnect.backoff.ms doubling up to reconnect.backoff.max.ms,
        with jitter) before the next fetch to ``node``; metadata is refreshed meanwhile."""
        cfg = self.config
        failures = self._failures[node] = self._failures.get(node, 0) + 1
        delay = min(cfg.reconnect_backoff_max_ms,
                    cfg.reconnect_backoff_ms * 2 ** min(failures - 1, 20)) / 1000
        delay *= random.uniform(0.8, 1.2)
        line = self.outages.failed(f"broker {node}", f"fetch failed: {why}", time.monotonic(),
                                   cfg.reconnect_backoff_max_ms)
        if line is not None:  # once per outage and every 30 s, not per retry
            log.warning("%s (backing off up to reconnect.backoff.max.ms)", line)
        loop = asyncio.get_running_loop()
        self._backoff_until[node] = loop.time() + delay
        loop.call_later(delay, self._backoff_over)
        self._spawn_refresh()

    def _backoff_over(self) -> None:
        if not self.closed:
            self.maybe_send()
            self.data_ready.set()

    def _spawn_refresh(self) -> None:
        if not self.closed and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        await asyncio.sleep(self.config.retry_backoff_ms / 1000)  # do not hammer the cluster
        try:
            await self.cluster.refresh(sorted({tp.topic for tp in self.subs.partitions}))
            self._reached_metadata()
        except (ClientError, KlammError) as exc:
            line = self.outages.failed("metadata", f"refresh failed: {exc}", time.monotonic(),
                                       self.config.retry_backoff_ms)
            if line is not None:
                log.warning("%s", line)
        if not self.closed:
            self.maybe_send()
            self.data_ready.set()

    def _reached_metadata(self) -> None:
        line = self.outages.succeeded("metadata", time.monotonic())
        if line is not None:
            log.info("%s", line)

    # ------------------------------------------------------------------ draining
    def drain(self, wanted: set[TopicPartition] | None,
              max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Hand out up to ``max_records`` buffered records in fetch order, advancing positions.

        A partition's error surfaces after its earlier records: raised here when nothing was
        collected yet, else kept in ``errors`` for the next poll (so no record is lost).
        A large ``max_records`` is served in slices of DRAIN_SLICE seconds while a fetch is in
        flight: the event loop must get to read that fetch and send the next one.
        """
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        budget = max_records
        clock = time.monotonic
        stop_at = clock() + DRAIN_SLICE
        buffer = self.buffer
        subs = self.subs.partitions
        skipped: list[PartitionRecords] = []
        # Decoding allocates thousands of tracked objects and the result lists grow: a GC pass
        # in the middle would traverse them again and again. One pass afterwards is enough.
        if not self._gc_held and gc.isenabled():
            gc.disable()
            self._gc_held = True
        try:
            while buffer and budget > 0:
                if out and self.in_flight and clock() >= stop_at:
                    break
                part = buffer[0]
                tp = part.tp
                st = subs.get(tp)
                if st is None or st.epoch != part.epoch or st.position is None:
                    buffer.popleft()
                    self.buffered_bytes -= part.nbytes
                    continue
                if st.paused or (wanted is not None and tp not in wanted) or tp in self.errors:
                    skipped.append(buffer.popleft())
                    continue
                try:
                    records = part.take(min(budget, TAKE_CHUNK), st.position)
                except Exception as exc:
                    self._drop(tp)  # later data of tp must not be delivered past the error
                    st.fetch_position = st.position  # fetch again from here (or after a seek)
                    if out:
                        self.errors[tp] = exc
                        continue
                    raise
                if records:
                    got = out.get(tp)
                    if got is None:
                        out[tp] = records
                    else:
                        got += records
                    budget -= len(records)
                    st.position = records[-1].offset + 1
                if part.exhausted:
                    self._retire(part, st)
        finally:
            if self._gc_held and not self._gc_release_scheduled:
                self._gc_release_scheduled = True
                asyncio.get_running_loop().call_soon(self._release_gc)
            if skipped:
                buffer.extendleft(reversed(skipped))
        if self.buffered_bytes < self.config.fetch_max_bytes and not self.closed:
            self.maybe_send()
        return out

    def _retire(self, part: PartitionRecords, st: PartitionState) -> None:
        """``part`` (the head of the buffer) was handed out entirely."""
        self.buffer.popleft()
        self.buffered_bytes -= part.nbytes
        if st.position is not None and st.position < part.next_offset:
            st.position = part.next_offset  # past control batches / compacted gaps

    def next_record(self) -> ConsumerRecord | None:
        """The next record if one is already decoded and deliverable (``async for``'s fast
        path); None means "ask ``drain``", which handles every other case."""
        buffer = self.buffer
        if not buffer or self.errors:
            return None
        part = buffer[0]
        st = self.subs.partitions.get(part.tp)
        if st is None or st.epoch != part.epoch or st.paused or st.position is None:
            return None
        record = part.next_pending()
        if record is None:
            return None
        st.position = record.offset + 1
        if part.exhausted:
            self._retire(part, st)
        return record

    def _release_gc(self) -> None:
        self._gc_release_scheduled = False
        if self._gc_held:
            self._gc_held = False
            gc.enable()

    def pop_error(self, wanted: set[TopicPartition] | None) -> Exception | None:
        """A pending error of a wanted partition, removed so it is raised once."""
        for tp in self.errors:
            if wanted is None or tp in wanted:
                return self.errors.pop(tp)
        return None

    def forget(self, tps: set[TopicPartition] | None = None) -> None:
        """Drop buffered data and errors of ``tps`` (None: of every unassigned partition)."""
        assigned = self.subs.partitions
        gone = (lambda tp: tp not in assigned) if tps is None else tps.__contains__
        kept: list[PartitionRecords] = []
        for part in self.buffer:
            if gone(part.tp):
                self.buffered_bytes -= part.nbytes
            else:
                kept.append(part)
        self.buffer.clear()
        self.buffer.extend(kept)
        for tp in [tp for tp in self.errors if gone(tp)]:
            del self.errors[tp]

    def _drop(self, tp: TopicPartition) -> None:
        self.buffered_bytes -= sum(part.nbytes for part in self.buffer if part.tp == tp)
        kept = [part for part in self.buffer if part.tp != tp]
        self.buffer.clear()  # in place: drain() holds a reference
        self.buffer.extend(kept)

    def buffered_for(self, tp: TopicPartition) -> int:
        return sum(p.nbytes for p in self.buffer if p.tp == tp)

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
        self.buffer.clear()
        self.buffered_bytes = 0
        self._release_gc()
        self.data_ready.set()
