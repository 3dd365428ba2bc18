"""SyncBatch: staged replacements land only at commit, all durable together; a leader-epoch
checkpoint staged before a promotion is the one ``assign`` then finds current."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from klamm.broker.log import LeaderEpochCache
from klamm.broker.log.sync_batch import SyncBatch


async def test_staged_files_replace_their_targets_only_at_commit(tmp_path: Path) -> None:
    paths = [tmp_path / f"p-{i}" / "state" for i in range(40)]
    for p in paths:
        p.parent.mkdir()
        p.write_bytes(b"old")
    done: list[str] = []
    batch = SyncBatch()
    for p in paths:
        batch.replace(str(p), b"new " + p.parent.name.encode(), then=lambda p=p: done.append(p))
    new_dir = tmp_path / "created"
    new_dir.mkdir()
    batch.sync_dir(str(new_dir))
    assert all(p.read_bytes() == b"old" for p in paths)
    assert done == []
    await batch.commit()
    assert [p.read_bytes() for p in paths] == [b"new " + p.parent.name.encode() for p in paths]
    assert not any(p.with_name("state.tmp").exists() for p in paths)
    assert sorted(done) == sorted(paths)
    assert len(batch) == 0
    await batch.commit()  # an empty batch is a no-op


async def test_a_failing_fsync_leaves_the_old_files_and_runs_no_callback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state"
    target.write_bytes(b"old")
    done: list[int] = []
    batch = SyncBatch()
    batch.replace(str(target), b"new", then=lambda: done.append(1))

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        await batch.commit()
    assert target.read_bytes() == b"old"
    assert done == []


async def test_a_staged_epoch_checkpoint_is_not_written_again_by_assign(
        tmp_path: Path) -> None:
    cache = LeaderEpochCache(str(tmp_path))
    cache.assign(1, 0)
    batch = SyncBatch()
    cache.stage(2, 10, batch)
    assert cache.entries == [(1, 0)]  # staging changes nothing in memory
    assert LeaderEpochCache(str(tmp_path)).entries == [(1, 0)]
    await batch.commit()
    assert LeaderEpochCache(str(tmp_path)).entries == [(1, 0), (2, 10)]
    inode = os.stat(cache.path).st_ino
    cache.assign(2, 10)
    assert cache.entries == [(1, 0), (2, 10)]
    assert os.stat(cache.path).st_ino == inode  # found current: not rewritten
    cache.assign(3, 12)  # a change the batch did not stage is written at once
    assert os.stat(cache.path).st_ino != inode
    assert LeaderEpochCache(str(tmp_path)).entries == [(1, 0), (2, 10), (3, 12)]


async def test_an_epoch_staged_at_a_stale_offset_is_rewritten_by_assign(tmp_path: Path) -> None:
    cache = LeaderEpochCache(str(tmp_path))
    batch = SyncBatch()
    cache.stage(4, 10, batch)
    await batch.commit()
    cache.assign(4, 12)  # the log grew meanwhile: the staged file is not what assign wants
    assert LeaderEpochCache(str(tmp_path)).entries == [(4, 12)]
