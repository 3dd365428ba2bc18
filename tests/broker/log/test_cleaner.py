"""Compaction: latest value per key, offsets kept, tombstones expire, concurrent changes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from klamm.broker.log import PartitionLog
from klamm.broker.log.cleaner import LogCleaner
from klamm.protocol.records import validate_batch

from .conftest import DAY_MS, FakeClock, batch, fetched_bytes, records_of

OpenLog = Callable[..., PartitionLog]


def compact_log(open_log: OpenLog) -> PartitionLog:
    return open_log(cleanup_policy="compact", segment_bytes=1024,
                    delete_retention_ms=DAY_MS)


def write_history(plog: PartitionLog, clock: FakeClock) -> dict[bytes, tuple[int, bytes | None]]:
    """Five keys updated many times, one deleted; returns key -> (last offset, last value)."""
    latest: dict[bytes, tuple[int, bytes | None]] = {}
    for round_ in range(12):
        keys = [b"key%d" % ((round_ + i) % 5) for i in range(3)]
        values: list[bytes | None] = [b"v%d-%d" % (round_, i) for i in range(3)]
        if round_ == 5:
            keys[0], values[0] = b"doomed", b"alive"
        if round_ == 7:
            keys[0], values[0] = b"doomed", None  # tombstone
        info = plog.append(batch(3, ts=clock.ms, keys=keys, values=values), 0)  # type: ignore[arg-type]
        for i, key in enumerate(keys):
            latest[key] = (info.base_offset + i, values[i])
    plog.roll()
    return latest


def read_all(plog: PartitionLog) -> list:
    plog.update_high_watermark(plog.log_end_offset)
    return records_of(fetched_bytes(plog.read(plog.log_start_offset, 1 << 24)))


async def test_compaction_keeps_latest_value_per_key_at_its_offset(
        open_log: OpenLog, clock: FakeClock) -> None:
    plog = compact_log(open_log)
    latest = write_history(plog, clock)
    end = plog.log_end_offset
    before = plog.size_bytes
    removed = await LogCleaner(clock).clean(plog)
    assert removed > 0 and plog.size_bytes < before
    records = read_all(plog)
    assert {r.key: (r.offset, r.value) for r in records} == latest
    assert len(records) == len(latest)  # the young tombstone is still there
    assert plog.log_end_offset == end
    offsets = [r.offset for r in records]
    assert offsets == sorted(offsets)
    # Every batch on disk still validates, and appends continue at the same offset.
    info = plog.append(batch(1), 0)
    assert info.base_offset == end


async def test_compaction_removes_tombstones_older_than_delete_retention(
        open_log: OpenLog, clock: FakeClock) -> None:
    plog = compact_log(open_log)
    latest = write_history(plog, clock)
    cleaner = LogCleaner(clock)
    await cleaner.clean(plog)
    assert any(r.key == b"doomed" for r in read_all(plog))
    clock.advance(DAY_MS + 1)
    await cleaner.clean(plog)  # nothing new rolled, but the tombstone expired
    records = read_all(plog)
    assert all(r.key != b"doomed" for r in records)
    assert {r.key: r.value for r in records} == {k: v for k, (_, v) in latest.items()
                                                 if k != b"doomed"}


async def test_compaction_survives_restart_and_rebuilt_indexes_work(
        open_log: OpenLog, clock: FakeClock) -> None:
    plog = compact_log(open_log)
    latest = write_history(plog, clock)
    await LogCleaner(clock).clean(plog)
    plog.close()
    again = open_log(cleanup_policy="compact", segment_bytes=1024, delete_retention_ms=DAY_MS)
    assert {r.key: (r.offset, r.value) for r in read_all(again)} == latest
    # Reading from an offset that compaction removed starts at the next surviving one.
    first_kept = min(off for off, _ in latest.values())
    again.update_high_watermark(again.log_end_offset)
    buf = fetched_bytes(again.read(first_kept, 1 << 20))
    assert validate_batch(buf).last_offset >= first_kept


async def test_compaction_discards_its_work_when_the_log_changed_meanwhile(
        open_log: OpenLog, clock: FakeClock) -> None:
    plog = compact_log(open_log)
    write_history(plog, clock)
    sizes = [s.size for s in plog.segments]
    cleaner = LogCleaner(clock)
    task = asyncio.create_task(cleaner.clean(plog))
    await asyncio.sleep(0)  # the pass has snapshotted the segments and is in its thread
    plog.truncate_to(plog.segments[1].base_offset + 1)  # changes the log before the swap
    assert await task == 0
    assert [s.size for s in plog.segments] != sizes
    assert not [f for f in os.listdir(plog.dir) if f.endswith(".cleaned")]


async def test_cleaner_leaves_delete_policy_topics_alone(open_log: OpenLog,
                                                         clock: FakeClock) -> None:
    plog = open_log(segment_bytes=1024)
    write_history(plog, clock)
    before = plog.size_bytes
    assert await LogCleaner(clock).clean(plog) == 0
    assert plog.size_bytes == before


async def test_a_log_holding_an_undecodable_batch_is_skipped_and_the_others_compacted(
        tmp_path, clock: FakeClock, caplog) -> None:
    """Before, one batch with a valid CRC but undecodable records stopped all compaction
    for ever, with a traceback every pass."""
    import logging

    from tests.broker.log.conftest import topic_config
    from tests.support.batches import forged_batch

    config = topic_config(cleanup_policy="compact", segment_bytes=1024,
                          delete_retention_ms=DAY_MS)
    poisoned = PartitionLog("poisoned", 0, str(tmp_path / "poisoned-0"), config, clock=clock)
    healthy = PartitionLog("healthy", 0, str(tmp_path / "healthy-0"), config, clock=clock)
    try:
        write_history(healthy, clock)
        # A follower stores what its leader sent (CRC checked, records not): a bad batch
        # from a leader that stored it before produce-time checks existed.
        garbage = forged_batch(b"\xc1" * 40, count=1, first_ts=clock.ms, max_ts=clock.ms)
        poisoned.append_as_follower(garbage)
        write_history(poisoned, clock)
        size = poisoned.size_bytes
        cleaner = LogCleaner(clock)
        with caplog.at_level(logging.INFO, logger="klamm.broker.log"):
            for _ in range(3):
                for plog in (poisoned, healthy):
                    await cleaner.clean(plog, force=True)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "cannot be compacted" in errors[0].getMessage()
        assert "poisoned-0" in errors[0].getMessage() and "Traceback" not in caplog.text
        assert "compacted" in caplog.text and "healthy-0" in caplog.text
        assert poisoned.size_bytes == size  # left as it was, and still served
        poisoned.update_high_watermark(poisoned.log_end_offset)
        assert len(fetched_bytes(poisoned.read(0, 1 << 20))) == size
    finally:
        poisoned.close()
        healthy.close()
