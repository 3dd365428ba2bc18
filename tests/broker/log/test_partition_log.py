"""PartitionLog append and read: offsets, regions, limits, rolls, refusals."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from klamm.broker.log import (
    CorruptBatch,
    LogStorageError,
    OffsetOutOfRange,
    PartitionLog,
    RecordTooLarge,
)
from klamm.broker.log import segment as segment_module
from klamm.protocol.records import decode_records, validate_batch

from .conftest import T0, FakeClock, batch, fetched_bytes, headers_of, records_of, segment_files

OpenLog = Callable[..., PartitionLog]


def fill(plog: PartitionLog, batches: int, n: int = 3, **kw: object) -> None:
    for _ in range(batches):
        plog.append(batch(n, **kw), leader_epoch=0)  # type: ignore[arg-type]
    plog.update_high_watermark(plog.log_end_offset)


def test_append_then_read_returns_the_same_records(open_log: OpenLog) -> None:
    plog = open_log()
    info = plog.append(batch(3), leader_epoch=7)
    assert (info.base_offset, info.last_offset, info.batches) == (0, 2, 1)
    assert info.log_append_time == -1
    plog.update_high_watermark(plog.log_end_offset)
    data = plog.read(0, 1 << 20)
    buf = fetched_bytes(data)
    assert data.size == len(buf) and data.high_watermark == 3
    [h] = headers_of(buf)
    assert (h.base_offset, h.leader_epoch, h.records_count) == (0, 7, 3)
    recs = records_of(buf)
    assert [r.offset for r in recs] == [0, 1, 2]
    assert [r.key for r in recs] == [b"k0", b"k1", b"k2"]


def test_offsets_are_dense_and_monotonic_across_many_appends_and_rolls(
        open_log: OpenLog) -> None:
    plog = open_log(segment_bytes=2048)
    bases = []
    for i in range(60):
        info = plog.append(batch(1 + i % 4), leader_epoch=0)
        bases.append((info.base_offset, info.last_offset))
    assert plog.segment_count > 3
    expected = 0
    for base, last in bases:
        assert base == expected
        expected = last + 1
    plog.update_high_watermark(plog.log_end_offset)
    recs = records_of(fetched_bytes(plog.read(0, 1 << 24)))
    assert [r.offset for r in recs] == list(range(plog.log_end_offset))


def test_several_batches_in_one_payload_get_consecutive_offsets(open_log: OpenLog) -> None:
    plog = open_log()
    plog.append(batch(2), 0)
    info = plog.append(batch(3) + batch(4) + batch(1), leader_epoch=2)
    assert (info.base_offset, info.last_offset, info.batches) == (2, 9, 3)
    plog.update_high_watermark(plog.log_end_offset)
    heads = headers_of(fetched_bytes(plog.read(0, 1 << 20)))
    assert [(h.base_offset, h.last_offset) for h in heads] == [(0, 1), (2, 4), (5, 8), (9, 9)]
    assert [h.leader_epoch for h in heads] == [0, 2, 2, 2]


def test_read_from_offset_inside_batch_returns_that_batch(open_log: OpenLog) -> None:
    plog = open_log()
    fill(plog, 5, n=4)
    heads = headers_of(fetched_bytes(plog.read(6, 1 << 20)))
    assert heads[0].base_offset == 4 and heads[0].last_offset == 7
    assert [h.base_offset for h in heads] == [4, 8, 12, 16]


def test_read_respects_max_bytes_with_whole_batches(open_log: OpenLog) -> None:
    plog = open_log()
    fill(plog, 10)
    size = len(batch(3))
    data = plog.read(0, int(size * 3.5))
    assert data.size == 3 * size
    assert [h.base_offset for h in headers_of(fetched_bytes(data))] == [0, 3, 6]


def test_read_with_min_one_returns_a_first_batch_larger_than_max_bytes(
        open_log: OpenLog) -> None:
    plog = open_log()
    fill(plog, 3)
    size = len(batch(3))
    one = plog.read(3, 10, min_one=True)
    assert one.size == size and headers_of(fetched_bytes(one))[0].base_offset == 3
    none = plog.read(3, 10, min_one=False)
    assert none.regions == [] and none.size == 0


def test_read_stops_at_the_high_watermark_by_default(open_log: OpenLog) -> None:
    plog = open_log()
    fill(plog, 6)
    plog.update_high_watermark(9)
    heads = headers_of(fetched_bytes(plog.read(0, 1 << 20)))
    assert [h.base_offset for h in heads] == [0, 3, 6]
    assert plog.read(9, 1 << 20).regions == []
    # An explicit max offset (a follower reading to the log end) goes further.
    heads = headers_of(fetched_bytes(plog.read(9, 1 << 20, max_offset=plog.log_end_offset)))
    assert [h.base_offset for h in heads] == [9, 12, 15]


def test_read_at_log_end_is_empty_and_outside_the_log_is_out_of_range(
        open_log: OpenLog) -> None:
    plog = open_log()
    fill(plog, 2)
    empty = plog.read(plog.log_end_offset, 1 << 20)
    assert empty.regions == [] and empty.size == 0
    with pytest.raises(OffsetOutOfRange):
        plog.read(plog.log_end_offset + 1, 1 << 20)
    with pytest.raises(OffsetOutOfRange):
        plog.read(-1, 1 << 20)


def test_read_spans_segments(open_log: OpenLog) -> None:
    plog = open_log(segment_bytes=1024)
    fill(plog, 30)
    assert plog.segment_count >= 4
    data = plog.read(2, 1 << 24)
    assert len(data.regions) == plog.segment_count
    heads = headers_of(fetched_bytes(data))
    assert heads[0].base_offset == 0
    assert heads[-1].next_offset == plog.log_end_offset
    assert all(a.next_offset == b.base_offset for a, b in zip(heads, heads[1:], strict=False))


def test_read_spanning_segments_still_respects_max_bytes(open_log: OpenLog) -> None:
    plog = open_log(segment_bytes=1024)
    fill(plog, 30)
    size = len(batch(3))
    per_segment = 1024 // size
    want = per_segment + 2  # crosses into the second segment
    data = plog.read(0, size * want + size // 2)
    assert len(data.regions) == 2
    assert len(headers_of(fetched_bytes(data))) == want


def test_segment_rolls_when_segment_bytes_would_be_exceeded(open_log: OpenLog,
                                                            tmp_path: Path) -> None:
    plog = open_log(segment_bytes=1024)
    size = len(batch(3))
    fill(plog, 10)
    per_segment = 1024 // size
    assert plog.segment_count == -(-10 // per_segment)
    assert all(s.size <= 1024 for s in plog.segments)
    names = segment_files(tmp_path / "t-0")
    assert names[0] == "00000000000000000000.log"
    assert names[1] == f"{per_segment * 3:020d}.log"


def test_segment_rolls_after_segment_ms(open_log: OpenLog, clock: FakeClock) -> None:
    plog = open_log(segment_ms=60_000)
    plog.append(batch(3, ts=clock.ms), 0)
    clock.advance(59_000)
    plog.append(batch(3, ts=clock.ms), 0)
    assert plog.segment_count == 1
    clock.advance(1_000)
    info = plog.append(batch(3, ts=clock.ms), 0)
    assert plog.segment_count == 2
    assert plog.segments.active.base_offset == info.base_offset == 6


def test_segment_rolls_when_its_index_is_full(open_log: OpenLog) -> None:
    # 1024 index bytes = 85 time-index entries; index every batch.
    plog = open_log(segment_index_bytes=1024, index_interval_bytes=0)
    for i in range(200):
        plog.append(batch(1, ts=T0 + i), 0)
    assert plog.segment_count >= 2
    assert all(s.time_index.entries <= 85 for s in plog.segments)


def test_corrupt_batch_is_refused_and_nothing_is_written(open_log: OpenLog,
                                                         tmp_path: Path) -> None:
    plog = open_log()
    plog.append(batch(3), 0)
    size_before = os.path.getsize(tmp_path / "t-0" / "00000000000000000000.log")
    good, bad = batch(3), bytearray(batch(3))
    bad[-3] ^= 0xFF
    with pytest.raises(CorruptBatch):
        plog.append(good + bytes(bad), 0)
    with pytest.raises(CorruptBatch):
        plog.append(good[:-5], 0)  # truncated
    with pytest.raises(CorruptBatch):
        plog.append(b"", 0)
    assert plog.log_end_offset == 3
    assert os.path.getsize(tmp_path / "t-0" / "00000000000000000000.log") == size_before


def test_batch_larger_than_max_message_bytes_is_refused(open_log: OpenLog) -> None:
    plog = open_log(max_message_bytes=500)
    plog.append(batch(2), 0)
    with pytest.raises(RecordTooLarge, match="max.message.bytes=500"):
        plog.append(batch(2) + batch(10, value_size=100), 0)
    assert plog.log_end_offset == 2 and plog.size_bytes == len(batch(2))


def test_log_append_time_topic_stamps_broker_time_and_crc_still_validates(
        open_log: OpenLog, clock: FakeClock) -> None:
    plog = open_log(message_timestamp_type="LogAppendTime")
    info = plog.append(batch(3, ts=123), 0)
    assert info.log_append_time == clock.ms
    plog.update_high_watermark(plog.log_end_offset)
    buf = fetched_bytes(plog.read(0, 1 << 20))
    h = validate_batch(buf)
    assert h.log_append_time and h.max_timestamp == clock.ms
    assert [r.timestamp for r in decode_records(buf)] == [clock.ms] * 3
    assert plog.offset_for_timestamp(clock.ms) == (0, clock.ms)


def test_write_failure_leaves_log_unchanged_and_next_append_succeeds(
        open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plog = open_log()
    plog.append(batch(3), 0)
    path = tmp_path / "t-0" / "00000000000000000000.log"
    size_before = os.path.getsize(path)
    real_writev = os.writev
    calls = []

    def full_disk(fd: int, buffers: list[bytes]) -> int:
        calls.append(fd)
        if len(calls) == 1:
            real_writev(fd, [bytes(buffers[0])[:10]])  # a partial write, then the disk fills
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_writev(fd, buffers)

    monkeypatch.setattr(segment_module.os, "writev", full_disk)
    with pytest.raises(LogStorageError, match="No space left"):
        plog.append(batch(2), 0)
    assert plog.log_end_offset == 3
    assert os.path.getsize(path) == size_before
    info = plog.append(batch(2), 0)
    assert (info.base_offset, info.last_offset) == (3, 4)
    plog.update_high_watermark(plog.log_end_offset)
    heads = headers_of(fetched_bytes(plog.read(0, 1 << 20)))
    assert [h.base_offset for h in heads] == [0, 3]


async def test_concurrent_flushes_share_fsyncs(open_log: OpenLog) -> None:
    plog = open_log()
    plog.append(batch(3), 0)
    first = asyncio.create_task(plog.flush())
    await asyncio.sleep(0)
    waiters = []
    for _ in range(100):
        plog.append(batch(1), 0)
        waiters.append(asyncio.create_task(plog.flush()))
    await asyncio.gather(first, *waiters)
    assert plog.recovery_point == plog.log_end_offset == 103
    assert 1 <= plog.fsync_count <= 2
    await plog.flush()  # nothing new: no fsync at all
    assert plog.fsync_count <= 2


async def test_flush_messages_makes_needs_flush_true(open_log: OpenLog) -> None:
    plog = open_log(flush_messages=5)
    plog.append(batch(3), 0)
    assert not plog.needs_flush()
    plog.append(batch(3), 0)
    assert plog.needs_flush()
    await plog.flush(plog.log_end_offset)
    assert not plog.needs_flush() and plog.recovery_point == 6


def test_flush_ms_makes_needs_flush_true(open_log: OpenLog, clock: FakeClock) -> None:
    plog = open_log(flush_ms=1000)
    plog.append(batch(3), 0)
    assert not plog.needs_flush()
    clock.advance(1000)
    assert plog.needs_flush()
    plog.flush_sync()
    assert not plog.needs_flush()


def test_truncate_to_drops_later_batches_and_segments(open_log: OpenLog) -> None:
    plog = open_log(segment_bytes=1024)
    fill(plog, 20)
    segments_before = plog.segment_count
    plog.truncate_to(10)  # inside the batch 9..11: the whole batch goes
    assert plog.log_end_offset == 9
    assert plog.high_watermark == 9
    assert plog.segment_count < segments_before
    info = plog.append(batch(3), 0)
    assert info.base_offset == 9
    plog.update_high_watermark(plog.log_end_offset)
    recs = records_of(fetched_bytes(plog.read(0, 1 << 20)))
    assert [r.offset for r in recs] == list(range(12))


def test_delete_records_before_advances_log_start(open_log: OpenLog) -> None:
    plog = open_log(segment_bytes=1024)
    fill(plog, 20)
    plog.delete_records_before(30)
    assert plog.log_start_offset == 30
    assert plog.segments.first.base_offset <= 30 < plog.segments.upper_bound(
        0, plog.log_end_offset)
    with pytest.raises(OffsetOutOfRange):
        plog.read(29, 1 << 20)
    heads = headers_of(fetched_bytes(plog.read(30, 1 << 20)))
    assert heads[0].base_offset == 30
    with pytest.raises(OffsetOutOfRange):
        plog.delete_records_before(plog.high_watermark + 1)


def test_follower_append_keeps_offsets_and_epochs(open_log: OpenLog, tmp_path: Path) -> None:
    leader = PartitionLog("t", 1, str(tmp_path / "t-1"), open_log().config)
    try:
        leader.append(batch(3), leader_epoch=1)
        leader.append(batch(2), leader_epoch=4)
        leader.update_high_watermark(leader.log_end_offset)
        payload = fetched_bytes(leader.read(0, 1 << 20))
    finally:
        leader.close()
    follower = open_log()
    info = follower.append_as_follower(payload)
    assert (info.base_offset, info.last_offset) == (0, 4)
    assert follower.leader_epoch_cache.entries == [(1, 0), (4, 3)]
    follower.update_high_watermark(follower.log_end_offset)
    assert fetched_bytes(follower.read(0, 1 << 20)) == payload
    with pytest.raises(Exception, match="does not follow"):
        follower.append_as_follower(payload)


def test_high_watermark_is_clamped_to_the_log(open_log: OpenLog) -> None:
    plog = open_log()
    fill(plog, 2)
    assert plog.update_high_watermark(100) == 6
    assert plog.update_high_watermark(-5) == 0


def test_fetched_region_stays_readable_after_its_segment_is_deleted(
        open_log: OpenLog, clock: FakeClock) -> None:
    plog = open_log(segment_bytes=1024, retention_ms=1000, file_delete_delay_ms=0)
    for _ in range(10):
        plog.append(batch(3, ts=clock.ms), 0)
    plog.update_high_watermark(plog.log_end_offset)
    data = plog.read(0, 500)
    clock.advance(5000)
    assert plog.delete_old_segments() >= 1
    assert not os.path.exists(plog.segments.first.dir + "/00000000000000000000.log")
    heads = headers_of(fetched_bytes(data))  # the caller's dup()ed fd outlives the file name
    assert heads and heads[0].base_offset == 0 and data.size == sum(h.size for h in heads)


def test_a_read_from_any_offset_starts_at_the_batch_holding_it_after_appends_truncation_and_reopen(
        open_log: OpenLog) -> None:
    """Reads near the tail take a shortcut (the last batch's position); every offset must
    still land on the batch holding it, whatever happened to the tail."""
    plog = open_log(segment_bytes=4096, index_interval_bytes=512)
    sizes = [1, 4, 2, 7, 1, 1, 3, 5, 1, 2] * 6

    def check(log: PartitionLog) -> None:
        log.update_high_watermark(log.log_end_offset)
        everything = headers_of(fetched_bytes(log.read(0, 1 << 20)))
        bases = [(h.base_offset, h.last_offset) for h in everything]
        assert bases and bases[-1][1] == log.log_end_offset - 1
        for base, last in bases:
            for offset in range(base, last + 1):
                first = headers_of(fetched_bytes(log.read(offset, 1, min_one=True)))
                assert (first[0].base_offset, first[0].last_offset) == (base, last), offset
        assert log.read(log.log_end_offset, 1 << 20).size == 0

    for n in sizes:
        plog.append(batch(n), 0)
    check(plog)
    plog.truncate_to(plog.log_end_offset - 4)  # cuts inside the last batches
    check(plog)
    plog.append(batch(3), 0)
    check(plog)
    plog.close()
    clean = open_log(segment_bytes=4096, index_interval_bytes=512)
    check(clean)  # a clean open reads the tail from the last index entry
    clean.append(batch(2), 0)
    check(clean)
    clean.close()
    reopened = open_log(segment_bytes=4096, index_interval_bytes=512, clean=False)
    check(reopened)  # unclean: recovery scans every batch
    reopened.append(batch(5), 0)
    check(reopened)


def test_producer_batches_kafka_refuses_are_refused_with_nothing_written(
        open_log: OpenLog) -> None:
    import msgpack

    from klamm.broker.log.errors import InvalidRecord, InvalidTimestamp
    from klamm.protocol.records import TRANSACTIONAL_FLAG
    from tests.support.batches import forged_batch

    plog = open_log(message_timestamp_difference_max_ms=60_000)
    one = msgpack.packb([[0, 0, b"k", b"v", ()]])
    with pytest.raises(InvalidRecord, match="transactional"):
        plog.append(forged_batch(one, count=1, attributes=TRANSACTIONAL_FLAG,
                                 first_ts=T0, max_ts=T0), 0)
    with pytest.raises(InvalidRecord, match="says 2 records but its records section holds 1"):
        plog.append(forged_batch(one, count=2, first_ts=T0, max_ts=T0), 0)
    from klamm.protocol.compression import Compression, compress
    for codec in (Compression.GZIP, Compression.LZ4, Compression.ZSTD):
        with pytest.raises(InvalidRecord, match="says 2 records"):  # compressed: 5 bytes read
            plog.append(forged_batch(compress(codec, one), count=2, attributes=int(codec),
                                     first_ts=T0, max_ts=T0), 0)
    with pytest.raises(InvalidTimestamp, match="message.timestamp.difference.max.ms"):
        plog.append(forged_batch(one, count=1, first_ts=T0 - 3_600_000, max_ts=T0), 0)
    assert plog.log_end_offset == 0 and plog.size_bytes == 0
    assert plog.append(forged_batch(one, count=1, first_ts=T0, max_ts=T0), 0).base_offset == 0


def test_a_compacted_topic_checks_every_record_with_bounded_decompression(
        open_log: OpenLog) -> None:
    """Before, a keyless record or a 2 KB zstd bomb was stored, and later stopped the
    cleaner (a traceback every 15 s) or took it to 1.2 GB."""
    import msgpack

    from klamm.broker.log.errors import InvalidRecord
    from klamm.protocol.compression import Compression
    from tests.support.batches import forged_batch, zstd_bomb

    plog = open_log(cleanup_policy="compact")
    with pytest.raises(InvalidRecord, match="no key"):
        plog.append(forged_batch(msgpack.packb([[0, 0, None, b"v", ()]]), count=1), 0)
    with pytest.raises(InvalidRecord, match="inflates past"):
        plog.append(forged_batch(zstd_bomb(300 << 20), count=1,
                                 attributes=int(Compression.ZSTD)), 0)
    assert plog.log_end_offset == 0
    plog.append(batch(3, keys=[b"a", b"b", b"c"]), 0)
    assert plog.log_end_offset == 3
