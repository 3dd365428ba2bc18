"""Plain value types the clients hand to users (shaped like aiokafka's)."""

from __future__ import annotations

from typing import Any, NamedTuple


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class RecordMetadata(NamedTuple):
    """Where an acknowledged record was stored (offset -1 with acks=0: nothing came back)."""

    topic: str
    partition: int
    offset: int
    timestamp: int

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class ConsumerRecord(NamedTuple):
    """One record as the consumer returns it; a NamedTuple so building one is a C call."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int  # 0 CreateTime, 1 LogAppendTime
    key: Any
    value: Any
    headers: tuple[tuple[str, bytes], ...]


class OffsetAndMetadata(NamedTuple):
    offset: int
    metadata: str = ""


class OffsetAndTimestamp(NamedTuple):
    """The first offset whose record timestamp is at or after a searched time."""

    offset: int
    timestamp: int


class NewTopic(NamedTuple):
    name: str
    num_partitions: int = -1  # -1: the broker's num.partitions
    replication_factor: int = -1  # -1: the broker's default.replication.factor
    configs: dict[str, Any] = {}
    # {partition: [broker ids, preferred leader first]}; then leave the two counts at -1
    replica_assignment: dict[int, list[int]] | None = None


class NewPartitions(NamedTuple):
    """Grow a topic to ``total_count`` partitions (``Admin.create_partitions``)."""

    total_count: int
    # one replica list per new partition, in partition order; None: the brokers place them
    new_assignments: list[list[int]] | None = None
