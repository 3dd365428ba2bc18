"""Log compaction for ``cleanup.policy=compact``: keep the latest record per key.

With the produce-time check of compacted topics (``PartitionLog``), the one place in the
broker that decodes records (decompression bounded by ``inflation_limit``). A pass over a log:

1. on the event loop, pick the cleanable segments - every inactive segment, oldest first,
   stopping at the first one younger than ``min.compaction.lag.ms`` - and ``dup()`` their
   descriptors;
2. in a worker thread (``compact_segments``, no shared state): build the key -> latest offset
   map over those segments, then rewrite each segment that loses records into
   ``<base>.log.cleaned``. Records keep their offsets: a rewritten batch keeps its base
   offset, last offset delta (``build_batch(..., last_offset_delta=...)``) and each record's
   offset delta. A record survives when it is the latest for its key - and, for a tombstone
   (null value), when it is younger than ``delete.retention.ms``. Records without a key are
   kept. Untouched batches are copied byte for byte; batches left empty disappear;
3. back on the event loop, swap each rewrite in (``PartitionLog.replace_segment``) only if the
   log did not change meanwhile (same segment objects, sizes and generation); otherwise the
   rewrite is discarded and the next pass starts over.

Segments are not merged, so compacted logs keep their segment count. A batch whose CRC holds
but whose records cannot be decoded (stored before the produce-time check existed, or by a
follower from such a leader) makes its log uncleanable until restart: one ERROR line, and the
other logs are compacted as before.
Not thread-safe as an object; one ``LogCleaner`` serves all logs from the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any
from dataclasses import dataclass, field

from klamm.protocol.compression import Compression
from klamm.protocol.records import (
    CODEC_MASK,
    CONTROL_FLAG,
    HEADER_SIZE,
    TIMESTAMP_TYPE_LOG_APPEND,
    BatchHeader,
    CorruptBatch,
    build_batch,
    decode_raw_records,
)

from .files import CLEANED_SUFFIX, remove_quietly, segment_name, write_synced
from .partition_log import PartitionLog
from .segment import LogSegment, ScanStopped, read_batch_bytes

log = logging.getLogger(__name__)

NO_EXPIRY = 2**63 - 1


@dataclass(slots=True)
class SourceSegment:
    base_offset: int
    fd: int  # owned by the worker, closed when it is done
    size: int


@dataclass(slots=True)
class CompactionResult:
    cleaned: dict[int, str] = field(default_factory=dict)  # base offset -> .cleaned path
    records_removed: int = 0
    next_tombstone_expiry_ms: int = NO_EXPIRY  # when a kept tombstone becomes removable


@dataclass(slots=True)
class _LogState:
    cleaned_upto: int = -1  # upper offset of the last cleaned range
    next_expiry_ms: int = NO_EXPIRY
    uncleanable: bool = False  # a batch here cannot be decoded: never compacted again


def _timestamp_of(header: BatchHeader, ts_delta: int) -> int:
    if header.attributes & TIMESTAMP_TYPE_LOG_APPEND:
        return header.max_timestamp
    return header.first_timestamp + ts_delta


class CompactionAborted(Exception):
    """A source segment was torn, corrupt or changed during the pass."""


class UncleanableLog(CompactionAborted):
    """A batch whose CRC holds but whose records cannot be decoded: the log cannot be
    compacted past it, now or later (Kafka marks such partitions uncleanable)."""


def _batches(src: SourceSegment) -> Iterator[tuple[int, BatchHeader, memoryview]]:
    try:
        yield from read_batch_bytes(src.fd, src.size, validate=True)
    except ScanStopped as stop:
        raise CompactionAborted(f"segment {src.base_offset} at {stop.position}: "
                                f"{stop.reason}") from None
    except CorruptBatch as exc:
        raise CompactionAborted(f"segment {src.base_offset}: {exc}") from None


def _records(src: SourceSegment, header: BatchHeader, data: memoryview) -> tuple[Any, ...]:
    try:
        raw = decode_raw_records(data[HEADER_SIZE:], header.attributes)
        if not all(isinstance(r, tuple) and len(r) == 5 and type(r[0]) is int for r in raw):
            raise CorruptBatch("a record is not [offset delta, timestamp delta, key, value, "
                               "headers]")
        return raw
    except CorruptBatch as exc:
        raise UncleanableLog(f"batch at offset {header.base_offset} in segment "
                             f"{src.base_offset}: {exc}") from None


def compact_segments(directory: str, sources: list[SourceSegment], now_ms: int,
                     delete_retention_ms: int) -> CompactionResult:
    """Worker-thread half of a pass: reads only the given descriptors (with ``pread``, so a
    segment truncated meanwhile just ends the pass), writes only ``*.cleaned`` files in
    ``directory``. Closes every source descriptor. Raises CompactionAborted when a source
    is torn or corrupt; the caller discards the pass."""
    written: list[str] = []
    try:
        latest: dict[bytes, int] = {}
        for src in sources:
            for _, header, data in _batches(src):
                if header.attributes & CONTROL_FLAG:
                    continue
                base = header.base_offset
                for rec in _records(src, header, data):
                    if rec[2] is not None:
                        latest[rec[2]] = base + rec[0]
        horizon = now_ms - delete_retention_ms
        result = CompactionResult()
        for src in sources:
            out, removed, expiry = _rewrite(src, latest, horizon, delete_retention_ms)
            result.records_removed += removed
            result.next_tombstone_expiry_ms = min(result.next_tombstone_expiry_ms, expiry)
            if out is None:
                continue
            path = os.path.join(directory, segment_name(src.base_offset) + ".log" +
                                CLEANED_SUFFIX)
            written.append(path)
            write_synced(path, out)
            result.cleaned[src.base_offset] = path
        return result
    except BaseException:
        for path in written:
            remove_quietly(path)
        raise
    finally:
        for src in sources:
            os.close(src.fd)


def _rewrite(src: SourceSegment, latest: dict[bytes, int], horizon: int,
             delete_retention_ms: int) -> tuple[list[bytes] | None, int, int]:
    """The segment's new content (None when nothing changes), records removed, and the
    earliest time a kept tombstone becomes removable."""
    out: list[bytes] = []
    removed = 0
    expiry = NO_EXPIRY
    for _, header, data in _batches(src):
        if header.attributes & CONTROL_FLAG:
            out.append(bytes(data))
            continue
        raw = _records(src, header, data)
        base = header.base_offset
        kept = []
        for rec in raw:
            key, value = rec[2], rec[3]
            if key is not None and latest.get(key) != base + rec[0]:
                continue
            if key is not None and value is None:
                ts = _timestamp_of(header, rec[1])
                if ts < horizon:
                    continue
                expiry = min(expiry, ts + delete_retention_ms + 1)
            kept.append(rec)
        removed += len(raw) - len(kept)
        if len(kept) == len(raw):
            out.append(bytes(data))
        elif kept:
            out.append(build_batch(
                kept, header.first_timestamp, header.max_timestamp,
                compression=Compression(header.attributes & CODEC_MASK),
                base_offset=base, leader_epoch=header.leader_epoch,
                producer_id=header.producer_id, producer_epoch=header.producer_epoch,
                base_sequence=header.base_sequence,
                log_append_time=bool(header.attributes & TIMESTAMP_TYPE_LOG_APPEND),
                last_offset_delta=header.last_offset_delta))
    return (out if removed else None), removed, expiry


class LogCleaner:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._state: dict[int, _LogState] = {}

    def forget(self, plog: PartitionLog) -> None:
        self._state.pop(id(plog), None)

    async def clean(self, plog: PartitionLog, *, force: bool = False) -> int:
        """One compaction pass over ``plog``; returns the number of records removed. Skips
        the log when nothing new was rolled and no kept tombstone expired since last pass."""
        if plog.closed or not plog.config.compact:
            return 0
        now_ms = int(self._clock() * 1000)
        lag = plog.config.min_compaction_lag_ms
        candidates: list[LogSegment] = []
        for segment in list(plog.segments)[:-1]:
            if segment.largest_timestamp > now_ms - lag:
                break
            candidates.append(segment)
        if not candidates:
            return 0
        upper = plog.segments[len(candidates)].base_offset
        state = self._state.setdefault(id(plog), _LogState())
        if state.uncleanable:
            return 0
        if not force and upper <= state.cleaned_upto and now_ms < state.next_expiry_ms:
            return 0
        generation = plog.generation
        sizes = {s.base_offset: s.size for s in candidates}
        sources = [SourceSegment(s.base_offset, os.dup(s.fd), s.size) for s in candidates]
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(None, compact_segments, plog.dir, sources,
                                                now_ms, plog.config.delete_retention_ms)
        except UncleanableLog as exc:
            state.uncleanable = True
            log.error("%s cannot be compacted: %s. It is skipped until the broker restarts; "
                      "its records are still served. Other logs are compacted as usual",
                      plog.dir, exc)
            return 0
        except CompactionAborted as exc:
            log.warning("compaction of %s aborted: %s", plog.dir, exc)
            return 0
        current = {s.base_offset: s for s in plog.segments}
        unchanged = (not plog.closed and plog.generation == generation
                     and all(b in current and current[b].size == n and
                             current[b] is not plog.segments.active
                             for b, n in sizes.items()))
        if not unchanged:
            log.info("%s changed during compaction; discarding the rewrite", plog.dir)
            for path in result.cleaned.values():
                remove_quietly(path)
            return 0
        for base, path in sorted(result.cleaned.items()):
            plog.replace_segment(current[base], path)
        state.cleaned_upto = upper
        state.next_expiry_ms = result.next_tombstone_expiry_ms
        if result.records_removed:
            log.info("compacted %s: removed %d record(s) below offset %d", plog.dir,
                     result.records_removed, upper)
        return result.records_removed
