from collections import Counter

from klamm.broker.server import BrokerServer
from klamm.client import Producer
from klamm.client.producer.accumulator import RecordAccumulator
from klamm.client.producer.partitioner import StickyPartitioner, partition_for_key
from tests.support.raw import RawConnection, create_topic


def test_same_key_always_maps_to_the_same_partition() -> None:
    keys = [b"user-%d" % i for i in range(200)]
    first = [partition_for_key(k, 7) for k in keys]
    assert first == [partition_for_key(k, 7) for k in keys]
    # Fixed values: the mapping must not change between releases or processes.
    assert partition_for_key(b"alice", 1000) == 294
    assert Counter(first).keys() == set(range(7))


def test_sticky_partitioner_stays_until_a_batch_is_sent_then_moves_on() -> None:
    sticky = StickyPartitioner()
    p = sticky.partition("t", 3)
    assert all(sticky.partition("t", 3) == p for _ in range(10))
    seen = set()
    for _ in range(3):
        seen.add(sticky.partition("t", 3))
        sticky.batch_sent("t", sticky.partition("t", 3), 3)
    assert seen == {0, 1, 2}


async def test_slow_unkeyed_sends_spread_over_every_partition(broker: BrokerServer) -> None:
    """Each batch that leaves at the end of linger.ms moves the sticky partition on: before,
    only a full batch did, so records sent one at a time all went to one partition."""
    conn = await RawConnection.open(broker.bootstrap)
    try:
        await create_topic(conn, "spread", partitions=3)
    finally:
        await conn.close()
    async with Producer(bootstrap_servers=broker.bootstrap, linger_ms=0) as producer:
        used = [(await producer.send_and_wait("spread", b"x")).partition for _ in range(9)]
    assert Counter(used) == {0: 3, 1: 3, 2: 3}


def test_a_topic_that_grows_keeps_its_slot_list() -> None:
    """send() holds the list while it waits for buffer space: growing the topic must not
    swap it for a new one (the waiting send would fill a stale list, and a batch opened in
    the new one would be lost)."""
    acc = RecordAccumulator(16384, 0, 1 << 20, 60_000)
    held = acc.add_topic("t", 2)
    assert acc.add_topic("t", 5) is held and held == [None] * 5
    assert acc.add_topic("t", 3) is held and len(held) == 5  # partitions never shrink
