"""LogManager: loading, checkpoints across restarts, retention, deletion, background loops."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from klamm.broker.config import BrokerConfig, TopicConfig
from klamm.broker.log import LogManager
from klamm.broker.log.checkpoints import CLEAN_SHUTDOWN_FILE

from .conftest import FakeClock, batch, fetched_bytes, headers_of, segment_files


def broker_config(tmp_path: Path, **values: Any) -> BrokerConfig:
    base: dict[str, Any] = {"log.dir": str(tmp_path / "data"),
                            "log.retention.check.interval.ms": 50,
                            "log.flush.scheduler.interval.ms": 20,
                            "log.segment.delete.delay.ms": 0}
    base.update({k.replace("_", "."): v for k, v in values.items()})
    return BrokerConfig.build(base)


def make_manager(tmp_path: Path, clock: FakeClock | None = None,
                 **values: Any) -> tuple[LogManager, Callable[..., TopicConfig]]:
    cfg = broker_config(tmp_path, **values)
    overrides: dict[str, dict[str, Any]] = {}

    def topic_config(name: str) -> TopicConfig:
        return TopicConfig.effective(cfg, overrides.get(name, {}))

    manager = LogManager(cfg, topic_config, clock=clock or time.time)
    manager.overrides = overrides  # type: ignore[attr-defined]
    return manager, topic_config


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_checkpoints_survive_restart(tmp_path: Path) -> None:
    manager, topic_config = make_manager(tmp_path, log_segment_bytes=1024)
    manager.load()
    plog = manager.create_log("orders", 0, topic_config("orders"))
    for epoch in (1, 1, 3, 3, 3, 4) * 4:
        plog.append(batch(3), leader_epoch=epoch)
    plog.update_high_watermark(50)
    plog.delete_records_before(40)
    end = plog.log_end_offset
    epochs = plog.leader_epoch_cache.entries
    await manager.close()
    assert (tmp_path / "data" / CLEAN_SHUTDOWN_FILE).exists()

    again, topic_config = make_manager(tmp_path, log_segment_bytes=1024)
    again.load()
    assert again.had_clean_shutdown
    assert not (tmp_path / "data" / CLEAN_SHUTDOWN_FILE).exists()
    restored = again.get_log("orders", 0)
    assert restored is not None
    assert restored.log_end_offset == end
    assert restored.recovery_point == end
    assert restored.high_watermark == 50
    assert restored.log_start_offset == 40
    assert epochs == [(4, 40)]  # epochs 1 (at 0), 3 (at 6), 4 (at 15), then start moved to 40
    assert restored.leader_epoch_cache.entries == [(4, 40)]
    assert restored.leader_epoch_cache.latest_epoch == 4
    await again.close()


async def test_unclean_restart_recovers_torn_tail_through_the_manager(tmp_path: Path) -> None:
    manager, topic_config = make_manager(tmp_path)
    manager.load()
    plog = manager.create_log("t", 0, topic_config("t"))
    for _ in range(4):
        plog.append(batch(3), 0)
    await manager.checkpoint()
    path = Path(plog.dir) / "00000000000000000000.log"
    for segment in plog.segments:  # the process dies: no clean close
        segment.close()
    plog.closed = True
    with open(path, "ab") as fh:
        fh.write(batch(5)[:50])
    again, _ = make_manager(tmp_path)
    again.load()
    assert not again.had_clean_shutdown
    restored = again.get_log("t", 0)
    assert restored is not None and restored.log_end_offset == 12
    assert restored.recovery_point == 12
    assert path.stat().st_size == 4 * len(batch(3))
    await again.close()


async def test_retention_by_time_deletes_old_segments_but_never_the_active_one(
        tmp_path: Path) -> None:
    clock = FakeClock()
    manager, _ = make_manager(tmp_path, clock, log_segment_bytes=1024,
                              log_retention_ms=60_000)
    manager.load()
    plog = manager.create_log("t", 0, TopicConfig.effective(manager.config, {}))
    for i in range(20):
        plog.append(batch(3, ts=clock.ms + i), 0)
    plog.update_high_watermark(plog.log_end_offset)
    count = plog.segment_count
    assert count >= 3
    await manager.run_retention_once()
    assert plog.segment_count == count  # nothing is old yet
    clock.advance(120_000)
    await manager.run_retention_once()
    assert plog.segment_count == 1  # only the active segment is left
    assert plog.log_start_offset == plog.segments.active.base_offset > 0
    assert segment_files(plog.dir) == [f"{plog.log_start_offset:020d}.log"]
    assert not [f for f in os.listdir(plog.dir) if f.endswith(".deleted")]
    heads = headers_of(fetched_bytes(plog.read(plog.log_start_offset, 1 << 20)))
    assert heads[-1].next_offset == plog.log_end_offset
    await manager.close()


async def test_retention_by_bytes_keeps_the_newest_segments(tmp_path: Path) -> None:
    manager, _ = make_manager(tmp_path, log_segment_bytes=1024, log_retention_bytes=2048)
    manager.load()
    plog = manager.create_log("t", 0, TopicConfig.effective(manager.config, {}))
    for _ in range(40):
        plog.append(batch(3, ts=int(time.time() * 1000)), 0)
    assert plog.size_bytes > 4096
    await manager.run_retention_once()
    assert 2048 <= plog.size_bytes < 2048 + 1024
    assert plog.log_start_offset == plog.segments.first.base_offset > 0
    await manager.close()


async def test_deleted_segments_are_renamed_then_removed_after_the_delay(
        tmp_path: Path) -> None:
    clock = FakeClock()
    manager, _ = make_manager(tmp_path, clock, log_segment_bytes=1024, log_retention_ms=1000,
                              log_segment_delete_delay_ms=100)
    manager.load()
    plog = manager.create_log("t", 0, TopicConfig.effective(manager.config, {}))
    for _ in range(10):
        plog.append(batch(3, ts=clock.ms), 0)
    clock.advance(5000)
    await manager.run_retention_once()
    pending = [f for f in os.listdir(plog.dir) if f.endswith(".deleted")]
    assert pending and all(f[:20].isdigit() for f in pending)
    await wait_for(lambda: not [f for f in os.listdir(plog.dir) if f.endswith(".deleted")])
    await manager.close()


async def test_background_retention_runs_on_its_interval(tmp_path: Path) -> None:
    manager, _ = make_manager(tmp_path, log_segment_bytes=1024, log_retention_bytes=1024)
    manager.load()
    plog = manager.create_log("t", 0, TopicConfig.effective(manager.config, {}))
    for _ in range(30):
        plog.append(batch(3, ts=int(time.time() * 1000)), 0)
    await manager.start()
    await wait_for(lambda: plog.segment_count <= 2)
    await manager.close()


async def test_flush_scheduler_flushes_logs_whose_flush_ms_elapsed(tmp_path: Path) -> None:
    manager, _ = make_manager(tmp_path, log_flush_interval_ms=30)
    manager.load()
    plog = manager.create_log("t", 0, TopicConfig.effective(manager.config, {}))
    plog.append(batch(3), 0)
    await manager.start()
    await wait_for(lambda: plog.recovery_point == 3)
    assert plog.fsync_count >= 1
    await manager.close()


async def test_delete_log_removes_the_directory(tmp_path: Path) -> None:
    manager, _ = make_manager(tmp_path)
    manager.load()
    plog = manager.create_log("gone", 2, TopicConfig.effective(manager.config, {}))
    plog.append(batch(3), 0)
    manager.delete_log("gone", 2)
    assert manager.get_log("gone", 2) is None
    data = tmp_path / "data"
    await wait_for(lambda: not [d for d in os.listdir(data) if d.startswith("gone-2")])
    await manager.close()
    again, _ = make_manager(tmp_path)
    again.load()
    assert again.get_log("gone", 2) is None
    await again.close()


async def test_load_finishes_an_interrupted_directory_deletion(tmp_path: Path) -> None:
    data = tmp_path / "data"
    doomed = data / "old-0.0123456789abcdef0123456789abcdef-delete"
    doomed.mkdir(parents=True)
    (doomed / "00000000000000000000.log").write_bytes(b"junk")
    (data / "meta.properties").write_text("broker.id=0\n")
    manager, _ = make_manager(tmp_path)
    manager.load()
    assert not doomed.exists()
    assert manager.logs() == []
    assert (data / "meta.properties").exists()
    await manager.close()


async def test_create_log_is_idempotent_and_applies_new_config(tmp_path: Path) -> None:
    manager, _ = make_manager(tmp_path)
    manager.load()
    cfg = TopicConfig.effective(manager.config, {})
    first = manager.create_log("t", 0, cfg)
    first.append(batch(3), 0)
    again = manager.create_log("t", 0, cfg.with_overrides({"segment.bytes": 4096}))
    assert again is first and again.config.segment_bytes == 4096
    assert [p.topic for p in manager.logs()] == ["t"]
    await manager.close()


@pytest.mark.parametrize("name", ["orders-x", "-3", "notes.txt"])
async def test_load_ignores_entries_that_are_not_partition_dirs(tmp_path: Path,
                                                                name: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / name).mkdir() if name != "notes.txt" else (data / name).write_text("x")
    manager, _ = make_manager(tmp_path)
    manager.load()
    assert manager.logs() == []
    await manager.close()
