"""Sparse offset index and time index: spacing, lookups, persistence, truncation."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from klamm.broker.log import PartitionLog
from klamm.broker.log.offset_index import OffsetIndex
from klamm.broker.log.segment import RECENT_BATCHES, LogSegment
from klamm.broker.log.time_index import TimeIndex

from .conftest import T0, batch, fetched_bytes, headers_of

OpenLog = Callable[..., PartitionLog]


def test_offset_index_has_an_entry_every_index_interval_bytes(open_log: OpenLog) -> None:
    plog = open_log(index_interval_bytes=500)
    size = len(batch(3))
    for _ in range(40):
        plog.append(batch(3), 0)
    segment = plog.segments.active
    entries = [segment.index.entry(i) for i in range(segment.index.entries)]
    assert len(entries) >= 40 * size // (500 + size) - 1
    last_pos = 0
    for offset, position in entries:
        header = segment.header_at(position)
        assert header is not None and header.base_offset == offset
        assert 500 < position - last_pos <= 500 + size
        last_pos = position


def _batches(segment: LogSegment) -> list[tuple[int, int, int]]:
    """``(position, base offset, next offset)`` of every batch, read header by header."""
    out = []
    pos = 0
    while (h := segment.header_at(pos)) is not None:
        out.append((pos, h.base_offset, h.next_offset))
        pos += h.size
    return out


def test_offset_index_lookup_lands_at_or_before_the_batch_holding_each_offset(
        open_log: OpenLog) -> None:
    plog = open_log(index_interval_bytes=300)
    for i in range(30):
        plog.append(batch(1 + i % 3), 0)
    segment = plog.segments.active
    for batch_pos, base, following in _batches(segment):
        for offset in range(base, following):
            entry_offset, entry_pos = segment.index.lookup(offset)
            assert entry_offset <= offset and entry_pos <= batch_pos
            assert batch_pos - entry_pos <= 300 + 3 * len(batch(3))


def test_every_offset_is_found_near_the_tail_and_further_back(open_log: OpenLog) -> None:
    """The last RECENT_BATCHES batches are found from memory, older ones through the index
    and a header scan: both must place every offset, also after a truncation and a reopen."""
    plog = open_log(index_interval_bytes=300)
    for i in range(RECENT_BATCHES * 3):
        plog.append(batch(1 + i % 3), 0)
    for step in ("appended", "truncated", "reopened"):
        segment = plog.segments.active
        batches = _batches(segment)
        assert len(batches) > RECENT_BATCHES
        if step == "appended":
            assert len(segment.recent) == RECENT_BATCHES
        assert segment.recent and segment.recent[-1][2] + segment.recent[-1][3] == segment.size
        for offset in range(plog.log_end_offset + 1):
            holding = [(pos, base) for pos, base, following in batches if following > offset]
            found = segment.translate(offset)
            assert (found[:2] if found else None) == (holding[0] if holding else None), \
                (step, offset)
            later = [pos for pos, base, _ in batches if base >= offset]
            assert segment.position_of(offset) == (later[0] if later else segment.size)
        if step == "appended":
            plog.truncate_to(plog.log_end_offset - 40)
        elif step == "truncated":
            plog.close()
            plog = open_log(index_interval_bytes=300)


def test_offset_index_file_round_trips_and_truncates(tmp_path: Path) -> None:
    path = str(tmp_path / "00000000000000000100.index")
    index = OffsetIndex(path, 100, 1000, loaded=True)
    for i in range(10):
        index.append(100 + i * 5, i * 1000)
    fd = index.write_pending()
    assert os.path.getsize(path) == 80
    index.truncate_to(120)  # drops entries for 120 and later
    assert index.entries == 4 and os.path.getsize(path) == 32
    index.close()
    again = OffsetIndex(path, 100, 1000)
    assert again.entries == 4
    assert again.lookup(117) == (115, 3000)
    assert again.lookup(99) == (100, 0)
    assert again.lookup_position(2500) == (110, 2000)
    assert fd >= 0


def test_time_index_keeps_only_increasing_timestamps(tmp_path: Path) -> None:
    index = TimeIndex(str(tmp_path / "00000000000000000000.timeindex"), 0, 100, loaded=True)
    index.maybe_append(10, 0)
    index.maybe_append(10, 5)
    index.maybe_append(5, 6)
    index.maybe_append(20, 8)
    assert index.entries == 2
    assert index.lookup(15) == 0 and index.lookup(20) == 8 and index.lookup(9) == 0
    index.write_pending()
    index.close()
    again = TimeIndex(index.path, 0, 100)
    assert again.read_last_entry() == (20, 8)
    assert again.last_entry() == (20, 8)


def test_offset_for_timestamp_finds_first_batch_at_or_after_the_time(
        open_log: OpenLog) -> None:
    plog = open_log(index_interval_bytes=200, segment_bytes=2048)
    stamps = [T0 + 10 * i for i in range(40)]
    stamps[20] = T0  # an out-of-order producer timestamp
    for ts in stamps:
        plog.append(batch(2, ts=ts), 0)
    assert plog.segment_count > 1
    assert plog.offset_for_timestamp(T0) == (0, T0)
    assert plog.offset_for_timestamp(T0 + 55) == (12, T0 + 60)
    assert plog.offset_for_timestamp(T0 + 200) == (42, T0 + 210)
    assert plog.offset_for_timestamp(T0 + 390) == (78, T0 + 390)
    assert plog.offset_for_timestamp(T0 + 391) is None
    for i, ts in enumerate(stamps):
        if i != 20:  # brute force agrees for every exact timestamp
            expect = next(j for j, t in enumerate(stamps) if t >= ts)
            assert plog.offset_for_timestamp(ts) == (2 * expect, stamps[expect])


def test_time_index_survives_restart(open_log: OpenLog) -> None:
    plog = open_log(index_interval_bytes=200, segment_bytes=2048)
    for i in range(40):
        plog.append(batch(2, ts=T0 + 10 * i), 0)
    plog.close()
    again = open_log(index_interval_bytes=200, segment_bytes=2048)
    assert again.offset_for_timestamp(T0 + 55) == (12, T0 + 60)
    assert again.segments.first.largest_timestamp > T0
    again.update_high_watermark(again.log_end_offset)
    assert len(headers_of(fetched_bytes(again.read(0, 1 << 24)))) == 40
