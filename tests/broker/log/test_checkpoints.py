"""Checkpoint files and the leader-epoch cache, alone and across a LogManager restart."""

from __future__ import annotations

from pathlib import Path

from klamm.broker.log import LeaderEpochCache
from klamm.broker.log.checkpoints import (
    OffsetCheckpointFile,
    decode_offsets,
    encode_offsets,
)


def test_offset_checkpoint_round_trips_in_kafka_format(tmp_path: Path) -> None:
    offsets = {("orders", 0): 1234, ("orders", 1): 99, ("a-b.c", 10): 0}
    data = encode_offsets(offsets)
    assert data.splitlines()[:3] == [b"0", b"3", b"a-b.c 10 0"]
    assert decode_offsets(data) == offsets
    f = OffsetCheckpointFile(str(tmp_path), "recovery-point-offset-checkpoint")
    assert f.read() == {}
    f.write(offsets)
    assert f.read() == offsets
    assert not (tmp_path / "recovery-point-offset-checkpoint.tmp").exists()


def test_damaged_checkpoint_reads_as_empty(tmp_path: Path) -> None:
    (tmp_path / "replication-offset-checkpoint").write_bytes(b"0\n2\norders 0 12\n")
    assert OffsetCheckpointFile(str(tmp_path), "replication-offset-checkpoint").read() == {}


def test_leader_epoch_cache_assign_and_end_offsets(tmp_path: Path) -> None:
    cache = LeaderEpochCache(str(tmp_path))
    cache.assign(1, 0)
    cache.assign(1, 5)  # same epoch: no new entry
    cache.assign(3, 10)
    cache.assign(2, 12)  # stale epoch: ignored
    cache.assign(5, 20)
    assert cache.entries == [(1, 0), (3, 10), (5, 20)]
    assert cache.end_offset_for(1, 30) == (1, 10)
    assert cache.end_offset_for(2, 30) == (1, 10)
    assert cache.end_offset_for(3, 30) == (3, 20)
    assert cache.end_offset_for(5, 30) == (5, 30)
    assert cache.end_offset_for(0, 30) == (0, 0)  # older than every entry: its first start
    assert cache.end_offset_for(6, 30) == (-1, -1)  # newer than the latest: undefined
    assert cache.end_offset_for(-1, 30) == (-1, -1)
    assert LeaderEpochCache(str(tmp_path / "empty")).end_offset_for(3, 30) == (-1, -1)
    assert cache.epoch_for(15) == 3
    assert LeaderEpochCache(str(tmp_path)).entries == cache.entries


def test_leader_epoch_cache_truncates_from_both_ends(tmp_path: Path) -> None:
    cache = LeaderEpochCache(str(tmp_path))
    for epoch, start in [(1, 0), (2, 10), (4, 20), (6, 30)]:
        cache.assign(epoch, start)
    cache.truncate_from_end(25)
    assert cache.entries == [(1, 0), (2, 10), (4, 20)]
    cache.truncate_from_start(15)
    assert cache.entries == [(2, 15), (4, 20)]
    assert LeaderEpochCache(str(tmp_path)).entries == [(2, 15), (4, 20)]


def test_new_epoch_starting_earlier_replaces_contradicted_entries(tmp_path: Path) -> None:
    cache = LeaderEpochCache(str(tmp_path))
    cache.assign(1, 0)
    cache.assign(2, 10)
    cache.assign(3, 5)  # after a truncation to 5, epoch 2 never happened here
    assert cache.entries == [(1, 0), (3, 5)]
