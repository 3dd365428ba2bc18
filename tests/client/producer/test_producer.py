"""The producer against a real broker: delivery, ordering, errors before and after send."""

from __future__ import annotations

import asyncio
import gc

import pytest

from klamm.broker.server import BrokerServer
from klamm.client import Admin, NewTopic, Producer, RecordMetadata
from klamm.client.errors import (BufferExhaustedError, InvalidTopicError, KlammTimeoutError,
                                 ProducerClosedError,
                                 MessageSizeTooLargeError, UnknownTopicOrPartitionError)
from klamm.client.serializers import SerializationError
from tests.support.polling import until
from tests.support.raw import fetch_records


async def make_topic(broker: BrokerServer, name: str, partitions: int = 1) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic(name, partitions)])


async def test_send_returns_metadata_with_dense_offsets(broker: BrokerServer) -> None:
    await make_topic(broker, "t")
    async with Producer(bootstrap_servers=broker.bootstrap, acks=1) as producer:
        futures = [await producer.send("t", b"v%d" % i, partition=0) for i in range(500)]
        mds = [await f for f in futures]
    assert [md.offset for md in mds] == list(range(500))
    assert all(isinstance(md, RecordMetadata) and md.topic == "t" for md in mds)
    stored = await fetch_records(broker.bootstrap, "t")
    assert [r.value for r in stored] == [b"v%d" % i for i in range(500)]


async def test_records_with_one_key_keep_their_order_on_one_partition(
        broker: BrokerServer) -> None:
    await make_topic(broker, "orders", partitions=4)
    async with Producer(bootstrap_servers=broker.bootstrap, linger_ms=1) as producer:
        futs = [await producer.send("orders", b"%d" % i, key=b"key-%d" % (i % 10))
                for i in range(1000)]
        mds = [await f for f in futs]
    by_key: dict[bytes, set[int]] = {}
    for i, md in enumerate(mds):
        by_key.setdefault(b"key-%d" % (i % 10), set()).add(md.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    for p in range(4):
        for key in {r.key for r in await fetch_records(broker.bootstrap, "orders", p)}:
            values = [int(r.value) for r in await fetch_records(broker.bootstrap, "orders", p)
                      if r.key == key]
            assert values == sorted(values)


@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd"])
async def test_compressed_batches_round_trip(broker: BrokerServer, codec: str) -> None:
    await make_topic(broker, "c")
    async with Producer(bootstrap_servers=broker.bootstrap, compression_type=codec) as producer:
        for i in range(300):
            await producer.send("c", b"compressible " * 20, key=b"%d" % i,
                                headers=[("h", b"%d" % i)])
    stored = await fetch_records(broker.bootstrap, "c")
    assert len(stored) == 300 and stored[7].headers == (("h", b"7"),)
    assert stored[299].key == b"299"


@pytest.mark.parametrize("acks", [0, 1, "all"])
async def test_every_acks_setting_stores_the_records(broker: BrokerServer, acks: object) -> None:
    await make_topic(broker, "a")
    async with Producer(bootstrap_servers=broker.bootstrap, acks=acks) as producer:
        md = await producer.send_and_wait("a", b"x")
        assert md.offset == (-1 if acks == 0 else 0)
        await producer.send("a", b"y")
    assert [r.value for r in await fetch_records(broker.bootstrap, "a")] == [b"x", b"y"]


async def test_errors_before_send_are_raised_by_send_and_queue_nothing(
        broker: BrokerServer) -> None:
    await make_topic(broker, "e")
    async with Producer(bootstrap_servers=broker.bootstrap, max_request_size=2048,
                        value_serializer="json", max_block_ms=300) as producer:
        with pytest.raises(MessageSizeTooLargeError, match="max.request.size"):
            await producer.send("e", "x" * 5000)
        with pytest.raises(SerializationError, match="value"):
            await producer.send("e", object())
        with pytest.raises(UnknownTopicOrPartitionError, match="partition 5 of topic 'e' "
                           r"\(which has 1 partitions\) is not in the metadata after "
                           r"max.block.ms=300"):
            await producer.send("e", 1, partition=5)  # waits for it to be added, as Kafka's
        with pytest.raises(UnknownTopicOrPartitionError, match="start at 0"):
            await producer.send("e", 1, partition=-1)
        await producer.send_and_wait("e", {"ok": True})
    assert [r.value for r in await fetch_records(broker.bootstrap, "e")] == [b'{"ok":true}']


async def test_an_invalid_topic_name_fails_at_once_not_after_max_block_ms(
        broker: BrokerServer) -> None:
    """Before, a name the broker can never create waited the whole max.block.ms (60 s by
    default) and then said UNKNOWN_TOPIC_OR_PARTITION; it is refused at the first answer."""
    async with Producer(bootstrap_servers=broker.bootstrap, max_block_ms=30_000) as producer:
        started = asyncio.get_running_loop().time()
        with pytest.raises(InvalidTopicError, match="bad topic!"):
            await producer.send("bad topic!", b"x")
        assert asyncio.get_running_loop().time() - started < 10
        # A missing but valid name is still auto-created (auto.create.topics.enable=true)
        await producer.send_and_wait("fine", b"y")
    assert [r.value for r in await fetch_records(broker.bootstrap, "fine")] == [b"y"]


async def test_broker_refusal_fails_the_future_with_the_mapped_error(
        broker: BrokerServer) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("small", 1, configs={"max.message.bytes": 200})])
    async with Producer(bootstrap_servers=broker.bootstrap) as producer:
        fut = await producer.send("small", b"z" * 1000)
        with pytest.raises(Exception) as info:
            await fut
    assert "MESSAGE_TOO_LARGE" in str(info.value)


@pytest.mark.parametrize("batch_size, min_splits", [(1 << 20, 5), (300, 1)])
async def test_a_batch_too_large_for_the_topic_is_split_until_its_records_fit(
        broker: BrokerServer, batch_size: int, min_splits: int) -> None:
    """batch.size far above the topic's max.message.bytes (one batch of everything), or below
    it with one record too large (many batches in one request, one of them too large): the
    broker refuses the partition's batches (MESSAGE_TOO_LARGE); they are sent alone, and one
    still refused is halved until each piece fits (KIP-126). Every record that fits is stored
    once, in order, with the offset its future reports; the one record that cannot fit alone
    fails, and nothing else does."""
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("small", 1, configs={"max.message.bytes": 600})])
    done: list[int] = []
    async with Producer(bootstrap_servers=broker.bootstrap, batch_size=batch_size,
                        linger_ms=50) as producer:
        futures = []
        for i in range(120):
            value = b"x" * 2000 if i == 77 else b"%03d" % i + b"." * 40
            fut = await producer.send("small", value, partition=0)
            fut.add_done_callback(lambda f, i=i: done.append(i))
            futures.append(fut)
        results = await asyncio.gather(*(asyncio.ensure_future(_await(f)) for f in futures),
                                       return_exceptions=True)
        metrics = producer.metrics()
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [77]
    assert "MESSAGE_TOO_LARGE" in str(results[77])
    assert futures[77].exception() is results[77]
    stored = await fetch_records(broker.bootstrap, "small")
    assert [r.value[:3] for r in stored] == [b"%03d" % i for i in range(120) if i != 77]
    offsets = [r.offset for i, r in enumerate(results) if i != 77]
    assert offsets == [r.offset for r in stored] == list(range(119))
    assert sorted(done) == list(range(120))  # every callback ran once
    assert metrics["batch_split_total"] >= min_splits
    assert metrics["record_error_total"] == 1
    assert metrics["record_send_total"] == 119
    assert all(f.attempts >= 1 for f in futures)


async def _await(fut: object) -> object:
    return await fut  # type: ignore[misc]


async def test_a_lost_connection_is_retried_and_nothing_is_lost(proxied_broker) -> None:
    broker, proxy = proxied_broker
    await make_topic(broker, "r")
    async with Producer(bootstrap_servers=proxy.address, retry_backoff_ms=20,
                        linger_ms=1) as producer:
        futs = []
        for i in range(200):
            futs.append(await producer.send("r", b"%d" % i, partition=0))
            if i == 100:
                await asyncio.sleep(0.05)  # let the first half be in flight, then cut it
                proxy.cut()
        mds = [await f for f in futs]
    assert proxy.connections_accepted >= 2  # it really reconnected through the proxy
    values = [int(r.value) for r in await fetch_records(broker.bootstrap, "r")]
    # Without idempotence a retry after a lost answer may duplicate, never lose or reorder
    # what was acknowledged last.
    assert set(values) == set(range(200))
    assert all(md.offset >= 0 for md in mds)


async def test_a_lost_response_is_retried_after_request_timeout(proxied_broker) -> None:
    broker, proxy = proxied_broker
    await make_topic(broker, "lost")
    async with Producer(bootstrap_servers=proxy.address, request_timeout_ms=300,
                        retry_backoff_ms=20) as producer:
        await producer.partitions_for("lost")
        proxy.drop("down")
        fut = await producer.send("lost", b"once", partition=0)
        done, _ = await asyncio.wait([asyncio.ensure_future(_wait(fut))], timeout=0.2)
        assert not done  # the acknowledgement is being dropped
        proxy.resume()
        md = await asyncio.wait_for(_wait(fut), timeout=10)
        metrics = producer.metrics()
        assert metrics["record_retry_total"] >= 1 and metrics["record_send_total"] == 1
        assert metrics["record_error_total"] == 0
    values = [r.value for r in await fetch_records(broker.bootstrap, "lost")]
    assert values[md.offset] == b"once" and set(values) == {b"once"}


async def _wait(fut: object) -> RecordMetadata:
    return await fut  # type: ignore[misc]


async def test_buffer_full_blocks_then_fails_after_max_block_ms(proxied_broker) -> None:
    broker, proxy = proxied_broker
    await make_topic(broker, "b")
    producer = Producer(bootstrap_servers=proxy.address, buffer_memory=4096,
                        max_block_ms=300, request_timeout_ms=5000)
    await producer.start()
    await producer.partitions_for("b")
    proxy.stall("up")
    with pytest.raises(BufferExhaustedError, match="max.block.ms"):
        for _ in range(100):
            await producer.send("b", b"x" * 500, partition=0)
    proxy.resume()
    await producer.stop()


async def test_stop_with_a_timeout_fails_what_is_unanswered_and_keeps_what_was_acked(
        proxied_broker, caplog: pytest.LogCaptureFixture) -> None:
    """stop(timeout) is Kafka's close(Duration): records still unanswered then fail with
    ProducerClosedError, without waiting for delivery.timeout.ms; a failure nobody awaits
    leaves no "Future exception was never retrieved" behind."""
    broker, proxy = proxied_broker
    await make_topic(broker, "s")
    producer = Producer(bootstrap_servers=proxy.address, delivery_timeout_ms=120_000,
                        request_timeout_ms=30_000)
    await producer.start()
    kept = await producer.send_and_wait("s", b"kept", partition=0)
    proxy.stall("up")
    unanswered = [await producer.send("s", b"pending-%d" % i, partition=0) for i in range(5)]
    started = asyncio.get_running_loop().time()
    await producer.stop(timeout=0.2)
    assert asyncio.get_running_loop().time() - started < 10
    for fut in unanswered:
        assert fut.done() and isinstance(fut.exception(), ProducerClosedError)
    proxy.resume()
    del unanswered, fut
    gc.collect()
    assert "never retrieved" not in caplog.text
    assert {r.offset: r.value for r in await fetch_records(broker.bootstrap, "s")}[
        kept.offset] == b"kept"


async def test_a_cancelled_producer_block_does_not_wait_out_the_delivery_timeout(
        proxied_broker) -> None:
    """Before, Ctrl-C of `klamm perf produce` with the broker gone took 120 s: leaving
    ``async with Producer`` by cancellation waited for delivery.timeout.ms."""
    broker, proxy = proxied_broker
    await make_topic(broker, "c")
    unanswered: list = []

    async def body() -> None:
        async with Producer(bootstrap_servers=proxy.address, delivery_timeout_ms=120_000,
                            request_timeout_ms=30_000) as producer:
            await producer.send_and_wait("c", b"kept", partition=0)
            proxy.stall("up")
            unanswered.extend([await producer.send("c", b"x", partition=0) for _ in range(3)])
            await asyncio.sleep(3600)  # until cancelled, as uvloop.run does on Ctrl-C

    task = asyncio.ensure_future(body())
    await until(lambda: len(unanswered) == 3)
    started = asyncio.get_running_loop().time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.get_running_loop().time() - started < 10
    assert all(isinstance(f.exception(), ProducerClosedError) for f in unanswered)
    proxy.resume()


async def test_unreachable_leader_fails_records_after_delivery_timeout(proxied_broker) -> None:
    broker, proxy = proxied_broker
    await make_topic(broker, "d")
    producer = Producer(bootstrap_servers=proxy.address, delivery_timeout_ms=600,
                        request_timeout_ms=200, retry_backoff_ms=20)
    await producer.start()
    await producer.partitions_for("d")
    proxy.refusing = True
    proxy.cut()
    fut = await producer.send("d", b"lost?", partition=0)
    with pytest.raises(KlammTimeoutError, match="delivery.timeout.ms"):
        await asyncio.wait_for(_wait(fut), timeout=10)
    await producer.stop()


async def test_an_unreachable_broker_is_retried_with_a_doubling_backoff(proxied_broker) -> None:
    """Before, a refused connection was retried every retry.backoff.ms (1,774 attempts in
    180 s); reconnect.backoff.ms was accepted and did nothing in the producer."""
    broker, proxy = proxied_broker
    await make_topic(broker, "b")
    producer = Producer(bootstrap_servers=proxy.address, delivery_timeout_ms=3000,
                        request_timeout_ms=1000, retry_backoff_ms=100,
                        reconnect_backoff_ms=50, reconnect_backoff_max_ms=1000)
    await producer.start()
    await producer.partitions_for("b")
    proxy.refusing = True
    proxy.cut()
    fut = await producer.send("b", b"lost", partition=0)
    with pytest.raises(KlammTimeoutError):
        await asyncio.wait_for(_wait(fut), timeout=10)
    # 100, 100, 200, 400, 800, 1000 ms ... in 3 s: about 7 attempts (30 at a fixed 100 ms)
    assert 2 <= fut.attempts <= 10, fut.attempts
    await producer.stop()


async def test_flush_waits_for_acknowledgements_and_callbacks_fire(broker: BrokerServer) -> None:
    await make_topic(broker, "f")
    seen: list[int] = []
    async with Producer(bootstrap_servers=broker.bootstrap, linger_ms=10_000) as producer:
        futs = [await producer.send("f", b"%d" % i) for i in range(10)]
        for f in futs:
            f.add_done_callback(lambda fut: seen.append(fut.result().offset))
        await producer.flush()
        assert all(f.done() for f in futs)
    assert sorted(seen) == list(range(10))


async def test_send_after_stop_is_refused(broker: BrokerServer) -> None:
    await make_topic(broker, "s")
    producer = Producer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    await producer.stop()
    with pytest.raises(Exception, match="stopped"):
        await producer.send("s", b"late")
