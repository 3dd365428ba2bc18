"""Checkpoint files: small text files in Kafka's format, replaced atomically.

Broker-wide files in the log dir root map partitions to an offset::

    0                 <- format version
    2                 <- entry count
    orders 0 1234     <- topic partition offset
    orders 1 99

``recovery-point-offset-checkpoint`` (everything below is fsynced), ``replication-offset-
checkpoint`` (high watermarks) and ``log-start-offset-checkpoint``. Writes go through a temp
file, fsync, rename and a directory fsync, so a crash leaves the old or the new file. A
missing file reads as empty; a damaged one is reported and read as empty too, which is safe:
recovery then starts from offset 0 and offsets are clamped to what the log holds.

The clean-shutdown marker is an empty file written by a clean close and removed after load;
its absence at startup means the segments past the recovery point must be re-validated.
"""

from __future__ import annotations

import logging
import os

from .files import fsync_dir, write_atomic

log = logging.getLogger(__name__)

VERSION = 0
RECOVERY_POINT_FILE = "recovery-point-offset-checkpoint"
HIGH_WATERMARK_FILE = "replication-offset-checkpoint"
LOG_START_OFFSET_FILE = "log-start-offset-checkpoint"
CLEAN_SHUTDOWN_FILE = ".klamm_cleanshutdown"

TopicPartition = tuple[str, int]


class CheckpointError(ValueError):
    """A checkpoint file is not in the expected format."""


def encode_offsets(offsets: dict[TopicPartition, int]) -> bytes:
    lines = [str(VERSION), str(len(offsets))]
    lines += [f"{topic} {partition} {offset}"
              for (topic, partition), offset in sorted(offsets.items())]
    return ("\n".join(lines) + "\n").encode()


def decode_offsets(data: bytes, name: str = "checkpoint") -> dict[TopicPartition, int]:
    """Parse a checkpoint; raises CheckpointError naming the problem."""
    lines = data.decode("utf-8", "replace").splitlines()
    if len(lines) < 2 or lines[0].strip() != str(VERSION):
        raise CheckpointError(f"{name}: unknown version line {lines[:1]!r}")
    try:
        count = int(lines[1])
    except ValueError:
        raise CheckpointError(f"{name}: bad entry count {lines[1]!r}") from None
    entries = lines[2:]
    if len(entries) != count:
        raise CheckpointError(f"{name}: expected {count} entries, found {len(entries)}")
    out: dict[TopicPartition, int] = {}
    for line in entries:
        parts = line.split()
        if len(parts) != 3:
            raise CheckpointError(f"{name}: malformed line {line!r}")
        try:
            out[(parts[0], int(parts[1]))] = int(parts[2])
        except ValueError:
            raise CheckpointError(f"{name}: malformed line {line!r}") from None
    return out


class OffsetCheckpointFile:
    """One broker-wide checkpoint file. Thread-safe for one writer at a time (the manager
    serialises writes); reading happens at load only."""

    def __init__(self, log_dir: str, name: str) -> None:
        self.path = os.path.join(log_dir, name)

    def read(self) -> dict[TopicPartition, int]:
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return {}
        try:
            return decode_offsets(data, self.path)
        except CheckpointError as exc:
            log.error("ignoring damaged checkpoint: %s", exc)
            return {}

    def write(self, offsets: dict[TopicPartition, int]) -> None:
        write_atomic(self.path, encode_offsets(offsets))


class CleanShutdownMarker:
    def __init__(self, log_dir: str) -> None:
        self.dir = log_dir
        self.path = os.path.join(log_dir, CLEAN_SHUTDOWN_FILE)

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def write(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.dir)

    def remove(self) -> None:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            return
        fsync_dir(self.dir)
