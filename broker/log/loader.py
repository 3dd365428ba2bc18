"""LogLoader: open a partition directory and make its segments trustworthy.

Steps, in order:
1. finish what a crash interrupted: remove ``*.deleted`` files (a deletion was under way),
   ``*.cleaned`` and ``*.tmp`` files (a compaction or checkpoint write never completed), and
   index files whose ``.log`` is gone;
2. open every segment; a missing or unreadable index is rebuilt from its log;
3. after an unclean shutdown, re-validate (CRC, structure, monotonic offsets) every batch in
   the segments from the one holding the recovery point onward, truncating at the first torn
   or corrupt batch and dropping every later segment, then fsync what survived;
   after a clean shutdown only the active segment's tail is re-read (headers only) to find
   the log end offset - and it is recovered the same way if that tail is damaged.
"""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

from klamm.broker.config import TopicConfig
from klamm.protocol.records import CorruptBatch

from .files import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    TMP_SUFFIX,
    fsync_dir,
    parse_segment_name,
    remove_quietly,
)
from .segment import LogSegment
from .segments import LogSegments
from .sync_batch import SyncBatch

log = logging.getLogger(__name__)


class LoadedLog(NamedTuple):
    segments: LogSegments
    log_start_offset: int
    recovery_point: int
    recovered_bytes: int  # bytes truncated by recovery (0 when the log was intact)


def load_log(directory: str, config: TopicConfig, *, recovery_point: int,
             log_start_offset: int | None, clean: bool, now_ms: int,
             sync: SyncBatch | None = None) -> LoadedLog:
    """Open (or create) the log in ``directory``; a new log's files are made durable at
    once, or by ``sync``'s commit when given."""
    os.makedirs(directory, exist_ok=True)
    bases = _clean_directory(directory)
    segments = LogSegments()
    for base in bases:
        segments.add(LogSegment.open(directory, base, index_bytes=config.segment_index_bytes,
                                     index_interval=config.index_interval_bytes,
                                     now_ms=now_ms))
    if not len(segments):
        start = log_start_offset if log_start_offset is not None and log_start_offset > 0 else 0
        segments.add(LogSegment.create(directory, start,
                                       index_bytes=config.segment_index_bytes,
                                       index_interval=config.index_interval_bytes,
                                       now_ms=now_ms))
        if sync is None:
            fsync_dir(directory)
        else:
            sync.sync_dir(directory)
        return LoadedLog(segments, start, start, 0)

    truncated = 0
    first_recovered = len(segments) if clean else max(segments.floor_index(recovery_point), 0)
    for segment in list(segments)[:first_recovered]:
        if segment.needs_rebuild:
            truncated += segment.recover(validate=False)
            if segment is not segments.active:
                segment.on_become_inactive()
    if clean:
        try:
            segments.active.load_tail()
        except CorruptBatch as exc:
            log.warning("%s: damaged tail after a clean shutdown (%s); recovering", directory,
                        exc)
            truncated += segments.active.recover()
        end = segments.active.next_offset
        recovered_to = min(recovery_point, end)
    else:
        truncated = _recover(directory, segments, recovery_point)
        end = segments.active.next_offset
        recovered_to = end
    first = segments.first.base_offset
    start = first if log_start_offset is None else max(min(log_start_offset, end), first)
    return LoadedLog(segments, start, recovered_to, truncated)


def _clean_directory(directory: str) -> list[int]:
    """Finish interrupted deletions and compactions; return segment base offsets in order."""
    logs: set[int] = set()
    indexes: list[tuple[int, str]] = []
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if name.endswith((DELETED_SUFFIX, CLEANED_SUFFIX, TMP_SUFFIX)):
            log.info("removing leftover %s", path)
            remove_quietly(path)
            continue
        parsed = parse_segment_name(name)
        if parsed is None:
            continue
        base, suffix = parsed
        if suffix == LOG_SUFFIX:
            logs.add(base)
        elif suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            indexes.append((base, path))
    for base, path in indexes:
        if base not in logs:
            log.info("removing index without a log: %s", path)
            remove_quietly(path)
    return sorted(logs)


def _recover(directory: str, segments: LogSegments, recovery_point: int) -> int:
    """Re-validate every segment that may hold unflushed data; returns bytes truncated."""
    start = max(segments.floor_index(recovery_point), 0)
    truncated = 0
    i = start
    while i < len(segments):
        segment = segments[i]
        lost = segment.recover(validate=True)
        truncated += lost
        if i + 1 < len(segments) and not lost:
            segment.on_become_inactive()
        if lost and i + 1 < len(segments):
            for later in list(segments)[i + 1:]:
                log.warning("%s: dropping segment %d after a corrupt batch", directory,
                            later.base_offset)
                segments.remove(later)
                for path in later.mark_deleted():
                    remove_quietly(path)
            break
        i += 1
    # What recovery read back becomes durable before the recovery point moves past it.
    for segment in list(segments)[start:]:
        for fd in segment.sync_fds():
            os.fsync(fd)
    fsync_dir(directory)
    return truncated
