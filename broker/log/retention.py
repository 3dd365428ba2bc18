"""Which old segments retention deletes: pure decisions, no I/O.

Kafka's rules: walking from the oldest segment, delete while the segment's largest timestamp
is older than ``retention.ms``, and while the log minus that segment is still at least
``retention.bytes``. The active segment is never offered, so it is never deleted.
"""

from __future__ import annotations

from collections.abc import Sequence


def segments_to_delete(segments: Sequence[tuple[int, int]], total_size: int, now_ms: int,
                       retention_ms: int, retention_bytes: int) -> int:
    """How many leading segments to delete, given ``(largest timestamp, size)`` of every
    inactive segment oldest first and the size of the whole log (active included).
    ``-1`` disables either limit."""
    by_time = 0
    if retention_ms >= 0:
        while by_time < len(segments) and now_ms - segments[by_time][0] > retention_ms:
            by_time += 1
    by_size = 0
    if retention_bytes >= 0:
        excess = total_size - retention_bytes
        while by_size < len(segments) and excess - segments[by_size][1] >= 0:
            excess -= segments[by_size][1]
            by_size += 1
    return max(by_time, by_size)
