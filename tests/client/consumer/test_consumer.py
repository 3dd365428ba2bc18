"""The consumer against a real broker: positions, long poll, resets, faults."""

from __future__ import annotations

import asyncio
import threading

import pytest

from klamm.broker.server import BrokerServer
from klamm.client import Admin, Consumer, NewTopic, Producer, TopicPartition
from klamm.client.consumer import ConsumerStoppedError, ConsumerWakeup, GroupsNotAvailableError
from klamm.client.errors import OffsetOutOfRangeError

TP = TopicPartition("t", 0)


async def fill(address: str, n: int, topic: str = "t", partitions: int = 1,
               **producer_config: object) -> None:
    async with Admin(bootstrap_servers=address) as admin:
        await admin.create_topics([NewTopic(topic, partitions)])
    async with Producer(bootstrap_servers=address, **producer_config) as producer:
        for i in range(n):
            await producer.send(topic, b"%d" % i, partition=0, headers=[("i", b"%d" % i)])


async def read(consumer: Consumer, n: int, timeout_ms: int = 5000) -> list[int]:
    out: list[int] = []
    while len(out) < n:
        batch = await consumer.getmany(timeout_ms=timeout_ms)
        assert batch, f"stalled after {len(out)} records"
        out += [int(r.value) for rs in batch.values() for r in rs]
    return out


async def test_assign_seek_and_read_everything_in_order(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 3000)
    async with Consumer(bootstrap_servers=broker.bootstrap, max_poll_records=700) as consumer:
        consumer.assign([TP])
        await consumer.seek_to_beginning(TP)
        batch = await consumer.getmany(timeout_ms=5000)
        assert 0 < len(batch[TP]) <= 700
        first = [int(r.value) for r in batch[TP]]
        rest = await read(consumer, 3000 - len(first))
        assert first + rest == list(range(3000))
        assert await consumer.position(TP) == 3000
        assert consumer.highwater(TP) == 3000 and consumer.lag(TP) == 0
        consumer.seek(TP, 2500)
        record = await consumer.getone()
        assert record.offset == 2500 and record.headers == (("i", b"2500"),)


async def test_async_for_and_seek_to_end(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 10)
    async with Consumer(bootstrap_servers=broker.bootstrap) as consumer:
        consumer.assign([TP])
        await consumer.seek_to_end(TP)
        assert await consumer.position(TP) == 10
        consumer.seek(TP, 5)
        seen = []
        async for record in consumer:
            seen.append(record.offset)
            if len(seen) == 5:
                break
        assert seen == [5, 6, 7, 8, 9]


async def test_long_poll_delivers_as_soon_as_a_record_is_produced(
        broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 0)
    async with Consumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=30_000) as consumer, \
            Producer(bootstrap_servers=broker.bootstrap, linger_ms=0) as producer:
        consumer.assign([TP])
        await consumer.seek_to_end(TP)
        poll = asyncio.ensure_future(consumer.getmany(timeout_ms=20_000))
        done, _ = await asyncio.wait([poll], timeout=0.3)
        assert not done
        await producer.send_and_wait("t", b"42")
        batch = await asyncio.wait_for(poll, timeout=5)  # far below fetch.max.wait.ms
        assert [r.value for r in batch[TP]] == [b"42"]


async def test_auto_offset_reset_policies(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 5)
    async with Consumer(bootstrap_servers=broker.bootstrap,
                        auto_offset_reset="earliest") as consumer:
        consumer.assign([TP])
        assert await read(consumer, 5) == [0, 1, 2, 3, 4]
        consumer.seek(TP, 100)  # beyond the log end: reset to earliest, read again
        assert await read(consumer, 5) == [0, 1, 2, 3, 4]
    async with Consumer(bootstrap_servers=broker.bootstrap) as consumer:
        consumer.assign([TP])
        assert await consumer.position(TP) == 5  # latest by default
    async with Consumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="none") as consumer:
        consumer.assign([TP])
        consumer.seek(TP, 100)
        with pytest.raises(OffsetOutOfRangeError):
            await consumer.getmany(timeout_ms=5000)


async def test_pause_and_resume(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 20)
    async with Consumer(bootstrap_servers=broker.bootstrap,
                        auto_offset_reset="earliest") as consumer:
        consumer.assign([TP])
        consumer.pause(TP)
        assert consumer.paused() == {TP}
        assert await consumer.getmany(timeout_ms=300) == {}
        consumer.resume(TP)
        assert await read(consumer, 20) == list(range(20))


async def test_stop_from_another_task_interrupts_a_waiting_poll(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 0)
    consumer = Consumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=10_000)
    await consumer.start()
    consumer.assign([TP])
    poll = asyncio.ensure_future(consumer.getmany(timeout_ms=30_000))
    done, _ = await asyncio.wait([poll], timeout=0.2)
    assert not done
    await consumer.stop()
    with pytest.raises(ConsumerStoppedError):
        await asyncio.wait_for(poll, timeout=5)


async def test_wakeup_from_another_thread_interrupts_once(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 0)
    async with Consumer(bootstrap_servers=broker.bootstrap) as consumer:
        consumer.assign([TP])
        await consumer.position(TP)
        timer = threading.Timer(0.2, consumer.wakeup)
        timer.start()
        with pytest.raises(ConsumerWakeup):
            await asyncio.wait_for(consumer.getmany(timeout_ms=30_000), timeout=10)
        assert await consumer.getmany(timeout_ms=100) == {}  # still usable afterwards


async def test_compressed_batches_are_decoded(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 500, compression_type="zstd")
    async with Consumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                        value_deserializer="str") as consumer:
        consumer.assign([TP])
        batch = await consumer.getmany(timeout_ms=5000)
        assert batch[TP][0].value == "0"


async def test_cut_connections_lose_and_duplicate_nothing(proxied_broker) -> None:
    broker, proxy = proxied_broker
    await fill(broker.bootstrap, 5000)
    async with Consumer(bootstrap_servers=proxy.address, auto_offset_reset="earliest",
                        max_poll_records=400, reconnect_backoff_ms=20,
                        max_partition_fetch_bytes=4096) as consumer:
        consumer.assign([TP])
        got: list[int] = []
        while len(got) < 5000:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, f"stalled after {len(got)}"
            got += [int(r.value) for r in batch[TP]]
            if len(got) % 1200 < 400:
                proxy.cut()
        assert got == list(range(5000))
        assert proxy.connections_accepted >= 3


async def test_broker_restart_on_same_port_and_data(broker_factory, tmp_path) -> None:
    first = await broker_factory(tmp_path / "data")
    port = first.port
    await fill(first.bootstrap, 100)
    async with Consumer(bootstrap_servers=first.bootstrap, auto_offset_reset="earliest",
                        reconnect_backoff_ms=20) as consumer:
        consumer.assign([TP])
        assert await read(consumer, 100) == list(range(100))
        await first.stop()
        second = await broker_factory(tmp_path / "data", port=port)
        async with Producer(bootstrap_servers=second.bootstrap) as producer:
            for i in range(100, 150):
                await producer.send("t", b"%d" % i, partition=0)
        assert await read(consumer, 50) == list(range(100, 150))


async def test_groups_are_refused_with_a_clear_message(broker: BrokerServer) -> None:
    with pytest.raises(GroupsNotAvailableError, match="assign"):
        Consumer("t", bootstrap_servers=broker.bootstrap)
