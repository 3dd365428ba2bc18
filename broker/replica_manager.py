"""The partitions this broker hosts, created, looked up and removed in one place.

Handlers ask it for a ``Partition`` by (topic, index) and never touch logs directly; it owns
the mapping from topic metadata to logs (via ``LogManager``) and the fetch waiters.
Single-threaded: used from the event loop only.
"""

from __future__ import annotations

from klamm.protocol.errors import UnknownTopicOrPartitionError

from .config import BrokerConfig, TopicConfig
from .fetch_waiters import FetchWaiters
from .log import LogManager
from .partition import Partition
from .topic_store import TopicRecord


class ReplicaManager:
    def __init__(self, config: BrokerConfig, logs: LogManager) -> None:
        self.config = config
        self.logs = logs
        self.waiters = FetchWaiters()
        self.partitions: dict[tuple[str, int], Partition] = {}

    def get(self, topic: str, partition: int) -> Partition:
        p = self.partitions.get((topic, partition))
        if p is None:
            raise UnknownTopicOrPartitionError(f"{topic}-{partition} is not hosted here")
        return p

    def topic_partitions(self, topic: str) -> list[Partition]:
        return sorted((p for (t, _), p in self.partitions.items() if t == topic),
                      key=lambda p: p.index)

    def host_topic(self, record: TopicRecord, config: TopicConfig) -> None:
        """Open (or create) every partition log of a topic this broker hosts."""
        for index in range(record.partitions):
            if (record.name, index) in self.partitions:
                continue
            log = self.logs.create_log(record.name, index, config)
            self.partitions[(record.name, index)] = Partition(
                record.name, index, log, self.config.broker_id, [self.config.broker_id],
                self.waiters)

    def update_config(self, topic: str, config: TopicConfig) -> None:
        for p in self.topic_partitions(topic):
            p.log.update_config(config)

    def drop_topic(self, topic: str) -> None:
        for p in self.topic_partitions(topic):
            del self.partitions[p.key]
            self.logs.delete_log(topic, p.index)
            self.waiters.wake(p.key)
