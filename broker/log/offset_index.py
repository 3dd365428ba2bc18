"""OffsetIndex: the sparse ``.index`` of one segment, offset -> file position.

Each entry is 8 bytes on disk, big-endian ``(relative offset u32, position u32)``, the
relative offset being ``base offset of an indexed batch - segment base offset``. One entry is
added per ``index.interval.bytes`` of log, so a lookup lands at most about that many bytes
before the wanted batch.

Invariants: relative offsets and positions are strictly increasing; the file holds a prefix of
the in-memory entries (entries reach the file on ``flush``), so an index is never ahead of what
the log held when it was written. After an unclean shutdown the loader rebuilds the index of
every segment past the recovery point, so unwritten entries are never needed.

Entries live in two ``array('I')`` so ``bisect`` runs in C. The file is read lazily on first
use. Not thread-safe: owned by the event loop (flush snapshots bytes before handing fds to a
thread).
"""

from __future__ import annotations

import os
import sys
from array import array
from bisect import bisect_left, bisect_right

ENTRY_SIZE = 8
MAX_RELATIVE = 2**32 - 1


class CorruptIndex(Exception):
    """The index file does not describe its segment; the segment rebuilds it from the log."""


class OffsetIndex:
    def __init__(self, path: str, base_offset: int, max_entries: int, *,
                 loaded: bool = False) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max_entries
        self._rel = array("I")
        self._pos = array("I")
        self._persisted = 0  # entries already in the file
        self._loaded = loaded
        self._fd = -1

    # ------------------------------------------------------------------ state
    @property
    def entries(self) -> int:
        self.ensure_loaded()
        return len(self._rel)

    @property
    def is_full(self) -> bool:
        return self.entries >= self.max_entries

    @property
    def loaded(self) -> bool:
        return self._loaded

    def last_entry(self) -> tuple[int, int] | None:
        """``(absolute offset, position)`` of the last entry, or None when empty."""
        self.ensure_loaded()
        if not self._rel:
            return None
        return self.base_offset + self._rel[-1], self._pos[-1]

    def entry(self, i: int) -> tuple[int, int]:
        self.ensure_loaded()
        return self.base_offset + self._rel[i], self._pos[i]

    # ------------------------------------------------------------------ load / validate
    def ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def load(self, log_size: int | None = None) -> None:
        """Read the file; raises CorruptIndex when it is unusable (missing, torn, unordered)."""
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise CorruptIndex(f"{self.path} is missing") from None
        if len(data) % ENTRY_SIZE:
            raise CorruptIndex(f"{self.path} has {len(data)} bytes, not a multiple of "
                               f"{ENTRY_SIZE}")
        both = array("I")
        both.frombytes(data)
        if sys.byteorder == "little":
            both.byteswap()
        rel, pos = both[0::2], both[1::2]
        for i in range(1, len(rel)):
            if rel[i] <= rel[i - 1] or pos[i] <= pos[i - 1]:
                raise CorruptIndex(f"{self.path}: entry {i} is not after entry {i - 1}")
        if log_size is not None and pos and pos[-1] >= log_size:
            raise CorruptIndex(f"{self.path}: last entry points at {pos[-1]}, past the log "
                               f"end {log_size}")
        self._rel, self._pos = rel, pos
        self._persisted = len(rel)
        self._loaded = True

    def reset(self) -> None:
        """Forget every entry (before a rebuild); the file is truncated on the next flush."""
        self._rel = array("I")
        self._pos = array("I")
        self._persisted = -1  # unknown file content: rewrite it entirely
        self._loaded = True

    # ------------------------------------------------------------------ mutation
    def append(self, offset: int, position: int) -> None:
        """Add an entry; callers index in increasing offset order only."""
        if not self._loaded:
            self.load()
        self._rel.append(offset - self.base_offset)
        self._pos.append(position)

    def truncate_to(self, offset: int) -> None:
        """Drop entries for offsets >= ``offset``."""
        self.ensure_loaded()
        keep = bisect_left(self._rel, offset - self.base_offset)
        del self._rel[keep:]
        del self._pos[keep:]
        if self._persisted > keep:
            os.truncate(self.path, keep * ENTRY_SIZE)
            self._persisted = keep

    # ------------------------------------------------------------------ lookup
    def lookup(self, offset: int) -> tuple[int, int]:
        """``(offset, position)`` of the last entry at or before ``offset``; the segment start
        when there is none. The batch holding ``offset`` starts at or after that position."""
        self.ensure_loaded()
        i = bisect_right(self._rel, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._rel[i], self._pos[i]

    def lookup_position(self, position: int) -> tuple[int, int]:
        """The last entry whose position is <= ``position`` (segment start if none)."""
        self.ensure_loaded()
        i = bisect_right(self._pos, position) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._rel[i], self._pos[i]

    # ------------------------------------------------------------------ persistence
    def pending_bytes(self) -> tuple[int, bytes]:
        """``(file position, bytes)`` of entries not yet in the file."""
        start = max(self._persisted, 0)
        n = len(self._rel) - start
        both = array("I", bytes(n * 2 * 4))
        both[0::2] = self._rel[start:]
        both[1::2] = self._pos[start:]
        if sys.byteorder == "little":
            both.byteswap()
        return start * ENTRY_SIZE, both.tobytes()

    def write_pending(self) -> int:
        """Write entries not yet in the file; returns the fd to fsync (owned by the index)."""
        if not self._loaded:
            return self._open()
        fd = self._open()
        if self._persisted < 0:
            os.ftruncate(fd, 0)
            self._persisted = 0
        if self._persisted == len(self._rel):
            return fd
        at, data = self.pending_bytes()
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, at)
            view, at = view[n:], at + n
        self._persisted = len(self._rel)
        return fd

    def _open(self) -> int:
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
