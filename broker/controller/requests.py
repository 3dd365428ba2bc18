"""RequestBatch: the requests one controller event sends, built from the context. Pure.

An event's decisions become, in this order per broker (Kafka's ``ControllerBrokerRequestBatch``):
LeaderAndIsr to the live replicas of each changed partition, then UpdateMetadata with those
partitions to every live broker, then StopReplica. The channel keeps that order per broker,
so a broker learns it leads a partition before its metadata tells clients so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from klamm.broker.cluster.model import BrokerRegistration
from klamm.protocol.cluster_api import (BrokerEndpoint, LeaderAndIsrPartition,
                                        LeaderAndIsrRequest, PartitionMetadata,
                                        StopReplicaPartition, StopReplicaRequest,
                                        UpdateMetadataRequest)

from .context import TP, ControllerContext


def endpoint(reg: BrokerRegistration) -> BrokerEndpoint:
    return BrokerEndpoint(reg.broker_id, reg.host, reg.port, reg.rack)


def leader_and_isr_item(ctx: ControllerContext, tp: TP, *, is_new: bool = False,
                        unclean: bool = False) -> LeaderAndIsrPartition:
    state = ctx.states[tp]
    return LeaderAndIsrPartition(tp[0], tp[1], ctx.topic_id(tp[0]), state.leader,
                                 state.leader_epoch, list(state.isr), state.partition_epoch,
                                 list(ctx.replicas(tp)), is_new, unclean)


def partition_metadata(ctx: ControllerContext, tp: TP) -> PartitionMetadata:
    state = ctx.states[tp]
    return PartitionMetadata(tp[0], tp[1], ctx.topic_id(tp[0]), state.leader,
                             state.leader_epoch, list(state.isr), state.partition_epoch,
                             list(ctx.replicas(tp)), ctx.offline_replicas(tp))


@dataclass(slots=True)
class RequestBatch:
    controller_id: int
    leader_and_isr: dict[int, dict[TP, LeaderAndIsrPartition]] = field(default_factory=dict)
    full_leader_and_isr: set[int] = field(default_factory=set)
    metadata: set[TP] = field(default_factory=set)
    metadata_full_to: set[int] = field(default_factory=set)  # brokers to send everything
    metadata_all: bool = False  # UpdateMetadata to every live broker even with no partition
    deleted_topics: set[str] = field(default_factory=set)
    stop_replica: dict[int, list[StopReplicaPartition]] = field(default_factory=dict)

    def add_leader_and_isr(self, ctx: ControllerContext, tp: TP, brokers: list[int] | None = None,
                           *, is_new: bool = False, unclean: bool = False) -> None:
        """LeaderAndIsr for ``tp`` to ``brokers`` (default: its live replicas), and the
        partition into the next UpdateMetadata."""
        targets = brokers if brokers is not None else ctx.replicas(tp)
        item = leader_and_isr_item(ctx, tp, is_new=is_new, unclean=unclean)
        for broker in targets:
            if broker in ctx.live:
                self.leader_and_isr.setdefault(broker, {})[tp] = item
        self.metadata.add(tp)

    def add_stop_replica(self, broker: int, tp: TP, leader_epoch: int, delete: bool) -> None:
        self.stop_replica.setdefault(broker, []).append(
            StopReplicaPartition(tp[0], tp[1], leader_epoch, delete))

    def build(self, ctx: ControllerContext, cluster_id: str
              ) -> list[tuple[int, LeaderAndIsrRequest | UpdateMetadataRequest |
                              StopReplicaRequest]]:
        """(broker, request) in sending order."""
        out: list[tuple[int, LeaderAndIsrRequest | UpdateMetadataRequest |
                        StopReplicaRequest]] = []
        live = [endpoint(r) for _, r in sorted(ctx.live.items())]
        by_id = {e.node_id: e for e in live}
        for broker, items in sorted(self.leader_and_isr.items()):
            reg = ctx.live.get(broker)
            if reg is None:
                continue
            leaders = sorted({i.leader for i in items.values() if i.leader in by_id})
            out.append((broker, LeaderAndIsrRequest(
                self.controller_id, ctx.epoch, reg.epoch, list(items.values()),
                [by_id[b] for b in leaders], full=broker in self.full_leader_and_isr)))
        changed = [partition_metadata(ctx, tp) for tp in sorted(self.metadata)
                   if tp in ctx.states and tp[0] not in ctx.deleting]
        everything: list[PartitionMetadata] | None = None
        for broker, reg in sorted(ctx.live.items()):
            if broker in self.metadata_full_to:
                if everything is None:
                    everything = [partition_metadata(ctx, tp) for tp in sorted(ctx.partitions())
                                  if tp in ctx.states]
                out.append((broker, UpdateMetadataRequest(
                    self.controller_id, ctx.epoch, reg.epoch, cluster_id, live, everything,
                    sorted(self.deleted_topics), full=True)))
            elif changed or self.deleted_topics or self.metadata_all:
                out.append((broker, UpdateMetadataRequest(
                    self.controller_id, ctx.epoch, reg.epoch, cluster_id, live, changed,
                    sorted(self.deleted_topics))))
        for broker, stops in sorted(self.stop_replica.items()):
            reg = ctx.live.get(broker)
            if reg is not None:
                out.append((broker, StopReplicaRequest(self.controller_id, ctx.epoch, reg.epoch,
                                                       stops)))
        return out
