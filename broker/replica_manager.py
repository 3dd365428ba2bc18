"""The partition replicas this broker hosts, and everything that waits on them.

Owns the ``Partition`` objects (created by LeaderAndIsr, removed by StopReplica), the
parked fetches (consumers wake when the high watermark moves, followers when the log grows),
the acks=all purgatory, the follower fetchers and the ISR changes sent to the controller.
Handlers ask it for a partition and never touch logs directly. Every state change goes
through here so the waits it affects are settled in the same call: an append wakes parked
follower fetches; a follower fetch that moves the high watermark completes acks=all produces
and wakes consumers; losing leadership fails both kinds of waits at once.

Single-threaded: used from the event loop only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from klamm.protocol.cluster_api import (NO_LEADER, AlterPartitionResult, BrokerEndpoint,
                                        LeaderAndIsrPartition, PartitionError,
                                        StopReplicaPartition)
from klamm.protocol.errors import ErrorCode, NotLeaderOrFollowerError, UnknownTopicOrPartitionError

from .change_signal import ChangeSignal
from .config import BrokerConfig, TopicConfig
from .controller_link import AlterPartitionQueue
from .errors import error_code_of
from .fetch_waiters import FetchWaiters
from .log import AppendInfo, LogManager, LogStorageError
from .log.partition_metadata import read_topic_id, write_topic_id
from .log.sync_batch import SyncBatch
from .metadata_cache import MetadataCache
from .metrics import BrokerMetrics
from .partition import Partition
from .produce_purgatory import ProducePurgatory
from .replication.fetcher import ReplicaFetcherManager
from .time_slice import TimeSlicer

log = logging.getLogger(__name__)

# How long creating or removing replicas holds the event loop before others get a turn.
SLICE_S = 0.02

PartitionKey = tuple[str, int]


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


class ReplicaManager:
    def __init__(self, config: BrokerConfig, logs: LogManager, metrics: BrokerMetrics,
                 metadata: MetadataCache, topic_config: Callable[[str], TopicConfig],
                 fetchers: ReplicaFetcherManager, isr_changes: AlterPartitionQueue) -> None:
        self.config = config
        self.broker_id = config.broker_id
        self.logs = logs
        self.metrics = metrics
        self.metadata = metadata
        self._topic_config = topic_config
        self.fetchers = fetchers
        self.isr_changes = isr_changes
        self.partitions: dict[PartitionKey, Partition] = {}
        self.waiters = FetchWaiters()  # consumers: woken by high-watermark moves
        self.replica_waiters = FetchWaiters()  # followers: woken by appends
        self.purgatory = ProducePurgatory()
        self.controller_epoch = -1
        self.lag_ms = config.replica_lag_time_max_ms
        self._isr_task: asyncio.Task[None] | None = None
        self.changes = ChangeSignal()  # after every LeaderAndIsr and StopReplica
        # One controller request at a time: both yield to the loop midway, and a request
        # to an earlier incarnation of this broker (read from its socket after a pause) can
        # arrive beside the new controller's; interleaved, the older one was applied last.
        self._controller_request = asyncio.Lock()

    # ------------------------------------------------------------------ lookups
    def get(self, topic: str, partition: int) -> Partition:
        p = self.partitions.get((topic, partition))
        if p is None:
            if self.metadata.partition(topic, partition) is not None:
                raise NotLeaderOrFollowerError(
                    f"broker {self.broker_id} does not host {topic}-{partition}")
            raise UnknownTopicOrPartitionError(f"{topic}-{partition} is not hosted here")
        return p

    def topic_partitions(self, topic: str) -> list[Partition]:
        return sorted((p for (t, _), p in self.partitions.items() if t == topic),
                      key=lambda p: p.index)

    def leaders(self) -> list[Partition]:
        return [p for p in self.partitions.values() if p.is_leader]

    # ------------------------------------------------------------------ produce path
    def append(self, partition: Partition, payload: memoryview, acks: int) -> AppendInfo:
        """Append as leader; wakes follower fetches and, when the ISR is just this broker,
        commits at once."""
        info = partition.append_as_leader(payload, acks)
        self.replica_waiters.notify(partition.key, len(payload))
        self._advance_high_watermark(partition)
        return info

    def _advance_high_watermark(self, partition: Partition) -> None:
        committed = partition.maybe_advance_high_watermark(_now_ms(), self.lag_ms)
        if committed:
            self.waiters.notify(partition.key, committed)
            self.purgatory.high_watermark_moved(partition.key, partition.enough_replicas)

    # ------------------------------------------------------------------ follower fetches
    def follower_fetched(self, partition: Partition, replica_id: int, fetch_offset: int) -> None:
        """A follower fetched at ``fetch_offset``: its progress may commit records and may
        earn it a place in the ISR."""
        joins = partition.update_follower(replica_id, fetch_offset, _now_ms())
        self._advance_high_watermark(partition)
        if joins:
            self._propose_isr(partition, list(partition.isr) + [replica_id], expand=True)

    # ------------------------------------------------------------------ ISR changes
    def check_isr(self) -> None:
        """Shrink the ISR of every led partition whose followers fell behind for longer than
        ``replica.lag.time.max.ms`` (runs every half of it, as Kafka's isr-expiration)."""
        now = _now_ms()
        for partition in self.leaders():
            if partition.pending_isr is not None:
                continue
            behind = partition.out_of_sync(now, self.lag_ms)
            if behind:
                log.info("%s-%d: shrinking ISR %s: replica(s) %s not caught up within "
                         "replica.lag.time.max.ms=%d (leader log end %d, hw %d)",
                         partition.topic, partition.index, list(partition.isr), behind,
                         self.lag_ms, partition.log.log_end_offset, partition.high_watermark)
                self._propose_isr(partition, [b for b in partition.isr if b not in behind],
                                  expand=False)

    def _propose_isr(self, partition: Partition, isr: list[int], *, expand: bool) -> None:
        item = partition.propose_isr(isr)

        def done(result: AlterPartitionResult) -> None:
            accepted = result.error_code == 0
            if partition is not self.partitions.get(partition.key):
                return
            applied = partition.isr_change_done(result.leader_epoch,
                                                list(result.isr) if accepted else None,
                                                result.partition_epoch)
            if not accepted:
                log.info("%s-%d: ISR change to %s refused: %s %s", partition.topic,
                         partition.index, isr, ErrorCode(result.error_code).name,
                         result.error_message or "")
                return
            if applied:
                (self.metrics.isr_expands if expand else self.metrics.isr_shrinks).inc()
                log.info("%s-%d: ISR is now %s (partition epoch %d)", partition.topic,
                         partition.index, list(partition.isr), partition.partition_epoch)
                self._advance_high_watermark(partition)
                self.update_gauges()

        self.isr_changes.submit(item, done)

    async def run_isr_checks(self) -> None:
        interval = max(self.lag_ms / 2, 10) / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                self.check_isr()
            except Exception:
                log.exception("ISR check failed")

    def start(self) -> None:
        self._isr_task = asyncio.get_running_loop().create_task(self.run_isr_checks(),
                                                                name="isr-checks")

    async def stop(self) -> None:
        if self._isr_task is not None:
            self._isr_task.cancel()
            try:
                await self._isr_task
            except asyncio.CancelledError:
                pass
        await self.fetchers.close()

    # ------------------------------------------------------------------ controller requests
    def host(self, topic: str, index: int, topic_id: str,
             sync: SyncBatch | None = None) -> Partition:
        """The partition object, opening (or creating) its log; a log left by an older topic
        of the same name (another topic id) is deleted first. A new log's files are durable
        at once, or once ``sync`` commits."""
        key = (topic, index)
        existing = self.partitions.get(key)
        if existing is not None:
            if topic_id and existing.topic_id and existing.topic_id != topic_id:
                self._drop(existing, delete=True, why="it belongs to an older topic")
            else:
                return existing
        plog = self.logs.get_log(topic, index)
        if plog is not None and topic_id:
            stored = read_topic_id(plog.dir)
            if stored is not None and stored != topic_id:
                log.warning("deleting %s: it holds topic id %s, the topic now has %s", plog.dir,
                            stored, topic_id)
                self.logs.delete_log(topic, index)
        plog = self.logs.create_log(topic, index, self._topic_config(topic), sync=sync)
        if topic_id and read_topic_id(plog.dir) != topic_id:
            write_topic_id(plog.dir, topic_id, sync=sync)
        partition = Partition(topic, index, plog, self.broker_id, topic_id)
        self.partitions[key] = partition
        return partition

    async def apply_leader_and_isr(self, items: list[LeaderAndIsrPartition],
                                   leaders: dict[int, BrokerEndpoint]) -> list[PartitionError]:
        """Become leader or follower of each partition, as the controller decided.

        Two passes. The first opens (or creates) each replica and stages what must be durable
        before it acts: a new log's files, its topic id, and the leader-epoch checkpoint of a
        replica about to lead (its follower fetches stop first, so its log end stays put).
        One commit makes all of that durable at once, off the loop. The second pass changes
        state: leaders start accepting produce only with their epoch on disk. Between
        partitions the loop gets a turn every ``SLICE_S``, so a thousand partitions neither
        stall requests nor starve the coordination session's heartbeats (the controller sends
        the next request to this broker only after this answer, so nothing else applies
        meanwhile; requests that do arrive together are applied one after the other, so the
        second one's epochs are judged against the first one's result)."""
        async with self._controller_request:
            return await self._apply_leader_and_isr(items, leaders)

    async def _apply_leader_and_isr(self, items: list[LeaderAndIsrPartition],
                                    leaders: dict[int, BrokerEndpoint]
                                    ) -> list[PartitionError]:
        results: dict[int, tuple[ErrorCode, str | None]] = {}
        ready: list[tuple[int, LeaderAndIsrPartition, Partition]] = []
        batch = SyncBatch()
        slicer = TimeSlicer(SLICE_S)
        for i, item in enumerate(items):
            await slicer.maybe_yield()
            try:
                if self.broker_id not in item.replicas:
                    results[i] = (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                  f"broker {self.broker_id} is not a replica")
                    continue
                partition = self.host(item.topic, item.partition, item.topic_id, sync=batch)
                partition.log.health.check()  # an offline dir hosts nothing any more
                if not partition.is_newer(item.leader_epoch, item.partition_epoch):
                    results[i] = (ErrorCode.STALE_CONTROLLER_EPOCH,
                                  f"epochs {item.leader_epoch}/{item.partition_epoch} are not "
                                  f"newer than {partition.leader_epoch}/"
                                  f"{partition.partition_epoch}")
                    continue
                if item.leader == self.broker_id and not partition.is_leader:
                    self.fetchers.remove(partition.key)
                    partition.log.leader_epoch_cache.stage(
                        item.leader_epoch, partition.log.log_end_offset, batch)
                ready.append((i, item, partition))
            except Exception as exc:  # a storage failure on one partition spares the others
                results[i] = error_code_of(exc)
        try:
            await batch.commit()
        except OSError as exc:
            log.error("LeaderAndIsr: could not make %d replica file(s) durable: %s",
                      len(batch), exc)
            failed = error_code_of(LogStorageError(f"cannot sync replica files: {exc}"))
            results.update((i, failed) for i, _, _ in ready)
            ready = []
        now = _now_ms()
        for i, item, partition in ready:
            await slicer.maybe_yield()
            try:
                results[i] = self._apply_one(item, partition, leaders, now)
            except OSError as exc:  # the leader-epoch checkpoint of a re-elected leader
                results[i] = error_code_of(LogStorageError(f"{partition.log.dir}: {exc}"))
            except Exception as exc:
                results[i] = error_code_of(exc)
        self.update_gauges()
        self.changes.changed()
        return [PartitionError(item.topic, item.partition, int(results[i][0]), results[i][1])
                for i, item in enumerate(items)]

    def _apply_one(self, item: LeaderAndIsrPartition, partition: Partition,
                   leaders: dict[int, BrokerEndpoint], now: int) -> tuple[ErrorCode, str | None]:
        key = partition.key
        if item.leader == self.broker_id:
            self.fetchers.remove(key)
            was_leader = partition.is_leader
            partition.become_leader(item.leader_epoch, item.partition_epoch, item.isr,
                                    item.replicas, now)
            self.isr_changes.cancel(key)
            if not was_leader:
                log.info("%s-%d: leader in epoch %d, ISR %s, log end %d, hw %d", item.topic,
                         item.partition, item.leader_epoch, item.isr,
                         partition.log.log_end_offset, partition.high_watermark)
            self._advance_high_watermark(partition)
            return ErrorCode.NONE, None
        was_leader = partition.is_leader
        changed = partition.become_follower(item.leader, item.leader_epoch,
                                            item.partition_epoch, item.isr, item.replicas)
        self.isr_changes.cancel(key)
        if was_leader:
            self._lost_leadership(partition)
        if item.leader == NO_LEADER:
            self.fetchers.remove(key)
            return ErrorCode.NONE, None
        endpoint = leaders.get(item.leader)
        if endpoint is None:
            self.fetchers.remove(key)
            return ErrorCode.LEADER_NOT_AVAILABLE, f"no address for leader {item.leader}"
        if changed or self.fetchers.following(key) is None:
            log.info("%s-%d: follower of %d in epoch %d", item.topic, item.partition,
                     item.leader, item.leader_epoch)
            self.fetchers.add(partition, endpoint, item.leader_epoch)
        return ErrorCode.NONE, None

    def _lost_leadership(self, partition: Partition) -> None:
        self.purgatory.leadership_lost(partition.key)
        self.waiters.wake(partition.key)
        self.replica_waiters.wake(partition.key)

    async def stop_replicas(self, items: list[StopReplicaPartition]) -> list[PartitionError]:
        """Stop (and maybe delete) replicas; yields to the loop as apply_leader_and_isr does
        (deleting a log removes files), and like it one controller request at a time."""
        async with self._controller_request:
            return await self._stop_replicas(items)

    async def _stop_replicas(self, items: list[StopReplicaPartition]) -> list[PartitionError]:
        out = []
        slicer = TimeSlicer(SLICE_S)
        for item in items:
            await slicer.maybe_yield()
            partition = self.partitions.get((item.topic, item.partition))
            code, message = ErrorCode.NONE, None
            try:
                if partition is not None and 0 <= item.leader_epoch < partition.leader_epoch:
                    code, message = (ErrorCode.FENCED_LEADER_EPOCH,
                                     f"leader epoch {item.leader_epoch} < "
                                     f"{partition.leader_epoch}")
                elif partition is not None:
                    self._drop(partition, delete=item.delete, why="the controller said so")
                elif item.delete and self.logs.get_log(item.topic, item.partition) is not None:
                    self.logs.delete_log(item.topic, item.partition)
            except Exception as exc:
                code, message = error_code_of(exc)
            out.append(PartitionError(item.topic, item.partition, int(code), message))
        self.update_gauges()
        self.changes.changed()
        return out

    def _drop(self, partition: Partition, *, delete: bool, why: str) -> None:
        key = partition.key
        self.fetchers.remove(key)
        self.isr_changes.cancel(key)
        partition.stop_leading()
        self._lost_leadership(partition)
        if delete:
            self.partitions.pop(key, None)
            self.logs.delete_log(*key)
            log.info("deleted replica %s-%d (%s)", key[0], key[1], why)
        else:
            log.info("stopped replica %s-%d (%s)", key[0], key[1], why)

    def log_dir_offline(self) -> None:
        """The log dir failed: stop following (every append would fail) and fail what waits
        on its partitions; the leaderships are handed over by the server."""
        for partition in list(self.partitions.values()):
            self.fetchers.remove(partition.key)
            self.isr_changes.cancel(partition.key)
            self._lost_leadership(partition)
        self.changes.changed()

    def update_config(self, topic: str, config: TopicConfig) -> None:
        for p in self.topic_partitions(topic):
            p.log.update_config(config)

    def update_gauges(self) -> None:
        leaders = self.leaders()
        m = self.metrics
        m.partitions.set(len(self.partitions))
        m.leader_count.set(len(leaders))
        m.under_replicated.set(sum(1 for p in leaders if p.under_replicated))
        m.under_min_isr.set(sum(1 for p in leaders if p.under_min_isr))
