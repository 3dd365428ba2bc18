"""TimeIndex: the sparse ``.timeindex`` of one segment, max timestamp -> offset.

Each entry is 12 bytes on disk, big-endian ``(timestamp i64, relative offset u32)``: "every
batch before the batch at this offset has a smaller max timestamp, and this one has
``timestamp``". Entries are only added when the segment's running max timestamp grows, so
timestamps and offsets are both strictly increasing; the last entry written when a segment
stops being active carries the segment's largest timestamp (used by time retention).
Persistence and loading are ``SparseIndex``'s.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_right
from typing import Any

from .sparse_index import CorruptIndex, SparseIndex

ENTRY = struct.Struct(">qI")
ENTRY_SIZE = ENTRY.size  # 12


class TimeIndex(SparseIndex):
    ENTRY_SIZE = ENTRY_SIZE

    def _clear(self) -> None:
        self._ts = array("q")
        self._rel = array("I")

    def _columns(self) -> tuple[array[Any], ...]:
        return self._ts, self._rel

    def _parse(self, data: bytes) -> None:
        ts, rel = array("q"), array("I")
        for t, r in ENTRY.iter_unpack(data):
            if ts and (t <= ts[-1] or r < rel[-1]):
                raise CorruptIndex(f"{self.path}: entry {len(ts)} is not after the previous")
            ts.append(t)
            rel.append(r)
        self._ts, self._rel = ts, rel

    def _encode(self, start: int) -> bytes:
        return b"".join(map(ENTRY.pack, self._ts[start:], self._rel[start:]))

    # ------------------------------------------------------------------ entries
    def last_entry(self) -> tuple[int, int] | None:
        """``(timestamp, absolute offset)`` of the last entry, or None when empty."""
        self.ensure_loaded()
        if not self._ts:
            return None
        return self._ts[-1], self.base_offset + self._rel[-1]

    def read_last_entry(self) -> tuple[int, int] | None:
        """The last entry straight from the file, without loading the rest (cheap at startup).

        Raises CorruptIndex when the file is missing or torn."""
        if self._loaded:
            return self.last_entry()
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise CorruptIndex(f"{self.path} is missing") from None
        try:
            size = os.fstat(fd).st_size
            if size % ENTRY_SIZE:
                raise CorruptIndex(f"{self.path} has {size} bytes, not a multiple of "
                                   f"{ENTRY_SIZE}")
            if size == 0:
                return None
            ts, rel = ENTRY.unpack(os.pread(fd, ENTRY_SIZE, size - ENTRY_SIZE))
            return ts, self.base_offset + rel
        finally:
            os.close(fd)

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add ``(timestamp, offset)`` if it raises the max timestamp seen so far."""
        self.ensure_loaded()
        if self._ts and timestamp <= self._ts[-1]:
            return
        self._ts.append(timestamp)
        self._rel.append(offset - self.base_offset)

    def lookup(self, timestamp: int) -> int:
        """Offset to start scanning from for the first batch with max timestamp >= ``timestamp``:
        the offset of the last entry whose timestamp is <= it, else the segment base."""
        self.ensure_loaded()
        i = bisect_right(self._ts, timestamp) - 1
        if i < 0:
            return self.base_offset
        return self.base_offset + self._rel[i]
