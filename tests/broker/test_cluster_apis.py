"""Bad inter-broker input on real sockets: stale controller and broker epochs, follower fetches
a broker cannot serve, malformed controller requests, ISR changes that lost their version race,
OffsetForLeaderEpoch answers, and controlled shutdowns from brokers that are not registered.

Every refusal is checked for what it must leave alone: the partition keeps its leader, the
topic stays readable and writable, the stored partition state does not move.
"""

from __future__ import annotations

import logging
from pathlib import Path
import os
from collections.abc import Callable
from typing import Any

import pytest

from klamm.broker.cluster.model import LeaderIsr
from klamm.broker.replication.fetcher import parked_wait_ms, retry_delay_ms
from klamm.broker.server import BrokerServer
from klamm.protocol.api import ApiKey
from klamm.protocol.cluster_api import (NO_LEADER, AlterPartitionItem, AlterPartitionRequest,
                                        AlterPartitionResponse, BrokerEndpoint,
                                        ControlledShutdownRequest, ControlledShutdownResponse,
                                        EpochQuery, LeaderAndIsrPartition, LeaderAndIsrRequest,
                                        LeaderAndIsrResponse, OffsetForLeaderEpochRequest,
                                        OffsetForLeaderEpochResponse,
                                        StopReplicaPartition, StopReplicaRequest,
                                        StopReplicaResponse, UpdateMetadataRequest)
from klamm.protocol.errors import ErrorCode
from klamm.protocol.frame import frame_prefix
from klamm.protocol.wire import from_wire, to_wire
from tests.support.polling import until
from tests.support.raw import (RawConnection, batch, create_topic, fetch_body, open_as_broker,
                               produce_body, read_all)


# ---------------------------------------------------------------------- helpers
async def peer(server: BrokerServer, as_broker: int | None = None) -> RawConnection:
    """A connection to ``server`` authenticated as broker ``as_broker`` (default: the server
    itself, which is also the controller in these tests)."""
    me = server.peer_identity
    return await open_as_broker(server.bootstrap, me.cluster_id, me.secret,
                                me.broker_id if as_broker is None else as_broker)


async def controller_epoch(server: BrokerServer) -> int:
    epoch, _ = await server.store.controller_epoch()
    return epoch


async def produce(conn: RawConnection, topic: str, value: bytes, partition: int = 0) -> int:
    data = batch([value])
    r = await conn.call(ApiKey.PRODUCE, produce_body(topic, partition, len(data)), data)
    part = r.body["topics"][0]["partitions"][0]
    assert part["error_code"] == 0, part
    return int(part["base_offset"])


async def create_assigned(conn: RawConnection, name: str, replicas: list[int]) -> None:
    r = await conn.call(ApiKey.CREATE_TOPICS, {"topics": [
        {"topic": name, "assignment": {0: replicas}, "configs": {}}],
        "timeout_ms": 5000, "validate_only": False})
    assert r.body["topics"][0]["error_code"] == 0, r.body


def endpoint(server: BrokerServer) -> BrokerEndpoint:
    return BrokerEndpoint(server.config.broker_id, server.config.host, server.port)


def follower_fetch(replica_id: int, parts: list[tuple[str, int, int, int]]) -> dict[str, Any]:
    """A follower's FETCH body: ``parts`` are (topic, partition, fetch offset, epoch)."""
    topics: dict[str, list[dict[str, int]]] = {}
    for topic, partition, offset, epoch in parts:
        topics.setdefault(topic, []).append({
            "partition": partition, "fetch_offset": offset, "partition_max_bytes": 1 << 20,
            "current_leader_epoch": epoch})
    return {"replica_id": replica_id, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20,
            "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]}


def fetch_errors(body: dict[str, Any]) -> dict[tuple[str, int], int]:
    return {(t["topic"], p["partition"]): p["error_code"]
            for t in body["topics"] for p in t["partitions"]}


async def lead(conn: RawConnection, server: BrokerServer, topic: str, leader_epoch: int,
               replicas: list[int] | None = None, isr: list[int] | None = None) -> None:
    """What the controller of the current epoch sends to move ``topic``-0 to a new leader
    epoch on ``server`` (which keeps leading)."""
    me = server.config.broker_id
    partition = server.replicas.partitions[(topic, 0)]
    request = LeaderAndIsrRequest(
        me, await controller_epoch(server), server.broker_epoch,
        [LeaderAndIsrPartition(topic, 0, partition.topic_id, me, leader_epoch, isr or [me],
                               leader_epoch, replicas or [me])],
        [endpoint(server)])
    r = await conn.call(ApiKey.LEADER_AND_ISR, to_wire(request))
    answer = from_wire(LeaderAndIsrResponse, r.body)
    assert answer.error_code == 0 and [p.error_code for p in answer.partitions] == [0], answer
    assert partition.leader_epoch == leader_epoch


async def assert_still_served(server: BrokerServer, topic: str, before: dict[int, bytes]) -> None:
    """``topic``-0 is led here in epoch 0, known to the metadata, and takes and serves writes
    on a new connection."""
    partition = server.replicas.partitions.get((topic, 0))
    assert partition is not None and partition.is_leader and partition.leader_epoch == 0
    assert os.path.isdir(partition.log.dir)
    known = server.metadata.partition(topic, 0)
    assert known is not None and known.leader == server.config.broker_id
    conn = await peer(server)
    try:
        r = await conn.call(ApiKey.METADATA, {"topics": [topic]})
        described = r.body["topics"][0]
        assert described["error_code"] == 0
        assert described["partitions"][0]["leader"] == server.config.broker_id
        assert await produce(conn, topic, b"after") == len(before)
    finally:
        await conn.close()
    assert await read_all(server.bootstrap, topic) == {**before, len(before): b"after"}


# ---------------------------------------------------------------------- controller requests
def _leader_and_isr(server: BrokerServer, topic: str, epoch: int,
                    broker_epoch: int) -> tuple[int, Any]:
    """Would take the leadership away (no leader, in a newer leader epoch)."""
    partition = server.replicas.partitions[(topic, 0)]
    return ApiKey.LEADER_AND_ISR, LeaderAndIsrRequest(
        server.config.broker_id, epoch, broker_epoch,
        [LeaderAndIsrPartition(topic, 0, partition.topic_id, NO_LEADER, 7, [0], 7, [0])], [])


def _update_metadata(server: BrokerServer, topic: str, epoch: int,
                     broker_epoch: int) -> tuple[int, Any]:
    """Would empty the metadata cache: no live broker, the topic deleted."""
    return ApiKey.UPDATE_METADATA, UpdateMetadataRequest(
        server.config.broker_id, epoch, broker_epoch, server.cluster_id, [], [],
        deleted_topics=[topic], full=True)


def _stop_replica(server: BrokerServer, topic: str, epoch: int,
                  broker_epoch: int) -> tuple[int, Any]:
    """Would stop and delete the replica."""
    return ApiKey.STOP_REPLICA, StopReplicaRequest(
        server.config.broker_id, epoch, broker_epoch,
        [StopReplicaPartition(topic, 0, -1, delete=True)])


REQUESTS: dict[str, Callable[[BrokerServer, str, int, int], tuple[int, Any]]] = {
    "LeaderAndIsr": _leader_and_isr,
    "UpdateMetadata": _update_metadata,
    "StopReplica": _stop_replica,
}


@pytest.mark.parametrize("stale", ["controller_epoch", "broker_epoch"])
@pytest.mark.parametrize("name", list(REQUESTS))
async def test_controller_request_with_a_stale_epoch_is_refused_and_changes_nothing(
        broker: BrokerServer, caplog: pytest.LogCaptureFixture, name: str, stale: str) -> None:
    conn = await peer(broker)
    await create_topic(conn, "t")
    assert await produce(conn, "t", b"before") == 0
    epoch = await controller_epoch(broker)
    assert epoch >= 1 and broker.controller.ctx.epoch == epoch
    if stale == "controller_epoch":  # a controller that has been replaced
        args, expected = (epoch - 1, broker.broker_epoch), ErrorCode.STALE_CONTROLLER_EPOCH
    else:  # meant for an earlier registration of this broker
        args, expected = (epoch, broker.broker_epoch - 1), ErrorCode.STALE_BROKER_EPOCH
    api, request = REQUESTS[name](broker, "t", *args)
    with caplog.at_level(logging.WARNING, logger="klamm.broker.apis.cluster"):
        r = await conn.call(api, to_wire(request))
    assert r.body["error_code"] == expected, r.body
    assert str(args[0] if stale == "controller_epoch" else args[1]) in r.body["error_message"]
    assert r.body.get("partitions", ()) == ()  # refused as a whole, no per-partition work
    ignored = [rec for rec in caplog.records if rec.name == "klamm.broker.apis.cluster"]
    assert len(ignored) == 1 and ignored[0].getMessage().startswith(f"ignoring {name}:")
    await conn.close()
    await assert_still_served(broker, "t", {0: b"before"})


async def test_a_refused_request_from_a_newer_controller_epoch_does_not_fence_the_current_one(
        broker: BrokerServer) -> None:
    """Refused for its broker epoch, a request must not teach the broker its controller
    epoch: otherwise the real controller's next request would be refused as stale."""
    conn = await peer(broker)
    await create_topic(conn, "t")
    epoch = await controller_epoch(broker)
    me = broker.config.broker_id
    r = await conn.call(ApiKey.STOP_REPLICA, to_wire(StopReplicaRequest(
        me, epoch + 5, broker.broker_epoch - 1, [StopReplicaPartition("t", 0, -1, True)])))
    assert r.body["error_code"] == ErrorCode.STALE_BROKER_EPOCH
    r = await conn.call(ApiKey.STOP_REPLICA, to_wire(StopReplicaRequest(
        me, epoch, broker.broker_epoch, [])))
    assert from_wire(StopReplicaResponse, r.body) == StopReplicaResponse(0, None, [])
    await conn.close()
    await assert_still_served(broker, "t", {})


async def test_controller_requests_with_an_older_leader_epoch_are_refused_per_partition(
        broker: BrokerServer) -> None:
    """The current controller epoch, but a decision older than the one applied: LeaderAndIsr
    answers STALE_CONTROLLER_EPOCH for that partition, StopReplica FENCED_LEADER_EPOCH (as
    Kafka does)."""
    conn = await peer(broker)
    await create_topic(conn, "t")
    assert await produce(conn, "t", b"before") == 0
    await lead(conn, broker, "t", 3)
    epoch = await controller_epoch(broker)
    partition = broker.replicas.partitions[("t", 0)]
    r = await conn.call(ApiKey.LEADER_AND_ISR, to_wire(LeaderAndIsrRequest(
        0, epoch, broker.broker_epoch,
        [LeaderAndIsrPartition("t", 0, partition.topic_id, NO_LEADER, 2, [0], 9, [0])], [])))
    answer = from_wire(LeaderAndIsrResponse, r.body)
    assert answer.error_code == 0
    assert [(p.topic, p.partition, p.error_code) for p in answer.partitions] == [
        ("t", 0, ErrorCode.STALE_CONTROLLER_EPOCH)]
    assert partition.is_leader and partition.leader_epoch == 3
    r = await conn.call(ApiKey.STOP_REPLICA, to_wire(StopReplicaRequest(
        0, epoch, broker.broker_epoch, [StopReplicaPartition("t", 0, 2, delete=True)])))
    stopped = from_wire(StopReplicaResponse, r.body)
    assert stopped.error_code == 0
    assert [(p.topic, p.partition, p.error_code) for p in stopped.partitions] == [
        ("t", 0, ErrorCode.FENCED_LEADER_EPOCH)]
    assert broker.replicas.partitions.get(("t", 0)) is partition and partition.is_leader
    assert os.path.isdir(partition.log.dir)
    assert await produce(conn, "t", b"after") == 1
    await conn.close()


async def test_a_promotion_whose_epoch_cannot_be_made_durable_does_not_lead(
        broker: BrokerServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica leads only once its new leader epoch is on disk: when the disk refuses the
    fsync, the partition answers STORAGE_ERROR and stays a follower; the next try leads."""
    conn = await peer(broker)
    await create_topic(conn, "t")
    assert await produce(conn, "t", b"before") == 0
    me = broker.config.broker_id
    partition = broker.replicas.partitions[("t", 0)]
    epoch = await controller_epoch(broker)

    async def leader_and_isr(leader: int, leader_epoch: int) -> list[int]:
        r = await conn.call(ApiKey.LEADER_AND_ISR, to_wire(LeaderAndIsrRequest(
            me, epoch, broker.broker_epoch,
            [LeaderAndIsrPartition("t", 0, partition.topic_id, leader, leader_epoch, [me],
                                   leader_epoch, [me])], [endpoint(broker)])))
        return [p.error_code for p in from_wire(LeaderAndIsrResponse, r.body).partitions]

    assert await leader_and_isr(NO_LEADER, 2) == [0]
    assert not partition.is_leader
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(partition.log.dir):
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert await leader_and_isr(me, 3) == [ErrorCode.STORAGE_ERROR]
    assert not partition.is_leader
    assert partition.log.leader_epoch_cache.entries == [(0, 0)]
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert await leader_and_isr(me, 3) == [0]
    assert partition.is_leader and partition.leader_epoch == 3
    with open(partition.log.leader_epoch_cache.path) as fh:
        assert fh.read().split("\n")[2:4] == ["0 0", "3 1"]
    assert await produce(conn, "t", b"after") == 1
    await conn.close()


async def test_pipelined_controller_requests_are_applied_one_after_the_other(
        broker: BrokerServer) -> None:
    """An older promotion read just before a newer demotion (a paused broker reads both from
    its socket at once): the promotion waits off the loop for its epoch to be durable, and the
    demotion must not be judged and applied meanwhile. Interleaved, the demotion was applied
    first and the older promotion after it, and the broker led in a stale epoch for good."""
    conn = await peer(broker)
    await create_topic(conn, "t")
    me = broker.config.broker_id
    partition = broker.replicas.partitions[("t", 0)]
    epoch = await controller_epoch(broker)

    def leader_and_isr(leader: int, leader_epoch: int) -> dict[str, Any]:
        body: dict[str, Any] = to_wire(LeaderAndIsrRequest(
            me, epoch, broker.broker_epoch,
            [LeaderAndIsrPartition("t", 0, partition.topic_id, leader, leader_epoch, [me],
                                   leader_epoch, [me])], [endpoint(broker)]))
        return body

    r = await conn.call(ApiKey.LEADER_AND_ISR, leader_and_isr(NO_LEADER, 1))
    assert [p["error_code"] for p in r.body["partitions"]] == [0]
    assert not partition.is_leader
    older = conn.send(ApiKey.LEADER_AND_ISR, leader_and_isr(me, 2))  # stages its epoch
    newer = conn.send(ApiKey.LEADER_AND_ISR, leader_and_isr(NO_LEADER, 3))
    answers = {}
    for _ in range(2):
        response = await conn.receive()
        answers[response.correlation_id] = [p["error_code"] for p in
                                            response.body["partitions"]]
    assert answers == {older: [0], newer: [0]}  # both newer than what they found
    assert not partition.is_leader and partition.leader_epoch == 3
    assert partition.log.leader_epoch_cache.entries[-1] == (2, 0)
    await conn.close()


# ---------------------------------------------------------------------- malformed requests
def _valid_leader_and_isr(epoch: int, broker_epoch: int, topic_id: str) -> dict[str, Any]:
    """A well-formed LeaderAndIsr from a newer controller epoch that takes the leadership
    away: any part of it applied would show."""
    body: dict[str, Any] = to_wire(LeaderAndIsrRequest(
        0, epoch + 10, broker_epoch,
        [LeaderAndIsrPartition("t", 0, topic_id, NO_LEADER, 7, [0], 7, [0])], []))
    return body


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "missing field": (lambda b: _without(b, "partitions"),
                      "LeaderAndIsrRequest.partitions: missing"),
    "missing nested field": (
        lambda b: {**b, "partitions": [_without(b["partitions"][0], "leader_epoch")]},
        "LeaderAndIsrRequest.partitions[0].leader_epoch: missing"),
    "wrong type": (lambda b: {**b, "controller_epoch": str(b["controller_epoch"])},
                   "LeaderAndIsrRequest.controller_epoch: expected int, got str"),
    "bool for int": (lambda b: {**b, "broker_epoch": True},
                     "LeaderAndIsrRequest.broker_epoch: expected int, got bool"),
    "wrong nested type": (lambda b: {**b, "partitions": [{**b["partitions"][0], "isr": 0}]},
                          "LeaderAndIsrRequest.partitions[0].isr: expected a list, got int"),
    "garbage body": (lambda b: b"\xde\xad\xbe\xef",
                     "LeaderAndIsrRequest: expected a map, got bytes"),
    "list body": (lambda b: [1, 2, 3], "LeaderAndIsrRequest: expected a map, got tuple"),
    # Names become directories: one outside log.dir, or one that reloads as another topic.
    "topic escaping the log dir": (
        lambda b: {**b, "partitions": [b["partitions"][0], {**b["partitions"][0],
                                                            "topic": "../x"}]},
        "topic name '../x' must be"),
    "negative partition": (
        lambda b: {**b, "partitions": [{**b["partitions"][0], "partition": -1}]},
        "t: partition -1 is negative"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_leader_and_isr_is_answered_invalid_request_and_changes_nothing(
        broker: BrokerServer, caplog: pytest.LogCaptureFixture, case: str) -> None:
    conn = await peer(broker)
    await create_topic(conn, "t")
    assert await produce(conn, "t", b"before") == 0
    epoch = await controller_epoch(broker)
    topic_id = broker.replicas.partitions[("t", 0)].topic_id
    mangle, named = MALFORMED[case]
    body = mangle(_valid_leader_and_isr(epoch, broker.broker_epoch, topic_id))
    with caplog.at_level(logging.DEBUG, logger="klamm.broker"):
        r = await conn.call(ApiKey.LEADER_AND_ISR, body)
    assert r.body["error_code"] == ErrorCode.INVALID_REQUEST, r.body
    assert named in r.body["error_message"]
    outside = Path(broker.config.log_dir).parent
    assert not [p for p in outside.iterdir() if p.name.startswith("x-")]
    assert not [p for p in Path(broker.config.log_dir).iterdir() if p.name.startswith("t--")]
    logged = [rec.getMessage() for rec in caplog.records if rec.name.startswith("klamm.broker")]
    assert len(logged) == 1 and logged[0].startswith("invalid LEADER_AND_ISR request from ")
    assert named in logged[0] and "Traceback" not in caplog.text
    # the connection goes on: the same peer's next request is answered
    r = await conn.call(ApiKey.API_VERSIONS, {})
    assert r.body["error_code"] == 0
    # the newer controller epoch in the refused body was not learned: the current one works
    r = await conn.call(ApiKey.STOP_REPLICA, to_wire(StopReplicaRequest(
        0, epoch, broker.broker_epoch, [])))
    assert r.body["error_code"] == 0
    await conn.close()
    await assert_still_served(broker, "t", {0: b"before"})


@pytest.mark.parametrize("api, named", [
    (ApiKey.LEADER_AND_ISR, "LeaderAndIsrRequest.controller_id: missing"),
    (ApiKey.UPDATE_METADATA, "UpdateMetadataRequest.controller_id: missing"),
    (ApiKey.STOP_REPLICA, "StopReplicaRequest.controller_id: missing"),
    (ApiKey.CONTROLLED_SHUTDOWN, "ControlledShutdownRequest.broker_id: missing"),
    (ApiKey.ALTER_PARTITION, "AlterPartitionRequest.broker_id: missing"),
    (ApiKey.OFFSET_FOR_LEADER_EPOCH, "OffsetForLeaderEpochRequest.replica_id: missing"),
], ids=lambda v: v.name if isinstance(v, ApiKey) else "")
async def test_every_inter_broker_api_answers_an_empty_body_with_invalid_request(
        broker: BrokerServer, api: ApiKey, named: str) -> None:
    conn = await peer(broker)
    r = await conn.call(api, {})
    assert r.body["error_code"] == ErrorCode.INVALID_REQUEST, r.body
    assert named in r.body["error_message"]
    assert broker.controller.active and broker.controller.ctx.shutting_down == set()
    r = await conn.call(ApiKey.API_VERSIONS, {})
    assert r.body["error_code"] == 0
    await conn.close()


async def test_undecodable_frame_closes_only_that_connection(
        broker: BrokerServer, caplog: pytest.LogCaptureFixture) -> None:
    """Request metadata that is not msgpack at all cannot be answered (no correlation id):
    the broker closes that connection, logs one warning, and serves the next one."""
    conn = await peer(broker)
    await create_topic(conn, "t")
    assert await produce(conn, "t", b"before") == 0
    bystander = await peer(broker)
    meta = b"\xc1 never valid msgpack"
    with caplog.at_level(logging.WARNING, logger="klamm.broker.connection"):
        conn.send_raw(frame_prefix(len(meta), 0) + meta)
        assert await conn.closed_by_peer(timeout=5)
    warned = [rec for rec in caplog.records if rec.name == "klamm.broker.connection"]
    assert len(warned) == 1 and "bad request" in warned[0].getMessage()
    await conn.close()
    r = await bystander.call(ApiKey.API_VERSIONS, {})  # another connection is unaffected
    assert r.body["error_code"] == 0
    await bystander.close()
    await assert_still_served(broker, "t", {0: b"before"})


# ---------------------------------------------------------------------- two brokers
@pytest.fixture
async def pair(broker: BrokerServer, broker_factory: Callable[..., Any]
               ) -> tuple[BrokerServer, BrokerServer]:
    """Broker 0 (the controller, with the coordination service) and broker 1."""
    other = await broker_factory(broker_id=1, zookeeper_connect=broker.zk_hosts)
    await until(lambda: set(broker.metadata.brokers) == {0, 1}
                and set(other.metadata.brokers) == {0, 1})
    assert broker.controller.active
    return broker, other


async def test_follower_fetch_where_the_partition_is_not_led_or_not_hosted(
        pair: tuple[BrokerServer, BrokerServer]) -> None:
    zero, one = pair
    conn = await peer(zero)
    await create_assigned(conn, "both", [0, 1])  # led by 0, followed by 1
    await create_assigned(conn, "only0", [0])
    await conn.close()
    await until(lambda: ("both", 0) in one.replicas.partitions
                and one.metadata.partition("only0", 0) is not None)

    at_one = await peer(one, as_broker=0)
    r = await at_one.call(ApiKey.FETCH, follower_fetch(0, [
        ("both", 0, 0, 0), ("only0", 0, 0, 0), ("nosuch", 0, 0, -1)]))
    assert r.body["error_code"] == 0
    assert fetch_errors(r.body) == {
        ("both", 0): ErrorCode.NOT_LEADER_OR_FOLLOWER,  # hosted here as a follower
        ("only0", 0): ErrorCode.NOT_LEADER_OR_FOLLOWER,  # known, hosted elsewhere
        ("nosuch", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    # OffsetForLeaderEpoch is for the leader too
    r = await at_one.call(ApiKey.OFFSET_FOR_LEADER_EPOCH, to_wire(OffsetForLeaderEpochRequest(
        0, [EpochQuery("both", 0, 0, 0)])))
    answer = from_wire(OffsetForLeaderEpochResponse, r.body)
    assert [p.error_code for p in answer.partitions] == [ErrorCode.NOT_LEADER_OR_FOLLOWER]
    await at_one.close()

    # at the leader, a broker that is no replica is refused; the real follower is served
    at_zero = await peer(zero)
    offset = await produce(at_zero, "both", b"x")
    await at_zero.close()
    as_five = await peer(zero, as_broker=5)
    r = await as_five.call(ApiKey.FETCH, follower_fetch(5, [("both", 0, 0, 0)]))
    assert fetch_errors(r.body) == {("both", 0): ErrorCode.NOT_LEADER_OR_FOLLOWER}
    assert "broker 5 is not a follower" in r.body["topics"][0]["partitions"][0]["error_message"]
    await as_five.close()
    as_one = await peer(zero, as_broker=1)
    r = await as_one.call(ApiKey.FETCH, follower_fetch(1, [("both", 0, offset, 0)]))
    assert fetch_errors(r.body) == {("both", 0): 0}
    await as_one.close()
    # committed once broker 1's own fetcher has it too (it may be backing off on a loaded
    # machine: the high watermark moves at its next fetch)
    await until(lambda: zero.replicas.partitions[("both", 0)].high_watermark > offset,
                timeout=30)
    assert await read_all(zero.bootstrap, "both") == {0: b"x"}


async def test_follower_fetch_with_a_stale_or_newer_leader_epoch(broker: BrokerServer) -> None:
    conn = await peer(broker)
    await create_topic(conn, "t")
    assert await produce(conn, "t", b"zero") == 0
    await lead(conn, broker, "t", 3, replicas=[0, 7])  # broker 7 now follows, out of the ISR
    assert await produce(conn, "t", b"three") == 1
    partition = broker.replicas.partitions[("t", 0)]
    await conn.close()
    conn = await peer(broker, as_broker=7)

    r = await conn.call(ApiKey.FETCH, follower_fetch(7, [("t", 0, 0, 2)]))
    assert fetch_errors(r.body) == {("t", 0): ErrorCode.FENCED_LEADER_EPOCH}
    r = await conn.call(ApiKey.FETCH, follower_fetch(7, [("t", 0, 0, 4)]))
    assert fetch_errors(r.body) == {("t", 0): ErrorCode.UNKNOWN_LEADER_EPOCH}
    # neither counted as the follower's progress
    assert partition.followers[7].log_end_offset == -1
    # the right epoch is served, to the log end
    r = await conn.call(ApiKey.FETCH, follower_fetch(7, [("t", 0, 0, 3)]))
    part = r.body["topics"][0]["partitions"][0]
    assert part["error_code"] == 0 and part["log_end_offset"] == 2 and part["records_size"] > 0
    assert partition.followers[7].log_end_offset == 0
    await conn.close()
    # a fetch from a non-replica in a stale epoch is fenced first, like any other
    conn = await peer(broker, as_broker=9)
    r = await conn.call(ApiKey.FETCH, follower_fetch(9, [("t", 0, 0, 2)]))
    assert fetch_errors(r.body) == {("t", 0): ErrorCode.FENCED_LEADER_EPOCH}
    await conn.close()


async def test_follower_fetch_beyond_the_log_end_is_refused_and_is_no_progress(
        broker: BrokerServer) -> None:
    """A follower that claims more than the leader has gets OFFSET_OUT_OF_RANGE (it must
    truncate); its claim must not count as replication (Kafka updates a follower's state only
    from a read that succeeded), or the high watermark would pass records it does not have."""
    conn = await peer(broker)
    await create_topic(conn, "t")
    await lead(conn, broker, "t", 1, replicas=[0, 7], isr=[0, 7])
    partition = broker.replicas.partitions[("t", 0)]
    assert await produce(conn, "t", b"only on the leader") == 0
    assert partition.high_watermark == 0  # follower 7, in the ISR, has not fetched it
    await conn.close()
    conn = await peer(broker, as_broker=7)

    r = await conn.call(ApiKey.FETCH, follower_fetch(7, [("t", 0, 50, 1)]))
    part = r.body["topics"][0]["partitions"][0]
    assert part["error_code"] == ErrorCode.OFFSET_OUT_OF_RANGE
    assert part["log_end_offset"] == 1
    assert partition.followers[7].log_end_offset == -1
    assert partition.high_watermark == 0
    # a real fetch at its log end does count
    r = await conn.call(ApiKey.FETCH, follower_fetch(7, [("t", 0, 1, 1)]))
    assert fetch_errors(r.body) == {("t", 0): 0}
    assert partition.followers[7].log_end_offset == 1 and partition.high_watermark == 1
    await conn.close()


async def test_a_follower_ahead_of_its_leader_retries_soon_not_after_the_full_backoff(
        broker: BrokerServer, broker_factory: Callable[..., Any]) -> None:
    """A follower that hears of a leadership before its leader does gets UNKNOWN_LEADER_EPOCH
    (a new topic's followers often do). Its retries start at a few milliseconds and grow up to
    replica.fetch.backoff.ms, and the fetch of the follower's other partitions, parked at the
    leader meanwhile, ends when a retry is due: with a fixed backoff (here a minute), or the
    retry held behind a parked fetch (here half a minute), every acks=all produce waited
    for the whole of it."""
    zero = broker
    one = await broker_factory(broker_id=1, zookeeper_connect=zero.zk_hosts,
                               replica_fetch_backoff_ms=60_000,
                               replica_fetch_wait_max_ms=30_000)
    await until(lambda: set(zero.metadata.brokers) == {0, 1}
                and set(one.metadata.brokers) == {0, 1})
    conn = await peer(zero)
    await create_assigned(conn, "idle", [0, 1])  # followed from broker 0 too, never written
    await until(lambda: ("idle", 0) in one.replicas.partitions)
    await create_assigned(conn, "ahead", [0, 1])
    await until(lambda: ("ahead", 0) in one.replicas.partitions)
    leader = zero.replicas.partitions[("ahead", 0)]
    await until(lambda: leader.followers[1].log_end_offset == 0)  # broker 1 fetches in epoch 0

    # broker 1 is told of leader epoch 5 first: its fetches are refused (leader in epoch 0)
    at_one = await peer(one, as_broker=0)
    request = LeaderAndIsrRequest(
        0, await controller_epoch(zero), one.broker_epoch,
        [LeaderAndIsrPartition("ahead", 0, leader.topic_id, 0, 5, [0, 1], 5, [0, 1])],
        [endpoint(zero)])
    r = await at_one.call(ApiKey.LEADER_AND_ISR, to_wire(request))
    assert [p.error_code for p in from_wire(LeaderAndIsrResponse, r.body).partitions] == [0]
    await at_one.close()
    follower = one.replicas.partitions[("ahead", 0)]
    assert follower.leader_epoch == 5
    await until(lambda: one.replicas.fetchers.fetchers[0].states[("ahead", 0)].failures >= 2)

    # a moment later the leader learns it too; the follower is back well before a minute
    await lead(conn, zero, "ahead", 5, replicas=[0, 1], isr=[0, 1])
    offset = await produce(conn, "ahead", b"committed soon")
    await until(lambda: leader.high_watermark > offset, timeout=10)
    assert one.replicas.fetchers.fetchers[0].states[("ahead", 0)].failures == 0
    await conn.close()


def test_a_parked_follower_fetch_ends_when_a_backed_off_partition_is_due() -> None:
    assert parked_wait_ms(500, [], 100.0) == 500
    assert parked_wait_ms(500, [0.0, 99.0], 100.0) == 500  # retries due in the past
    assert parked_wait_ms(500, [100.0101, 100.2], 100.0) == 11  # rounded up, never early
    assert parked_wait_ms(500, [100.0000001], 100.0) == 1  # never 0: that means no wait


def test_follower_retry_delays_start_small_and_double_up_to_the_backoff() -> None:
    assert [retry_delay_ms(n, 1000) for n in range(1, 10)] == \
        [10, 20, 40, 80, 160, 320, 640, 1000, 1000]
    assert retry_delay_ms(10_000, 1000) == 1000  # no overflow for long outages
    assert retry_delay_ms(1, 0) == 0


# ---------------------------------------------------------------------- AlterPartition
async def test_alter_partition_that_lost_its_version_race_changes_nothing(
        pair: tuple[BrokerServer, BrokerServer]) -> None:
    zero, one = pair
    conn = await peer(zero)
    await create_assigned(conn, "isr", [0, 1])
    tp = ("isr", 0)
    start = await zero.store.get_state(tp)
    assert start is not None and start.leader == 0 and start.isr == (0, 1)

    async def alter(broker_id: int, broker_epoch: int, new_isr: list[int],
                    partition_epoch: int, leader_epoch: int = 0,
                    at: BrokerServer = zero) -> AlterPartitionResponse:
        sender = await peer(at, as_broker=broker_id)
        r = await sender.call(ApiKey.ALTER_PARTITION, to_wire(AlterPartitionRequest(
            broker_id, broker_epoch,
            [AlterPartitionItem("isr", 0, leader_epoch, new_isr, partition_epoch)])))
        await sender.close()
        return from_wire(AlterPartitionResponse, r.body)

    # the leader shrinks the ISR: accepted, the partition epoch moves on
    shrunk = await alter(0, zero.broker_epoch, [0], start.partition_epoch)
    assert [(p.error_code, p.isr) for p in shrunk.partitions] == [(0, [0])]
    after = await zero.store.get_state(tp)
    assert after is not None and after.isr == (0,)
    assert after.partition_epoch == start.partition_epoch + 1
    assert shrunk.partitions[0].partition_epoch == after.partition_epoch

    # a change based on the old partition epoch is refused and answers the current state
    late = await alter(0, zero.broker_epoch, [0, 1], start.partition_epoch)
    assert late.error_code == 0
    (result,) = late.partitions
    assert result.error_code == ErrorCode.INVALID_UPDATE_VERSION
    assert (result.leader, result.isr, result.partition_epoch) == (0, [0],
                                                                   after.partition_epoch)
    assert await zero.store.get_state(tp) == after

    # from a broker epoch that is not registered, or a broker that is not
    for broker_id, broker_epoch in ((0, zero.broker_epoch + 1), (0, -1), (9, one.broker_epoch)):
        refused = await alter(broker_id, broker_epoch, [0, 1], after.partition_epoch)
        assert [p.error_code for p in refused.partitions] == [ErrorCode.STALE_BROKER_EPOCH]
    # from the follower (a registered broker, but not the leader)
    refused = await alter(1, one.broker_epoch, [0, 1], after.partition_epoch)
    assert [p.error_code for p in refused.partitions] == [ErrorCode.NOT_LEADER_OR_FOLLOWER]
    # from the leader, in an older leader epoch
    refused = await alter(0, zero.broker_epoch, [0, 1], after.partition_epoch, leader_epoch=-1)
    assert [p.error_code for p in refused.partitions] == [ErrorCode.FENCED_LEADER_EPOCH]
    assert await zero.store.get_state(tp) == after

    # sent to a broker that is not the controller
    refused = await alter(0, zero.broker_epoch, [0, 1], after.partition_epoch, at=one)
    assert refused.error_code == ErrorCode.NOT_CONTROLLER and refused.partitions == []
    await conn.close()
    assert await zero.store.get_state(tp) == after


async def test_alter_partition_whose_state_write_loses_to_another_writer(
        pair: tuple[BrokerServer, BrokerServer]) -> None:
    """The controller judged the change on its picture, but the state node moved under it:
    the conditional write fails, the answer is INVALID_UPDATE_VERSION with the state read
    back, and the other writer's state stands."""
    zero, _ = pair
    conn = await peer(zero)
    await create_assigned(conn, "race", [0, 1])
    tp = ("race", 0)
    start = await zero.store.get_state(tp)
    assert start is not None and start.isr == (0, 1)
    ctx = zero.controller.ctx
    await until(lambda: ctx.states.get(tp) == start)
    # another writer (fenced by the same controller epoch) rewrites the state node
    written = await zero.store.write_states(
        [(tp, LeaderIsr(0, 0, (0, 1), ctx.epoch), start.partition_epoch)], ctx.epoch_version)
    theirs = written[tp]
    assert theirs.partition_epoch == start.partition_epoch + 1
    assert ctx.states[tp] == start  # the controller has not heard of it

    r = await conn.call(ApiKey.ALTER_PARTITION, to_wire(AlterPartitionRequest(
        0, zero.broker_epoch, [AlterPartitionItem("race", 0, 0, [0], start.partition_epoch)])))
    (result,) = from_wire(AlterPartitionResponse, r.body).partitions
    assert result.error_code == ErrorCode.INVALID_UPDATE_VERSION
    assert (result.isr, result.partition_epoch) == ([0, 1], theirs.partition_epoch)
    assert await zero.store.get_state(tp) == theirs
    assert ctx.states[tp] == theirs  # read back
    await conn.close()


# ---------------------------------------------------------------------- OffsetForLeaderEpoch
async def test_offset_for_leader_epoch_answers_where_each_epoch_ends(
        broker: BrokerServer) -> None:
    conn = await peer(broker)
    await create_topic(conn, "t")
    for value in (b"a", b"b", b"c"):  # epoch 0: offsets 0..2
        await produce(conn, "t", value)
    await lead(conn, broker, "t", 2)  # epoch 2: offsets 3..4
    for value in (b"d", b"e"):
        await produce(conn, "t", value)
    await lead(conn, broker, "t", 5)  # epoch 5: offset 5, log end 6
    await produce(conn, "t", b"f")
    plog = broker.replicas.partitions[("t", 0)].log
    assert plog.leader_epoch_cache.entries == [(0, 0), (2, 3), (5, 5)]
    await conn.close()
    conn = await peer(broker, as_broker=1)

    async def ask(*queries: tuple[int, int]) -> list[tuple[int, int, int]]:
        r = await conn.call(ApiKey.OFFSET_FOR_LEADER_EPOCH, to_wire(OffsetForLeaderEpochRequest(
            1, [EpochQuery("t", 0, epoch, current) for epoch, current in queries])))
        answer = from_wire(OffsetForLeaderEpochResponse, r.body)
        assert answer.error_code == 0
        return [(p.error_code, p.leader_epoch, p.end_offset) for p in answer.partitions]

    assert await ask((0, 5), (1, 5), (2, 5), (4, -1), (5, 5), (6, 5)) == [
        (0, 0, 3),  # a known epoch ends where the next begins
        (0, 0, 3),  # an epoch never led: the largest one below it
        (0, 2, 5),
        (0, 2, 5),  # unchecked current epoch
        (0, 5, 6),  # the latest ends at the log end
        (0, -1, -1)]  # newer than any: undefined
    fenced, unknown = await ask((2, 3), (2, 6))
    assert fenced == (ErrorCode.FENCED_LEADER_EPOCH, -1, -1)
    assert unknown == (ErrorCode.UNKNOWN_LEADER_EPOCH, -1, -1)
    r = await conn.call(ApiKey.OFFSET_FOR_LEADER_EPOCH, to_wire(OffsetForLeaderEpochRequest(
        1, [EpochQuery("nosuch", 0, 0)])))
    assert [p.error_code for p in from_wire(OffsetForLeaderEpochResponse, r.body).partitions] \
        == [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]

    # the log start passes epoch 0: an epoch older than every entry ends where the first
    # remaining one starts (Kafka: the requested epoch, the first entry's start offset)
    plog.delete_records_before(3)
    assert plog.leader_epoch_cache.entries == [(2, 3), (5, 5)]
    assert await ask((0, 5), (1, 5), (2, 5)) == [(0, 0, 3), (0, 1, 3), (0, 2, 5)]
    await conn.close()


# ---------------------------------------------------------------------- ControlledShutdown
async def test_controlled_shutdown_from_an_unregistered_broker_moves_nothing(
        pair: tuple[BrokerServer, BrokerServer]) -> None:
    zero, one = pair
    conn = await peer(zero)
    await create_assigned(conn, "cs", [1, 0])  # led by 1
    tp = ("cs", 0)
    start = await zero.store.get_state(tp)
    assert start is not None and start.leader == 1 and start.isr == (1, 0)
    await until(lambda: ("cs", 0) in one.replicas.partitions
                and one.replicas.partitions[tp].is_leader)

    async def shut(broker_id: int, broker_epoch: int,
                   at: BrokerServer = zero) -> ControlledShutdownResponse:
        sender = await peer(at, as_broker=broker_id)
        r = await sender.call(ApiKey.CONTROLLED_SHUTDOWN,
                              to_wire(ControlledShutdownRequest(broker_id, broker_epoch)))
        await sender.close()
        return from_wire(ControlledShutdownResponse, r.body)

    for broker_id, broker_epoch in ((1, one.broker_epoch + 1), (1, one.broker_epoch - 1),
                                    (1, -1), (9, one.broker_epoch)):
        answer = await shut(broker_id, broker_epoch)
        assert answer.error_code == ErrorCode.STALE_BROKER_EPOCH, (broker_id, broker_epoch)
        assert answer.remaining == []
    assert zero.controller.ctx.shutting_down == set()
    assert await zero.store.get_state(tp) == start
    assert one.replicas.partitions[tp].is_leader
    answer = await shut(1, one.broker_epoch, at=one)  # not the controller
    assert answer.error_code == ErrorCode.NOT_CONTROLLER
    at_one = await RawConnection.open(one.bootstrap)
    r = await at_one.call(ApiKey.FETCH, fetch_body("cs", 0, 0))  # still served by 1
    assert fetch_errors(r.body) == {tp: 0}
    await at_one.close()
    assert await zero.store.get_state(tp) == start

    # the same request with the registered epoch does move the leadership (the refusals
    # above were for the epoch, not the shape)
    answer = await shut(1, one.broker_epoch)
    assert answer.error_code == 0 and answer.remaining == []
    moved = await zero.store.get_state(tp)
    assert moved is not None and moved.leader == 0 and moved.leader_epoch == 1
    assert zero.controller.active and zero.controller.ctx.states[tp] == moved
    await conn.close()
