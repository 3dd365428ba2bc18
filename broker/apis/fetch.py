"""FETCH: whole record batches from the page cache, for consumers and for followers.

The response body lists each partition's ``records_size``; the bytes themselves are file regions
the connection sends with sendfile after the body. A consumer (``replica_id`` -1) reads below the
high watermark; a follower (``replica_id`` = its broker id) reads up to the log end, and its
fetch offset first tells the leader how far it has replicated, which may move the high watermark.
When fewer than ``min_bytes`` are available the request parks: a consumer's until high-watermark
moves bring enough committed bytes, a follower's until appends do (the partition's replica
manager answers it from inside that move), or until its ``max_wait_ms`` timer.

A partition named more than once is answered once (the first entry counts). One answer holds
at most MAX_REGIONS file descriptors, and all answers together no more than the broker's
FileDescriptorBudget; partitions past either are answered without data, as when ``max_bytes``
runs out, and the client asks again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from klamm.protocol.errors import ErrorCode
from klamm.protocol.frame import Request

from . import fields
from ..reply import HandlerResult, PendingReply, Reply
from ..errors import error_code_of
from ..fd_budget import FileDescriptorBudget
from ..log import FileRegion

if TYPE_CHECKING:
    from ..metrics import BrokerMetrics
    from ..replica_manager import ReplicaManager

# Descriptors (segment files) one fetch answer may hold until it is sent.
MAX_REGIONS = 1000

# topic, partition, fetch offset, max bytes, current leader epoch
PartitionRequest = tuple[str, int, int, int, int]


class FetchApi:
    def __init__(self, replicas: "ReplicaManager", metrics: "BrokerMetrics",
                 stopping: Callable[[], bool], fds: FileDescriptorBudget) -> None:
        self.replicas = replicas
        self.metrics = metrics
        self.stopping = stopping
        self.fds = fds

    def handle(self, request: Request) -> HandlerResult:
        body = fields.body_map(request.body)
        replica_id = fields.integer(body, "replica_id", -1)
        max_wait_ms = max(0, fields.integer(body, "max_wait_ms", 0))
        min_bytes = max(0, fields.integer(body, "min_bytes", 1))
        max_bytes = max(0, fields.integer(body, "max_bytes", 50 * 1024 * 1024))
        integer = fields.integer
        unique: dict[tuple[str, int], PartitionRequest] = {}
        for t in fields.topic_partitions(body):
            topic = t["topic"]
            for p in t["partitions"]:
                index = integer(p, "partition")
                if (topic, index) not in unique:
                    unique[topic, index] = (
                        topic, index, integer(p, "fetch_offset"),
                        max(0, integer(p, "partition_max_bytes")),
                        integer(p, "current_leader_epoch", -1))
        wanted = list(unique.values())
        if replica_id >= 0:
            self._record_follower(wanted, replica_id)

        reply, size, errors = self._read(wanted, max_bytes, replica_id)
        if max_wait_ms == 0 or size >= min_bytes or errors or not wanted or self.stopping():
            return reply
        reply.release()
        pending = PendingReply()

        def answer() -> None:
            try:
                late, _, _ = self._read(wanted, max_bytes, replica_id)
            except Exception as exc:
                code, message = error_code_of(exc)
                late = Reply({"error_code": int(code), "error_message": message})
            pending.resolve(late)

        keys = {(topic, index) for topic, index, _, _, _ in wanted}
        waiters = self.replicas.replica_waiters if replica_id >= 0 else self.replicas.waiters
        parked = waiters.park(keys, min_bytes - size, max_wait_ms / 1000, answer)
        pending.on_cancel = parked.cancel
        pending.on_hurry = parked.fire
        return pending

    def _record_follower(self, wanted: list[PartitionRequest], replica_id: int) -> None:
        replicas = self.replicas
        for topic, index, offset, _, epoch in wanted:
            partition = replicas.partitions.get((topic, index))
            if partition is None or not partition.is_leader:
                continue  # the read answers with the error
            if epoch >= 0 and epoch != partition.leader_epoch:
                continue
            plog = partition.log
            if not plog.log_start_offset <= offset <= plog.log_end_offset:
                continue  # out of range: the read refuses it, and it is no progress
            try:
                replicas.follower_fetched(partition, replica_id, offset)
            except Exception:
                continue  # not a replica: the read refuses it below

    def _read(self, wanted: list[PartitionRequest], max_bytes: int,
              replica_id: int) -> tuple[Reply, int, bool]:
        metrics = self.metrics
        replicas = self.replicas
        follower = replica_id >= 0
        topics: dict[str, list[dict[str, Any]]] = {}
        regions: list[FileRegion] = []
        fds = self.fds
        total = 0
        errors = False
        for topic, index, offset, partition_max, epoch in wanted:
            entry: dict[str, Any]
            try:
                partition = replicas.get(topic, index)
                if follower and replica_id not in partition.followers:
                    partition.check_leader(epoch)
                    raise _not_a_replica(replica_id, partition.topic, index, partition.replicas)
                budget = min(partition_max, max_bytes - total)
                plog = partition.log
                if (budget <= 0 and total > 0) or len(regions) >= MAX_REGIONS or \
                        (fds.exhausted and regions):
                    partition.check_leader(epoch)
                    data_size = 0
                    hw = partition.high_watermark
                    start = plog.log_start_offset
                else:
                    data = partition.read(offset, max(budget, 0), min_one=total == 0,
                                          replica_id=replica_id, current_leader_epoch=epoch)
                    regions.extend(data.regions)
                    data_size = data.size
                    hw = data.high_watermark
                    start = data.log_start_offset
                total += data_size
                entry = {"partition": index, "error_code": 0, "high_watermark": hw,
                         "log_start_offset": start, "records_size": data_size}
                if follower:
                    entry["log_end_offset"] = plog.log_end_offset
            except Exception as exc:
                code, message = error_code_of(exc)
                errors = True
                metrics.failed_fetch.inc()
                entry = {"partition": index, "error_code": int(code), "error_message": message,
                         "high_watermark": -1, "log_start_offset": -1, "records_size": 0}
                if code is ErrorCode.OFFSET_OUT_OF_RANGE:
                    plog = replicas.partitions[(topic, index)].log
                    entry.update(high_watermark=plog.high_watermark,
                                 log_start_offset=plog.log_start_offset,
                                 log_end_offset=plog.log_end_offset)
            topics.setdefault(topic, []).append(entry)
        if follower:
            metrics.replication_bytes_out.inc(total)
        else:
            metrics.bytes_out.inc(total)
        body = {"error_code": 0,
                "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]}
        fds.take(len(regions))
        return Reply(body, regions=regions, on_sent=_closer(regions, fds)), total, errors


def _not_a_replica(replica_id: int, topic: str, index: int, replicas: list[int]) -> Exception:
    from klamm.protocol.errors import NotLeaderOrFollowerError
    return NotLeaderOrFollowerError(
        f"broker {replica_id} is not a follower of {topic}-{index} (replicas {replicas})")


def _closer(regions: list[FileRegion], fds: FileDescriptorBudget) -> Any:
    if not regions:
        return None

    def close() -> None:
        fds.give(len(regions))
        for region in regions:
            try:
                os.close(region.fd)
            except OSError:
                pass
    return close
