"""PartitionLog: one partition replica's log - append, read, flush, truncate, retain.

Invariants:
- ``log_start_offset <= high_watermark <= log_end_offset`` and
  ``recovery_point <= log_end_offset``; everything below ``recovery_point`` is fsynced.
- Offsets are dense and increasing across appends and segments (compaction may leave gaps
  inside old segments, never reorders).
- A batch is on disk whole or not at all: every batch of an append is validated before any
  byte is written, and a failed write is truncated away.
- Records are never decoded here; only batch headers are read.

Durability (what survives what):
- A process crash (kill -9, OOM) loses nothing that ``append`` returned: the bytes are in the
  kernel page cache. Restart re-validates everything past the recovery point and truncates
  only a batch torn by the crash itself.
- A power loss or kernel crash loses whatever was not fsynced. By default (``flush.messages``
  and ``flush.ms`` unset) fsync happens only on segment roll (in the background) and on clean
  shutdown, so acknowledged records can be lost - durability then comes from replication, as
  in Kafka. ``flush.messages=1`` makes the produce path wait for an fsync covering the batch
  (group commit: one fsync for everything appended meanwhile); ``flush.ms=N`` bounds the loss
  window to about N ms plus ``log.flush.scheduler.interval.ms``.
- ``recovery_point`` only moves after an fsync has covered it; everything past it is
  re-validated after an unclean shutdown, so a torn or corrupt batch is never served.

Concurrency: single-threaded on the event loop. The only work done in other threads is
``fsync`` of ``dup()``ed descriptors during ``flush``, so closing or deleting segments never
races a syncing thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
from collections.abc import Callable, Iterator

from klamm.broker.config import NEVER, TopicConfig
from klamm.protocol.records import (
    CONTROL_FLAG,
    HEADER_SIZE,
    TRANSACTIONAL_FLAG,
    BatchHeader,
    CorruptBatch,
    check_records,
    declared_record_count,
    set_log_append_time,
    stamp,
    validate_batch,
)

from .dir_health import LogDirHealth
from .errors import (InvalidRecord, InvalidTimestamp, LogStorageError, OffsetOutOfRange,
                     RecordTooLarge, UnexpectedAppendOffset)
from .files import fsync_dir, remove_quietly
from .leader_epoch import LeaderEpochCache
from .loader import load_log
from .results import AppendInfo, FetchData, FileRegion
from .retention import segments_to_delete
from .segment import BatchInfo, LogSegment
from .segments import LogSegments
from .sync_batch import SyncBatch

log = logging.getLogger(__name__)

# base offset, batch length, partition leader epoch: the 16 bytes the leader rewrites.
STAMPED_PREFIX = struct.Struct(">qii")
STAMPED_SIZE = STAMPED_PREFIX.size


class PartitionLog:
    def __init__(self, topic: str, partition: int, directory: str, config: TopicConfig, *,
                 recovery_point: int = 0, log_start_offset: int | None = None,
                 high_watermark: int = 0, clean: bool = False,
                 clock: Callable[[], float] = time.time, sync: SyncBatch | None = None,
                 health: LogDirHealth | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.dir = directory
        self.config = config
        self._clock = clock
        self.health = health or LogDirHealth(os.path.dirname(directory))
        loaded = load_log(directory, config, recovery_point=recovery_point,
                          log_start_offset=log_start_offset, clean=clean,
                          now_ms=self._now_ms(), sync=sync)
        self.segments: LogSegments = loaded.segments
        self.log_start_offset = loaded.log_start_offset
        self.recovery_point = loaded.recovery_point
        self.recovered_bytes = loaded.recovered_bytes
        self._high_watermark = 0
        self.update_high_watermark(high_watermark)
        self.leader_epoch_cache = LeaderEpochCache(directory)
        if self.leader_epoch_cache.damaged or (
                not self.leader_epoch_cache.found and self.log_end_offset > self.log_start_offset):
            self._rebuild_leader_epochs()
        self.leader_epoch_cache.truncate_from_end(self.log_end_offset)
        self.leader_epoch_cache.truncate_from_start(self.log_start_offset)
        self.fsync_count = 0  # flush rounds that ran (each fsyncs every dirty file once)
        self.generation = 0  # bumped whenever segments are removed, truncated or replaced
        self._truncations = 0
        self._last_flush_ms = self._now_ms()
        self._flushing: asyncio.Future[None] | None = None
        self._background: set[asyncio.Future[None]] = set()
        self._pending_deletes: dict[int, tuple[asyncio.TimerHandle, list[str]]] = {}
        self._dir_dirty = False
        self.closed = False

    # ------------------------------------------------------------------ state
    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @property
    def log_end_offset(self) -> int:
        return self.segments.active.next_offset

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    def update_high_watermark(self, offset: int) -> int:
        """Set the high watermark, clamped to ``[log_start_offset, log_end_offset]``."""
        self._high_watermark = min(max(offset, self.log_start_offset), self.log_end_offset)
        return self._high_watermark

    @property
    def size_bytes(self) -> int:
        return self.segments.total_size()

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    def update_config(self, config: TopicConfig) -> None:
        self.config = config
        for segment in self.segments:
            segment.index_interval = config.index_interval_bytes

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        return self.leader_epoch_cache.end_offset_for(epoch, self.log_end_offset)

    def _rebuild_leader_epochs(self) -> None:
        """The epoch checkpoint is lost: read every batch header (not the records) for where
        each epoch starts. Without it a returning follower would skip truncation and keep
        records the leader never had."""
        def epochs() -> Iterator[tuple[int, int]]:
            for segment in self.segments:
                pos = 0
                while (header := segment.header_at(pos)) is not None:
                    yield header.leader_epoch, header.base_offset
                    pos += header.size
                if pos < segment.size:  # an unreadable header: what follows cannot be placed
                    log.error("%s: unreadable batch header at position %d; leader epochs "
                              "after it are left out (a follower then truncates more, never "
                              "less)", segment.log_path, pos)
                    return
        self.leader_epoch_cache.rebuild(epochs())
        log.warning("%s-%d: leader epochs rebuilt from the log: %s", self.topic,
                    self.partition, self.leader_epoch_cache.entries)

    def _check_open(self) -> None:
        if self.closed:
            raise LogStorageError(f"log {self.topic}-{self.partition} is closed")
        self.health.check()

    def _storage_error(self, what: str, exc: OSError) -> LogStorageError:
        """The error to raise for ``exc``; a disk that will not recover takes the dir offline
        (LogDirOffline: said once, when it happened)."""
        if self.health.observe(exc):
            return self.health.offline_error()
        return LogStorageError(f"{what}: {exc.strerror or exc}")

    # ------------------------------------------------------------------ append
    def _validate(self, view: memoryview, producer: bool) -> list[tuple[int, BatchHeader]]:
        """Check every batch before anything is written; returns ``(position, header)``."""
        if not len(view):
            raise CorruptBatch("empty record set")
        # A follower stores what the leader accepted, even if the limits changed since.
        limit = self.config.max_message_bytes if producer else len(view)
        out: list[tuple[int, BatchHeader]] = []
        pos = 0
        end = len(view)
        now_ms = self._now_ms()
        while pos < end:
            header = validate_batch(view, pos)
            if header.size > limit:
                raise RecordTooLarge(
                    f"batch of {header.size} bytes exceeds max.message.bytes={limit} of "
                    f"{self.topic}; raise the topic's max.message.bytes or lower the "
                    f"producer's batch.size")
            if producer:
                self._check_producer_batch(view, pos, header, now_ms)
            out.append((pos, header))
            pos += header.size
        if producer and end > self.config.segment_bytes:
            raise RecordTooLarge(f"append of {end} bytes exceeds segment.bytes="
                                 f"{self.config.segment_bytes} of {self.topic}")
        return out

    def _check_producer_batch(self, view: memoryview, pos: int, header: BatchHeader,
                              now_ms: int) -> None:
        """What Kafka refuses from a producer, from the header alone, except that a
        compacted topic's records are decoded (bounded) and checked too, as Kafka does:
        dense offsets, no transactional or control flags (no transactions here), timestamps
        within message.timestamp.difference.max.ms, the record count (read from the records'
        array header: 5 bytes inflated for a compressed batch), and on a compacted topic a
        key on every record."""
        if header.last_offset_delta != header.records_count - 1:
            raise InvalidRecord(f"batch of {header.records_count} records has last offset "
                                f"delta {header.last_offset_delta}; offsets must be dense")
        if header.attributes & (TRANSACTIONAL_FLAG | CONTROL_FLAG):
            raise InvalidRecord("the batch is flagged transactional or control; only a "
                                "transactional producer may send those, and this broker has "
                                "no transactions")
        config = self.config
        limit = config.message_timestamp_difference_max_ms
        if config.message_timestamp_type == "CreateTime" and limit < NEVER:
            for ts in (header.first_timestamp, header.max_timestamp):
                if abs(now_ms - ts) > limit:
                    raise InvalidTimestamp(
                        f"timestamp {ts} is {abs(now_ms - ts)} ms from the broker's clock; "
                        f"{self.topic} allows {limit} (message.timestamp.difference.max.ms)")
        if config.compact:
            try:
                check_records(view, pos, header, keys_required=True)
            except CorruptBatch as exc:
                raise InvalidRecord(str(exc)) from None
            return
        section = view[pos + HEADER_SIZE:pos + header.size]
        try:
            count = declared_record_count(section, header.attributes)
        except CorruptBatch as exc:
            raise InvalidRecord(str(exc)) from None
        if count != header.records_count:
            raise InvalidRecord(f"batch header says {header.records_count} records but its "
                                f"records section holds {count}")

    def append(self, payload: bytes | bytearray | memoryview, leader_epoch: int) -> AppendInfo:
        """Append producer batches as the leader: validate all, assign offsets, stamp the
        base offset and ``leader_epoch``, write with one ``writev``. Raises CorruptBatch,
        RecordTooLarge or LogStorageError having written nothing."""
        self._check_open()
        view = memoryview(payload).cast("B")
        found = self._validate(view, producer=True)
        now_ms = self._now_ms()
        first = next_offset = self.log_end_offset
        batches: list[BatchInfo] = []
        buffers: list[bytes | memoryview | bytearray]
        append_time = self.config.message_timestamp_type == "LogAppendTime"
        if append_time:
            copy = bytearray(view)
            for pos, header in found:
                stamp(copy, pos, next_offset, leader_epoch)
                set_log_append_time(copy, pos, header.size, now_ms)
                last = next_offset + header.last_offset_delta
                batches.append((next_offset, last, now_ms, header.size))
                next_offset = last + 1
            buffers = [copy]
        else:
            buffers = []
            for pos, header in found:
                buffers.append(STAMPED_PREFIX.pack(next_offset, header.batch_length,
                                                   leader_epoch))
                buffers.append(view[pos + STAMPED_SIZE:pos + header.size])
                last = next_offset + header.last_offset_delta
                batches.append((next_offset, last, header.max_timestamp, header.size))
                next_offset = last + 1
        segment = self._maybe_roll(len(view), next_offset - 1, now_ms)
        try:
            segment.append(buffers, len(view), batches)
        except LogStorageError as exc:
            if self.health.observe(exc):
                raise self.health.offline_error() from exc
            raise
        if leader_epoch > self.leader_epoch_cache.latest_epoch:
            self.leader_epoch_cache.assign(leader_epoch, first)
        return AppendInfo(first, next_offset - 1, now_ms if append_time else -1,
                          self.log_start_offset, len(found))

    def append_as_follower(self, payload: bytes | bytearray | memoryview) -> AppendInfo:
        """Append batches replicated from the leader, keeping their offsets and epochs.
        Offsets must continue the log: the first batch at or after the log end offset,
        each later one after the previous."""
        self._check_open()
        view = memoryview(payload).cast("B")
        found = self._validate(view, producer=False)
        expected = self.log_end_offset
        batches: list[BatchInfo] = []
        for _, header in found:
            if header.base_offset < expected:
                raise UnexpectedAppendOffset(
                    f"{self.topic}-{self.partition}: batch at offset {header.base_offset} "
                    f"does not follow {expected}")
            batches.append((header.base_offset, header.last_offset, header.max_timestamp,
                            header.size))
            expected = header.next_offset
        segment = self._maybe_roll(len(view), batches[-1][1], self._now_ms())
        try:
            segment.append([view], len(view), batches)
        except LogStorageError as exc:
            if self.health.observe(exc):
                raise self.health.offline_error() from exc
            raise
        for _, header in found:
            if header.leader_epoch > self.leader_epoch_cache.latest_epoch:
                self.leader_epoch_cache.assign(header.leader_epoch, header.base_offset)
        return AppendInfo(batches[0][0], batches[-1][1], -1, self.log_start_offset,
                          len(found))

    def _maybe_roll(self, incoming: int, last_offset: int, now_ms: int) -> LogSegment:
        active = self.segments.active
        cfg = self.config
        if active.should_roll(incoming, last_offset, now_ms, cfg.segment_bytes, cfg.segment_ms):
            self.roll()
        return self.segments.active

    def roll(self) -> LogSegment:
        """Start a new active segment at the log end offset (no-op if the active one is
        empty); the finished segment is flushed in the background."""
        self._check_open()
        old = self.segments.active
        if old.size == 0:
            return old
        base = self.log_end_offset
        try:
            old.on_become_inactive()
            new = LogSegment.create(self.dir, base, index_bytes=self.config.segment_index_bytes,
                                    index_interval=self.config.index_interval_bytes,
                                    now_ms=self._now_ms())
        except OSError as exc:
            raise self._storage_error(f"cannot roll {self.dir} at offset {base}", exc) from exc
        self.segments.add(new)
        self._dir_dirty = True
        self._flush_in_background(base)
        return new

    # ------------------------------------------------------------------ flush
    def needs_flush(self) -> bool:
        """``flush.messages`` unflushed records reached, or ``flush.ms`` since the last flush."""
        unflushed = self.log_end_offset - self.recovery_point
        if unflushed <= 0:
            return False
        return (unflushed >= self.config.flush_messages
                or self._now_ms() - self._last_flush_ms >= self.config.flush_ms)

    async def flush(self, upto_offset: int | None = None) -> None:
        """fsync everything up to at least ``upto_offset`` (default: the log end) in a thread.

        Group commit: while one fsync round runs, callers wait for it; if they still need
        more afterwards, one new round covers everything appended meanwhile."""
        while not self.closed:
            end = self.log_end_offset
            target = end if upto_offset is None else min(upto_offset, end)
            if self.recovery_point >= target:
                return
            if self._flushing is None:
                self._flushing = asyncio.ensure_future(self._flush_round())
            await asyncio.shield(self._flushing)

    async def _flush_round(self) -> None:
        try:
            end = self.log_end_offset
            truncations = self._truncations
            fds = self._sync_fds()
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(None, _fsync_and_close, fds)
            except OSError as exc:
                raise self._storage_error(f"fsync of {self.dir} failed", exc) from exc
            if truncations == self._truncations:  # else bytes past a truncation may be new
                self._flushed(end)
        finally:
            self._flushing = None

    def flush_sync(self) -> None:
        """fsync everything on the calling thread (close, or no event loop running)."""
        if self.closed:
            return
        end = self.log_end_offset
        try:
            _fsync_and_close(self._sync_fds())
        except OSError as exc:
            raise self._storage_error(f"fsync of {self.dir} failed", exc) from exc
        self._flushed(end)

    def _sync_fds(self) -> list[int]:
        """Descriptors to fsync, owned by the caller: ``dup()``s of every segment file that may
        hold unflushed data, plus the directory when segments were created since last time."""
        fds: list[int] = []
        try:
            for segment in self.segments.from_offset(self.recovery_point):
                if not segment.closed:
                    fds.extend(os.dup(fd) for fd in segment.sync_fds())
            if self._dir_dirty:
                fds.append(os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY))
                self._dir_dirty = False
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def _flushed(self, end: int) -> None:
        self.recovery_point = max(self.recovery_point, min(end, self.log_end_offset))
        self._last_flush_ms = self._now_ms()
        self.fsync_count += 1

    def _flush_in_background(self, upto: int) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush_sync()
            return
        task = loop.create_task(self.flush(upto))
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Future[None]) -> None:
        self._background.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None and not self.health.observe(exc):
            log.error("background flush of %s failed", self.dir, exc_info=exc)

    # ------------------------------------------------------------------ read
    def read(self, fetch_offset: int, max_bytes: int, max_offset: int | None = None,
             min_one: bool = True) -> FetchData:
        """Whole batches from the one holding ``fetch_offset``, stopping before a batch at or
        past ``max_offset`` (default: the high watermark) and before ``max_bytes`` - except
        that with ``min_one`` the first batch comes back even when larger. Reads headers only."""
        self._check_open()
        end = self.log_end_offset
        if fetch_offset < self.log_start_offset or fetch_offset > end:
            raise OffsetOutOfRange(
                f"offset {fetch_offset} is outside [{self.log_start_offset}, {end}] of "
                f"{self.topic}-{self.partition}")
        hw = self._high_watermark
        limit = hw if max_offset is None else min(max_offset, end)
        regions: list[FileRegion] = []
        total = 0
        if fetch_offset >= limit:
            return FetchData(regions, 0, hw, self.log_start_offset)
        offset = fetch_offset
        try:
            for i in range(max(self.segments.floor_index(offset), 0), len(self.segments)):
                segment = self.segments[i]
                upper = self.segments.upper_bound(i, end)
                found = segment.translate(offset)
                if found is not None:
                    start, base, first_size = found
                    if base >= limit:
                        break
                    stop = segment.size if limit >= upper else segment.position_of(limit)
                    budget = max_bytes - total
                    cut = stop
                    if stop - start > budget:
                        boundary = segment.boundary_within(start, start + budget) \
                            if budget > 0 else None
                        if boundary is None:
                            if not (min_one and not regions):
                                break
                            boundary = start + first_size
                        cut = boundary
                    regions.append(FileRegion(os.dup(segment.fd), start, cut - start))
                    total += cut - start
                    if cut < stop:
                        break
                if limit <= upper:
                    break
                offset = upper
        except BaseException:
            for region in regions:
                os.close(region.fd)
            raise
        return FetchData(regions, total, hw, self.log_start_offset)

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """``(offset, max timestamp)`` of the first batch whose max timestamp is >=
        ``timestamp``, found through the time index; None when no batch is that recent."""
        self._check_open()
        for segment in self.segments:
            if segment.size == 0 or segment.largest_timestamp < timestamp:
                continue
            found = segment.find_timestamp(timestamp, self.log_start_offset)
            if found is not None:
                return max(found[0], self.log_start_offset), found[1]
        return None

    # ------------------------------------------------------------------ truncation / deletion
    def truncate_to(self, offset: int) -> None:
        """Remove every batch holding an offset >= ``offset`` (a straddling batch goes whole)."""
        self._check_open()
        if offset >= self.log_end_offset:
            return
        self.generation += 1
        self._truncations += 1
        i = self.segments.floor_index(offset)
        if i < 0 or offset <= self.segments.first.base_offset:
            self._truncate_fully(max(offset, 0))
        else:
            self._delete_segments(list(self.segments)[i + 1:])
            try:
                self.segments[i].truncate_to(offset)
            except OSError as exc:
                raise self._storage_error(f"cannot truncate {self.dir}", exc) from exc
        end = self.log_end_offset
        self.recovery_point = min(self.recovery_point, end)
        self._high_watermark = min(self._high_watermark, end)
        self.log_start_offset = min(self.log_start_offset, end)
        self.leader_epoch_cache.truncate_from_end(end)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop everything and continue at ``offset`` (a follower whose log ends before the
        leader's log start offset: what it has is older than anything the leader keeps)."""
        self._check_open()
        self.generation += 1
        self._truncations += 1
        self._truncate_fully(max(offset, 0))
        end = self.log_end_offset
        self.recovery_point = end
        self._high_watermark = end
        self.leader_epoch_cache.truncate_from_end(-1)

    def _truncate_fully(self, offset: int) -> None:
        old = list(self.segments)
        new = LogSegment.create(self.dir, offset, index_bytes=self.config.segment_index_bytes,
                                index_interval=self.config.index_interval_bytes,
                                now_ms=self._now_ms()) \
            if offset != old[0].base_offset else None
        if new is None:
            # Same base as the first segment: empty it in place.
            self._delete_segments(old[1:])
            first = self.segments.first
            first.truncate_to(offset)
        else:
            self._delete_segments(old)
            self.segments.add(new)
        self.log_start_offset = offset
        self._dir_dirty = True

    def delete_records_before(self, offset: int) -> None:
        """Advance the log start offset (DeleteRecords); whole segments below it go."""
        self._check_open()
        if offset > self._high_watermark:
            raise OffsetOutOfRange(f"cannot delete records before {offset}: above the high "
                                   f"watermark {self._high_watermark}")
        if offset <= self.log_start_offset:
            return
        self.log_start_offset = offset
        self.leader_epoch_cache.truncate_from_start(offset)
        self._delete_below_start()

    def _delete_below_start(self) -> None:
        doomed = []
        for i in range(len(self.segments) - 1):
            if self.segments[i + 1].base_offset <= self.log_start_offset:
                doomed.append(self.segments[i])
        if doomed:
            self.generation += 1
            self._delete_segments(doomed)

    def delete_old_segments(self) -> int:
        """Retention: delete whole inactive segments past ``retention.ms`` (by their largest
        timestamp) or beyond ``retention.bytes``, then those below the log start offset.
        Returns how many segments were deleted."""
        self._check_open()
        before = len(self.segments)
        cfg = self.config
        if cfg.delete and len(self.segments) > 1:
            inactive = list(self.segments)[:-1]
            n = segments_to_delete([(s.largest_timestamp, s.size) for s in inactive],
                                   self.size_bytes, self._now_ms(), cfg.retention_ms,
                                   cfg.retention_bytes)
            if n:
                self.generation += 1
                self._delete_segments(inactive[:n])
                self.log_start_offset = max(self.log_start_offset,
                                            self.segments.first.base_offset)
                self._high_watermark = max(self._high_watermark, self.log_start_offset)
                self.recovery_point = max(self.recovery_point, self.log_start_offset)
                self.leader_epoch_cache.truncate_from_start(self.log_start_offset)
        self._delete_below_start()
        return before - len(self.segments)

    def _delete_segments(self, doomed: list[LogSegment]) -> None:
        """Rename to ``*.deleted`` now, remove after ``file.delete.delay.ms``."""
        paths: list[str] = []
        for segment in doomed:
            self.segments.remove(segment)
            paths.extend(segment.mark_deleted())
        if not paths:
            return
        delay = self.config.file_delete_delay_ms / 1000
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or delay <= 0:
            _remove_all(paths)
            return
        token = id(paths)
        handle = loop.call_later(delay, self._remove_later, token)
        self._pending_deletes[token] = (handle, paths)

    def _remove_later(self, token: int) -> None:
        _, paths = self._pending_deletes.pop(token, (None, []))
        _remove_all(paths)

    def replace_segment(self, old: LogSegment, cleaned_path: str) -> LogSegment:
        """Swap a compacted rewrite in for ``old`` (same base offset): drop the old indexes,
        atomically rename the new ``.log`` over the old one, rebuild and sync the indexes. A
        crash at any point leaves a whole log file whose missing indexes the loader rebuilds."""
        self._check_open()
        if old is self.segments.active:
            raise ValueError("the active segment is never compacted")
        remove_quietly(old.index.path)
        remove_quietly(old.time_index.path)
        old.close()
        os.replace(cleaned_path, old.log_path)
        fsync_dir(self.dir)
        new = LogSegment.open(self.dir, old.base_offset,
                              index_bytes=self.config.segment_index_bytes,
                              index_interval=self.config.index_interval_bytes,
                              now_ms=self._now_ms(), rebuild=True)
        new.on_become_inactive()
        for fd in new.sync_fds():
            os.fsync(fd)
        self.segments.replace(old, new)
        self.generation += 1
        return new

    # ------------------------------------------------------------------ lifecycle
    def close(self, flush: bool = True) -> None:
        """Flush, record the active segment's largest timestamp, close every file (with
        ``flush=False``, only close: the dir is offline)."""
        if self.closed:
            return
        try:
            if flush:
                self.segments.active.on_become_inactive()
                self.flush_sync()
        finally:
            self.closed = True
            for task in list(self._background):
                task.cancel()
            for handle, paths in self._pending_deletes.values():
                handle.cancel()
                _remove_all(paths)
            self._pending_deletes.clear()
            for segment in self.segments:
                segment.close()

    def __repr__(self) -> str:
        return (f"PartitionLog({self.topic}-{self.partition}, start={self.log_start_offset}, "
                f"end={self.log_end_offset}, hw={self._high_watermark})")


def _fsync_and_close(fds: list[int]) -> None:
    """Runs in an executor thread, on descriptors it owns."""
    try:
        for fd in fds:
            os.fsync(fd)
    finally:
        for fd in fds:
            os.close(fd)


def _remove_all(paths: list[str]) -> None:
    for path in paths:
        remove_quietly(path)
