"""LogManager: every partition log of one broker, and the background work on them.

Owns the log directory layout (``<log_dir>/<topic>-<partition>/``), the broker-wide
checkpoint files and the clean-shutdown marker, and runs four background loops: retention,
the ``flush.ms`` scheduler, compaction and checkpoint writing. Each loop sleeps on a stop
event, so ``close`` ends them promptly and never in the middle of an iteration.

Single-threaded on the event loop; fsync, checkpoint writes, compaction and directory
removal run in executor threads on data snapshotted on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable

from klamm.broker.config import BrokerConfig, TopicConfig

from .checkpoints import (
    HIGH_WATERMARK_FILE,
    LOG_START_OFFSET_FILE,
    RECOVERY_POINT_FILE,
    CleanShutdownMarker,
    OffsetCheckpointFile,
    TopicPartition,
)
from .cleaner import LogCleaner
from .files import DELETE_DIR_SUFFIX, fsync_dir, parse_partition_dir, partition_dir_name
from .dir_health import LogDirHealth
from .partition_log import PartitionLog
from .sync_batch import SyncBatch

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_MS = 5_000  # Kafka's replica.high.watermark.checkpoint.interval.ms
CLEANER_BACKOFF_MS = 15_000  # Kafka's log.cleaner.backoff.ms


class LogManager:
    def __init__(self, config: BrokerConfig, topic_config: Callable[[str], TopicConfig], *,
                 clock: Callable[[], float] = time.time,
                 checkpoint_interval_ms: int = CHECKPOINT_INTERVAL_MS,
                 cleaner_backoff_ms: int = CLEANER_BACKOFF_MS) -> None:
        self.config = config
        self.log_dir = config.log_dir
        self._topic_config = topic_config
        self._clock = clock
        self._checkpoint_interval = checkpoint_interval_ms / 1000
        self._cleaner_interval = cleaner_backoff_ms / 1000
        self._logs: dict[TopicPartition, PartitionLog] = {}
        self._recovery_points = OffsetCheckpointFile(self.log_dir, RECOVERY_POINT_FILE)
        self._high_watermarks = OffsetCheckpointFile(self.log_dir, HIGH_WATERMARK_FILE)
        self._log_starts = OffsetCheckpointFile(self.log_dir, LOG_START_OFFSET_FILE)
        self._marker = CleanShutdownMarker(self.log_dir)
        self.cleaner = LogCleaner(clock)
        self._tasks: list[asyncio.Task[None]] = []
        self._deletions: set[asyncio.Future[None]] = set()
        self._stop = asyncio.Event()
        self._checkpoint_lock = asyncio.Lock()
        self._last_checkpoint: tuple[object, ...] | None = None
        self.had_clean_shutdown = False
        self.health = LogDirHealth(self.log_dir)  # shared by every log in the dir

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        """Open every partition dir; recover them unless the last shutdown was clean; finish
        interrupted directory deletions. The clean-shutdown marker is removed once loaded."""
        os.makedirs(self.log_dir, exist_ok=True)
        clean = self._marker.exists()
        self.had_clean_shutdown = clean
        recovery_points = self._recovery_points.read()
        high_watermarks = self._high_watermarks.read()
        log_starts = self._log_starts.read()
        for name in sorted(os.listdir(self.log_dir)):
            path = os.path.join(self.log_dir, name)
            if not os.path.isdir(path):
                continue
            if name.endswith(DELETE_DIR_SUFFIX):
                log.info("finishing deletion of %s", path)
                shutil.rmtree(path, ignore_errors=True)
                continue
            tp = parse_partition_dir(name)
            if tp is None or tp in self._logs:
                continue
            plog = PartitionLog(tp[0], tp[1], path, self._config_for(tp[0]),
                                recovery_point=recovery_points.get(tp, 0),
                                log_start_offset=log_starts.get(tp),
                                high_watermark=high_watermarks.get(tp, 0),
                                clean=clean, clock=self._clock, health=self.health)
            if plog.recovered_bytes:
                log.warning("recovered %s: truncated %d damaged byte(s)", path,
                            plog.recovered_bytes)
            self._logs[tp] = plog
        if clean:
            log.info("loaded %d log(s) from %s after a clean shutdown", len(self._logs),
                     self.log_dir)
        elif self._logs:
            log.warning("loaded %d log(s) from %s after an unclean shutdown (recovered past "
                        "each recovery point)", len(self._logs), self.log_dir)
        else:
            log.info("no logs in %s yet", self.log_dir)
        self._write_checkpoints(self._snapshot())
        self._marker.remove()

    def _config_for(self, topic: str) -> TopicConfig:
        try:
            return self._topic_config(topic)
        except Exception:  # a topic the metadata no longer knows: serve it with defaults
            log.warning("no configuration for topic %s; using broker defaults", topic)
            return self.config.topic_defaults()

    # ------------------------------------------------------------------ logs
    def create_log(self, topic: str, partition: int, config: TopicConfig,
                   sync: SyncBatch | None = None) -> PartitionLog:
        """Open or create the log; an existing one takes ``config``. A new log is durable
        at once, or once ``sync`` commits."""
        existing = self._logs.get((topic, partition))
        if existing is not None:
            if existing.config != config:
                existing.update_config(config)
            return existing
        path = os.path.join(self.log_dir, partition_dir_name(topic, partition))
        created = not os.path.isdir(path)
        self.health.check()
        plog = PartitionLog(topic, partition, path, config, clean=True, clock=self._clock,
                            sync=sync, health=self.health)
        if created:
            if sync is None:
                fsync_dir(self.log_dir)
            else:
                sync.sync_dir(self.log_dir)
        self._logs[(topic, partition)] = plog
        return plog

    def get_log(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get((topic, partition))

    def logs(self) -> list[PartitionLog]:
        return list(self._logs.values())

    def delete_log(self, topic: str, partition: int) -> None:
        """Close the log, rename its dir to ``<dir>.<uuid>-delete`` and remove it in the
        background (the loader finishes the job after a crash)."""
        plog = self._logs.pop((topic, partition), None)
        if plog is None:
            return
        self.cleaner.forget(plog)
        try:
            plog.close()
        except Exception:
            log.exception("flush before deleting %s failed; deleting anyway", plog.dir)
        doomed = f"{plog.dir}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}"
        os.rename(plog.dir, doomed)
        fsync_dir(self.log_dir)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            shutil.rmtree(doomed, ignore_errors=True)
            return
        fut = loop.run_in_executor(None, shutil.rmtree, doomed, True)
        self._deletions.add(fut)
        fut.add_done_callback(self._deletions.discard)

    # ------------------------------------------------------------------ background work
    async def start(self) -> None:
        self._stop.clear()
        cfg = self.config
        self._tasks = [
            asyncio.create_task(self._every(cfg.log_retention_check_interval_ms / 1000,
                                            self.run_retention_once, "retention")),
            asyncio.create_task(self._every(cfg.log_flush_scheduler_interval_ms / 1000,
                                            self.run_flush_once, "flush scheduler")),
            asyncio.create_task(self._every(self._cleaner_interval, self.run_cleaner_once,
                                            "log cleaner")),
            asyncio.create_task(self._every(self._checkpoint_interval,
                                            self.checkpoint, "checkpoint")),
        ]

    async def _every(self, interval: float, work: Callable[[], Awaitable[None]],
                     name: str) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), interval)
                return
            except asyncio.TimeoutError:
                pass
            if self.health.offline:
                continue  # nothing more is written to an offline dir
            try:
                await work()
            except Exception as exc:
                if not self.health.observe(exc):  # offline: said once, by observe
                    log.exception("%s failed; retrying in %.1fs", name, interval)

    async def run_retention_once(self) -> None:
        """Delete expired or excess segments of every log (see ``retention.py``)."""
        for plog in self.logs():
            if not plog.closed:
                deleted = plog.delete_old_segments()
                if deleted:
                    log.info("retention deleted %d segment(s) of %s; log start offset now %d",
                             deleted, plog.dir, plog.log_start_offset)

    async def run_flush_once(self) -> None:
        """Flush logs whose ``flush.ms`` or ``flush.messages`` is due."""
        due = [plog for plog in self.logs() if not plog.closed and plog.needs_flush()]
        if due:
            await asyncio.gather(*(plog.flush() for plog in due))

    async def run_cleaner_once(self) -> None:
        """Compact every log of a topic with ``cleanup.policy=compact``."""
        for plog in self.logs():
            if plog.config.compact and not plog.closed:
                try:
                    await self.cleaner.clean(plog)
                except Exception as exc:  # one log's failure must not stop the others
                    if self.health.observe(exc):
                        return
                    log.exception("compaction of %s failed; the other logs go on", plog.dir)

    def _snapshot(self) -> tuple[dict[TopicPartition, int], ...]:
        logs = [(k, v) for k, v in self._logs.items() if not v.closed]
        return ({k: v.recovery_point for k, v in logs},
                {k: v.high_watermark for k, v in logs},
                {k: v.log_start_offset for k, v in logs})

    def _write_checkpoints(self, snapshot: tuple[dict[TopicPartition, int], ...]) -> None:
        recovery, hw, start = snapshot
        self._recovery_points.write(recovery)
        self._high_watermarks.write(hw)
        self._log_starts.write(start)

    async def checkpoint(self) -> None:
        """Write the three checkpoint files in a thread, when anything changed."""
        async with self._checkpoint_lock:
            snapshot = self._snapshot()
            if snapshot == self._last_checkpoint:
                return
            await asyncio.get_running_loop().run_in_executor(None, self._write_checkpoints,
                                                             snapshot)
            self._last_checkpoint = snapshot

    async def close(self) -> None:
        """Stop the loops, flush and close every log, write the checkpoints, then the
        clean-shutdown marker (only when every log closed cleanly)."""
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        if self._deletions:
            await asyncio.gather(*self._deletions, return_exceptions=True)
        async with self._checkpoint_lock:
            snapshot_logs = list(self._logs.values())
            clean = not self.health.offline
            for plog in snapshot_logs:
                try:
                    plog.close(flush=not self.health.offline)
                except Exception as exc:
                    clean = False
                    if not self.health.observe(exc):
                        log.exception("closing %s failed", plog.dir)
                    plog.close(flush=False)
            if self.health.offline:
                log.warning("log dir %s is offline: closed %d log(s) without flushing or "
                            "checkpointing; the next start recovers them from what the disk "
                            "kept", self.log_dir, len(snapshot_logs))
                return
            recovery = {k: v.recovery_point for k, v in self._logs.items()}
            hw = {k: v.high_watermark for k, v in self._logs.items()}
            start = {k: v.log_start_offset for k, v in self._logs.items()}
            self._write_checkpoints((recovery, hw, start))
            if clean:
                self._marker.write()
