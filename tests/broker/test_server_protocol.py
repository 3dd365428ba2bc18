"""The broker speaking the wire protocol over real sockets, including to hostile peers."""

from __future__ import annotations

import asyncio
import struct

from klamm.broker.server import BrokerServer
from klamm.protocol.api import ApiKey
from klamm.protocol.errors import ErrorCode
from klamm.protocol.records import iter_batches, read_header
from tests.support.polling import until
from tests.support.raw import RawConnection, batch, create_topic, fetch_body, produce_body


async def produce(conn: RawConnection, topic: str, data: bytes, partition: int = 0,
                  acks: int = 1) -> dict:
    r = await conn.call(ApiKey.PRODUCE, produce_body(topic, partition, len(data), acks), data)
    return r.body["topics"][0]["partitions"][0]


async def test_api_versions_lists_every_supported_api(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    r = await conn.call(ApiKey.API_VERSIONS, {})
    keys = {k for k, _, _ in r.body["api_keys"]}
    assert {ApiKey.PRODUCE, ApiKey.FETCH, ApiKey.METADATA, ApiKey.CREATE_TOPICS} <= keys
    await conn.close()


async def test_produced_bytes_come_back_identical_through_fetch(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    data = batch([b"a" * 100, b"b" * 100, b"c" * 100])
    first = await produce(conn, "t", data)
    assert first["error_code"] == 0 and first["base_offset"] == 0
    second = await produce(conn, "t", batch([b"d"]))
    assert second["base_offset"] == 3
    r = await conn.call(ApiKey.FETCH, fetch_body("t", 0, 0))
    part = r.body["topics"][0]["partitions"][0]
    assert part["error_code"] == 0 and part["high_watermark"] == 4
    payload = bytes(r.payload)
    assert len(payload) == part["records_size"]
    stored = payload[:len(data)]
    # Identical except the base offset and leader epoch the broker stamps.
    assert stored[16:] == data[16:]
    headers = [h for h, _ in iter_batches(payload)]
    assert [(h.base_offset, h.records_count) for h in headers] == [(0, 3), (3, 1)]
    # A response this small is copied into the reply's single write (sendfile.min.bytes).
    assert broker.metrics.value("klamm_broker_fetch_copied_bytes_total") == len(payload)
    assert broker.metrics.value("klamm_broker_sendfile_bytes_total") == 0
    await conn.close()


async def test_fetch_from_offset_inside_batch_returns_that_batch(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    await produce(conn, "t", batch([b"x"] * 10))
    r = await conn.call(ApiKey.FETCH, fetch_body("t", 0, 7))
    assert read_header(bytes(r.payload)).base_offset == 0
    r = await conn.call(ApiKey.FETCH, fetch_body("t", 0, 10))
    assert r.body["topics"][0]["partitions"][0]["records_size"] == 0
    r = await conn.call(ApiKey.FETCH, fetch_body("t", 0, 11))
    assert r.body["topics"][0]["partitions"][0]["error_code"] == ErrorCode.OFFSET_OUT_OF_RANGE
    await conn.close()


async def test_fetch_honours_partition_and_response_byte_limits(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "lim", partitions=2)
    one = batch([b"v" * 1000])  # each batch is a little over 1 KB
    for partition in (0, 1):
        for _ in range(5):
            await produce(conn, "lim", one, partition)
    size = len(one)

    def body(partition_max: int, max_bytes: int) -> dict:
        return {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": max_bytes,
                "topics": [{"topic": "lim", "partitions": [
                    {"partition": p, "fetch_offset": 0, "partition_max_bytes": partition_max}
                    for p in (0, 1)]}]}

    # Per partition: whole batches up to its limit, from each partition.
    r = await conn.call(ApiKey.FETCH, body(2 * size + 10, 50 << 20))
    sizes = [p["records_size"] for p in r.body["topics"][0]["partitions"]]
    assert sizes == [2 * size, 2 * size] and len(r.payload) == 4 * size
    # Per response: the budget runs out in partition 0; partition 1 gets nothing.
    r = await conn.call(ApiKey.FETCH, body(10 * size, 3 * size + 10))
    sizes = [p["records_size"] for p in r.body["topics"][0]["partitions"]]
    assert sizes == [3 * size, 0]
    assert [h.records_count for h, _ in iter_batches(bytes(r.payload))] == [1, 1, 1]
    # A first batch larger than both limits still comes back whole, so a consumer progresses.
    r = await conn.call(ApiKey.FETCH, body(10, 10))
    sizes = [p["records_size"] for p in r.body["topics"][0]["partitions"]]
    assert sizes == [size, 0]
    await conn.close()


async def test_long_poll_fetch_is_woken_by_the_append(broker: BrokerServer) -> None:
    consumer = await RawConnection.open(broker.bootstrap)
    producer = await RawConnection.open(broker.bootstrap)
    await create_topic(producer, "t")
    cid = consumer.send(ApiKey.FETCH, fetch_body("t", 0, 0, max_wait_ms=60_000))
    # The fetch is parked: nothing arrives while there is no data.
    parked = asyncio.ensure_future(consumer.receive(timeout=60))
    done, _ = await asyncio.wait([parked], timeout=0.3)
    assert not done
    await produce(producer, "t", batch([b"wake up"]))
    r = await asyncio.wait_for(parked, timeout=10)  # far below max_wait_ms
    assert r.correlation_id == cid
    assert r.body["topics"][0]["partitions"][0]["records_size"] > 0
    await consumer.close()
    await producer.close()


async def test_long_poll_then_produce_on_one_connection_answers_both_in_order(
        broker: BrokerServer) -> None:
    """The append answers the parked fetch from inside the produce request of the same
    connection: the fetch's answer must still go first and carry the new record."""
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    fetch_id = conn.send(ApiKey.FETCH, fetch_body("t", 0, 0, max_wait_ms=60_000))
    await until(lambda: len(broker.replicas.waiters) == 1)
    data = batch([b"same connection"])
    produce_id = conn.send(ApiKey.PRODUCE, produce_body("t", 0, len(data)), data)
    first, second = await conn.receive(), await conn.receive()
    assert (first.correlation_id, second.correlation_id) == (fetch_id, produce_id)
    assert bytes(first.payload)[16:] == data[16:]
    assert second.body["topics"][0]["partitions"][0]["base_offset"] == 0
    await conn.close()


async def test_long_poll_answered_by_sendfile_inside_the_append_keeps_the_stream_intact(
        broker: BrokerServer) -> None:
    """A parked fetch woken by a large append starts a sendfile from inside the produce
    request of the same connection; the produce answer must wait for it, then follow."""
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    fetch_id = conn.send(ApiKey.FETCH, fetch_body("t", 0, 0, max_wait_ms=60_000))
    await until(lambda: len(broker.replicas.waiters) == 1)
    data = batch([bytes([i]) * 1000 for i in range(200)])  # far above sendfile.min.bytes
    produce_id = conn.send(ApiKey.PRODUCE, produce_body("t", 0, len(data)), data)
    fetch_id2 = conn.send(ApiKey.FETCH, fetch_body("t", 0, 0))
    got = [await conn.receive() for _ in range(3)]
    assert [r.correlation_id for r in got] == [fetch_id, produce_id, fetch_id2]
    assert bytes(got[0].payload)[16:] == data[16:] == bytes(got[2].payload)[16:]
    assert broker.metrics.value("klamm_broker_sendfile_bytes_total") == 2 * len(data)
    await conn.close()


async def test_long_poll_waits_for_min_bytes_across_appends(broker: BrokerServer) -> None:
    consumer = await RawConnection.open(broker.bootstrap)
    producer = await RawConnection.open(broker.bootstrap)
    await create_topic(producer, "t")
    one = batch([b"x" * 100])
    cid = consumer.send(ApiKey.FETCH, fetch_body("t", 0, 0, max_wait_ms=60_000,
                                                 min_bytes=len(one) + 1))
    parked = asyncio.ensure_future(consumer.receive(timeout=60))
    await until(lambda: len(broker.replicas.waiters) == 1)
    await produce(producer, "t", one)
    assert len(broker.replicas.waiters) == 1 and not parked.done()  # one batch is too little
    await produce(producer, "t", one)
    r = await asyncio.wait_for(parked, timeout=10)
    assert r.correlation_id == cid
    assert r.body["topics"][0]["partitions"][0]["records_size"] == 2 * len(one)
    await consumer.close()
    await producer.close()


async def test_a_consumer_that_leaves_during_a_long_poll_is_forgotten(
        broker: BrokerServer) -> None:
    consumer = await RawConnection.open(broker.bootstrap)
    producer = await RawConnection.open(broker.bootstrap)
    await create_topic(producer, "t")
    consumer.send(ApiKey.FETCH, fetch_body("t", 0, 0, max_wait_ms=60_000))
    await until(lambda: len(broker.replicas.waiters) == 1)
    await consumer.close()
    await until(lambda: len(broker.replicas.waiters) == 0)
    # The append that would have answered it finds nobody and succeeds.
    assert (await produce(producer, "t", batch([b"after"])))["error_code"] == 0
    await producer.close()


async def test_long_poll_returns_empty_after_max_wait(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    loop = asyncio.get_running_loop()
    start = loop.time()
    r = await conn.call(ApiKey.FETCH, fetch_body("t", 0, 0, max_wait_ms=200))
    assert loop.time() - start >= 0.19
    assert r.body["topics"][0]["partitions"][0]["records_size"] == 0
    await conn.close()


async def test_pipelined_requests_are_answered_in_order(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    ids = []
    for i in range(50):
        data = batch([b"%d" % i])
        ids.append(conn.send(ApiKey.PRODUCE, produce_body("t", 0, len(data)), data))
        if i % 10 == 0:
            ids.append(conn.send(ApiKey.FETCH, fetch_body("t", 0, 0, max_wait_ms=0)))
    got = [await conn.receive() for _ in ids]
    assert [r.correlation_id for r in got] == ids
    offsets = [r.body["topics"][0]["partitions"][0]["base_offset"] for r in got
               if "acks" not in r.body and "error_code" not in r.body]
    assert offsets == list(range(50))
    await conn.close()


async def test_acks_zero_gets_no_answer_but_is_stored(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    data = batch([b"fire and forget"])
    conn.send(ApiKey.PRODUCE, produce_body("t", 0, len(data), acks=0), data)
    r = await conn.call(ApiKey.LIST_OFFSETS, {"topics": [
        {"topic": "t", "partitions": [{"partition": 0, "timestamp": -1}]}]})
    assert r.body["topics"][0]["partitions"][0]["offset"] == 1
    await conn.close()


async def test_garbage_bytes_close_only_that_connection(broker: BrokerServer) -> None:
    bad = await RawConnection.open(broker.bootstrap)
    good = await RawConnection.open(broker.bootstrap)
    bad.send_raw(struct.pack(">II", 20, 99) + b"\xff" * 20)  # meta longer than the frame
    assert await bad.closed_by_peer()
    bad2 = await RawConnection.open(broker.bootstrap)
    bad2.send_raw(struct.pack(">II", 9, 5) + b"\xc1\xc1\xc1\xc1\xc1")  # not msgpack
    assert await bad2.closed_by_peer()
    r = await good.call(ApiKey.API_VERSIONS, {})
    assert r.body["error_code"] == 0
    assert broker.metrics.value("klamm_broker_connections_closed_for_bad_input_total") == 2
    await good.close()


async def test_oversized_frame_is_refused_before_it_is_read(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    limit = broker.config.socket_request_max_bytes
    conn.send_raw(struct.pack(">II", limit + 1, 0))  # only the prefix: nothing more arrives
    assert await conn.closed_by_peer(timeout=5)
    other = await RawConnection.open(broker.bootstrap)
    assert (await other.call(ApiKey.API_VERSIONS, {})).body["error_code"] == 0
    await other.close()


async def test_unknown_api_and_unsupported_version_get_error_replies(
        broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    r = await conn.call(4242, {})
    assert r.body["error_code"] == ErrorCode.UNKNOWN_API
    r = await conn.call(ApiKey.METADATA, {"topics": None}, version=99)
    assert r.body["error_code"] == ErrorCode.UNSUPPORTED_VERSION
    r = await conn.call(ApiKey.API_VERSIONS, {})  # the connection still works
    assert r.body["error_code"] == 0
    await conn.close()


async def test_malformed_bodies_get_invalid_request(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    for api, body in [(ApiKey.PRODUCE, {"acks": 1}), (ApiKey.PRODUCE, [1, 2, 3]),
                      (ApiKey.FETCH, {"topics": "nope"}), (ApiKey.CREATE_TOPICS, None),
                      (ApiKey.PRODUCE, {"acks": 7, "topics": []})]:
        r = await conn.call(api, body)
        assert r.body["error_code"] == ErrorCode.INVALID_REQUEST, (api, r.body)
    # Sizes that do not add up to the payload: refused as a whole, nothing stored.
    data = batch([b"x"])
    r = await conn.call(ApiKey.PRODUCE, produce_body("t", 0, len(data) + 5), data)
    assert r.body["error_code"] == ErrorCode.INVALID_REQUEST
    assert broker.replicas.get("t", 0).log.log_end_offset == 0
    await conn.close()


async def test_corrupt_batch_is_refused_and_nothing_is_stored(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    data = bytearray(batch([b"payload" * 10]))
    data[-3] ^= 0xFF
    res = await produce(conn, "t", bytes(data))
    assert res["error_code"] == ErrorCode.CORRUPT_MESSAGE
    assert broker.replicas.get("t", 0).log.log_end_offset == 0
    res = await produce(conn, "t", batch([b"fine"]))
    assert res["error_code"] == 0 and res["base_offset"] == 0
    await conn.close()


async def test_unknown_topic_produce_and_fetch_report_the_error(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    res = await produce(conn, "missing", batch([b"x"]))
    assert res["error_code"] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    r = await conn.call(ApiKey.FETCH, fetch_body("missing", 0, 0))
    assert r.body["topics"][0]["partitions"][0]["error_code"] == \
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert broker.metrics.value("klamm_broker_failed_produce_requests_total") == 1
    assert broker.metrics.value("klamm_broker_failed_fetch_requests_total") == 1
    await conn.close()


async def test_message_too_large_is_refused(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t", configs={"max.message.bytes": 1000})
    res = await produce(conn, "t", batch([b"x" * 2000]))
    assert res["error_code"] == ErrorCode.MESSAGE_TOO_LARGE
    await conn.close()


async def test_create_topic_validation_errors_name_the_problem(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "dup")
    cases = [("bad name!", 1, 1, {}, ErrorCode.INVALID_TOPIC),
             ("__internal", 1, 1, {}, ErrorCode.INVALID_TOPIC),
             ("dup", 1, 1, {}, ErrorCode.TOPIC_ALREADY_EXISTS),
             ("zero", 0, 1, {}, ErrorCode.INVALID_PARTITIONS),
             ("rf", 1, 3, {}, ErrorCode.INVALID_REPLICATION_FACTOR),
             ("cfg", 1, 1, {"retention.mss": 5}, ErrorCode.INVALID_CONFIG),
             ("cfg2", 1, 1, {"segment.bytes": "lots"}, ErrorCode.INVALID_CONFIG)]
    for name, parts, rf, configs, code in cases:
        r = await conn.call(ApiKey.CREATE_TOPICS, {"topics": [
            {"topic": name, "num_partitions": parts, "replication_factor": rf,
             "configs": configs}]})
        res = r.body["topics"][0]
        assert res["error_code"] == code, (name, res)
        assert res["error_message"]
    r = await conn.call(ApiKey.CREATE_TOPICS, {"topics": [
        {"topic": "cfg", "num_partitions": 1, "replication_factor": 1,
         "configs": {"retention.mss": 5}}]})
    assert "retention.mss" in r.body["topics"][0]["error_message"]
    assert not broker.metadata.has_topic("cfg") and await broker.store.get_topic("cfg") is None
    await conn.close()


async def test_metadata_lists_topics_and_auto_creates_when_allowed(
        broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "a", partitions=3)
    r = await conn.call(ApiKey.METADATA, {"topics": None})
    assert r.body["brokers"][0]["port"] == broker.port
    topic = r.body["topics"][0]
    assert topic["topic"] == "a" and [p["leader"] for p in topic["partitions"]] == [0, 0, 0]
    r = await conn.call(ApiKey.METADATA, {"topics": ["b"], "allow_auto_topic_creation": False})
    assert r.body["topics"][0]["error_code"] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    r = await conn.call(ApiKey.METADATA, {"topics": ["b"], "allow_auto_topic_creation": True})
    assert r.body["topics"][0]["error_code"] == ErrorCode.LEADER_NOT_AVAILABLE  # being created

    async def led() -> bool:
        r = await conn.call(ApiKey.METADATA, {"topics": ["b"]})
        parts = r.body["topics"][0]["partitions"]
        return len(parts) == broker.config.num_partitions and all(p["leader"] == 0
                                                                  for p in parts)
    await until(led)
    await conn.close()


async def test_configs_describe_alter_and_survive_restart(broker_factory, tmp_path) -> None:
    broker = await broker_factory(tmp_path / "b")
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t", configs={"retention.ms": 1000})
    r = await conn.call(ApiKey.ALTER_CONFIGS, {"resources": [
        {"type": "topic", "name": "t", "configs": {"segment.bytes": 4096,
                                                   "retention.ms": None}}]})
    assert r.body["resources"][0]["error_code"] == 0
    r = await conn.call(ApiKey.ALTER_CONFIGS, {"resources": [
        {"type": "topic", "name": "t", "configs": {"segment.bytes": -5}}]})
    assert r.body["resources"][0]["error_code"] == ErrorCode.INVALID_CONFIG
    assert "segment.bytes" in r.body["resources"][0]["error_message"]
    r = await conn.call(ApiKey.DESCRIBE_CONFIGS, {"resources": [{"type": "topic", "name": "t"}]})
    configs = {c["name"]: c for c in r.body["resources"][0]["configs"]}
    assert configs["segment.bytes"]["value"] == "4096"
    assert configs["segment.bytes"]["source"] == "topic"
    assert configs["retention.ms"]["source"] == "default"
    assert broker.replicas.get("t", 0).log.config.segment_bytes == 4096
    await conn.close()
    await broker.stop()
    again = await broker_factory(tmp_path / "b")
    assert again.replicas.get("t", 0).log.config.segment_bytes == 4096


async def test_list_offsets_earliest_latest_and_by_time(broker: BrokerServer) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    await produce(conn, "t", batch([b"a", b"b"], ts=1000))
    await produce(conn, "t", batch([b"c"], ts=2000))

    async def lookup(ts: int) -> tuple[int, int]:
        r = await conn.call(ApiKey.LIST_OFFSETS, {"topics": [
            {"topic": "t", "partitions": [{"partition": 0, "timestamp": ts}]}]})
        p = r.body["topics"][0]["partitions"][0]
        return p["offset"], p["timestamp"]

    assert (await lookup(-2))[0] == 0
    assert (await lookup(-1))[0] == 3
    assert (await lookup(1500))[0] == 2
    assert (await lookup(500))[0] == 0
    assert (await lookup(5000))[0] == -1
    await conn.close()


async def test_sendfile_off_falls_back_to_copying_with_same_bytes(broker_factory) -> None:
    broker = await broker_factory(sendfile_enable=False)
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    data = batch([b"z" * 1000] * 300)
    await produce(conn, "t", data)
    r = await conn.call(ApiKey.FETCH, fetch_body("t", 0, 0))
    assert bytes(r.payload)[16:] == data[16:]
    assert broker.metrics.value("klamm_broker_sendfile_bytes_total") == 0
    assert broker.metrics.value("klamm_broker_fetch_copied_bytes_total") == len(r.payload)
    await conn.close()


async def test_large_fetch_through_sendfile_keeps_the_stream_intact(broker: BrokerServer) -> None:
    """Many responses mixing msgpack heads and sendfile regions on one connection."""
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    for i in range(40):
        await produce(conn, "t", batch([bytes([i]) * 1000] * 100))
    ids = [conn.send(ApiKey.FETCH, fetch_body("t", 0, o, partition_max_bytes=8 << 20))
           for o in range(0, 4000, 100)]
    ids.append(conn.send(ApiKey.API_VERSIONS, {}))
    total = 0
    for i, cid in enumerate(ids[:-1]):
        r = await conn.receive()
        assert r.correlation_id == cid
        first = read_header(bytes(r.payload))
        assert first.base_offset == i * 100
        total += len(r.payload)
    assert (await conn.receive()).correlation_id == ids[-1]
    assert broker.metrics.value("klamm_broker_sendfile_bytes_total") == total
    await conn.close()

