"""The cluster's state as values, and their encoding in coordination-service nodes.

Node data is JSON in the shapes Kafka keeps in ZooKeeper, so ``klamm zk get`` shows something
a Kafka operator recognises. ``decode_*`` raise :class:`CorruptNode` naming the path when a node
holds something else. Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

NO_LEADER = -1


class CorruptNode(ValueError):
    """A coordination node does not hold what its path promises."""


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    """One live broker: ``epoch`` is the creation zxid of its ephemeral node, so each
    registration (each start, each new session) has a larger one."""

    broker_id: int
    host: str
    port: int
    rack: str | None = None
    epoch: int = -1
    session_timeout_ms: int = 0


@dataclass(frozen=True, slots=True)
class LeaderIsr:
    """A partition's leader, leader epoch and ISR; ``partition_epoch`` is the version of its
    state node, so a write conditional on it fails if anyone changed the state meanwhile."""

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int
    partition_epoch: int = 0

    def with_leader(self, leader: int, isr: list[int] | tuple[int, ...],
                    controller_epoch: int) -> "LeaderIsr":
        """A leader change: the leader epoch grows."""
        return LeaderIsr(leader, self.leader_epoch + 1, tuple(isr), controller_epoch,
                         self.partition_epoch)

    def with_isr(self, isr: list[int] | tuple[int, ...], controller_epoch: int) -> "LeaderIsr":
        """An ISR change under the same leader: the leader epoch stays."""
        return LeaderIsr(self.leader, self.leader_epoch, tuple(isr), controller_epoch,
                         self.partition_epoch)


@dataclass(slots=True)
class TopicAssignment:
    name: str
    topic_id: str
    replicas: dict[int, list[int]] = field(default_factory=dict)


def _load(data: bytes, path: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise CorruptNode(f"{path} does not hold JSON: {data[:80]!r}") from None


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def encode_broker(reg: BrokerRegistration) -> bytes:
    return _dump({"version": 1, "host": reg.host, "port": reg.port, "rack": reg.rack,
                  "session_timeout_ms": reg.session_timeout_ms})


def decode_broker(broker_id: int, data: bytes, epoch: int, path: str) -> BrokerRegistration:
    obj = _load(data, path)
    try:
        return BrokerRegistration(broker_id, str(obj["host"]), int(obj["port"]),
                                  obj.get("rack"), epoch, int(obj.get("session_timeout_ms", 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptNode(f"{path}: broker registration is missing or has a bad {exc}") from None


def encode_state(state: LeaderIsr) -> bytes:
    return _dump({"version": 1, "leader": state.leader, "leader_epoch": state.leader_epoch,
                  "isr": list(state.isr), "controller_epoch": state.controller_epoch})


def decode_state(data: bytes, version: int, path: str) -> LeaderIsr:
    obj = _load(data, path)
    try:
        return LeaderIsr(int(obj["leader"]), int(obj["leader_epoch"]),
                         tuple(int(b) for b in obj["isr"]), int(obj["controller_epoch"]),
                         version)
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptNode(f"{path}: partition state is missing or has a bad {exc}") from None


def encode_topic(topic: TopicAssignment) -> bytes:
    return _dump({"version": 1, "topic_id": topic.topic_id,
                  "partitions": {str(p): r for p, r in sorted(topic.replicas.items())}})


def decode_topic(name: str, data: bytes, path: str) -> TopicAssignment:
    obj = _load(data, path)
    try:
        replicas = {int(p): [int(b) for b in r] for p, r in obj["partitions"].items()}
        return TopicAssignment(name, str(obj["topic_id"]), replicas)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptNode(f"{path}: topic assignment is missing or has a bad {exc}") from None


def encode_configs(configs: dict[str, Any]) -> bytes:
    return _dump({"version": 1, "config": {k: str(v) for k, v in configs.items()}})


def decode_configs(data: bytes, path: str) -> dict[str, str]:
    obj = _load(data, path)
    try:
        return {str(k): str(v) for k, v in obj["config"].items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise CorruptNode(f"{path}: topic config is missing or has a bad {exc}") from None


def encode_reassignments(targets: dict[tuple[str, int], list[int]]) -> bytes:
    """Kafka's reassignment JSON: ``{"version": 1, "partitions": [{topic, partition,
    replicas}]}``."""
    return _dump({"version": 1, "partitions": [
        {"topic": t, "partition": p, "replicas": r} for (t, p), r in sorted(targets.items())]})


def decode_reassignments(data: bytes, path: str) -> dict[tuple[str, int], list[int]]:
    obj = _load(data, path)
    try:
        return {(str(e["topic"]), int(e["partition"])): [int(b) for b in e["replicas"]]
                for e in obj["partitions"]}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptNode(f"{path}: reassignment is missing or has a bad {exc}") from None


def encode_removed_replicas(removed: set[tuple[int, tuple[str, int]]]) -> bytes:
    return _dump({"version": 1, "replicas": [
        {"broker": b, "topic": t, "partition": p} for b, (t, p) in sorted(removed)]})


def decode_removed_replicas(data: bytes, path: str) -> set[tuple[int, tuple[str, int]]]:
    obj = _load(data, path)
    try:
        return {(int(e["broker"]), (str(e["topic"]), int(e["partition"])))
                for e in obj["replicas"]}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptNode(f"{path}: removed replicas are missing or have a bad {exc}") \
            from None


def encode_cluster_id(cluster_id: str) -> bytes:
    return _dump({"version": "1", "id": cluster_id})


def decode_cluster_id(data: bytes, path: str) -> str:
    obj = _load(data, path)
    try:
        return str(obj["id"])
    except (KeyError, TypeError) as exc:
        raise CorruptNode(f"{path}: cluster id is missing ({exc})") from None


def encode_controller(broker_id: int, timestamp_ms: int) -> bytes:
    return _dump({"version": 1, "brokerid": broker_id, "timestamp": str(timestamp_ms)})


def decode_controller(data: bytes, path: str) -> int:
    obj = _load(data, path)
    try:
        return int(obj["brokerid"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptNode(f"{path}: controller is missing or has a bad {exc}") from None
