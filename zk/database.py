"""The single-node ordering and storage layer under the tree: zxids, log, snapshots.

``ZkDatabase.apply`` assigns the next zxid, applies the transaction to the tree (all or
nothing) and queues its log record; the group committer writes and fsyncs every queued
record in one executor call, then advances ``durable_zxid`` and calls ``on_durable``.
Callers must not reveal a result (to any client) before ``durable_zxid`` reaches the zxid it
depends on. A quorum-replicated layer would replace this class and keep the tree as is.

Snapshots do not stop the service: every ``snapshot_every`` transactions the tree is frozen
into a copy-on-write image (``DataTree.freeze``: one dict copy, ~5 ms for 100k nodes), which
an executor thread encodes and writes once the log up to its zxid is durable, while the loop
keeps applying transactions. Not thread-safe: used from one event loop; executor jobs only
write files and read the frozen image.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import snapshot as snapshots
from .tree import DataTree, TreeImage, WatchEvent
from .txn import Txn
from .txnlog import TxnLog, encode_record

log = logging.getLogger(__name__)


class ZkDatabase:
    def __init__(self, data_dir: str | Path, *, snapshot_every: int = 10000,
                 log_roll_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = Path(data_dir)
        self.snapshot_every = snapshot_every
        self.tree = DataTree()
        self.txnlog = TxnLog(self.directory, log_roll_bytes)
        self.durable_zxid = 0
        self.on_durable: Callable[[int], None] = lambda zxid: None
        self.on_failure: Callable[[BaseException], None] = lambda exc: None
        self.failed: BaseException | None = None
        self.commits = 0  # fsync batches, for tests and metrics
        self.replayed = 0
        self._pending: list[bytes] = []
        self._pending_first = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._since_snapshot = 0
        self._snapshotting: asyncio.Task[None] | None = None
        self._closing = False
        self._durable_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._lock_fd: int | None = None

    def load(self) -> None:
        """Restore the tree from the newest intact snapshot plus the valid log after it.

        Takes an exclusive lock on the directory first: two servers appending to one log
        would corrupt it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise RuntimeError(f"data directory {self.directory} is in use by another "
                               "coordination server") from None
        image = snapshots.load_latest(self.directory)
        self.tree = DataTree.load(image) if image else DataTree()
        for rec in self.txnlog.recover(self.tree.last_zxid):
            self.tree.apply(rec.txn, rec.zxid, rec.time_ms)
            self.replayed += 1
        self.durable_zxid = self.tree.last_zxid
        self._since_snapshot = self.replayed
        self.txnlog.open(self.tree.last_zxid + 1)
        log.info("coordination data loaded: zxid %d, %d nodes, %d sessions, %d txns replayed",
                 self.tree.last_zxid, len(self.tree), len(self.tree.sessions), self.replayed)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._commit_loop(),
                                                            name="zk-group-commit")

    def apply(self, txn: Txn, time_ms: int | None = None
              ) -> tuple[Any, list[WatchEvent], int]:
        """Apply ``txn`` now; returns (result, watch events, zxid). Raises ZkError with
        nothing applied and nothing logged when the transaction fails."""
        if self.failed is not None:
            raise RuntimeError("the transaction log failed; the service is stopping")
        zxid = self.tree.last_zxid + 1
        now = int(time.time() * 1000) if time_ms is None else time_ms
        result, events = self.tree.apply(txn, zxid, now)
        if not self._pending:
            self._pending_first = zxid
        self._pending.append(encode_record(zxid, now, txn))
        self._wakeup.set()
        self._since_snapshot += 1
        if self._since_snapshot >= self.snapshot_every and self._snapshotting is None:
            self._take_snapshot()
        return result, events, zxid

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            await asyncio.sleep(0)  # one loop pass: requests already readable join this batch
            batch, first = b"".join(self._pending), self._pending_first
            last = first + len(self._pending) - 1
            self._pending = []
            try:
                await loop.run_in_executor(None, self._write_and_sync, batch, first)
            except BaseException as exc:  # disk failure: nothing more may be acknowledged
                log.critical("transaction log write failed: %s", exc)
                self.failed = exc
                for _, fut in self._durable_waiters:
                    if not fut.done():
                        fut.set_exception(RuntimeError("the transaction log failed"))
                self.on_failure(exc)
                return
            self.commits += 1
            self.durable_zxid = last
            self.on_durable(last)
            if self._durable_waiters:
                still = []
                for zxid, fut in self._durable_waiters:
                    if zxid <= last:
                        if not fut.done():
                            fut.set_result(None)
                    else:
                        still.append((zxid, fut))
                self._durable_waiters = still
            if self._pending or self._closing:
                self._wakeup.set()

    async def wait_durable(self, zxid: int) -> None:
        """Return once every transaction up to ``zxid`` is fsynced."""
        if self.durable_zxid >= zxid:
            return
        if self.failed is not None:
            raise RuntimeError("the transaction log failed") from self.failed
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._durable_waiters.append((zxid, fut))
        await fut

    def _write_and_sync(self, data: bytes, first_zxid: int) -> None:
        self.txnlog.write(data, first_zxid)
        self.txnlog.sync()

    def _take_snapshot(self) -> None:
        """Freeze a copy-on-write image of the tree now (in the loop: one dict copy), and
        encode and write it in a thread while the loop keeps applying transactions."""
        image = self.tree.freeze()
        self._since_snapshot = 0
        self.txnlog.roll_next()

        async def write() -> None:
            try:
                # the snapshot may only be trusted once the log it replaces is durable
                await self.wait_durable(image.zxid)
                await asyncio.get_running_loop().run_in_executor(
                    None, self._write_snapshot, image)
            except (OSError, RuntimeError) as exc:
                log.error("snapshot at zxid %d failed: %s", image.zxid, exc)
            finally:
                self.tree.thaw(image)
                self._snapshotting = None

        self._snapshotting = asyncio.get_running_loop().create_task(write())

    def _write_snapshot(self, image: TreeImage) -> None:
        pieces = snapshots.encode_image(image)
        snapshots.write_snapshot(self.directory, image.zxid, pieces)
        kept = snapshots.snapshot_files(self.directory)
        if kept:
            self.txnlog.purge(kept[0][0])
        log.info("snapshot written at zxid %d (%d nodes, %d bytes)", image.zxid,
                 len(image.nodes), sum(map(len, pieces)))

    async def snapshot_done(self) -> None:
        """Wait for a snapshot being written, if any."""
        if self._snapshotting is not None:
            await asyncio.shield(self._snapshotting)

    async def close(self) -> None:
        """Flush what is queued, then close the log."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._snapshotting is not None:
            await self._snapshotting
        self.txnlog.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
