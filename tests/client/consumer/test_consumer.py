"""The consumer against a real broker: positions, long poll, resets, faults."""

from __future__ import annotations

import asyncio
import logging
import gc
import threading

import pytest

from klamm.broker.server import BrokerServer
from klamm.client import Admin, Consumer, NewTopic, Producer, TopicPartition
from klamm.client.consumer import (ConsumerStoppedError, ConsumerWakeup,
                                   GroupsNotAvailableError, NoOffsetForPartitionError)
from klamm.client.errors import ClientError, OffsetOutOfRangeError, UnknownTopicOrPartitionError
from klamm.client.structs import OffsetAndTimestamp

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


async def test_auto_offset_reset_policies(broker: BrokerServer,
                                          caplog: pytest.LogCaptureFixture) -> None:
    await fill(broker.bootstrap, 5)
    async with Consumer(bootstrap_servers=broker.bootstrap,
                        auto_offset_reset="earliest") as consumer:
        consumer.assign([TP])
        assert await read(consumer, 5) == [0, 1, 2, 3, 4]
        consumer.seek(TP, 100)  # beyond the log end: reset to earliest, read again
        with caplog.at_level(logging.WARNING, logger="klamm.client"):
            assert await read(consumer, 5) == [0, 1, 2, 3, 4]
        # the warning names the old and the new offset
        assert "position reset from 100 to 0 (auto.offset.reset=earliest)" in caplog.text
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


async def test_getmany_for_chosen_partitions_returns_only_those(broker: BrokerServer) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("two", 2)])
    async with Producer(bootstrap_servers=broker.bootstrap) as producer:
        for i in range(20):
            await producer.send("two", b"%d" % i, partition=i % 2)
    p0, p1 = TopicPartition("two", 0), TopicPartition("two", 1)
    async with Consumer(bootstrap_servers=broker.bootstrap,
                        auto_offset_reset="earliest") as consumer:
        consumer.assign([p0, p1])
        only1 = await consumer.getmany(p1, timeout_ms=5000)
        assert set(only1) == {p1} and [r.value for r in only1[p1]][:2] == [b"1", b"3"]
        rest = await consumer.getmany(p0, timeout_ms=5000)
        assert [r.offset for r in rest[p0]] == list(range(10))
        with pytest.raises(ValueError, match="not assigned"):
            await consumer.getmany(TopicPartition("two", 5))


async def test_offset_lookups_by_position_and_time(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 0)
    async with Producer(bootstrap_servers=broker.bootstrap) as producer:
        for i, ts in enumerate([1000, 2000, 3000]):
            await producer.send_and_wait("t", b"%d" % i, partition=0, timestamp=ts)
    async with Consumer(bootstrap_servers=broker.bootstrap) as consumer:
        assert await consumer.beginning_offsets([TP]) == {TP: 0}
        assert await consumer.end_offsets([TP]) == {TP: 3}
        found = await consumer.offsets_for_times({TP: 1500})
        assert found == {TP: OffsetAndTimestamp(1, 2000)}
        assert await consumer.offsets_for_times({TP: 9999}) == {TP: None}
        with pytest.raises(UnknownTopicOrPartitionError, match="create it"):
            await consumer.end_offsets([TopicPartition("missing", 0)])


async def test_prefetch_runs_while_the_application_holds_records_and_stays_bounded(
        broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 0)
    async with Producer(bootstrap_servers=broker.bootstrap, batch_size=4096) as producer:
        for _ in range(4000):
            await producer.send("t", b"x" * 200, partition=0)
    limit = 64 * 1024
    async with Consumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                        fetch_max_bytes=limit, max_partition_fetch_bytes=16 * 1024,
                        max_poll_records=10) as consumer:
        consumer.assign([TP])
        first = await consumer.getmany(timeout_ms=5000)
        assert len(first[TP]) == 10
        # Without another poll, the fetcher keeps fetching until the bound is reached.
        deadline = asyncio.get_running_loop().time() + 5
        while consumer.metrics()["buffered_bytes"] < limit - 16 * 1024:
            assert asyncio.get_running_loop().time() < deadline, "prefetch did not run"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # room for a (wrong) extra fetch to land
        assert consumer.metrics()["buffered_bytes"] <= limit + 4096  # + at most one batch
        got = [r.offset for r in first[TP]] + [r.offset for r in
                                               (await consumer.getmany(timeout_ms=0))[TP]]
        assert got == list(range(20))


async def test_paused_partition_keeps_buffered_records_for_resume(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 50)
    async with Consumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                        max_poll_records=5) as consumer:
        consumer.assign([TP])
        assert [r.offset for r in (await consumer.getmany(timeout_ms=5000))[TP]] == \
            [0, 1, 2, 3, 4]
        consumer.pause(TP)
        assert await consumer.getmany(timeout_ms=200) == {}
        assert await consumer.position(TP) == 5
        consumer.resume(TP)
        assert await read(consumer, 45) == list(range(5, 50))


async def test_seek_while_data_is_buffered_drops_the_stale_records(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 300)
    async with Consumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                        max_poll_records=10) as consumer:
        consumer.assign([TP])
        await consumer.getmany(timeout_ms=5000)
        consumer.seek(TP, 123)
        assert (await consumer.getmany(timeout_ms=5000))[TP][0].offset == 123
        await consumer.seek_to_beginning()
        assert (await consumer.getmany(timeout_ms=5000))[TP][0].offset == 0


async def test_no_position_with_reset_none_is_a_clear_error(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 3)
    async with Consumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="none") as consumer:
        consumer.assign([TP])
        with pytest.raises(NoOffsetForPartitionError, match="seek"):
            await consumer.getmany(timeout_ms=1000)
        consumer.seek(TP, 1)
        assert await read(consumer, 2) == [1, 2]


async def test_deserializers_from_config_are_applied(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 0)
    async with Producer(bootstrap_servers=broker.bootstrap, value_serializer="json",
                        key_serializer="str") as producer:
        await producer.send_and_wait("t", {"n": 1}, key="k", partition=0)
    async with Consumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                        **{"key.deserializer": "str", "value.deserializer": "json"}) as consumer:
        consumer.assign([TP])
        record = await consumer.getone()
        assert (record.key, record.value) == ("k", {"n": 1})


async def test_async_for_ends_when_the_consumer_is_stopped_from_another_task(
        broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 3)
    consumer = Consumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([TP])
    seen: list[int] = []

    async def iterate() -> None:
        async for record in consumer:
            seen.append(record.offset)

    task = asyncio.ensure_future(iterate())
    deadline = asyncio.get_running_loop().time() + 5
    while len(seen) < 3:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    await consumer.stop()
    await asyncio.wait_for(task, timeout=5)
    assert seen == [0, 1, 2]


async def test_polling_before_start_or_after_stop_says_what_to_do(broker: BrokerServer) -> None:
    consumer = Consumer(bootstrap_servers=broker.bootstrap)
    with pytest.raises(ClientError, match="start"):
        await consumer.getmany()
    await consumer.start()
    await consumer.stop()
    with pytest.raises(ConsumerStoppedError):
        await consumer.getmany()


async def test_commit_and_subscribe_point_to_manual_assignment(broker: BrokerServer) -> None:
    async with Consumer(bootstrap_servers=broker.bootstrap) as consumer:
        with pytest.raises(GroupsNotAvailableError, match="later version"):
            consumer.subscribe("t")
        with pytest.raises(GroupsNotAvailableError):
            await consumer.commit()
        with pytest.raises(GroupsNotAvailableError):
            await consumer.committed(TP)


async def test_the_garbage_collector_is_back_on_once_the_loop_runs(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 100)
    assert gc.isenabled()
    async with Consumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                        max_poll_records=10) as consumer:
        consumer.assign([TP])
        assert await consumer.getmany(timeout_ms=5000)
        await asyncio.sleep(0)  # the application yields to the loop: collector restored
        assert gc.isenabled()
        assert await consumer.getmany(timeout_ms=5000)
    assert gc.isenabled()  # stop() restores it too


async def test_async_for_getone_and_getmany_interleave_without_gaps(broker: BrokerServer) -> None:
    await fill(broker.bootstrap, 2000)
    async with Consumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                        max_partition_fetch_bytes=2048, max_poll_records=7) as consumer:
        consumer.assign([TP])
        seen: list[int] = []
        async for record in consumer:
            seen.append(record.offset)
            if len(seen) % 100 == 0:
                seen.append((await consumer.getone()).offset)
                seen += [r.offset for r in (await consumer.getmany(timeout_ms=5000))[TP]]
                assert await consumer.position(TP) == seen[-1] + 1
            if len(seen) >= 1990:
                break
        assert seen == list(range(len(seen)))


async def test_an_unreadable_fetch_answer_is_logged_backed_off_and_recovered_from(
        broker: BrokerServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from klamm.client.consumer.fetcher import Fetcher

    await fill(broker.bootstrap, 50)
    real_handle = Fetcher._handle
    failures = 0

    def broken_once(self: Fetcher, *args: object) -> bool:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise KeyError("error_code")  # as from a response missing a field
        return real_handle(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Fetcher, "_handle", broken_once)
    async with Consumer(bootstrap_servers=broker.bootstrap, reconnect_backoff_ms=50) as consumer:
        consumer.assign([TP])
        await consumer.seek_to_beginning(TP)
        assert await read(consumer, 50) == list(range(50))
        sent = consumer._fetcher.fetches_sent
    assert failures == 1
    assert "cannot handle the fetch response" in caplog.text
    assert sent < 20  # one failure, one backoff: not a tight loop of refetches
