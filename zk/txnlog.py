"""The transaction log: append-only files of CRC-checked records, one per applied txn.

File ``log.<first zxid, 20 digits>``; record = ``u32 length, u32 crc32c(body), body`` where
body is msgpack ``[zxid, time_ms, txn]``. Zxids are consecutive across files. Recovery
reads records in order and stops at the first record that is short, fails its CRC, does not
decode, or breaks the zxid sequence: that file is truncated there and later files removed,
so a torn write is cut and never half-applied. Only the group committer thread writes.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import crc32c
import msgpack

from .files import fsync_dir, numbered_files
from .txn import Txn, decode_txn, encode_txn

log = logging.getLogger(__name__)

HEADER = struct.Struct(">II")
MAX_RECORD_BYTES = 64 * 1024 * 1024
PREFIX = "log."


@dataclass(frozen=True, slots=True)
class LogRecord:
    zxid: int
    time_ms: int
    txn: Txn


def encode_record(zxid: int, time_ms: int, txn: Txn) -> bytes:
    body: bytes = msgpack.packb([zxid, time_ms, encode_txn(txn)], use_bin_type=True)
    return HEADER.pack(len(body), crc32c.crc32c(body)) + body


def scan(data: bytes | memoryview, expect_zxid: int | None = None
         ) -> tuple[list[LogRecord], int]:
    """Valid records at the start of ``data`` and the byte length they cover (pure).

    ``expect_zxid`` is the zxid the first record must carry (None: any)."""
    records: list[LogRecord] = []
    pos = 0
    view = memoryview(data)
    while len(view) - pos >= HEADER.size:
        length, crc = HEADER.unpack_from(view, pos)
        end = pos + HEADER.size + length
        if length > MAX_RECORD_BYTES or end > len(view):
            break
        body = view[pos + HEADER.size:end]
        if crc32c.crc32c(body) != crc:
            break
        try:
            zxid, time_ms, raw = msgpack.unpackb(body, raw=False, use_list=False)
            txn = decode_txn(raw)
        except Exception:  # noqa: BLE001 - any undecodable body ends the valid prefix
            break
        if expect_zxid is not None and zxid != expect_zxid:
            break
        records.append(LogRecord(zxid, time_ms, txn))
        expect_zxid = zxid + 1
        pos = end
    return records, pos


def log_files(directory: Path) -> list[tuple[int, Path]]:
    return numbered_files(directory, PREFIX)


class TxnLog:
    """Owns the log files of one data directory.

    ``recover`` must run first (it cuts bad tails); afterwards ``write`` appends to the
    newest file and ``sync`` makes everything written durable. Not thread-safe: one
    writer at a time (the group committer serialises calls).
    """

    def __init__(self, directory: Path, roll_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = directory
        self.roll_bytes = roll_bytes
        self._fd: int | None = None
        self._size = 0
        self._path: Path | None = None
        self.truncated_bytes = 0

    def recover(self, after_zxid: int) -> Iterator[LogRecord]:
        """Yield every valid record with zxid > ``after_zxid``, cutting any bad tail.

        Records must continue from ``after_zxid + 1``; a log that starts later than that
        (a gap) is refused, since the missing transactions cannot be recovered."""
        files = log_files(self.directory)
        expect: int | None = None
        for i, (first, path) in enumerate(files):
            data = path.read_bytes()
            records, good = scan(data, first if expect is None else expect)
            for rec in records:
                if rec.zxid > after_zxid:
                    if rec.zxid != after_zxid + 1:
                        raise RuntimeError(f"transaction log {path.name} jumps to zxid "
                                           f"{rec.zxid} after {after_zxid}")
                    yield rec
                    after_zxid = rec.zxid
            if records:
                expect = records[-1].zxid + 1
            elif expect is None:
                expect = first
            if good < len(data):
                log.warning("transaction log %s: cutting %d bytes of torn or corrupt tail "
                            "at offset %d", path.name, len(data) - good, good)
                self.truncated_bytes += len(data) - good
                with open(path, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
                for _, later in files[i + 1:]:
                    log.warning("transaction log %s follows a corrupt record; removed",
                                later.name)
                    later.unlink()
                break

    def open(self, next_zxid: int) -> None:
        """Append to the newest file, or start ``log.<next_zxid>`` when there is none."""
        files = log_files(self.directory)
        path = files[-1][1] if files else self.directory / f"{PREFIX}{next_zxid:020d}"
        self._open_file(path)

    def _open_file(self, path: Path) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._path = path
        fsync_dir(self.directory)

    def write(self, data: bytes, first_zxid: int) -> None:
        """Append records starting at ``first_zxid``; rolls to a new file first when full."""
        assert self._fd is not None, "open() first"
        if self._size >= self.roll_bytes:
            self._open_file(self.directory / f"{PREFIX}{first_zxid:020d}")
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def sync(self) -> None:
        assert self._fd is not None
        os.fsync(self._fd)

    def roll_next(self) -> None:
        """Make the next ``write`` start a new file (after a snapshot, so old ones can go)."""
        self._size = max(self._size, self.roll_bytes)

    def purge(self, snapshot_zxid: int) -> None:
        """Delete files whose every record is covered by the snapshot at ``snapshot_zxid``."""
        files = log_files(self.directory)
        for (_, path), (next_first, _) in zip(files, files[1:], strict=False):
            if next_first <= snapshot_zxid + 1 and path != self._path:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
