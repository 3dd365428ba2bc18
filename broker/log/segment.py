"""LogSegment: one ``.log`` file with its ``.index`` and ``.timeindex``.

Files are named after the segment's base offset, 20 digits zero-padded
(``00000000000000000000.log``). The ``.log`` file is a sequence of whole record batches with
increasing offsets, every one at or after the base offset; ``size`` is the authoritative end
of the valid bytes (the file is truncated back on a failed write, and by recovery).

Only headers are ever read on the serving path, and most reads need none: the last
RECENT_BATCHES batches appended are remembered with their positions (``recent``, always the
contiguous tail of the valid bytes), so a consumer or follower near the end finds its batch in
memory. Further back, the sparse index gives a start and the headers after it come in one
``pread`` of HEADER_SCAN_BYTES. Recovery is the one place that reads whole batches, to check
their CRC.

Deletion renames the three files to ``*.deleted`` first (``mark_deleted``) and removes them
later, so a crash mid-delete leaves only files the loader knows to finish deleting.

Not thread-safe: owned by the event loop. fsync happens on ``dup()``s of the descriptors this
class hands out (``sync_fds``), so closing a segment never races a syncing thread.
"""

from __future__ import annotations

import bisect
import collections
import errno
import logging
import os
from collections.abc import Iterator, Sequence
from operator import itemgetter

from klamm.protocol.records import (
    HEADER_SIZE,
    BatchHeader,
    CorruptBatch,
    read_header,
    validate_batch,
)

from .errors import LogStorageError
from .files import (
    DELETED_SUFFIX,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    remove_quietly,
    segment_name,
)
from .offset_index import ENTRY_SIZE as OFFSET_ENTRY_SIZE
from .offset_index import MAX_RELATIVE, CorruptIndex, OffsetIndex
from .time_index import ENTRY_SIZE as TIME_ENTRY_SIZE
from .time_index import TimeIndex

log = logging.getLogger(__name__)

IOV_MAX = 1024

# (base offset, last offset, max timestamp, size) of one batch being appended.
BatchInfo = tuple[int, int, int, int]
# (base offset, last offset, position, size) of a batch remembered in ``LogSegment.recent``.
RecentBatch = tuple[int, int, int, int]

# Batches at the end of a segment whose positions are kept in memory: a tailing consumer is
# at most a few batches behind the log end (at RF 3, the high watermark trails it by the
# batches still being replicated).
RECENT_BATCHES = 64
# Bytes of headers read per ``pread`` when walking from an index entry: the default
# index.interval.bytes (4 KiB) plus a header, rounded up, so one read covers the gap.
HEADER_SCAN_BYTES = 8 * 1024

_base_of = itemgetter(0)


class LogSegment:
    def __init__(self, directory: str, base_offset: int, fd: int, size: int, *,
                 index_bytes: int, index_interval: int, created_ms: int,
                 indexes_loaded: bool) -> None:
        self.dir = directory
        self.base_offset = base_offset
        self.fd = fd
        self.size = size
        self.index_interval = index_interval
        self.created_ms = created_ms
        stem = os.path.join(directory, segment_name(base_offset))
        self.log_path = stem + LOG_SUFFIX
        self.index = OffsetIndex(stem + INDEX_SUFFIX, base_offset,
                                 max(1, index_bytes // OFFSET_ENTRY_SIZE), loaded=indexes_loaded)
        self.time_index = TimeIndex(stem + TIME_INDEX_SUFFIX, base_offset,
                                    max(1, index_bytes // TIME_ENTRY_SIZE),
                                    loaded=indexes_loaded)
        # Valid for the active (last) segment; older ones are bounded by their successor.
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset
        self.bytes_since_last_index = 0
        # The last batches, contiguous up to ``size`` (see RECENT_BATCHES).
        self.recent: collections.deque[RecentBatch] = collections.deque(maxlen=RECENT_BATCHES)
        self.failed = False  # a failed write could not be undone; refuse further writes
        self.needs_rebuild = False  # indexes missing at open: the loader rebuilds them
        self.closed = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, directory: str, base_offset: int, *, index_bytes: int,
               index_interval: int, now_ms: int) -> LogSegment:
        """A new empty segment; stale files of the same name (after a truncation) are replaced."""
        stem = os.path.join(directory, segment_name(base_offset))
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            remove_quietly(stem + suffix)
        fd = os.open(stem + LOG_SUFFIX, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        return cls(directory, base_offset, fd, 0, index_bytes=index_bytes,
                   index_interval=index_interval, created_ms=now_ms, indexes_loaded=True)

    @classmethod
    def open(cls, directory: str, base_offset: int, *, index_bytes: int,
             index_interval: int, now_ms: int, rebuild: bool = False) -> LogSegment:
        """An existing segment; indexes are read lazily. Its largest timestamp comes from the
        time index; missing or torn index files set ``needs_rebuild`` for the loader."""
        path = os.path.join(directory, segment_name(base_offset) + LOG_SUFFIX)
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
        st = os.fstat(fd)
        seg = cls(directory, base_offset, fd, st.st_size, index_bytes=index_bytes,
                  index_interval=index_interval, created_ms=now_ms, indexes_loaded=False)
        if rebuild:
            seg.recover(validate=False)
            return seg
        try:
            last = seg.time_index.read_last_entry()
            if not os.path.exists(seg.index.path):
                raise CorruptIndex(f"{seg.index.path} is missing")
        except CorruptIndex as exc:
            if st.st_size:  # an empty log's indexes are empty: nothing worth a warning
                log.warning("indexes of %s must be rebuilt: %s", path, exc)
            seg.needs_rebuild = True
            return seg
        if last is not None:
            seg.max_timestamp, seg.offset_of_max_timestamp = last
        return seg

    # ------------------------------------------------------------------ properties
    @property
    def largest_timestamp(self) -> int:
        """Max timestamp of any batch here (the file's mtime when no batch has one); what
        time-based retention compares."""
        if self.max_timestamp >= 0 or self.size == 0:
            return self.max_timestamp
        return int(os.fstat(self.fd).st_mtime * 1000)

    def should_roll(self, incoming: int, last_offset: int, now_ms: int, segment_bytes: int,
                    segment_ms: int) -> bool:
        """Whether an append of ``incoming`` bytes ending at ``last_offset`` needs a new
        segment: size, age, a full index, or a relative offset that no longer fits 32 bits."""
        if self.size == 0:
            return False
        return (self.size + incoming > min(segment_bytes, MAX_RELATIVE)
                or now_ms - self.created_ms >= segment_ms
                or self.index.is_full or self.time_index.is_full
                or last_offset - self.base_offset > MAX_RELATIVE)

    # ------------------------------------------------------------------ indexes
    def ensure_indexes(self) -> None:
        """Load lazily-read indexes; rebuild them from the log when they are unusable."""
        if self.index.loaded and self.time_index.loaded:
            return
        try:
            if not self.index.loaded:
                self.index.load(self.size)
            self.time_index.ensure_loaded()
        except CorruptIndex as exc:
            log.warning("rebuilding indexes of %s: %s", self.log_path, exc)
            self.recover(validate=False)

    def _index_batch(self, base: int, last: int, max_ts: int, size: int, pos: int) -> None:
        if max_ts > self.max_timestamp:
            self.max_timestamp = max_ts
            self.offset_of_max_timestamp = base
        if self.bytes_since_last_index > self.index_interval:
            self.index.append(base, pos)
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            self.bytes_since_last_index = 0
        self.bytes_since_last_index += size
        self.next_offset = last + 1
        self.recent.append((base, last, pos, size))

    # ------------------------------------------------------------------ write path
    def append(self, buffers: Sequence[bytes | bytearray | memoryview], total: int,
               batches: Sequence[BatchInfo]) -> None:
        """Write whole batches with as few ``writev`` calls as possible, then index them.

        On OSError the file is truncated back to its previous size and LogStorageError is
        raised, so a failed append leaves nothing behind."""
        if self.failed:
            raise LogStorageError(f"{self.log_path} is in an unknown state after a failed write")
        self.ensure_indexes()
        start = self.size
        try:
            _writev_all(self.fd, buffers, total)
        except OSError as exc:
            try:
                os.ftruncate(self.fd, start)
            except OSError as again:
                self.failed = True
                log.error("cannot truncate %s back to %d bytes after a failed write: %s; the "
                          "next start recovers it", self.log_path, start,
                          again.strerror or again)
            raise LogStorageError(f"write to {self.log_path} failed: "
                                  f"{exc.strerror or exc}") from exc
        pos = start
        for base, last, max_ts, size in batches:
            self._index_batch(base, last, max_ts, size, pos)
            pos += size
        self.size = pos

    # ------------------------------------------------------------------ read path
    def header_at(self, pos: int) -> BatchHeader | None:
        """The header of the batch at ``pos``; None at the end of the valid bytes."""
        if pos + HEADER_SIZE > self.size:
            return None
        try:
            header = read_header(os.pread(self.fd, HEADER_SIZE, pos))
        except CorruptBatch:
            return None
        if pos + header.size > self.size:
            return None
        return header

    def headers_from(self, pos: int) -> Iterator[tuple[int, BatchHeader]]:
        """``(position, header)`` of each batch from ``pos`` (a batch start) on, ending at the
        end of the valid bytes or at an unreadable header; HEADER_SCAN_BYTES per ``pread``."""
        buf = b""
        start = pos
        size = self.size
        while pos + HEADER_SIZE <= size:
            off = pos - start
            if off + HEADER_SIZE > len(buf):
                buf = os.pread(self.fd, min(HEADER_SCAN_BYTES, size - pos), pos)
                start, off = pos, 0
            try:
                header = read_header(buf, off)
            except CorruptBatch:
                return
            if pos + header.size > size:
                return
            yield pos, header
            pos += header.size

    def translate(self, offset: int) -> tuple[int, int, int] | None:
        """``(position, base offset, size)`` of the first batch holding ``offset`` or a later
        one; None past the last batch."""
        self.ensure_indexes()
        recent = self.recent
        if recent and offset >= recent[0][0]:
            if offset > recent[-1][1]:
                return None
            i = bisect.bisect_right(recent, offset, key=_base_of) - 1
            if recent[i][1] < offset:  # a gap in the offsets: the next batch holds later ones
                i += 1
            base, _, pos, size = recent[i]
            return pos, base, size
        _, start = self.index.lookup(offset)
        for pos, header in self.headers_from(start):
            if header.last_offset >= offset:
                return pos, header.base_offset, header.size
        return None

    def position_of(self, offset: int) -> int:
        """Position of the first batch whose base offset is >= ``offset`` (``size`` if none)."""
        self.ensure_indexes()
        recent = self.recent
        if recent and offset >= recent[0][0]:
            i = bisect.bisect_left(recent, offset, key=_base_of)
            return recent[i][2] if i < len(recent) else self.size
        _, start = self.index.lookup(offset)
        for pos, header in self.headers_from(start):
            if header.base_offset >= offset:
                return pos
        return self.size

    def boundary_within(self, start: int, limit: int) -> int | None:
        """The last batch end in ``(start, limit]``, where ``start`` is a batch start; None
        when the batch at ``start`` alone is longer than ``limit - start``."""
        self.ensure_indexes()
        _, pos = self.index.lookup_position(limit)
        end: int | None = None
        if pos > start:
            end = pos
        else:
            pos = start
        for at, header in self.headers_from(pos):
            if at + header.size > limit:
                break
            end = at + header.size
        return end

    def find_timestamp(self, timestamp: int, min_offset: int = 0) -> tuple[int, int] | None:
        """``(base offset, max timestamp)`` of the first batch with max timestamp >=
        ``timestamp`` holding an offset >= ``min_offset``, found through the time index then
        the offset index."""
        self.ensure_indexes()
        _, start = self.index.lookup(self.time_index.lookup(timestamp))
        for _, header in self.headers_from(start):
            if header.max_timestamp >= timestamp and header.last_offset >= min_offset:
                return header.base_offset, header.max_timestamp
        return None

    # ------------------------------------------------------------------ recovery
    def recover(self, *, validate: bool = True) -> int:
        """Rebuild indexes and in-memory state by scanning every batch (CRC-checked when
        ``validate``); truncate the file at the first torn, corrupt or out-of-order batch.
        Returns the number of bytes truncated."""
        self.needs_rebuild = False
        self.index.reset()
        self.time_index.reset()
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset
        self.bytes_since_last_index = 0
        self.next_offset = self.base_offset
        self.recent.clear()
        size = os.fstat(self.fd).st_size
        pos = self._scan(size, validate)
        self.size = pos
        truncated = size - pos
        if truncated:
            os.ftruncate(self.fd, pos)
        self.index.write_pending()
        self.time_index.write_pending()
        return truncated

    def _scan(self, size: int, validate: bool) -> int:
        """Index every good batch; returns the end of the last one."""
        end = 0
        expected = self.base_offset
        problem = ""
        try:
            for pos, header in read_batches(self.fd, size, validate=validate):
                if header.base_offset < expected:
                    problem = f"batch offset {header.base_offset} is before {expected}"
                    break
                if header.last_offset - self.base_offset > MAX_RELATIVE:
                    problem = f"batch offset {header.last_offset} does not fit this segment"
                    break
                self._index_batch(header.base_offset, header.last_offset,
                                  header.max_timestamp, header.size, pos)
                expected = header.next_offset
                end = pos + header.size
        except ScanStopped as stop:
            problem = stop.reason
        if problem:
            log.warning("%s: truncating %d bytes at position %d: %s", self.log_path,
                        size - end, end, problem)
        return end

    def load_tail(self) -> None:
        """Restore the active segment's in-memory state after a clean shutdown by reading
        headers from its last index entry to the end. Raises CorruptBatch on a torn tail."""
        self.ensure_indexes()
        last = self.index.last_entry()
        offset, pos = last if last is not None else (self.base_offset, 0)
        ts_last = self.time_index.last_entry()
        if ts_last is not None:
            self.max_timestamp, self.offset_of_max_timestamp = ts_last
        self.next_offset = offset
        self.bytes_since_last_index = self.size - pos if last is not None else self.size
        first = self.header_at(0)
        if first is not None and 0 <= first.max_timestamp < self.created_ms:
            self.created_ms = first.max_timestamp
        self.recent.clear()
        for at, header in self.headers_from(pos):
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.base_offset
            self.next_offset = header.next_offset
            self.recent.append((header.base_offset, header.last_offset, at, header.size))
            pos = at + header.size
        if pos < self.size:
            raise CorruptBatch(f"{self.log_path}: unreadable batch at position {pos}")

    # ------------------------------------------------------------------ truncation
    def truncate_to(self, offset: int) -> int:
        """Drop every batch holding an offset >= ``offset``. A batch straddling ``offset`` goes
        too (batches are never split). Returns the new size."""
        found = self.translate(offset)
        if found is None:
            return self.size
        pos, base, _ = found
        os.ftruncate(self.fd, pos)
        self.size = pos
        # Entries at or after the cut batch point at or past ``pos``; load_tail refills
        # ``recent``.
        self.index.truncate_to(base)
        self.time_index.truncate_to(base)
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset
        self.load_tail()
        return pos

    # ------------------------------------------------------------------ durability / lifecycle
    def sync_fds(self) -> list[int]:
        """Write pending index entries; return the descriptors to fsync (still owned here)."""
        fds = [self.fd]
        if self.index.loaded:
            fds.append(self.index.write_pending())
        if self.time_index.loaded:
            fds.append(self.time_index.write_pending())
        return fds

    def on_become_inactive(self) -> None:
        """A rolled segment records its largest timestamp as the last time-index entry."""
        self.ensure_indexes()
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        self.index.write_pending()
        self.time_index.write_pending()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.index.close()
        self.time_index.close()
        os.close(self.fd)

    def mark_deleted(self) -> list[str]:
        """Close and rename every file to ``*.deleted``; returns the renamed paths."""
        self.close()
        renamed = []
        for path in (self.log_path, self.index.path, self.time_index.path):
            try:
                os.rename(path, path + DELETED_SUFFIX)
                renamed.append(path + DELETED_SUFFIX)
            except FileNotFoundError:
                pass
        return renamed

    def __repr__(self) -> str:
        return f"LogSegment({self.log_path!r}, size={self.size})"


class ScanStopped(Exception):
    """A scan met a torn or corrupt batch at ``position``."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


SCAN_CHUNK = 1 << 20


def read_batches(fd: int, size: int, *, validate: bool = True
                 ) -> Iterator[tuple[int, BatchHeader]]:
    """``(position, header)`` of every batch in the first ``size`` bytes of ``fd``, read with
    ``pread`` in chunks (never mmap: a file shrinking underneath must not kill the process).
    Raises ScanStopped at the first torn or (when ``validate``) corrupt batch."""
    for pos, header, _ in read_batch_bytes(fd, size, validate=validate):
        yield pos, header


def read_batch_bytes(fd: int, size: int, *, validate: bool = True
                     ) -> Iterator[tuple[int, BatchHeader, memoryview]]:
    """Like ``read_batches`` but also yields each batch's bytes (valid until the next step)."""
    pos = 0
    buf = memoryview(b"")
    buf_start = 0
    while pos < size:
        off = pos - buf_start
        if off + HEADER_SIZE > len(buf):
            buf, buf_start, off = memoryview(os.pread(fd, min(SCAN_CHUNK, size - pos), pos)), \
                pos, 0
            if len(buf) < HEADER_SIZE:
                raise ScanStopped(pos, "torn batch header at end of file")
        try:
            header = read_header(buf, off)
        except CorruptBatch as exc:
            raise ScanStopped(pos, str(exc)) from None
        if pos + header.size > size:
            raise ScanStopped(pos, "torn batch at end of file")
        if off + header.size > len(buf):
            buf = memoryview(os.pread(fd, max(min(SCAN_CHUNK, size - pos), header.size), pos))
            buf_start, off = pos, 0
            if len(buf) < header.size:
                raise ScanStopped(pos, "torn batch at end of file")
        if validate:
            try:
                validate_batch(buf, off)
            except CorruptBatch as exc:
                raise ScanStopped(pos, str(exc)) from None
        yield pos, header, buf[off:off + header.size]
        pos += header.size


def _writev_all(fd: int, buffers: Sequence[bytes | bytearray | memoryview],
                total: int) -> None:
    """``writev`` every buffer, resuming after short writes; at most IOV_MAX per call."""
    pending = list(buffers)
    while pending:
        chunk = pending[:IOV_MAX]
        wrote = os.writev(fd, chunk)
        if wrote <= 0:
            raise OSError(errno.EIO, "writev wrote nothing")
        total -= wrote
        # Drop fully written buffers; keep the rest of a partly written one.
        i = 0
        while i < len(chunk) and wrote >= len(chunk[i]):
            wrote -= len(chunk[i])
            i += 1
        rest = pending[i:]
        if wrote:
            rest[0] = memoryview(rest[0])[wrote:]
        pending = rest
