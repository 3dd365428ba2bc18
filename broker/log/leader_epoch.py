"""LeaderEpochCache: where each leader epoch started in this partition's log.

Entries ``(epoch, start offset)`` are strictly increasing in both fields. A returning replica
asks the leader for the end offset of its latest epoch and truncates whatever the leader never
had. Persisted in the partition dir as ``leader-epoch-checkpoint`` (Kafka's format: version
line, count line, ``epoch start_offset`` lines), rewritten atomically on each change and
durable before the log holds a batch of a new epoch: a crash that lost an entry would let a
returning replica keep records that diverge (the leader would place the end of the previous
epoch too late). A checkpoint that is ``damaged``, or missing (not ``found``) beside a log that
holds batches, is rebuilt by the owning log from its batches' epochs (``rebuild``), as Kafka's
recovery assigns epochs from the batches it reads. A promotion stages its rewrite in a
SyncBatch, so that a thousand partitions changing leader pay for their fsyncs together;
``assign`` then finds the file current. Not thread-safe: owned by the event loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from .files import write_atomic
from .sync_batch import SyncBatch

log = logging.getLogger(__name__)

FILE_NAME = "leader-epoch-checkpoint"
VERSION = 0
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


class LeaderEpochCache:
    def __init__(self, partition_dir: str) -> None:
        self.path = os.path.join(partition_dir, FILE_NAME)
        self.entries: list[tuple[int, int]] = []
        self.found = False  # the file existed
        self.damaged = False  # ... but could not be read
        self._load()
        self._persisted: list[tuple[int, int]] | None = None  # what the file holds, if known

    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            self.found = self.damaged = True
            log.error("cannot read %s (%s); rebuilding leader epochs from the log", self.path,
                      exc)
            return
        self.found = True
        try:
            if lines[0].strip() != str(VERSION) or int(lines[1]) != len(lines) - 2:
                raise ValueError("bad header")
            entries = [(int(a), int(b)) for a, b in (line.split() for line in lines[2:])]
        except (ValueError, IndexError):
            self.damaged = True
            log.error("ignoring damaged %s; rebuilding leader epochs from the log", self.path)
            return
        self.entries = [e for i, e in enumerate(entries)
                        if i == 0 or (e[0] > entries[i - 1][0] and e[1] >= entries[i - 1][1])]

    def rebuild(self, batches: Iterable[tuple[int, int]]) -> None:
        """Start over from ``(leader epoch, base offset)`` of every batch in log order: each
        epoch starts at its first batch. Epochs that appended nothing cannot be known (a
        follower's KIP-279 rounds then place them from the leader's answers)."""
        entries: list[tuple[int, int]] = []
        for epoch, base_offset in batches:
            entries = _with_epoch(entries, epoch, base_offset) or entries
        self.entries = entries
        self.damaged = False
        self._persisted = None
        self._save()

    def _save(self) -> None:
        if self.entries != self._persisted:
            write_atomic(self.path, _encode(self.entries))
            self._persisted = list(self.entries)

    @property
    def latest_epoch(self) -> int:
        return self.entries[-1][0] if self.entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` starts at ``start_offset``. A stale epoch is ignored; entries
        that the new one contradicts (same or later epoch, same or later start) are dropped."""
        if self.entries and epoch < self.entries[-1][0]:
            log.warning("%s: ignoring epoch %d at %d, latest is %d", self.path, epoch,
                        start_offset, self.entries[-1][0])
        entries = _with_epoch(self.entries, epoch, start_offset)
        if entries is not None:
            self.entries = entries
            self._save()

    def stage(self, epoch: int, start_offset: int, batch: SyncBatch) -> None:
        """Write, in ``batch``, the checkpoint ``assign(epoch, start_offset)`` will want, so
        that the ``assign`` after the batch's commit finds it durable and writes nothing."""
        entries = _with_epoch(self.entries, epoch, start_offset)
        if entries is not None and entries != self._persisted:
            batch.replace(self.path, _encode(entries),
                          then=lambda: setattr(self, "_persisted", entries))

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """Kafka's answer to OffsetForLeaderEpoch: ``(largest epoch <= epoch, offset where it
        ended)``, i.e. the start of the next epoch, or the log end for the latest epoch.
        An epoch older than every entry answers ``(epoch, first entry's start)``: nothing
        of it is here, so a follower keeps nothing from it. An epoch newer than the latest,
        or none at all, answers UNDEFINED ``(-1, -1)``: the leader cannot judge it."""
        if epoch == UNDEFINED_EPOCH or not self.entries or epoch > self.entries[-1][0]:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if epoch == self.entries[-1][0]:
            return epoch, log_end_offset
        floor: tuple[int, int] | None = None
        for entry in self.entries:
            if entry[0] > epoch:
                return (epoch if floor is None else floor[0]), entry[1]
            floor = entry
        raise AssertionError("unreachable: epoch < latest has a higher entry")

    def epoch_for(self, offset: int) -> int:
        """The epoch that wrote ``offset`` (-1 when unknown)."""
        found = UNDEFINED_EPOCH
        for epoch, start in self.entries:
            if start > offset:
                break
            found = epoch
        return found

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget epochs starting at or after ``end_offset`` (the log was truncated there)."""
        keep = [e for e in self.entries if e[1] < end_offset]
        if keep != self.entries:
            self.entries = keep
            self._save()

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at ``start_offset``: drop epochs ending before it and move the
        epoch holding it to start there."""
        keep = [e for e in self.entries if e[1] >= start_offset]
        before = [e for e in self.entries if e[1] < start_offset]
        if before and (not keep or keep[0][1] > start_offset):
            keep.insert(0, (before[-1][0], start_offset))
        if keep != self.entries:
            self.entries = keep
            self._save()


def _with_epoch(entries: list[tuple[int, int]], epoch: int,
                start_offset: int) -> list[tuple[int, int]] | None:
    """``entries`` after epoch ``epoch`` starts at ``start_offset``; None when unchanged
    (a negative, stale or current epoch)."""
    if epoch < 0 or (entries and epoch <= entries[-1][0]):
        return None
    out = list(entries)
    while out and out[-1][1] > start_offset:
        out.pop()
    if out and out[-1][1] == start_offset:
        out.pop()  # the previous epoch appended nothing
    out.append((epoch, start_offset))
    return out


def _encode(entries: list[tuple[int, int]]) -> bytes:
    lines = [str(VERSION), str(len(entries))]
    lines += [f"{epoch} {offset}" for epoch, offset in entries]
    return ("\n".join(lines) + "\n").encode()
