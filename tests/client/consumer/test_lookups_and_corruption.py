"""Topic lookups through the consumer, and a batch corrupted on disk reaching it."""

from __future__ import annotations

from pathlib import Path

import pytest

from klamm.broker.server import BrokerServer
from klamm.client import Admin, Consumer, NewTopic, Producer, TopicPartition
from klamm.client.errors import CorruptMessageError


async def test_partitions_and_topics_come_from_fresh_metadata(broker: BrokerServer) -> None:
    async with Consumer(bootstrap_servers=broker.bootstrap) as consumer:
        assert await consumer.partitions_for_topic("later") is None
        async with Admin(bootstrap_servers=broker.bootstrap) as admin:
            await admin.create_topics([NewTopic("later", 3)])
        # Created after the consumer loaded its metadata: found by a refresh.
        assert await consumer.partitions_for_topic("later") == {0, 1, 2}
        assert "later" in await consumer.topics()
        assert await consumer.partitions_for_topic("still-missing") is None


async def test_a_batch_corrupted_on_disk_stops_the_partition_at_its_offset(
        broker_factory, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server: BrokerServer = await broker_factory(data_dir)
    async with Admin(bootstrap_servers=server.bootstrap) as admin:
        await admin.create_topics([NewTopic("c", 1)])
    async with Producer(bootstrap_servers=server.bootstrap, linger_ms=0) as producer:
        for i in range(3):  # one batch each: offsets 0, 1, 2
            await producer.send_and_wait("c", b"value-%d" % i, partition=0)
    segment = next((data_dir / "c-0").glob("*.log"))
    raw = bytearray(segment.read_bytes())
    at = raw.index(b"value-1")
    raw[at] ^= 0xFF  # flip a byte inside the second batch's records; its CRC no longer holds
    with open(segment, "r+b") as f:
        f.seek(at)
        f.write(raw[at:at + 1])
    tp = TopicPartition("c", 0)
    async with Consumer(bootstrap_servers=server.bootstrap,
                        auto_offset_reset="earliest") as consumer:
        consumer.assign([tp])
        batch = await consumer.getmany(timeout_ms=5000)
        assert [r.value for r in batch[tp]] == [b"value-0"]  # records before it arrive
        with pytest.raises(CorruptMessageError, match="c-0 batch at offset 1"):
            await consumer.getmany(timeout_ms=5000)
        assert await consumer.position(tp) == 1  # nothing skipped silently
        consumer.seek(tp, 2)  # the documented way past it
        batch = await consumer.getmany(timeout_ms=5000)
        assert [r.value for r in batch[tp]] == [b"value-2"]
