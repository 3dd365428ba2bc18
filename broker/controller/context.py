"""ControllerContext: the controller's in-memory picture of the cluster.

Live brokers, topics with their assignments, each partition's leader/ISR with the version of
its state node, brokers in controlled shutdown and topics being deleted. It mirrors what the
coordination service holds: the controller reads it all when elected, and afterwards changes a
partition here only after the conditional write of that change succeeded, so the two never
disagree for longer than one event. Changed only by the controller's event task; pure data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from klamm.broker.cluster.model import NO_LEADER, BrokerRegistration, LeaderIsr, TopicAssignment

TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class StateChange:
    """A decided transition of one partition; ``old`` None creates the state node."""

    tp: TP
    old: LeaderIsr | None
    new: LeaderIsr
    reason: str
    unclean: bool = False

    @property
    def leader_changed(self) -> bool:
        return self.old is None or self.old.leader != self.new.leader


@dataclass(slots=True)
class ControllerContext:
    epoch: int = 0
    epoch_version: int = -1  # version of the controller epoch node this controller wrote
    live: dict[int, BrokerRegistration] = field(default_factory=dict)
    shutting_down: set[int] = field(default_factory=set)
    topics: dict[str, TopicAssignment] = field(default_factory=dict)
    states: dict[TP, LeaderIsr] = field(default_factory=dict)
    unclean_topics: set[str] = field(default_factory=set)  # unclean election enabled
    deleting: dict[str, set[int]] = field(default_factory=dict)  # topic -> brokers to confirm
    reassigning: dict[TP, list[int]] = field(default_factory=dict)  # partition -> target
    removed: set[tuple[int, TP]] = field(default_factory=set)  # (broker, tp) to delete there

    def replicas(self, tp: TP) -> list[int]:
        topic = self.topics.get(tp[0])
        if topic is None:
            return []
        return topic.replicas.get(tp[1], [])

    def topic_id(self, topic: str) -> str:
        found = self.topics.get(topic)
        return found.topic_id if found is not None else ""

    def partitions(self) -> Iterator[TP]:
        for name, topic in self.topics.items():
            if name in self.deleting:
                continue
            for partition in topic.replicas:
                yield name, partition

    def partitions_on(self, broker: int) -> list[TP]:
        return [tp for tp in self.partitions() if broker in self.replicas(tp)]

    def led_by(self, broker: int) -> list[TP]:
        return [tp for tp, s in self.states.items() if s.leader == broker
                and tp[0] not in self.deleting]

    def is_online(self, tp: TP) -> bool:
        state = self.states.get(tp)
        return state is not None and state.leader != NO_LEADER and state.leader in self.live

    def offline(self) -> list[TP]:
        return [tp for tp in self.partitions() if tp in self.states and not self.is_online(tp)]

    def offline_replicas(self, tp: TP) -> list[int]:
        return [b for b in self.replicas(tp) if b not in self.live]

    def apply(self, change: StateChange, written: LeaderIsr) -> None:
        """Record a transition once its write succeeded (``written`` has the new version)."""
        self.states[change.tp] = written

    def remove_topic(self, topic: str) -> None:
        assignment = self.topics.pop(topic, None)
        if assignment is not None:
            for partition in assignment.replicas:
                self.states.pop((topic, partition), None)
        self.deleting.pop(topic, None)
        self.unclean_topics.discard(topic)
        for tp in [tp for tp in self.reassigning if tp[0] == topic]:
            del self.reassigning[tp]
