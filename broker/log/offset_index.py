"""OffsetIndex: the sparse ``.index`` of one segment, offset -> file position.

Each entry is 8 bytes on disk, big-endian ``(relative offset u32, position u32)``, the
relative offset being ``base offset of an indexed batch - segment base offset``. One entry is
added per ``index.interval.bytes`` of log, so a lookup lands at most about that many bytes
before the wanted batch. Relative offsets and positions are strictly increasing. Persistence
and loading are ``SparseIndex``'s.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right
from typing import Any

from .sparse_index import CorruptIndex, SparseIndex

ENTRY_SIZE = 8
MAX_RELATIVE = 2**32 - 1

__all__ = ["ENTRY_SIZE", "MAX_RELATIVE", "CorruptIndex", "OffsetIndex"]


class OffsetIndex(SparseIndex):
    ENTRY_SIZE = ENTRY_SIZE

    def _clear(self) -> None:
        self._rel = array("I")
        self._pos = array("I")

    def _columns(self) -> tuple[array[Any], ...]:
        return self._rel, self._pos

    def _parse(self, data: bytes) -> None:
        both = array("I")
        both.frombytes(data)
        if sys.byteorder == "little":
            both.byteswap()
        rel, pos = both[0::2], both[1::2]
        for i in range(1, len(rel)):
            if rel[i] <= rel[i - 1] or pos[i] <= pos[i - 1]:
                raise CorruptIndex(f"{self.path}: entry {i} is not after entry {i - 1}")
        self._rel, self._pos = rel, pos

    def _encode(self, start: int) -> bytes:
        both = array("I", bytes((len(self._rel) - start) * ENTRY_SIZE))
        both[0::2] = self._rel[start:]
        both[1::2] = self._pos[start:]
        if sys.byteorder == "little":
            both.byteswap()
        return both.tobytes()

    def load(self, log_size: int | None = None) -> None:
        """Read the file; also refuses an index pointing past ``log_size`` when given."""
        super().load()
        if log_size is not None and self._pos and self._pos[-1] >= log_size:
            last = self._pos[-1]
            self.reset()  # empty is always correct for a sparse index: scan from the start
            raise CorruptIndex(f"{self.path}: last entry points at {last}, past the log "
                               f"end {log_size}")

    # ------------------------------------------------------------------ entries
    def last_entry(self) -> tuple[int, int] | None:
        """``(absolute offset, position)`` of the last entry, or None when empty."""
        self.ensure_loaded()
        if not self._rel:
            return None
        return self.base_offset + self._rel[-1], self._pos[-1]

    def entry(self, i: int) -> tuple[int, int]:
        self.ensure_loaded()
        return self.base_offset + self._rel[i], self._pos[i]

    def append(self, offset: int, position: int) -> None:
        """Add an entry; callers index in increasing offset order only."""
        self.ensure_loaded()
        self._rel.append(offset - self.base_offset)
        self._pos.append(position)

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
