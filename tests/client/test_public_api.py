"""What a tool built on the client needs from it: a record future with the full Future
interface and its attempt count, the out-of-range partitions on the exception, every
exception in klamm.client.errors, and the key partitioner."""

from __future__ import annotations

import asyncio

import pytest

import klamm.client as client
from klamm.broker.server import BrokerServer
from klamm.client import Admin, Consumer, NewTopic, Producer, TopicPartition, errors
from klamm.client import partition_for_key


async def test_a_record_future_is_a_full_future_and_counts_its_attempts(
        broker: BrokerServer) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("f", 1)])
    async with Producer(bootstrap_servers=broker.bootstrap, linger_ms=50) as producer:
        fut = await producer.send("f", b"x")
        assert fut.attempts == 0 and not fut.done() and not fut.cancelled()
        assert fut.cancel() is False  # a queued record cannot be withdrawn
        assert fut.get_loop() is asyncio.get_running_loop()
        seen: list[object] = []

        def kept(f: object) -> None:
            seen.append(f)

        def dropped(f: object) -> None:
            seen.append("dropped")

        fut.add_done_callback(kept)
        fut.add_done_callback(dropped)
        assert fut.remove_done_callback(dropped) == 1
        md = await fut
        await asyncio.sleep(0)  # callbacks run on the loop's next turn, as asyncio's do
        assert seen == [fut] and fut.attempts == 1 and fut.result() == md


async def test_out_of_range_names_its_partitions(broker: BrokerServer) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("o", 1)])
    tp = TopicPartition("o", 0)
    async with Consumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="none") as c:
        c.assign([tp])
        c.seek(tp, 1000)
        with pytest.raises(errors.OffsetOutOfRangeError) as raised:
            await c.getmany(timeout_ms=5000)
    assert raised.value.partitions == {tp: 1000}


def test_every_client_exception_is_in_klamm_client_errors() -> None:
    for name in ("ConsumerStoppedError", "ConsumerWakeup", "GroupsNotAvailableError",
                 "NoOffsetForPartitionError", "RecordDeserializationError",
                 "SerializationError", "NotABrokerError", "ProducerClosedError"):
        assert isinstance(getattr(errors, name), type), name
    assert client.ConsumerStoppedError is errors.ConsumerStoppedError
    assert client.RecordDeserializationError is errors.RecordDeserializationError


async def test_the_key_partitioner_predicts_where_a_key_lands(broker: BrokerServer) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("k", 7)])
    async with Producer(bootstrap_servers=broker.bootstrap) as producer:
        for i in range(30):
            key = b"customer-%d" % i
            md = await producer.send_and_wait("k", b"v", key=key)
            assert md.partition == partition_for_key(key, 7)
