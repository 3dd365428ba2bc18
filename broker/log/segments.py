"""LogSegments: a partition's segments ordered by base offset, found by bisect.

Invariant: base offsets strictly increase and the last segment is the active one (the only
one written to). Not thread-safe: owned by the event loop.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator

from .segment import LogSegment


class LogSegments:
    def __init__(self) -> None:
        self._bases: list[int] = []
        self._segments: list[LogSegment] = []

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[LogSegment]:
        return iter(list(self._segments))

    def __getitem__(self, i: int) -> LogSegment:
        return self._segments[i]

    @property
    def active(self) -> LogSegment:
        return self._segments[-1]

    @property
    def first(self) -> LogSegment:
        return self._segments[0]

    def add(self, segment: LogSegment) -> None:
        """Append a segment after every existing one (a roll, or loading in order)."""
        if self._bases and segment.base_offset <= self._bases[-1]:
            raise ValueError(f"segment {segment.base_offset} is not after {self._bases[-1]}")
        self._bases.append(segment.base_offset)
        self._segments.append(segment)

    def replace(self, old: LogSegment, new: LogSegment) -> None:
        """Swap in a rewritten segment with the same base offset (compaction)."""
        i = self._segments.index(old)
        if new.base_offset != old.base_offset:
            raise ValueError("a replacement segment must keep the base offset")
        self._segments[i] = new

    def remove(self, segment: LogSegment) -> None:
        i = self._segments.index(segment)
        del self._segments[i]
        del self._bases[i]

    def index_of(self, segment: LogSegment) -> int:
        return self._segments.index(segment)

    def floor_index(self, offset: int) -> int:
        """Index of the segment that would hold ``offset`` (-1 if before every segment)."""
        return bisect_right(self._bases, offset) - 1

    def floor(self, offset: int) -> LogSegment | None:
        i = self.floor_index(offset)
        return self._segments[i] if i >= 0 else None

    def upper_bound(self, i: int, log_end_offset: int) -> int:
        """The first offset after segment ``i``: the next segment's base, or the log end."""
        return self._bases[i + 1] if i + 1 < len(self._bases) else log_end_offset

    def from_offset(self, offset: int) -> list[LogSegment]:
        """Segments that may hold ``offset`` or later offsets, in order."""
        return self._segments[max(self.floor_index(offset), 0):]

    def total_size(self) -> int:
        return sum(s.size for s in self._segments)
