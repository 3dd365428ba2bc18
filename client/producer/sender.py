"""The background task that turns queued batches into Produce requests.

Each wake-up it closes lingered batches, then sends, per leader broker, one request holding
every queued batch of every partition (up to max.request.size). Requests to one broker are
pipelined up to max.in.flight.requests.per.connection, which also bounds the requests in flight
per partition. As in Kafka without idempotence, a retry with more than one request in flight
can reorder a partition's batches; max.in.flight.requests.per.connection=1 keeps order through
retries (a failed batch is retried before anything after it is sent).

A partition refused with MESSAGE_TOO_LARGE (a batch over the topic's max.message.bytes) has its
batches sent again one per request, one request at a time; one alone that is still refused is
split in two halves (each sent alone) until it fits, and only a single record that does not fit
fails, as Kafka's producer splits batches (KIP-126) rather than failing records that would fit.

Failures: retriable codes are retried after retry.backoff.ms, until delivery.timeout.ms. A
broker that could not be reached is not tried again for reconnect.backoff.ms, doubling per
consecutive failure up to reconnect.backoff.max.ms; the backoff is the broker's, not the
batches': while their leader waits it out, the metadata is refreshed every retry.backoff.ms,
and once another broker leads the partition its batches go there at once (a leader's death cost
the whole backoff on top of the election otherwise). Other errors fail the batch's records with
the mapped exception. A broker that cannot be reached is logged when the outage starts, every
30 s while it lasts and when it ends (OutageLog), not once per retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from klamm.protocol.api import ApiKey
from klamm.protocol.errors import ErrorCode, error_for

from ..cluster import Cluster
from ..errors import ClientError, KlammTimeoutError
from ..outage_log import OutageLog
from ..structs import TopicPartition
from .accumulator import ProducerBatch, RecordAccumulator
from .config import ProducerConfig

log = logging.getLogger(__name__)

_METADATA_ERRORS = {ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.FENCED_LEADER_EPOCH}


class Sender:
    def __init__(self, config: ProducerConfig, cluster: Cluster,
                 accumulator: RecordAccumulator) -> None:
        self.config = config
        self.compression = config.compression  # parsed once: read for every request
        self.cluster = cluster
        self.acc = accumulator
        self.partition_in_flight: dict[TopicPartition, int] = defaultdict(int)
        self.in_flight: dict[int, int] = defaultdict(int)
        self.flushing = 0
        self.closing = False
        self._refresh: asyncio.Task[None] | None = None
        self._requests: set[asyncio.Task[None]] = set()
        self.sending: set[ProducerBatch] = set()  # batches inside a request right now
        self.outages = OutageLog()  # logs unreachable brokers per state change, not per retry
        self._node_failures: dict[int, int] = {}  # consecutive connection failures per broker
        # when a broker that could not be reached may be tried again (reconnect backoff)
        self._node_ready_at: dict[int, float] = {}
        # partitions with a batch in flight that is sent alone: nothing of theirs goes beside it
        self._alone_in_flight: set[TopicPartition] = set()
        # Counters for Producer.metrics(), in records as Kafka counts them.
        self.records_sent = 0  # acknowledged (or written, with acks=0)
        self.retries = 0
        self.errors = 0
        self.requests = 0
        self.splits = 0  # batches split after MESSAGE_TOO_LARGE

    async def run(self) -> None:
        acc = self.acc
        while True:
            acc.wakeup.clear()
            now = time.monotonic()
            deadline = acc.close_lingered(now, force=self.flushing > 0 or self.closing)
            retry_deadline = self._send_ready(now)
            if self.closing and acc.empty and not self._requests:
                return
            waits = [d for d in (deadline, retry_deadline) if d is not None]
            timeout = max(0.0, min(waits) - time.monotonic()) if waits else None
            try:
                async with asyncio.timeout(timeout):
                    await acc.wakeup.wait()
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ sending
    def _send_ready(self, now: float) -> float | None:
        metadata = self.cluster.metadata
        by_node: dict[int, list[tuple[TopicPartition, list[ProducerBatch]]]] = defaultdict(list)
        node_bytes: dict[int, int] = defaultdict(int)
        next_retry: float | None = None
        limit = self.config.max_request_size
        compression = self.compression
        for tp, queue in self.acc.queued.items():
            max_in_flight = self.config.max_in_flight_requests_per_connection
            if not queue or self.partition_in_flight[tp] >= max_in_flight:
                continue
            self._expire(queue, now)
            if not queue:
                continue
            head = queue[0]
            if tp in self._alone_in_flight or (head.alone and self.partition_in_flight[tp]):
                continue  # one at a time, so the pieces of a refused batch keep their order
            if head.retry_at > now:
                next_retry = head.retry_at if next_retry is None else min(next_retry,
                                                                          head.retry_at)
                continue
            leader = metadata.leader_for(tp.topic, tp.partition)
            if leader is None:
                if head.last_error is None:  # what a delivery timeout will name as the cause
                    head.last_error = error_for(
                        ErrorCode.LEADER_NOT_AVAILABLE,
                        f"{tp.topic}-{tp.partition} has no leader in the cluster metadata")
                self._request_refresh()
                continue
            ready_at = self._node_ready_at.get(leader, 0.0)
            if ready_at > now:  # its leader could not be reached: wait, but look for a new one
                next_retry = ready_at if next_retry is None else min(next_retry, ready_at)
                self._request_refresh()
                continue
            if leader not in by_node and \
                    self.in_flight[leader] >= self.config.max_in_flight_requests_per_connection:
                continue
            taken: list[ProducerBatch] = []
            while queue:
                if taken and queue[0].alone:
                    break
                head_bytes, records_bytes = queue[0].encode(compression)
                size = len(head_bytes) + len(records_bytes)
                if taken and node_bytes[leader] + size > limit:
                    break
                node_bytes[leader] += size
                taken.append(queue.popleft())
                if taken[-1].alone:
                    break
            by_node[leader].append((tp, taken))
            if taken[-1].alone:
                self._alone_in_flight.add(tp)
            self.sending.update(taken)
            self.partition_in_flight[tp] += 1
        for node, entries in by_node.items():
            self.in_flight[node] += 1
            task = asyncio.ensure_future(self._produce(node, entries))
            self._requests.add(task)
            task.add_done_callback(self._request_done)
        return next_retry

    def _request_done(self, task: "asyncio.Task[None]") -> None:
        self._requests.discard(task)
        self.acc.wakeup.set()  # stop() may be waiting for the last request to finish

    def _expire(self, queue: Any, now: float) -> None:
        while queue and queue[0].deadline <= now:
            batch = queue.popleft()
            cause = batch.last_error
            timeout = self._delivery_timeout(
                batch, "is the partition's leader reachable?" if cause is None
                else f"last error: {cause}")
            timeout.__cause__ = cause
            self._fail(batch, timeout)

    async def _produce(self, node: int,
                       entries: list[tuple[TopicPartition, list[ProducerBatch]]]) -> None:
        compression = self.compression
        topics: dict[str, list[dict[str, int]]] = defaultdict(list)
        payload: list[bytes] = []
        for tp, batches in entries:
            size = 0
            for b in batches:
                head, records = b.encode(compression)
                payload.append(head)
                payload.append(records)
                size += len(head) + len(records)
                b.attempts += 1
            topics[tp.topic].append({"partition": tp.partition, "size": size})
        body = {"acks": self.config.acks, "timeout_ms": self.config.request_timeout_ms,
                "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]}
        self.requests += 1
        try:
            conn = await self.cluster.connection(node)
            if self.config.acks == 0:
                await conn.drain()
                conn.send(ApiKey.PRODUCE, body, payload, expect_response=False)
                self._backoff_over(node)
                for _, batches in entries:
                    for b in batches:
                        self._complete(b, -1, -1)
                return
            response = await conn.request(ApiKey.PRODUCE, body, payload,
                                          timeout=self.config.request_timeout_ms / 1000)
            self._backoff_over(node)
            self._reached(f"broker {node}")
            self._handle_response(response.body, entries)
        except ClientError as exc:
            backoff = self._reconnect_backoff(node)
            self._node_ready_at[node] = time.monotonic() + backoff
            self._unreachable(f"broker {node}", f"produce request failed: {exc}",
                              round(backoff * 1000))
            self._request_refresh()
            for _, batches in entries:
                self._retry_or_fail(batches, exc)
        except Exception as exc:  # a request-level broker error code
            for _, batches in entries:
                self._retry_or_fail(batches, exc)
        finally:
            self.in_flight[node] -= 1
            for tp, batches in entries:
                self.partition_in_flight[tp] -= 1
                self.sending.difference_update(batches)
                if batches[-1].alone:
                    self._alone_in_flight.discard(tp)
            self.acc.wakeup.set()

    def _handle_response(self, body: Any,
                         entries: list[tuple[TopicPartition, list[ProducerBatch]]]) -> None:
        if "topics" not in body:
            raise error_for(body.get("error_code", -1), body.get("error_message"))
        results = {(t["topic"], p["partition"]): p for t in body["topics"]
                   for p in t["partitions"]}
        for tp, batches in entries:
            res = results.get((tp.topic, tp.partition))
            if res is None:
                self._retry_or_fail(batches, error_for(ErrorCode.UNKNOWN_SERVER_ERROR,
                                                       "partition missing from response"))
                continue
            code = res["error_code"]
            if code == 0:
                base = res["base_offset"]
                for b in batches:
                    self._complete(b, base, res.get("log_append_time", -1))
                    base += len(b.records)
                continue
            exc = error_for(code, res.get("error_message"))
            if code in _METADATA_ERRORS:
                self._request_refresh()
            if code == ErrorCode.MESSAGE_TOO_LARGE and self._split(batches):
                continue
            self._retry_or_fail(batches, exc)

    def _split(self, batches: list[ProducerBatch]) -> bool:
        """Requeue a partition's refused batches to be sent one per request, or halve the
        only one; False when that is a single record (it fails)."""
        if len(batches) == 1:  # the refusal is this batch's own
            batch = batches[0]
            if len(batch.records) == 1:
                return False
            first, second = batch.split()
            self.splits += 1
            self.acc.requeue_front(second)
            self.acc.requeue_front(first)
            log.info("%s-%d: a batch of %d records was too large for the broker; sending it "
                     "as two", batch.tp.topic, batch.tp.partition, len(batch.records))
            return True
        for batch in reversed(batches):
            batch.alone = True
            self.acc.requeue_front(batch)
        return True

    def _backoff_over(self, node: int) -> None:
        """``node`` took a request: its reconnect backoff starts over."""
        self._node_failures.pop(node, None)
        self._node_ready_at.pop(node, None)

    def _reconnect_backoff(self, node: int) -> float:
        """Seconds before retrying a broker that failed ``n`` times in a row: Kafka's
        reconnect.backoff.ms doubling up to reconnect.backoff.max.ms, and never less than
        retry.backoff.ms."""
        failures = self._node_failures[node] = self._node_failures.get(node, 0) + 1
        cfg = self.config
        exponential = min(cfg.reconnect_backoff_max_ms,
                          cfg.reconnect_backoff_ms * 2 ** min(failures - 1, 20))
        return max(cfg.retry_backoff_ms, exponential) / 1000

    def _retry_or_fail(self, batches: list[ProducerBatch], exc: BaseException) -> None:
        retriable = getattr(exc, "retriable", False)
        now = time.monotonic()
        backoff_s = self.config.retry_backoff_ms / 1000
        for b in reversed(batches):
            if not retriable or b.attempts > self.config.retries:
                self._fail(b, exc)
            elif b.deadline <= now:  # the retriable error is a symptom; the deadline is the cause
                timeout = self._delivery_timeout(b, f"last error: {exc}")
                timeout.__cause__ = exc
                self._fail(b, timeout)
            else:
                b.retry_at = now + backoff_s
                b.last_error = exc
                self.acc.requeue_front(b)
                self.retries += len(b.records)

    def _delivery_timeout(self, batch: ProducerBatch, detail: str) -> KlammTimeoutError:
        return KlammTimeoutError(
            f"{batch.tp.topic}-{batch.tp.partition}: records not acknowledged within "
            f"delivery.timeout.ms={self.config.delivery_timeout_ms} "
            f"({batch.attempts} attempt(s)); {detail}")

    def _complete(self, batch: ProducerBatch, base_offset: int, log_append_time: int) -> None:
        self.records_sent += len(batch.records)
        batch.done(base_offset, log_append_time)
        self.acc.release(batch)

    def _fail(self, batch: ProducerBatch, exc: BaseException) -> None:
        self.errors += len(batch.records)
        batch.fail(exc)
        self.acc.release(batch)

    # ------------------------------------------------------------------ metadata
    def _request_refresh(self) -> None:
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self._refresh_metadata())

    async def _refresh_metadata(self) -> None:
        await asyncio.sleep(self.config.retry_backoff_ms / 1000)  # back off before asking again
        topics = sorted({tp.topic for tp in self.acc.queued} |
                        {tp.topic for tp, n in self.partition_in_flight.items() if n})
        try:
            await self.cluster.refresh(topics or None)
            self._reached("metadata")
        except Exception as exc:
            self._unreachable("metadata", f"refresh failed: {exc}",
                              self.config.retry_backoff_ms)
        self.acc.wakeup.set()

    def _unreachable(self, peer: str, error: str, retry_ms: int) -> None:
        line = self.outages.failed(peer, error, time.monotonic(), retry_ms)
        if line is not None:
            log.warning("%s", line)

    def _reached(self, peer: str) -> None:
        line = self.outages.succeeded(peer, time.monotonic())
        if line is not None:  # as loud as the outage line, so whoever saw it sees this
            log.warning("%s", line)

    def abort(self, exc: BaseException) -> None:
        """A forced close: fail every record not yet acknowledged with ``exc`` (queued and
        open batches, and those inside requests, whose answers are then not awaited)."""
        for task in list(self._requests):
            task.cancel()
        for batch in list(self.sending):
            self._fail(batch, exc)
        for queue in self.acc.queued.values():
            while queue:
                self._fail(queue.popleft(), exc)
        for batch in list(self.acc.open.values()):
            del self.acc.open[batch.tp]
            self._fail(batch, exc)
        self.acc.wakeup.set()

    async def stop(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()

