"""One partition replica on this broker, with the leader-side state Kafka keeps for it.

Invariants: ``high_watermark <= log_end_offset``; consumers read below the high watermark
only; only the leader appends producer batches, stamping its leader epoch. With a single
replica the ISR is just this broker, so the high watermark follows the log end at once; the
replication issue adds follower fetch positions and ISR changes here without changing callers.
Single-threaded: used from the event loop only.
"""

from __future__ import annotations

from klamm.broker.config import TopicConfig
from klamm.protocol.errors import NotEnoughReplicasError, NotLeaderOrFollowerError

from .fetch_waiters import FetchWaiters
from .log import AppendInfo, FetchData, PartitionLog


class Partition:
    def __init__(self, topic: str, index: int, log: PartitionLog, broker_id: int,
                 replicas: list[int], waiters: FetchWaiters, leader_epoch: int = 0) -> None:
        self.topic = topic
        self.index = index
        self.key = (topic, index)
        self.log = log
        self.broker_id = broker_id
        self.replicas = replicas
        self.leader_id = broker_id
        self.leader_epoch = leader_epoch
        self.isr = [broker_id]
        self._waiters = waiters
        # A checkpointed high watermark may lag the log after a crash; as sole ISR member the
        # leader has every record it holds, so they are all committed.
        self._maybe_advance_high_watermark()

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.broker_id

    @property
    def config(self) -> TopicConfig:
        return self.log.config

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)

    def append_as_leader(self, payload: memoryview, acks: int) -> AppendInfo:
        """Append producer batches; raises the mapped errors without writing on refusal."""
        if not self.is_leader:
            raise NotLeaderOrFollowerError(
                f"broker {self.broker_id} is not the leader of {self.topic}-{self.index}")
        if acks == -1 and len(self.isr) < self.config.min_insync_replicas:
            raise NotEnoughReplicasError(
                f"{self.topic}-{self.index} has {len(self.isr)} in-sync replica(s), "
                f"min.insync.replicas={self.config.min_insync_replicas}")
        info = self.log.append(payload, self.leader_epoch)
        self._maybe_advance_high_watermark()
        self._waiters.notify(self.key, len(payload))
        return info

    def _maybe_advance_high_watermark(self) -> None:
        if self.isr == [self.broker_id]:
            self.log.update_high_watermark(self.log.log_end_offset)

    def read(self, offset: int, max_bytes: int, min_one: bool,
             replica_id: int = -1) -> FetchData:
        if not self.is_leader:
            raise NotLeaderOrFollowerError(
                f"broker {self.broker_id} is not the leader of {self.topic}-{self.index}")
        max_offset = self.log.log_end_offset if replica_id >= 0 else self.high_watermark
        return self.log.read(offset, max_bytes, max_offset, min_one)
