"""What a client knows about the cluster, and its connections to the brokers.

``ClusterMetadata`` is pure (a snapshot decoded from a Metadata response). ``Cluster`` owns one
connection per broker, bootstraps from ``bootstrap.servers``, and refreshes metadata when a caller
reports that it went stale (NOT_LEADER_OR_FOLLOWER, unknown partition, lost connection).
One event loop owns a Cluster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from klamm.protocol.api import ApiKey
from klamm.protocol.errors import ErrorCode, KlammError, UnknownTopicOrPartitionError
from klamm.protocol.frame import Response

from .config import CommonClientConfig
from .connection import BrokerConnection
from .errors import (ClientError, KlammConnectionError, KlammTimeoutError, NoBrokersAvailable,
                     error_for)

log = logging.getLogger(__name__)

# Partition errors that mean "ask the cluster who leads it" rather than "tell the user".
METADATA_ERRORS = frozenset({ErrorCode.NOT_LEADER_OR_FOLLOWER,
                             ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                             ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.FENCED_LEADER_EPOCH,
                             ErrorCode.BROKER_SHUTTING_DOWN})


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    error_code: int = 0


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    error_code: int
    is_internal: bool
    partitions: dict[int, PartitionInfo]
    error_message: str | None = None


@dataclass(slots=True)
class ClusterMetadata:
    cluster_id: str | None = None
    controller_id: int = -1
    brokers: dict[int, BrokerInfo] = field(default_factory=dict)
    topics: dict[str, TopicInfo] = field(default_factory=dict)
    updated_at: float = 0.0

    def update(self, body: dict[str, Any], *, full: bool) -> None:
        """Merge a Metadata response; ``full`` means it listed every topic."""
        self.cluster_id = body.get("cluster_id")
        self.controller_id = body.get("controller_id", -1)
        self.brokers = {b["node_id"]: BrokerInfo(b["node_id"], b["host"], b["port"],
                                                  b.get("rack"))
                        for b in body.get("brokers", ())}
        if full:
            self.topics = {}
        for t in body.get("topics", ()):
            parts = {p["partition"]: PartitionInfo(
                p["partition"], p.get("leader", -1), p.get("leader_epoch", -1),
                tuple(p.get("replicas", ())), tuple(p.get("isr", ())), p.get("error_code", 0))
                for p in t.get("partitions", ())}
            if t.get("error_code", 0) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                self.topics.pop(t["topic"], None)
                continue
            self.topics[t["topic"]] = TopicInfo(t["topic"], t.get("error_code", 0),
                                                t.get("is_internal", False), parts,
                                                t.get("error_message"))
        self.updated_at = time.monotonic()

    def partitions_for(self, topic: str) -> list[int] | None:
        info = self.topics.get(topic)
        if info is None or info.error_code:
            return None
        return sorted(info.partitions)

    def leader_for(self, topic: str, partition: int) -> int | None:
        info = self.topics.get(topic)
        if info is None:
            return None
        p = info.partitions.get(partition)
        if p is None or p.leader < 0:
            return None
        return p.leader


class Cluster:
    def __init__(self, config: CommonClientConfig) -> None:
        self.config = config
        self.metadata = ClusterMetadata()
        self._connections: dict[int, BrokerConnection] = {}
        self._connecting: dict[int, asyncio.Future[BrokerConnection]] = {}
        self._bootstrap_conn: BrokerConnection | None = None
        self._bootstrap_index = 0  # where the next walk over bootstrap servers starts
        self._refresh_lock = asyncio.Lock()
        self._closed = False

    @property
    def request_timeout(self) -> float:
        return self.config.request_timeout_ms / 1000

    async def _open(self, host: str, port: int) -> BrokerConnection:
        return await BrokerConnection.open(
            host, port, client_id=self.config.client_id, timeout=self.request_timeout,
            max_frame_bytes=self.config.socket_request_max_bytes)

    async def bootstrap(self) -> None:
        """Fetch metadata from the first bootstrap server that answers."""
        await self.refresh(None)

    async def any_connection(self) -> BrokerConnection:
        for conn in self._connections.values():
            if conn.connected:
                return conn
        if self._bootstrap_conn is not None and self._bootstrap_conn.connected:
            return self._bootstrap_conn
        for node_id in list(self.metadata.brokers):
            try:
                return await self.connection(node_id)
            except KlammConnectionError:
                continue
        errors = []
        for host, port in self.config.bootstrap_servers:
            try:
                self._bootstrap_conn = await self._open(host, port)
                return self._bootstrap_conn
            except KlammConnectionError as exc:
                errors.append(str(exc))
        servers = ",".join(f"{h}:{p}" for h, p in self.config.bootstrap_servers)
        raise NoBrokersAvailable(f"no broker reachable at {servers} ({'; '.join(errors)}); "
                                 f"is a broker running there?")

    async def connection(self, node_id: int) -> BrokerConnection:
        """The live connection to broker ``node_id``, opened on first use."""
        conn = self._connections.get(node_id)
        if conn is not None and conn.connected:
            return conn
        pending = self._connecting.get(node_id)
        if pending is not None:
            return await asyncio.shield(pending)
        broker = self.metadata.brokers.get(node_id)
        if broker is None:
            raise KlammConnectionError(f"broker {node_id} is not in the cluster metadata")
        fut: asyncio.Future[BrokerConnection] = asyncio.get_running_loop().create_future()
        self._connecting[node_id] = fut
        try:
            conn = await self._open(broker.host, broker.port)
            self._connections[node_id] = conn
            fut.set_result(conn)
            return conn
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved for waiters that never came
            raise
        finally:
            del self._connecting[node_id]

    async def request(self, node_id: int | None, api_key: ApiKey, body: Any,
                      payload: bytes = b"") -> Response:
        """One request to a broker (any broker when ``node_id`` is None); raises on a
        request-level error code in the body."""
        conn = await (self.any_connection() if node_id is None else self.connection(node_id))
        response = await conn.request(api_key, body, payload, timeout=self.request_timeout)
        check_top_level_error(response.body)
        return response

    async def refresh(self, topics: list[str] | None, *,
                      allow_auto_topic_creation: bool = False) -> ClusterMetadata:
        """Fetch metadata for ``topics`` (None: all topics) and merge it. A broker that does
        not answer within request.timeout.ms (down, stalled) is passed over for the next."""
        async with self._refresh_lock:
            body = {"topics": topics, "allow_auto_topic_creation": allow_auto_topic_creation}
            errors: list[str] = []
            async for conn in self._candidates(errors):
                try:
                    response = await conn.request(ApiKey.METADATA, body,
                                                  timeout=self.request_timeout)
                except (KlammConnectionError, KlammTimeoutError) as exc:
                    errors.append(str(exc))
                    log.info("metadata request to %s failed (%s); asking another broker",
                             conn.address, exc)
                    continue
                check_top_level_error(response.body)
                self.metadata.update(response.body, full=topics is None)
                return self.metadata
            servers = ",".join(f"{h}:{p}" for h, p in self.config.bootstrap_servers)
            raise NoBrokersAvailable(f"no broker answered at {servers} ({'; '.join(errors)}); "
                                     f"is a broker running there?")

    async def _candidates(self, errors: list[str]) -> AsyncIterator[BrokerConnection]:
        """Connections to ask for metadata, best first, each address once: open ones, then
        the brokers the metadata knows, then the bootstrap servers (starting after the one
        used last, so a bootstrap server that stalls is not asked first every time)."""
        seen: set[str] = set()
        for conn in list(self._connections.values()) + [self._bootstrap_conn]:
            if conn is not None and conn.connected and conn.address not in seen:
                seen.add(conn.address)
                yield conn
        for node_id, broker in list(self.metadata.brokers.items()):
            address = f"{broker.host}:{broker.port}"
            if address in seen:
                continue
            seen.add(address)
            try:
                conn = await self.connection(node_id)
            except KlammConnectionError as exc:
                errors.append(str(exc))
                continue
            yield conn
        servers = self.config.bootstrap_servers
        start = self._bootstrap_index
        for i in range(len(servers)):
            host, port = servers[(start + i) % len(servers)]
            if f"{host}:{port}" in seen:
                continue
            seen.add(f"{host}:{port}")
            try:
                conn = await self._open(host, port)
            except KlammConnectionError as exc:
                errors.append(str(exc))
                continue
            if self._bootstrap_conn is not None:
                self._bootstrap_conn.close()
            self._bootstrap_conn = conn
            self._bootstrap_index = (start + i + 1) % len(servers)
            yield conn

    async def list_offsets(self, specs: dict[Any, int], *,
                           check_open: Callable[[], None] | None = None
                           ) -> dict[Any, tuple[int, int]]:
        """ListOffsets for ``{TopicPartition: timestamp}`` (LATEST/EARLIEST or ms), one request
        per partition leader; returns ``{tp: (offset, timestamp)}``, offset -1 if none.

        Retriable failures (a lost connection, a leader that moved or has not taken over yet)
        are retried after retry.backoff.ms and a metadata refresh, until request.timeout.ms
        has passed; a partition the fresh metadata does not show is UNKNOWN_TOPIC_OR_PARTITION
        at once. ``check_open`` runs before each try (a closed consumer stops)."""
        from .structs import TopicPartition

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.request_timeout_ms / 1000
        out: dict[Any, tuple[int, int]] = {}
        todo = {TopicPartition(*tp): ts for tp, ts in specs.items()}
        while todo:
            if check_open is not None:
                check_open()
            try:
                await self._list_offsets_once(todo, out)
                return out
            except (ClientError, KlammError) as exc:
                if check_open is not None:
                    check_open()
                if not exc.retriable or isinstance(exc, UnknownTopicOrPartitionError) \
                        or loop.time() >= deadline:
                    raise  # fresh metadata says the partition does not exist: say so now
                log.info("offset lookup failed (%s); retrying", exc)
                await asyncio.sleep(self.config.retry_backoff_ms / 1000)
                try:
                    await self.refresh(sorted({tp.topic for tp in todo}))
                except (ClientError, KlammError) as refresh_exc:
                    log.info("metadata refresh failed: %s", refresh_exc)
        return out

    async def _list_offsets_once(self, todo: dict[Any, int],
                                 out: dict[Any, tuple[int, int]]) -> None:
        from .structs import TopicPartition

        md = self.metadata
        if any(md.leader_for(tp.topic, tp.partition) is None for tp in todo):
            md = await self.refresh(sorted({tp.topic for tp in todo}))
        by_leader: dict[int, dict[str, list[dict[str, int]]]] = {}
        for tp, ts in todo.items():
            leader = md.leader_for(tp.topic, tp.partition)
            if leader is None:
                known = md.partitions_for(tp.topic)
                if known is None or tp.partition not in known:
                    raise error_for(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                    f"{tp.topic}-{tp.partition} does not exist")
                raise error_for(ErrorCode.LEADER_NOT_AVAILABLE, f"{tp.topic}-{tp.partition}")
            by_leader.setdefault(leader, {}).setdefault(tp.topic, []).append(
                {"partition": tp.partition, "timestamp": ts})
        retry: KlammError | None = None
        for leader, topics in by_leader.items():
            body = (await self.request(leader, ApiKey.LIST_OFFSETS, {
                "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]})).body
            for t in body["topics"]:
                for p in t["partitions"]:
                    tp = TopicPartition(t["topic"], p["partition"])
                    code = p["error_code"]
                    if code in METADATA_ERRORS and code != ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                        retry = error_for(code, f"{tp.topic}-{tp.partition}")
                        continue
                    if code:
                        raise error_for(code, f"{tp.topic}-{tp.partition}: "
                                              f"{p.get('error_message') or ''}".rstrip(": "))
                    out[tp] = (p["offset"], p["timestamp"])
                    todo.pop(tp, None)
        if retry is not None:
            raise retry

    async def close(self) -> None:
        self._closed = True
        conns = list(self._connections.values())
        if self._bootstrap_conn is not None:
            conns.append(self._bootstrap_conn)
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn.wait_closed()
        self._connections.clear()


def check_top_level_error(body: Any) -> None:
    """Raise the mapped exception when a response body is a request-level error."""
    if isinstance(body, dict):
        code = body.get("error_code", 0)
        if code and "topics" not in body and "resources" not in body:
            raise error_for(code, body.get("error_message"))
