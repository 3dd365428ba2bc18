"""What the offset and time indexes share: a sparse, append-only table of fixed-size entries
kept in ``array`` columns (so ``bisect`` runs in C) and mirrored lazily to a file.

Persistence contract: the file holds a prefix of the in-memory entries; ``write_pending``
appends the rest and returns the fd to fsync, so an index is never ahead of what the log held
when it was written. After an unclean shutdown the loader rebuilds the index of every segment
past the recovery point, so entries that never reached the file are never needed. The file is
read on first use. Not thread-safe: owned by the event loop (a flush writes on the loop and
only hands the fds to a thread for fsync).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from array import array
from bisect import bisect_left
from typing import Any


class CorruptIndex(Exception):
    """The index file does not describe its segment; the segment rebuilds it from the log."""


class SparseIndex(ABC):
    ENTRY_SIZE: int  # bytes per entry on disk
    _rel: array[Any]  # relative offsets, increasing: the column truncation cuts at

    def __init__(self, path: str, base_offset: int, max_entries: int, *,
                 loaded: bool = False) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max_entries
        self._persisted = 0  # entries already in the file; -1: unknown, rewrite it all
        self._loaded = loaded
        self._fd = -1
        self._clear()

    # ------------------------------------------------------------------ per index
    @abstractmethod
    def _columns(self) -> tuple[array[Any], ...]:
        """Every column, for truncation."""

    @abstractmethod
    def _clear(self) -> None:
        """Start with empty columns."""

    @abstractmethod
    def _parse(self, data: bytes) -> None:
        """Fill the columns from the file's bytes; raise CorruptIndex if they are unordered."""

    @abstractmethod
    def _encode(self, start: int) -> bytes:
        """The file bytes of entries ``start`` and after."""

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
        if len(data) % self.ENTRY_SIZE:
            raise CorruptIndex(f"{self.path} has {len(data)} bytes, not a multiple of "
                               f"{self.ENTRY_SIZE}")
        self._parse(data)
        self._persisted = len(self._rel)
        self._loaded = True

    def reset(self) -> None:
        """Forget every entry (before a rebuild); the file is rewritten on the next flush."""
        self._clear()
        self._persisted = -1
        self._loaded = True

    def truncate_to(self, offset: int) -> None:
        """Drop entries for offsets >= ``offset``."""
        self.ensure_loaded()
        keep = bisect_left(self._rel, offset - self.base_offset)
        for column in self._columns():
            del column[keep:]
        if self._persisted > keep:
            os.truncate(self.path, keep * self.ENTRY_SIZE)
            self._persisted = keep

    # ------------------------------------------------------------------ persistence
    def write_pending(self) -> int:
        """Write entries not yet in the file; returns the fd to fsync (owned by the index)."""
        fd = self._open()
        if not self._loaded:
            return fd
        if self._persisted < 0:
            os.ftruncate(fd, 0)
            self._persisted = 0
        if self._persisted == len(self._rel):
            return fd
        at = self._persisted * self.ENTRY_SIZE
        view = memoryview(self._encode(self._persisted))
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
