"""Bodies of the APIs brokers speak among themselves, as typed messages (``protocol.wire``).

Controller to broker: LEADER_AND_ISR (become leader or follower of partitions), UPDATE_METADATA
(the cluster as the controller sees it, for every broker's metadata cache) and STOP_REPLICA
(stop serving and, with ``delete``, remove a replica). Each carries the controller's id and
epoch: a broker ignores requests from a controller epoch older than the newest it has seen
(STALE_CONTROLLER_EPOCH), and the ``broker_epoch`` the controller believes the target has (a
request meant for an earlier incarnation of a restarted broker gets STALE_BROKER_EPOCH).

Broker to controller: CONTROLLED_SHUTDOWN (move my leaderships away; the answer lists the
partitions still led here) and ALTER_PARTITION (a leader's ISR change, conditional on the
partition epoch it last saw).

Broker to broker: OFFSET_FOR_LEADER_EPOCH (a follower asks where an epoch ends in the leader's
log, to truncate what the leader never had: KIP-101, with KIP-279's answer for an epoch the
leader does not hold). Follower fetches use FETCH with ``replica_id`` set (``protocol.api``).

Epochs: the *leader epoch* grows with every leader change of a partition; the *partition
epoch* grows with every change of its state (leader or ISR) and is the version of the
partition's state node in the coordination service. The *controller epoch* grows with every
controller election; the *broker epoch* identifies one registration of a broker.
"""

from __future__ import annotations

from dataclasses import field

from .wire import int32, message

NO_LEADER = -1


@message
class BrokerEndpoint:
    node_id: int32
    host: str
    port: int32
    rack: str | None = None


@message
class PartitionRef:
    topic: str
    partition: int32


@message
class PartitionError:
    topic: str
    partition: int32
    error_code: int
    error_message: str | None = None


# ---------------------------------------------------------------------- LEADER_AND_ISR
@message
class LeaderAndIsrPartition:
    topic: str
    partition: int32
    topic_id: str
    leader: int32
    leader_epoch: int32
    isr: list[int32]
    partition_epoch: int32
    replicas: list[int32]
    is_new: bool = False
    unclean: bool = False  # the leader was elected from outside the ISR: records may be lost


@message
class LeaderAndIsrRequest:
    controller_id: int32
    controller_epoch: int32
    broker_epoch: int
    partitions: list[LeaderAndIsrPartition]
    leaders: list[BrokerEndpoint]  # where the leaders named above listen
    full: bool = False  # every partition this broker hosts is listed (first after a start)


@message
class LeaderAndIsrResponse:
    error_code: int
    error_message: str | None = None
    partitions: list[PartitionError] = field(default_factory=list)


# ---------------------------------------------------------------------- UPDATE_METADATA
@message
class PartitionMetadata:
    topic: str
    partition: int32
    topic_id: str
    leader: int32
    leader_epoch: int32
    isr: list[int32]
    partition_epoch: int32
    replicas: list[int32]
    offline_replicas: list[int32] = field(default_factory=list)


@message
class UpdateMetadataRequest:
    controller_id: int32
    controller_epoch: int32
    broker_epoch: int
    cluster_id: str
    live_brokers: list[BrokerEndpoint]
    partitions: list[PartitionMetadata]
    deleted_topics: list[str] = field(default_factory=list)
    full: bool = False  # the partitions are the whole cluster: replace, do not merge


@message
class UpdateMetadataResponse:
    error_code: int
    error_message: str | None = None


# ---------------------------------------------------------------------- STOP_REPLICA
@message
class StopReplicaPartition:
    topic: str
    partition: int32
    leader_epoch: int32
    delete: bool


@message
class StopReplicaRequest:
    controller_id: int32
    controller_epoch: int32
    broker_epoch: int
    partitions: list[StopReplicaPartition]


@message
class StopReplicaResponse:
    error_code: int
    error_message: str | None = None
    partitions: list[PartitionError] = field(default_factory=list)


# ---------------------------------------------------------------------- CONTROLLED_SHUTDOWN
@message
class ControlledShutdownRequest:
    broker_id: int32
    broker_epoch: int


@message
class ControlledShutdownResponse:
    error_code: int
    error_message: str | None = None
    remaining: list[PartitionRef] = field(default_factory=list)  # still led by the broker


# ---------------------------------------------------------------------- ALTER_PARTITION
@message
class AlterPartitionItem:
    topic: str
    partition: int32
    leader_epoch: int32
    new_isr: list[int32]
    partition_epoch: int32


@message
class AlterPartitionRequest:
    broker_id: int32
    broker_epoch: int
    partitions: list[AlterPartitionItem]


@message
class AlterPartitionResult:
    topic: str
    partition: int32
    error_code: int
    error_message: str | None = None
    leader: int32 = NO_LEADER
    leader_epoch: int32 = -1
    isr: list[int32] = field(default_factory=list)
    partition_epoch: int32 = -1


@message
class AlterPartitionResponse:
    error_code: int
    error_message: str | None = None
    partitions: list[AlterPartitionResult] = field(default_factory=list)


# ---------------------------------------------------------------------- OFFSET_FOR_LEADER_EPOCH
@message
class EpochQuery:
    topic: str
    partition: int32
    leader_epoch: int32  # the epoch whose end offset is asked for
    current_leader_epoch: int32 = -1  # the asker's view of the leader's epoch (-1: unchecked)


@message
class OffsetForLeaderEpochRequest:
    replica_id: int32
    partitions: list[EpochQuery]


@message
class EpochEndOffset:
    topic: str
    partition: int32
    error_code: int
    leader_epoch: int32 = -1  # largest epoch <= the asked one that the leader knows
    end_offset: int = -1  # where that epoch ends in the leader's log
    error_message: str | None = None


@message
class OffsetForLeaderEpochResponse:
    error_code: int
    error_message: str | None = None
    partitions: list[EpochEndOffset] = field(default_factory=list)
