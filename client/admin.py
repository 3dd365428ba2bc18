"""Async administration client: topics, configs, offsets, cluster description."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from klamm.protocol.api import (EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, PREFERRED_ELECTION,
                                UNCLEAN_ELECTION, ApiKey)
from klamm.protocol.errors import ErrorCode, KlammError, NotControllerError, error_for

from .cluster import Cluster, PartitionInfo
from .errors import KlammConnectionError, KlammTimeoutError
from .config import CommonClientConfig
from .structs import NewPartitions, NewTopic, TopicPartition


class AdminConfig(CommonClientConfig):
    client_id: str = "klamm-admin"


@dataclass(frozen=True, slots=True)
class TopicDescription:
    name: str
    is_internal: bool
    partitions: list[PartitionInfo]


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    name: str
    value: str | None
    source: str  # "default", "broker" or "topic"
    read_only: bool


@dataclass(frozen=True, slots=True)
class BrokerDescription:
    node_id: int
    host: str  # "" (and port -1) for a dead broker the answering broker never saw live
    port: int
    rack: str | None
    live: bool


@dataclass(frozen=True, slots=True)
class PartitionReassignment:
    replicas: list[int]  # now: the target ones first, then those leaving
    target: list[int]


@dataclass(frozen=True, slots=True)
class ClusterDescription:
    cluster_id: str | None
    controller_id: int  # -1 while no controller is known
    controller_epoch: int
    brokers: list[BrokerDescription]  # live ones, and dead ones that still hold replicas


def _raise_for(code: int, message: str | None) -> None:
    if code:
        raise error_for(code, message)


class Admin:
    def __init__(self, config: dict[str, Any] | None = None, /, **kwargs: Any) -> None:
        self.config = AdminConfig.build(config, **kwargs)
        self._cluster = Cluster(self.config)

    async def start(self) -> None:
        await self._cluster.bootstrap()

    async def stop(self) -> None:
        await self._cluster.close()

    async def __aenter__(self) -> "Admin":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _call(self, api: ApiKey, body: dict[str, Any]) -> Any:
        return (await self._cluster.request(None, api, body)).body

    # ------------------------------------------------------------------ topics
    async def create_topics(self, topics: list[NewTopic], *, validate_only: bool = False,
                            timeout_ms: int = 30_000) -> None:
        """Create topics; raises the first error (e.g. TopicAlreadyExistsError)."""
        body = await self._call(ApiKey.CREATE_TOPICS, {
            "topics": [{"topic": t.name, "num_partitions": t.num_partitions,
                        "replication_factor": t.replication_factor,
                        "configs": {k: str(v) for k, v in t.configs.items()},
                        "assignment": None if t.replica_assignment is None else {
                            int(p): [int(b) for b in r]
                            for p, r in t.replica_assignment.items()}} for t in topics],
            "timeout_ms": timeout_ms, "validate_only": validate_only})
        for res in body["topics"]:
            _raise_for(res["error_code"], res.get("error_message"))

    async def create_partitions(self, topics: dict[str, NewPartitions], *,
                                validate_only: bool = False, timeout_ms: int = 30_000) -> None:
        """Add partitions: ``{topic: NewPartitions(total_count)}``. Returns once every new
        partition has a leader; raises the first error (e.g. InvalidPartitionsError when the
        count is not above the current one). Keyed records may map to other partitions
        afterwards, as in Kafka."""
        body = await self._call(ApiKey.CREATE_PARTITIONS, {
            "topics": [{"topic": name, "count": int(new.total_count),
                        "assignment": None if new.new_assignments is None else
                        [[int(b) for b in r] for r in new.new_assignments]}
                       for name, new in topics.items()],
            "timeout_ms": timeout_ms, "validate_only": validate_only})
        for res in body["topics"]:
            _raise_for(res["error_code"], res.get("error_message"))

    async def delete_topics(self, names: list[str], *, timeout_ms: int = 30_000) -> None:
        body = await self._call(ApiKey.DELETE_TOPICS, {"topics": names, "timeout_ms": timeout_ms})
        for res in body["topics"]:
            _raise_for(res["error_code"], res.get("error_message"))

    async def list_topics(self) -> list[str]:
        md = await self._cluster.refresh(None)
        return sorted(md.topics)

    async def describe_topics(self, names: list[str] | None = None) -> list[TopicDescription]:
        md = await self._cluster.refresh(names)
        out = []
        for name in (names if names is not None else sorted(md.topics)):
            info = md.topics.get(name)
            if info is None:
                raise error_for(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                f"topic {name!r} does not exist")
            _raise_for(info.error_code, name)
            out.append(TopicDescription(name, info.is_internal,
                                        [info.partitions[p] for p in sorted(info.partitions)]))
        return out

    async def describe_cluster(self) -> ClusterDescription:
        body = await self._call(ApiKey.DESCRIBE_CLUSTER, {})
        _raise_for(body["error_code"], body.get("error_message"))
        return ClusterDescription(body.get("cluster_id"), body["controller_id"],
                                  body["controller_epoch"],
                                  [BrokerDescription(b["node_id"], b["host"], b["port"],
                                                     b.get("rack"), b["live"])
                                   for b in body["brokers"]])

    # ------------------------------------------------------------------ leaders
    async def elect_leaders(self, election_type: str = "preferred",
                            partitions: list[TopicPartition] | None = None
                            ) -> dict[TopicPartition, KlammError | None]:
        """Ask the controller for leader elections (Kafka's ``electLeaders``): "preferred"
        moves each partition to its first replica when that one is in sync; "unclean" gives a
        partition without a live leader any live replica, accepting the loss of records only
        the dead ones had. ``partitions`` None: every partition (then only those where an
        election was needed are in the result). Per partition: None when elected, else the
        error (ElectionNotNeededError where the leader is already the one it would choose)."""
        kinds = {"preferred": PREFERRED_ELECTION, "unclean": UNCLEAN_ELECTION}
        if election_type not in kinds:
            raise ValueError(f"election_type must be 'preferred' or 'unclean', got "
                             f"{election_type!r}")
        named: dict[str, list[int]] = {}
        for tp in partitions or ():
            named.setdefault(tp.topic, []).append(tp.partition)
        request = {"election_type": kinds[election_type],
                   "topic_partitions": None if partitions is None else
                   [{"topic": t, "partitions": sorted(set(ps))} for t, ps in named.items()]}
        deadline = time.monotonic() + self.config.request_timeout_ms / 1000
        last = "no broker named a controller"
        while True:  # the controller answers; another says NOT_CONTROLLER; one may be dead
            md = await self._cluster.refresh([])
            try:
                if md.controller_id >= 0:
                    body = (await self._cluster.request(md.controller_id, ApiKey.ELECT_LEADERS,
                                                        request)).body
                    break
            except (NotControllerError, KlammConnectionError, KlammTimeoutError) as exc:
                last = str(exc)  # the controller moved or died: the metadata will say where
            if time.monotonic() + self.config.retry_backoff_ms / 1000 >= deadline:
                raise NotControllerError(f"no controller answered within request.timeout.ms="
                                         f"{self.config.request_timeout_ms} ({last})")
            await asyncio.sleep(self.config.retry_backoff_ms / 1000)
        return {TopicPartition(t["topic"], p["partition"]):
                error_for(p["error_code"], p.get("error_message")) if p["error_code"] else None
                for t in body["results"] for p in t["partitions"]}

    # ------------------------------------------------------------------ reassignment
    async def alter_partition_reassignments(self, targets: dict[TopicPartition, list[int]]
                                            ) -> dict[TopicPartition, KlammError | None]:
        """Start moving partitions to new replicas (``{tp: [broker ids, preferred leader
        first]}``); returns once the controller has them, before the data has moved (see
        ``list_partition_reassignments``). Per partition: None when started, else the error
        (e.g. ReassignmentInProgressError for a partition already moving); the others start
        anyway."""
        named: dict[str, list[dict[str, Any]]] = {}
        for tp, replicas in targets.items():
            named.setdefault(tp.topic, []).append(
                {"partition": tp.partition, "replicas": [int(b) for b in replicas]})
        body = await self._call(ApiKey.ALTER_PARTITION_REASSIGNMENTS, {
            "topics": [{"topic": t, "partitions": ps} for t, ps in named.items()]})
        return {TopicPartition(t["topic"], p["partition"]):
                error_for(p["error_code"], p.get("error_message")) if p["error_code"] else None
                for t in body["topics"] for p in t["partitions"]}

    async def list_partition_reassignments(self) -> dict[TopicPartition, PartitionReassignment]:
        """Partitions being moved now."""
        body = await self._call(ApiKey.LIST_PARTITION_REASSIGNMENTS, {})
        return {TopicPartition(t["topic"], p["partition"]):
                PartitionReassignment(list(p["replicas"]), list(p["target"]))
                for t in body["topics"] for p in t["partitions"]}

    # ------------------------------------------------------------------ configs
    async def describe_configs(self, topic: str) -> dict[str, ConfigEntry]:
        body = await self._call(ApiKey.DESCRIBE_CONFIGS,
                                {"resources": [{"type": "topic", "name": topic}]})
        res = body["resources"][0]
        _raise_for(res["error_code"], res.get("error_message"))
        return {c["name"]: ConfigEntry(c["name"], c["value"], c["source"], c["read_only"])
                for c in res["configs"]}

    async def alter_configs(self, topic: str, changes: dict[str, Any], *,
                            validate_only: bool = False) -> None:
        """Set topic overrides; a None value removes the override (back to the default)."""
        body = await self._call(ApiKey.ALTER_CONFIGS, {
            "resources": [{"type": "topic", "name": topic,
                           "configs": {k: None if v is None else str(v)
                                       for k, v in changes.items()}}],
            "validate_only": validate_only})
        res = body["resources"][0]
        _raise_for(res["error_code"], res.get("error_message"))

    # ------------------------------------------------------------------ offsets
    async def list_offsets(self, specs: dict[TopicPartition, str | int]
                           ) -> dict[TopicPartition, tuple[int, int]]:
        """``{tp: "earliest" | "latest" | timestamp_ms}`` -> ``{tp: (offset, timestamp)}``;
        offset -1 when no record is at or after the timestamp."""
        timestamps: dict[TopicPartition, int] = {}
        for tp, spec in specs.items():
            ts = {"earliest": EARLIEST_TIMESTAMP, "latest": LATEST_TIMESTAMP}.get(
                spec, spec) if isinstance(spec, str) else spec
            if not isinstance(ts, int):
                raise ValueError(f"offset spec must be earliest, latest or a timestamp, got "
                                 f"{spec!r}")
            timestamps[tp] = ts
        return await self._cluster.list_offsets(timestamps)
