"""The inter-broker APIs: what the controller tells a broker, and what brokers ask of it.

LEADER_AND_ISR, UPDATE_METADATA and STOP_REPLICA pass the ``ControllerEpochGuard`` first:
a request from an older controller epoch than the newest seen here is refused
(STALE_CONTROLLER_EPOCH) and one addressed to an earlier incarnation of this broker
(STALE_BROKER_EPOCH) too, so a zombie controller or a delayed request changes nothing.
CONTROLLED_SHUTDOWN and ALTER_PARTITION are for the controller: any other broker answers
NOT_CONTROLLER, and the asker looks the controller up again. So is ELECT_LEADERS, which an
operator's admin client sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from klamm.protocol.cluster_api import (AlterPartitionRequest, ControlledShutdownRequest,
                                        LeaderAndIsrRequest, LeaderAndIsrResponse,
                                        StopReplicaRequest, StopReplicaResponse,
                                        UpdateMetadataRequest, UpdateMetadataResponse)
from klamm.protocol.api import PREFERRED_ELECTION, UNCLEAN_ELECTION
from klamm.protocol.errors import ErrorCode, NotControllerError
from klamm.protocol.frame import Request
from klamm.protocol.wire import MalformedMessage, from_wire, to_wire

from . import fields
from ..config import validate_topic_name
from ..reply import HandlerResult, Reply

if TYPE_CHECKING:
    from ..controller.controller import Controller
    from ..metadata_cache import MetadataCache
    from ..replica_manager import ReplicaManager
    from ..topic_configs import TopicConfigs

log = logging.getLogger(__name__)


class _NamedPartition(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...


class ControllerEpochGuard:
    """The newest controller epoch seen, and this broker's own epoch."""

    def __init__(self, broker_epoch: Callable[[], int]) -> None:
        self.controller_epoch = -1
        self.broker_epoch = broker_epoch

    def refuse(self, controller_id: int, controller_epoch: int,
               broker_epoch: int) -> tuple[ErrorCode, str] | None:
        if controller_epoch < self.controller_epoch:
            return (ErrorCode.STALE_CONTROLLER_EPOCH,
                    f"controller {controller_id} is in epoch {controller_epoch}, but epoch "
                    f"{self.controller_epoch} has begun")
        ours = self.broker_epoch()
        if ours >= 0 and broker_epoch < ours:
            return (ErrorCode.STALE_BROKER_EPOCH,
                    f"the request is for broker epoch {broker_epoch}; this broker registered "
                    f"as epoch {ours}")
        self.controller_epoch = controller_epoch
        return None


class ControllerRequestsApi:
    def __init__(self, guard: ControllerEpochGuard, replicas: "ReplicaManager",
                 metadata: "MetadataCache", topic_configs: "TopicConfigs") -> None:
        self.guard = guard
        self.replicas = replicas
        self.metadata = metadata
        self.topic_configs = topic_configs

    async def leader_and_isr(self, request: Request) -> Reply:
        req = from_wire(LeaderAndIsrRequest, request.body)
        _check_partitions(req.partitions)
        refused = self.guard.refuse(req.controller_id, req.controller_epoch, req.broker_epoch)
        if refused is None:
            await self.topic_configs.load({p.topic for p in req.partitions})
            refused = self.guard.refuse(req.controller_id, req.controller_epoch,
                                        req.broker_epoch)
        if refused is not None:
            log.warning("ignoring LeaderAndIsr: %s", refused[1])
            return Reply(to_wire(LeaderAndIsrResponse(int(refused[0]), refused[1])))
        errors = await self.replicas.apply_leader_and_isr(
            req.partitions, {e.node_id: e for e in req.leaders})
        for p in req.partitions:
            if p.unclean and p.leader == self.replicas.broker_id:
                partition = self.replicas.partitions.get((p.topic, p.partition))
                if partition is not None:
                    end = partition.log.log_end_offset
                    log.error("%s-%d: this broker was elected leader from outside the ISR "
                              "(an unclean election) at log end offset %d: "
                              "records the previous leader had from offset %d on are lost; "
                              "the previous leader reports the exact range when it returns "
                              "and truncates", p.topic, p.partition, end, end)
        return Reply(to_wire(LeaderAndIsrResponse(0, None, errors)))

    def update_metadata(self, request: Request) -> HandlerResult:
        req = from_wire(UpdateMetadataRequest, request.body)
        refused = self.guard.refuse(req.controller_id, req.controller_epoch, req.broker_epoch)
        if refused is not None:
            log.warning("ignoring UpdateMetadata: %s", refused[1])
            return Reply(to_wire(UpdateMetadataResponse(int(refused[0]), refused[1])))
        self.metadata.apply(req)
        for topic in req.deleted_topics:
            self.topic_configs.forget(topic)
        return Reply(to_wire(UpdateMetadataResponse(0)))

    async def stop_replica(self, request: Request) -> Reply:
        req = from_wire(StopReplicaRequest, request.body)
        _check_partitions(req.partitions)
        refused = self.guard.refuse(req.controller_id, req.controller_epoch, req.broker_epoch)
        if refused is not None:
            log.warning("ignoring StopReplica: %s", refused[1])
            return Reply(to_wire(StopReplicaResponse(int(refused[0]), refused[1])))
        errors = await self.replicas.stop_replicas(req.partitions)
        return Reply(to_wire(StopReplicaResponse(0, None, errors)))


def _check_partitions(partitions: Iterable[_NamedPartition]) -> None:
    """Names that become directories must be topic names: a request naming ``../x`` or
    partition -1 is refused whole (INVALID_REQUEST) before anything is touched."""
    for p in partitions:
        problem = validate_topic_name(p.topic)
        if problem is not None:
            raise MalformedMessage(problem)
        if p.partition < 0:
            raise MalformedMessage(f"{p.topic}: partition {p.partition} is negative")


class ControllerApi:
    def __init__(self, controller: "Controller") -> None:
        self.controller = controller

    async def controlled_shutdown(self, request: Request) -> Reply:
        req = from_wire(ControlledShutdownRequest, request.body)
        return Reply(to_wire(await self.controller.controlled_shutdown(req)))

    async def alter_partition(self, request: Request) -> Reply:
        req = from_wire(AlterPartitionRequest, request.body)
        return Reply(to_wire(await self.controller.alter_partition(req)))

    async def elect_leaders(self, request: Request) -> Reply:
        body = fields.body_map(request.body)
        kind = fields.integer(body, "election_type", low=PREFERRED_ELECTION,
                              high=UNCLEAN_ELECTION)
        wanted: list[tuple[str, int]] | None = None
        if body.get("topic_partitions") is not None:
            wanted = []
            for t in fields.topic_partitions_lists(body, "topic_partitions"):
                topic = fields.text(t, "topic")
                wanted.extend((topic, p) for p in t["partitions"])
        try:
            outcomes = await self.controller.elect_leaders(kind == UNCLEAN_ELECTION, wanted)
        except NotControllerError as exc:
            return Reply({"error_code": int(exc.code), "error_message": exc.detail,
                          "results": []})
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for (topic, partition), (code, message) in outcomes.items():
            by_topic.setdefault(topic, []).append({"partition": partition,
                                                   "error_code": int(code),
                                                   "error_message": message or None})
        return Reply({"error_code": 0, "error_message": None,
                      "results": [{"topic": t, "partitions": ps}
                                  for t, ps in sorted(by_topic.items())]})
