"""Admin client against a real broker."""

from __future__ import annotations

import asyncio
import re

import pytest

from klamm.broker.server import BrokerServer
from klamm.client import Admin, NewPartitions, NewTopic, Producer, TopicPartition
from klamm.client.errors import (ElectionNotNeededError, InvalidConfigError,
                                 InvalidPartitionsError,
                                 InvalidReplicaAssignmentError, NoBrokersAvailable,
                                 TopicAlreadyExistsError, UnknownTopicOrPartitionError)
from klamm.protocol.api import ApiKey
from tests.support.polling import until
from tests.support.raw import RawConnection, fetch_records


async def test_topic_lifecycle(broker: BrokerServer) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("a", 3, configs={"retention.ms": 60_000})])
        assert await admin.list_topics() == ["a"]
        [desc] = await admin.describe_topics(["a"])
        assert [p.partition for p in desc.partitions] == [0, 1, 2]
        assert all(p.leader == broker.config.broker_id for p in desc.partitions)
        with pytest.raises(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic("a", 1)])
        await admin.delete_topics(["a"])
        assert await admin.list_topics() == []
        with pytest.raises(UnknownTopicOrPartitionError):
            await admin.describe_topics(["a"])
        with pytest.raises(UnknownTopicOrPartitionError):
            await admin.delete_topics(["a"])


async def test_partitions_added_to_a_topic_take_records_and_keep_the_old_ones(
        broker: BrokerServer) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin, \
            Producer(bootstrap_servers=broker.bootstrap, metadata_max_age_ms=200,
                     linger_ms=0) as producer:
        await admin.create_topics([NewTopic("g", 2)])
        for p in (0, 1):
            await producer.send_and_wait("g", b"before-%d" % p, partition=p)
        await admin.create_partitions({"g": NewPartitions(5)})
        [desc] = await admin.describe_topics(["g"])
        assert [(p.partition, p.leader, p.replicas) for p in desc.partitions] == [
            (p, broker.config.broker_id, (broker.config.broker_id,)) for p in range(5)]
        # an explicit new partition: the producer refreshes its metadata and sends
        md = await producer.send_and_wait("g", b"new", partition=4)
        assert (md.partition, md.offset) == (4, 0)
        # records without a key spread over the new partitions too once the metadata is
        # refreshed (metadata.max.age.ms), without any error first
        await admin.create_partitions({"g": NewPartitions(7)})

        async def spread() -> bool:
            md = await producer.send_and_wait("g", b"x")
            return md.partition >= 5
        await until(spread, 30)
    for p in (0, 1):
        assert [r.value for r in await fetch_records(broker.bootstrap, "g", p)][0] == \
            b"before-%d" % p


async def test_adding_partitions_refuses_what_kafka_refuses(broker: BrokerServer) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("r", 3)])
        for count, error, why in [
                (3, InvalidPartitionsError, "has 3 partition.s.; partitions can only be "
                                            "added, so the new count must be above 3, got 3"),
                (2, InvalidPartitionsError, "above 3, got 2")]:
            with pytest.raises(error, match=why):
                await admin.create_partitions({"r": NewPartitions(count)})
        for missing in ("nosuch", "", "r/partitions/0"):  # no node path is ever built
            with pytest.raises(UnknownTopicOrPartitionError, match=f"'{missing}' does not"):
                await admin.create_partitions({missing: NewPartitions(4)})
        with pytest.raises(InvalidReplicaAssignmentError, match="needs 2 replica list"):
            await admin.create_partitions({"r": NewPartitions(5, [[1]])})
        with pytest.raises(InvalidReplicaAssignmentError, match=r"broker\(s\) \[9\]"):
            await admin.create_partitions({"r": NewPartitions(4, [[9]])})
        with pytest.raises(InvalidReplicaAssignmentError, match="have 1 replica.s. each"):
            await admin.create_partitions({"r": NewPartitions(4, [[1, 2]])})
        await admin.create_partitions({"r": NewPartitions(9)}, validate_only=True)
        assert len((await admin.describe_topics(["r"]))[0].partitions) == 3
        with pytest.raises(InvalidReplicaAssignmentError, match="got 0"):
            await admin.create_partitions({"r": NewPartitions(4, [[]])})
    conn = await RawConnection.open(broker.bootstrap)
    try:
        twice = await conn.call(ApiKey.CREATE_PARTITIONS, {
            "topics": [{"topic": "r", "count": 4}, {"topic": "r", "count": 5}],
            "timeout_ms": 5000, "validate_only": False})
        assert [t["error_message"] for t in twice.body["topics"]] == [
            "topic 'r' is named more than once in the request"] * 2
        bad = await conn.call(ApiKey.CREATE_PARTITIONS, {
            "topics": [{"topic": "r", "count": 4, "assignment": [["x"]]}]})
        assert "list of broker id lists" in bad.body["error_message"]
    finally:
        await conn.close()
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        assert len((await admin.describe_topics(["r"]))[0].partitions) == 3


async def test_two_growths_of_one_topic_at_once_lose_neither(broker: BrokerServer) -> None:
    """Both read the assignment, both write it back conditionally: the loser reads again,
    so the topic ends with the larger count and every partition led."""
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("race", 1)])
        results = await asyncio.gather(admin.create_partitions({"race": NewPartitions(4)}),
                                       admin.create_partitions({"race": NewPartitions(6)}),
                                       return_exceptions=True)
        assert results[1] is None
        assert results[0] is None or isinstance(results[0], InvalidPartitionsError)
        [desc] = await admin.describe_topics(["race"])
        assert [p.partition for p in desc.partitions] == list(range(6))
        assert all(p.leader == broker.config.broker_id for p in desc.partitions)


async def test_elections_on_demand_report_each_partition(broker: BrokerServer) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("el", 2)])
        found = await admin.elect_leaders("preferred", [TopicPartition("el", 0),
                                                        TopicPartition("el", 7)])
        assert isinstance(found[TopicPartition("el", 0)], ElectionNotNeededError)
        assert isinstance(found[TopicPartition("el", 7)], UnknownTopicOrPartitionError)
        assert await admin.elect_leaders("preferred") == {}  # every partition: none needed
        assert await admin.elect_leaders("unclean") == {}
        with pytest.raises(ValueError, match="'preferred' or 'unclean'"):
            await admin.elect_leaders("random")


async def test_reassignments_refuse_what_cannot_be_done_and_a_no_op_move_completes(
        broker: BrokerServer) -> None:
    me = broker.config.broker_id
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("mv", 1)])
        for target, error, why in [
                ({TopicPartition("mv", 3): [me]}, UnknownTopicOrPartitionError, "mv-3 does"),
                ({TopicPartition("mv", 0): [me, me]}, InvalidReplicaAssignmentError, "once"),
                ({TopicPartition("mv", 0): []}, InvalidReplicaAssignmentError, "at least"),
                ({TopicPartition("mv", 0): [me, 9]}, InvalidReplicaAssignmentError,
                 r"broker\(s\) \[9\] are not registered")]:
            [found] = (await admin.alter_partition_reassignments(target)).values()
            assert isinstance(found, error) and re.search(why, str(found)), found
        assert await admin.alter_partition_reassignments({TopicPartition("mv", 0): [me]}) == {
            TopicPartition("mv", 0): None}

        async def done() -> bool:
            return await admin.list_partition_reassignments() == {}
        await until(done, 10)
        [desc] = await admin.describe_topics(["mv"])
        assert desc.partitions[0].replicas == (me,) and desc.partitions[0].leader == me
    conn = await RawConnection.open(broker.bootstrap)
    try:
        cancel = await conn.call(ApiKey.ALTER_PARTITION_REASSIGNMENTS, {
            "topics": [{"topic": "mv", "partitions": [{"partition": 0, "replicas": None}]}]})
        [entry] = cancel.body["topics"][0]["partitions"]
        assert "cancelling a reassignment is not supported" in entry["error_message"]
    finally:
        await conn.close()


async def test_configs_describe_and_alter(broker: BrokerServer) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("c", 1)])
        await admin.alter_configs("c", {"cleanup.policy": "compact"})
        configs = await admin.describe_configs("c")
        assert configs["cleanup.policy"].value == "compact"
        assert configs["cleanup.policy"].source == "topic"
        with pytest.raises(InvalidConfigError, match="retention.bytez"):
            await admin.alter_configs("c", {"retention.bytez": 1})
        await admin.alter_configs("c", {"cleanup.policy": None})
        assert (await admin.describe_configs("c"))["cleanup.policy"].source == "default"


async def test_list_offsets_earliest_latest_and_time(broker: BrokerServer) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("o", 1)])
        async with Producer(bootstrap_servers=broker.bootstrap) as producer:
            for ts in (1000, 2000, 3000):
                await producer.send_and_wait("o", b"x", timestamp=ts)
        tp = TopicPartition("o", 0)
        assert (await admin.list_offsets({tp: "earliest"}))[tp][0] == 0
        assert (await admin.list_offsets({tp: "latest"}))[tp][0] == 3
        assert (await admin.list_offsets({tp: 1500}))[tp][0] == 1
        assert (await admin.list_offsets({tp: 9000}))[tp][0] == -1
        cluster = await admin.describe_cluster()
        assert [(b.node_id, b.port, b.live) for b in cluster.brokers] == [
            (broker.config.broker_id, broker.port, True)]
        assert cluster.controller_id == broker.config.broker_id
        assert cluster.controller_epoch >= 1 and cluster.cluster_id == broker.cluster_id


async def test_unreachable_bootstrap_says_what_to_check() -> None:
    admin = Admin(bootstrap_servers="127.0.0.1:1", request_timeout_ms=500)
    with pytest.raises(NoBrokersAvailable, match="is a broker running there"):
        await admin.start()
