"""Inter-broker authentication: requests only brokers send are served only on a connection
that proved, with the cluster's peer secret, to be the broker they claim to come from.

Before, anyone who could reach a broker's port could send it a LeaderAndIsr from "controller
99, epoch 2**63-1" (the broker then refused the real controller until restarted), a StopReplica
that deleted its replica, an UpdateMetadata that emptied its metadata, a ControlledShutdown
in another broker's name, or follower fetches in a follower's name that let acks=all records
be acknowledged which no follower had.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from klamm.broker.peer_auth import PeerAuthFailed, PeerIdentity, open_peer
from klamm.broker.server import BrokerServer
from klamm.protocol.api import ApiKey
from klamm.protocol.cluster_api import (AlterPartitionItem, AlterPartitionRequest,
                                        ControlledShutdownRequest, LeaderAndIsrPartition,
                                        LeaderAndIsrRequest, StopReplicaPartition,
                                        StopReplicaRequest, UpdateMetadataRequest)
from klamm.protocol.errors import ErrorCode
from klamm.protocol.frame import FrameDecoder, encode_response, parse_request
from klamm.protocol.peer_auth import (ANSWERER, NONCE_BYTES, OPENER, PeerAuthRequest,
                                      new_nonce, proof, sender_claim)
from klamm.protocol.wire import to_wire
from tests.support.polling import until
from tests.support.raw import (RawConnection, batch, create_topic, fetch_body, open_as_broker,
                               produce_body, read_all)

SECRET = b"s" * 64


# ---------------------------------------------------------------------- pure rules
def test_each_proof_is_bound_to_its_role_connection_and_cluster() -> None:
    a, b = new_nonce(), new_nonce()
    base = proof(SECRET, OPENER, "c1", 1, 2, a, b)
    assert len(a) == NONCE_BYTES and a != b
    assert base == proof(SECRET, OPENER, "c1", 1, 2, a, b)
    for other in (proof(SECRET, ANSWERER, "c1", 1, 2, a, b),  # the answer is not the question
                  proof(SECRET, OPENER, "c2", 1, 2, a, b),  # another cluster
                  proof(SECRET, OPENER, "c1", 3, 2, a, b),  # another opener
                  proof(SECRET, OPENER, "c1", 1, 2, a, new_nonce()),  # another connection
                  proof(b"t" * 64, OPENER, "c1", 1, 2, a, b)):  # another secret
        assert other != base


def test_which_requests_only_a_broker_may_send() -> None:
    assert sender_claim(ApiKey.LEADER_AND_ISR, {"controller_id": 3}) == (True, 3)
    assert sender_claim(ApiKey.STOP_REPLICA, {}) == (True, None)  # malformed: still a broker's
    assert sender_claim(ApiKey.UPDATE_METADATA, [1]) == (True, None)
    assert sender_claim(ApiKey.CONTROLLED_SHUTDOWN, {"broker_id": True}) == (True, None)
    assert sender_claim(ApiKey.ALTER_PARTITION, {"broker_id": 2}) == (True, 2)
    assert sender_claim(ApiKey.FETCH, {"replica_id": 1}) == (True, 1)  # a follower's
    assert sender_claim(ApiKey.FETCH, {"replica_id": -1}) == (False, None)  # a consumer's
    assert sender_claim(ApiKey.OFFSET_FOR_LEADER_EPOCH, {"replica_id": 0}) == (True, 0)
    assert sender_claim(ApiKey.PRODUCE, {"controller_id": 0}) == (False, None)


# ---------------------------------------------------------------------- the serving side
def _controller_requests(server: BrokerServer, epoch: int) -> list[tuple[int, Any]]:
    me = server.config.broker_id
    partition = server.replicas.partitions[("t", 0)]
    return [
        (ApiKey.LEADER_AND_ISR, LeaderAndIsrRequest(
            99, epoch, server.broker_epoch,
            [LeaderAndIsrPartition("t", 0, partition.topic_id, 99, 7, [99], 7, [99])], [])),
        (ApiKey.UPDATE_METADATA, UpdateMetadataRequest(
            99, epoch, server.broker_epoch, server.cluster_id, [], [], deleted_topics=["t"],
            full=True)),
        (ApiKey.STOP_REPLICA, StopReplicaRequest(
            99, epoch, server.broker_epoch, [StopReplicaPartition("t", 0, -1, delete=True)])),
        (ApiKey.CONTROLLED_SHUTDOWN, ControlledShutdownRequest(me, server.broker_epoch)),
        (ApiKey.ALTER_PARTITION, AlterPartitionRequest(me, server.broker_epoch, [
            AlterPartitionItem("t", 0, 0, [me], partition.partition_epoch)])),
    ]


async def test_inter_broker_requests_from_an_unauthenticated_connection_change_nothing(
        broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    data = batch([b"before"])
    r = await conn.call(ApiKey.PRODUCE, produce_body("t", 0, len(data), acks=-1), data)
    assert r.body["topics"][0]["partitions"][0]["error_code"] == 0
    real_epoch = broker.controller.ctx.epoch
    for epoch in (real_epoch, real_epoch + 100, 2**63 - 1, 2**64 - 1):
        for api, request in _controller_requests(broker, epoch):
            r = await conn.call(api, to_wire(request))
            assert r.body["error_code"] == ErrorCode.CLUSTER_AUTHORIZATION_FAILED, (api, r.body)
            assert "inter-broker request" in r.body["error_message"]
            assert broker.cluster_id in r.body["error_message"]
    # a follower's fetch in broker 5's name: no data, and no follower progress recorded
    r = await conn.call(ApiKey.FETCH, {**fetch_body("t", 0, 0), "replica_id": 5})
    assert r.body["error_code"] == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    # a consumer's fetch is served as ever
    r = await conn.call(ApiKey.FETCH, fetch_body("t", 0, 0))
    assert r.body["topics"][0]["partitions"][0]["error_code"] == 0
    await conn.close()

    # nothing moved: the real controller's epoch still rules, the replica leads and serves
    assert broker.controller.ctx.epoch == real_epoch
    assert broker.metadata.controller is not None
    assert broker.metadata.controller.node_id == broker.config.broker_id
    partition = broker.replicas.partitions[("t", 0)]
    assert partition.is_leader and partition.leader_epoch == 0
    assert broker.controller.ctx.shutting_down == set()
    assert await read_all(broker.bootstrap, "t") == {0: b"before"}
    # and the real controller is still obeyed: a new topic gets its leader here
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "after")
    await conn.close()
    await until(lambda: ("after", 0) in broker.replicas.partitions
                and broker.replicas.partitions[("after", 0)].is_leader)


async def test_a_wrong_secret_or_a_proof_without_its_challenge_authenticates_nothing(
        broker: BrokerServer) -> None:
    me = broker.peer_identity
    conn = await RawConnection.open(broker.bootstrap)
    # a proof with no step 1 before it
    r = await conn.call(ApiKey.SASL_AUTHENTICATE,
                        to_wire(PeerAuthRequest(0, proof=b"x" * 32)))
    assert r.body["error_code"] == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert "send step 1" in r.body["error_message"]
    # step 1, then a proof made with another secret
    ours = new_nonce()
    r = await conn.call(ApiKey.SASL_AUTHENTICATE, to_wire(PeerAuthRequest(0, nonce=ours)))
    assert r.body["error_code"] == 0 and r.body["broker_id"] == me.broker_id
    theirs = r.body["nonce"]
    forged = proof(b"guess" * 8, OPENER, me.cluster_id, 0, me.broker_id, ours, theirs)
    r = await conn.call(ApiKey.SASL_AUTHENTICATE, to_wire(PeerAuthRequest(0, proof=forged)))
    assert r.body["error_code"] == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert "does not match the cluster's peer secret" in r.body["error_message"]
    # the challenge is used up: the right proof for it now comes too late
    right = proof(me.secret, OPENER, me.cluster_id, 0, me.broker_id, ours, theirs)
    r = await conn.call(ApiKey.SASL_AUTHENTICATE, to_wire(PeerAuthRequest(0, proof=right)))
    assert r.body["error_code"] == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert "send step 1" in r.body["error_message"]
    # a short nonce is malformed
    r = await conn.call(ApiKey.SASL_AUTHENTICATE, to_wire(PeerAuthRequest(0, nonce=b"1")))
    assert r.body["error_code"] == ErrorCode.INVALID_REQUEST
    r = await conn.call(ApiKey.STOP_REPLICA, to_wire(StopReplicaRequest(
        0, broker.controller.ctx.epoch, broker.broker_epoch, [])))
    assert r.body["error_code"] == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    await conn.close()


async def test_a_proven_broker_cannot_speak_in_another_brokers_name(
        broker: BrokerServer) -> None:
    me = broker.peer_identity
    conn = await open_as_broker(broker.bootstrap, me.cluster_id, me.secret, 5)
    await create_topic(conn, "t")
    r = await conn.call(ApiKey.STOP_REPLICA, to_wire(StopReplicaRequest(
        0, broker.controller.ctx.epoch, broker.broker_epoch,
        [StopReplicaPartition("t", 0, -1, delete=True)])))
    assert r.body["error_code"] == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    assert "this connection is broker 5's; it cannot send STOP_REPLICA as broker 0" \
        in r.body["error_message"]
    r = await conn.call(ApiKey.FETCH, {**fetch_body("t", 0, 0), "replica_id": 0})
    assert r.body["error_code"] == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    # in its own name it is served (5 is no replica of t-0: refused for that, per partition)
    r = await conn.call(ApiKey.FETCH, {**fetch_body("t", 0, 0), "replica_id": 5})
    assert r.body["error_code"] == 0
    assert r.body["topics"][0]["partitions"][0]["error_code"] == \
        ErrorCode.NOT_LEADER_OR_FOLLOWER
    await conn.close()
    assert ("t", 0) in broker.replicas.partitions


# ---------------------------------------------------------------------- the opening side
async def test_the_opener_checks_who_answers(broker: BrokerServer,
                                             broker_factory: Callable[..., Any]) -> None:
    me = broker.peer_identity
    host, port = broker.config.host, broker.port
    conn = await open_peer(host, port, PeerIdentity(me.cluster_id, 3, me.secret), expect=0,
                           client_id="test", timeout=5)
    conn.close()
    with pytest.raises(PeerAuthFailed, match="answers as broker 0, not as broker 4"):
        await open_peer(host, port, me, expect=4, client_id="test", timeout=5)
    # a broker of another cluster, with the same id, at the address we were given
    other = await broker_factory(broker_id=0)
    assert other.cluster_id != me.cluster_id
    with pytest.raises(PeerAuthFailed, match="refused to authenticate broker 0: "
                                             "SASL_AUTHENTICATION_FAILED"):
        await open_peer(other.config.host, other.port, me, expect=0, client_id="test",
                        timeout=5)


@pytest.fixture
async def impostor() -> AsyncIterator[int]:
    """A server that speaks the protocol, answers ApiVersions and both authentication steps
    as broker 0 and accepts any proof, but holds no secret: its own proof is made up."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            for meta, payload in decoder.feed(data):
                request = parse_request(meta, payload)
                if request.header.api_key == ApiKey.API_VERSIONS:
                    body: dict[str, Any] = {"error_code": 0, "api_keys": [[36, 0, 0]]}
                elif "nonce" in request.body and request.body["nonce"]:
                    body = {"error_code": 0, "broker_id": 0, "nonce": b"n" * NONCE_BYTES}
                else:
                    body = {"error_code": 0, "proof": b"p" * 32}
                writer.write(encode_response(request.header.correlation_id, body))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_an_answerer_without_the_secret_is_not_taken_for_a_broker(impostor: int) -> None:
    identity = PeerIdentity("cluster", 1, SECRET)
    with pytest.raises(PeerAuthFailed, match="claims to be broker 0 of cluster cluster but "
                                             "could not prove it"):
        await open_peer("127.0.0.1", impostor, identity, expect=0, client_id="test",
                        timeout=5)
