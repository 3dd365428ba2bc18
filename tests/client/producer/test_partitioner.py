from collections import Counter

from klamm.client.producer.partitioner import StickyPartitioner, partition_for_key


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
