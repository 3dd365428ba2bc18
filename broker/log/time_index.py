"""TimeIndex: the sparse ``.timeindex`` of one segment, max timestamp -> offset.

Each entry is 12 bytes on disk, big-endian ``(timestamp i64, relative offset u32)``: "every
batch before the batch at this offset has a smaller max timestamp, and this one has
``timestamp``". Entries are only added when the segment's running max timestamp grows, so
timestamps and offsets are both strictly increasing; the last entry written when a segment
stops being active carries the segment's largest timestamp (used by time retention).

Same persistence contract as ``OffsetIndex``: the file is a prefix of the in-memory entries,
read lazily, rebuilt by the loader after an unclean shutdown. Not thread-safe.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_left, bisect_right

from .offset_index import CorruptIndex

ENTRY = struct.Struct(">qI")
ENTRY_SIZE = ENTRY.size  # 12


class TimeIndex:
    def __init__(self, path: str, base_offset: int, max_entries: int, *,
                 loaded: bool = False) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max_entries
        self._ts = array("q")
        self._rel = array("I")
        self._persisted = 0
        self._loaded = loaded
        self._fd = -1

    @property
    def entries(self) -> int:
        self.ensure_loaded()
        return len(self._ts)

    @property
    def is_full(self) -> bool:
        return self.entries >= self.max_entries

    @property
    def loaded(self) -> bool:
        return self._loaded

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

    def ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def load(self) -> None:
        """Read the file; raises CorruptIndex when it is missing, torn or unordered."""
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise CorruptIndex(f"{self.path} is missing") from None
        if len(data) % ENTRY_SIZE:
            raise CorruptIndex(f"{self.path} has {len(data)} bytes, not a multiple of "
                               f"{ENTRY_SIZE}")
        ts, rel = array("q"), array("I")
        for t, r in ENTRY.iter_unpack(data):
            if ts and (t <= ts[-1] or r < rel[-1]):
                raise CorruptIndex(f"{self.path}: entry {len(ts)} is not after the previous")
            ts.append(t)
            rel.append(r)
        self._ts, self._rel = ts, rel
        self._persisted = len(ts)
        self._loaded = True

    def reset(self) -> None:
        self._ts = array("q")
        self._rel = array("I")
        self._persisted = -1
        self._loaded = True

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add ``(timestamp, offset)`` if it raises the max timestamp seen so far."""
        if not self._loaded:
            self.load()
        if self._ts and timestamp <= self._ts[-1]:
            return
        self._ts.append(timestamp)
        self._rel.append(offset - self.base_offset)

    def truncate_to(self, offset: int) -> None:
        """Drop entries for offsets >= ``offset``."""
        self.ensure_loaded()
        keep = bisect_left(self._rel, offset - self.base_offset)
        del self._ts[keep:]
        del self._rel[keep:]
        if self._persisted > keep:
            os.truncate(self.path, keep * ENTRY_SIZE)
            self._persisted = keep

    def lookup(self, timestamp: int) -> int:
        """Offset to start scanning from for the first batch with max timestamp >= ``timestamp``:
        the offset of the last entry whose timestamp is <= it, else the segment base."""
        self.ensure_loaded()
        i = bisect_right(self._ts, timestamp) - 1
        if i < 0:
            return self.base_offset
        return self.base_offset + self._rel[i]

    def write_pending(self) -> int:
        """Write entries not yet in the file; returns the fd to fsync (owned by the index)."""
        fd = self._open()
        if not self._loaded:
            return fd
        if self._persisted < 0:
            os.ftruncate(fd, 0)
            self._persisted = 0
        if self._persisted == len(self._ts):
            return fd
        start = self._persisted
        data = b"".join(map(ENTRY.pack, self._ts[start:], self._rel[start:]))
        at = start * ENTRY_SIZE
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, at)
            view, at = view[n:], at + n
        self._persisted = len(self._ts)
        return fd

    def _open(self) -> int:
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
