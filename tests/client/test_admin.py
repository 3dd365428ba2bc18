"""Admin client against a real broker."""

from __future__ import annotations

import pytest

from klamm.broker.server import BrokerServer
from klamm.client import Admin, NewTopic, Producer, TopicPartition
from klamm.client.errors import (InvalidConfigError, NoBrokersAvailable,
                                 TopicAlreadyExistsError, UnknownTopicOrPartitionError)


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
