"""Choosing a partition: stable hash for keyed records, sticky batches for unkeyed ones.

The key hash is CRC32C (a C call, stable across processes and versions), so the same key
always lands on the same partition while the partition count is unchanged. Unkeyed records
stick to one partition until its batch leaves (full, or at the end of linger.ms), then move
on round-robin: big batches without giving up spread, at any rate.
"""

from __future__ import annotations

from crc32c import crc32c


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """The partition the producer picks for serialized ``key`` among ``num_partitions``
    (public: tools that must predict where a key lands use it)."""
    return (crc32c(key) & 0x7FFFFFFF) % num_partitions


class StickyPartitioner:
    """Per-topic current partition for unkeyed records; not thread-safe (one event loop)."""

    __slots__ = ("_current", "_next")

    def __init__(self) -> None:
        self._current: dict[str, int] = {}
        self._next: dict[str, int] = {}

    def partition(self, topic: str, num_partitions: int) -> int:
        p = self._current.get(topic)
        if p is None or p >= num_partitions:
            p = self._advance(topic, num_partitions)
        return p

    @property
    def current(self) -> dict[str, int]:
        """topic -> sticky partition, for callers that inline the common case."""
        return self._current

    def batch_sent(self, topic: str, partition: int, num_partitions: int) -> int:
        """A batch of the sticky partition left: stick to the next partition (returned)."""
        if self._current.get(topic) == partition and num_partitions > 1:
            return self._advance(topic, num_partitions)
        return self._current.get(topic, partition)

    def _advance(self, topic: str, num_partitions: int) -> int:
        p = self._next.get(topic, 0) % num_partitions
        self._next[topic] = p + 1
        self._current[topic] = p
        return p
