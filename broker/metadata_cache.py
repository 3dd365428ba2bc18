"""MetadataCache: the cluster as this broker last heard it from the controller.

Fed only by UPDATE_METADATA (a full picture after each controller election or broker start,
deltas after), so every broker answers METADATA from the same source of truth and a client
that asks any broker learns the same leaders. Requests from a controller epoch older than
the newest seen are refused by the caller before they get here. Handlers read it; nothing
else writes it. ``wait_until`` lets a request wait, without polling, for the cache to reach a
state (CreateTopics waits for its partitions to get leaders). Single-threaded (event loop).
"""

from __future__ import annotations

from collections.abc import Callable

from klamm.protocol.cluster_api import (NO_LEADER, BrokerEndpoint, PartitionMetadata,
                                        UpdateMetadataRequest)

from .change_signal import ChangeSignal


class MetadataCache:
    def __init__(self, broker_id: int) -> None:
        self.broker_id = broker_id
        self.cluster_id = ""
        self.controller_id = -1
        self.controller_epoch = -1
        self.brokers: dict[int, BrokerEndpoint] = {}
        self.departed: dict[int, BrokerEndpoint] = {}  # last seen endpoint of gone brokers
        self.topics: dict[str, dict[int, PartitionMetadata]] = {}
        self.topic_ids: dict[str, str] = {}
        self._signal = ChangeSignal()
        self.updates = 0

    def apply(self, update: UpdateMetadataRequest) -> None:
        self.controller_id = update.controller_id
        self.controller_epoch = update.controller_epoch
        if update.cluster_id:
            self.cluster_id = update.cluster_id
        live = {b.node_id: b for b in update.live_brokers}
        for node_id, endpoint in self.brokers.items():
            if node_id not in live:
                self.departed[node_id] = endpoint
        for node_id in live:
            self.departed.pop(node_id, None)
        self.brokers = live
        if update.full:
            self.topics = {}
            self.topic_ids = {}
        for name in update.deleted_topics:
            self.topics.pop(name, None)
            self.topic_ids.pop(name, None)
        for p in update.partitions:
            self.topics.setdefault(p.topic, {})[p.partition] = p
            self.topic_ids[p.topic] = p.topic_id
        self.updates += 1
        self._signal.changed()

    # ------------------------------------------------------------------ reads
    def has_topic(self, name: str) -> bool:
        return name in self.topics

    def partition(self, topic: str, partition: int) -> PartitionMetadata | None:
        return self.topics.get(topic, {}).get(partition)

    def live_leader(self, topic: str, partition: int) -> int:
        """The partition's leader if it is a live broker, else NO_LEADER."""
        p = self.partition(topic, partition)
        if p is None or p.leader not in self.brokers:
            return NO_LEADER
        return p.leader

    def all_led(self, topic: str) -> bool:
        parts = self.topics.get(topic)
        if not parts:
            return False
        return all(p.leader in self.brokers for p in parts.values())

    def endpoint(self, broker_id: int) -> BrokerEndpoint | None:
        return self.brokers.get(broker_id)

    def dead_brokers(self) -> dict[int, BrokerEndpoint | None]:
        """Brokers that hold replicas but are not live, with their last seen endpoint."""
        named = {b for parts in self.topics.values() for p in parts.values() for b in p.replicas}
        return {b: self.departed.get(b) for b in sorted(named - set(self.brokers))}

    @property
    def controller(self) -> BrokerEndpoint | None:
        return self.brokers.get(self.controller_id)

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait for ``condition`` to hold after some update; False on timeout."""
        return await self._signal.wait_until(condition, timeout)
