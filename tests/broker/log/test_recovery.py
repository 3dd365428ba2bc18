"""Loading after clean and unclean shutdowns: torn tails, corrupt batches, lost indexes."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from klamm.broker.log import PartitionLog

from .conftest import batch, fetched_bytes, headers_of, segment_files, topic_config

OpenLog = Callable[..., PartitionLog]
FIRST_LOG = "00000000000000000000.log"


def batch_positions(path: Path) -> list[int]:
    data = path.read_bytes()
    return [0] + [sum(h.size for h in headers_of(data)[:i + 1])
                  for i in range(len(headers_of(data)) - 1)]


def abandon(plog: PartitionLog) -> None:
    """Close descriptors without the clean-close steps (as if the process died)."""
    plog.closed = True
    for segment in plog.segments:
        segment.close()


def test_recovery_truncates_torn_tail(open_log: OpenLog, tmp_path: Path) -> None:
    plog = open_log()
    for _ in range(5):
        plog.append(batch(3), 0)
    abandon(plog)
    path = tmp_path / "t-0" / FIRST_LOG
    whole = path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(batch(4)[:40])  # half a batch: the crash came mid-write
    again = open_log(clean=False)
    assert again.log_end_offset == 15
    assert path.stat().st_size == whole
    assert again.recovered_bytes == 40
    info = again.append(batch(1), 0)
    assert info.base_offset == 15


def test_recovery_truncates_from_a_corrupt_middle_batch(open_log: OpenLog,
                                                        tmp_path: Path) -> None:
    plog = open_log()
    for _ in range(8):
        plog.append(batch(3), 0)
    abandon(plog)
    path = tmp_path / "t-0" / FIRST_LOG
    positions = batch_positions(path)
    data = bytearray(path.read_bytes())
    data[positions[4] + 70] ^= 0x01  # a record byte of the fifth batch
    path.write_bytes(bytes(data))
    again = open_log(clean=False)
    assert again.log_end_offset == 12
    assert path.stat().st_size == positions[4]
    again.update_high_watermark(again.log_end_offset)
    assert [h.base_offset for h in headers_of(fetched_bytes(again.read(0, 1 << 20)))] == \
        [0, 3, 6, 9]


def test_corrupt_batch_in_an_old_segment_drops_every_later_segment(
        open_log: OpenLog, tmp_path: Path) -> None:
    plog = open_log(segment_bytes=1024)
    for _ in range(20):
        plog.append(batch(3), 0)
    assert plog.segment_count >= 3
    second = plog.segments[1].base_offset
    abandon(plog)
    path = tmp_path / "t-0" / f"{second:020d}.log"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # last batch of the second segment
    path.write_bytes(bytes(data))
    again = open_log(clean=False, segment_bytes=1024)
    assert again.segment_count == 2
    assert segment_files(tmp_path / "t-0") == [FIRST_LOG, f"{second:020d}.log"]
    assert again.log_end_offset == headers_of(path.read_bytes())[-1].next_offset
    assert not [f for f in os.listdir(tmp_path / "t-0") if f.endswith(".deleted")]


def test_recovery_point_limits_which_segments_are_revalidated(open_log: OpenLog,
                                                              tmp_path: Path) -> None:
    plog = open_log(segment_bytes=1024)
    for _ in range(20):
        plog.append(batch(3), 0)
    last_base = plog.segments.active.base_offset
    end = plog.log_end_offset
    abandon(plog)
    first = tmp_path / "t-0" / FIRST_LOG
    data = bytearray(first.read_bytes())
    data[100] ^= 0x01  # below the recovery point: not re-read
    first.write_bytes(bytes(data))
    again = open_log(clean=False, recovery_point=last_base, segment_bytes=1024)
    assert again.log_end_offset == end
    assert again.recovery_point == end


def test_deleted_index_is_rebuilt_with_the_same_entries(open_log: OpenLog,
                                                        tmp_path: Path) -> None:
    plog = open_log(index_interval_bytes=200, segment_bytes=2048)
    for _ in range(30):
        plog.append(batch(3), 0)
    plog.close()
    index = tmp_path / "t-0" / "00000000000000000000.index"
    timeindex = tmp_path / "t-0" / "00000000000000000000.timeindex"
    before = index.read_bytes()
    assert len(before) > 0
    index.unlink()
    timeindex.unlink()
    again = open_log(index_interval_bytes=200, segment_bytes=2048, recovery_point=90)
    assert again.segment_count > 1
    assert index.read_bytes() == before  # rebuilt and written at load, not left to a flush
    again.update_high_watermark(again.log_end_offset)
    assert len(headers_of(fetched_bytes(again.read(7, 1 << 20)))) == 28
    again.close()
    assert index.read_bytes() == before
    assert timeindex.exists()


def test_damaged_index_is_rebuilt_on_first_use(open_log: OpenLog, tmp_path: Path) -> None:
    plog = open_log(index_interval_bytes=200, segment_bytes=2048)
    for _ in range(30):
        plog.append(batch(3), 0)
    plog.close()
    index = tmp_path / "t-0" / "00000000000000000000.index"
    before = index.read_bytes()
    index.write_bytes(before[:8] + b"\xff" * 8 + before[16:])  # an entry pointing nowhere
    again = open_log(index_interval_bytes=200, segment_bytes=2048)
    again.update_high_watermark(again.log_end_offset)
    heads = headers_of(fetched_bytes(again.read(9, 1 << 20)))
    assert heads[0].base_offset == 9 and len(heads) == 27
    again.close()
    assert index.read_bytes() == before


def test_clean_shutdown_skips_full_recovery(open_log: OpenLog, tmp_path: Path) -> None:
    plog = open_log()
    for _ in range(6):
        plog.append(batch(3), 0)
    plog.close()
    path = tmp_path / "t-0" / FIRST_LOG
    positions = batch_positions(path)
    data = bytearray(path.read_bytes())
    data[positions[2] + 70] ^= 0x01  # a record byte: only a CRC check would notice
    path.write_bytes(bytes(data))
    clean = open_log(clean=True)
    assert clean.log_end_offset == 18 and clean.recovered_bytes == 0
    clean.close()
    unclean = open_log(clean=False)
    assert unclean.log_end_offset == 6 and unclean.recovered_bytes > 0


def test_clean_load_still_recovers_a_torn_active_tail(open_log: OpenLog,
                                                      tmp_path: Path) -> None:
    plog = open_log()
    for _ in range(3):
        plog.append(batch(3), 0)
    plog.close()
    path = tmp_path / "t-0" / FIRST_LOG
    with open(path, "ab") as fh:
        fh.write(b"\x00" * 30)
    again = open_log(clean=True)
    assert again.log_end_offset == 9
    assert path.stat().st_size == 3 * len(batch(3))


def test_leftover_deleted_and_cleaned_files_are_removed_on_load(open_log: OpenLog,
                                                                tmp_path: Path) -> None:
    plog = open_log()
    plog.append(batch(3), 0)
    plog.close()
    d = tmp_path / "t-0"
    (d / "00000000000000000099.log.deleted").write_bytes(b"x")
    (d / "00000000000000000000.log.cleaned").write_bytes(b"x")
    (d / "00000000000000000500.index").write_bytes(b"")  # index without a log
    again = open_log()
    assert again.log_end_offset == 3
    assert sorted(os.listdir(d)) == ["00000000000000000000.index", FIRST_LOG,
                                     "00000000000000000000.timeindex",
                                     "leader-epoch-checkpoint"]


def test_an_empty_log_reopened_after_a_crash_warns_of_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before, each partition never written said its indexes must be rebuilt (1,040 lines
    after one restart); a log with records and no index still says so."""
    def reopen(name: str) -> PartitionLog:
        return PartitionLog(name, 0, str(tmp_path / f"{name}-0"), topic_config(),
                            clean=False, recovery_point=0)

    for name, records in (("empty", 0), ("written", 1)):
        plog = reopen(name)
        if records:
            plog.append(batch(records), 0)
        abandon(plog)
        for index in (tmp_path / f"{name}-0").glob("*index"):
            index.unlink()
    with caplog.at_level(logging.WARNING, logger="klamm.broker.log"):
        reopen("empty").close()
        assert "must be rebuilt" not in caplog.text
        reopen("written").close()
        assert "must be rebuilt" in caplog.text


@pytest.mark.parametrize("damage", ["garbage", "deleted", "unreadable"])
def test_a_lost_leader_epoch_checkpoint_is_rebuilt_from_the_batches(
        open_log: Callable[..., PartitionLog], tmp_path: Path, damage: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """Without its epochs a returning follower would ask nothing of the leader and keep
    records the leader never had; the batches still carry the epoch that wrote them."""
    plog = open_log(segment_bytes=1024)  # several segments
    for epoch, n in ((1, 3), (1, 2), (3, 4), (6, 1), (6, 2)):
        plog.append(batch(n, value_size=160), leader_epoch=epoch)
    plog.leader_epoch_cache.assign(8, plog.log_end_offset)  # led, appended nothing
    assert plog.segment_count > 2
    plog.close()
    path = tmp_path / "t-0" / "leader-epoch-checkpoint"
    if damage == "garbage":
        path.write_text("0\n7\n1 0\n")
    elif damage == "deleted":
        path.unlink()
    else:
        path.write_bytes(b"\xff\xfe\x00")
    caplog.set_level(logging.WARNING)

    reopened = open_log(segment_bytes=1024)
    assert reopened.leader_epoch_cache.entries == [(1, 0), (3, 5), (6, 9)]
    assert "leader epochs rebuilt from the log" in caplog.text
    assert reopened.end_offset_for_epoch(3) == (3, 9)
    assert reopened.end_offset_for_epoch(6) == (6, 12)
    reopened.close()
    # written back: the next open reads it and rebuilds nothing
    caplog.clear()
    assert open_log(segment_bytes=1024).leader_epoch_cache.entries == [(1, 0), (3, 5), (6, 9)]
    assert "rebuilt" not in caplog.text


def test_an_empty_log_without_a_leader_epoch_checkpoint_rebuilds_nothing(
        open_log: Callable[..., PartitionLog], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert open_log().leader_epoch_cache.entries == []
    assert caplog.text == ""


def test_a_rebuild_stops_at_an_unreadable_batch_header(
        open_log: Callable[..., PartitionLog], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Epochs after bytes it cannot read are left out: the latest known epoch then seems to
    end later than it did, so a follower asks about it and truncates more, never less.
    Skipping the bytes would place a later epoch's start too late (it would keep more)."""
    plog = open_log(segment_bytes=1024)
    for epoch, n in ((1, 3), (1, 2), (3, 4), (6, 1), (6, 2)):
        plog.append(batch(n, value_size=160), leader_epoch=epoch)
    plog.close()
    (tmp_path / "t-0" / "leader-epoch-checkpoint").unlink()
    second = sorted(segment_files(tmp_path / "t-0"))[1]  # starts with the epoch 3 batch
    with open(tmp_path / "t-0" / second, "r+b") as fh:
        fh.seek(16)  # the batch's magic byte
        fh.write(b"\x7f")
    caplog.set_level(logging.WARNING)
    reopened = open_log(segment_bytes=1024)
    assert reopened.leader_epoch_cache.entries == [(1, 0)]
    assert "unreadable batch header at position 0" in caplog.text
