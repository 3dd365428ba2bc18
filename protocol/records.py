"""The record batch: the unit of write, storage, replication and fetch.

A batch is a fixed 61-byte header followed by the records section::

    offset  size  field
         0     8  base_offset            stamped by the leader on append
         8     4  batch_length           bytes after this field
        12     4  partition_leader_epoch stamped by the leader on append
        16     1  magic                  MAGIC
        17     4  crc                    CRC32C of bytes [21, end)
        21     2  attributes             bits 0-2 codec, bit 3 timestamp type,
                                         bit 4 transactional, bit 5 control
        23     4  last_offset_delta
        27     8  first_timestamp
        35     8  max_timestamp
        43     8  producer_id            -1 without idempotence
        51     2  producer_epoch
        53     4  base_sequence
        57     4  records_count
        61     .  records                msgpack array of [offset_delta, timestamp_delta,
                                         key, value, headers], compressed as a whole
                                         when the codec is not NONE

The CRC starts after the fields the leader stamps (base offset, length, leader epoch), so
stamping never forces a recomputation. The broker only ever looks at headers; records are
decoded by clients, by compaction, and to check producer batches of compacted topics. A
compressed section inflates to at most ``inflation_limit`` of its size. All functions here
are pure.
"""

from __future__ import annotations

import gc
import struct
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import msgpack
from crc32c import crc32c

from .compression import Compression, CompressionError, compress, decompress, decompress_prefix

MAGIC = 1
HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
LENGTH_PREFIX = struct.Struct(">qi")  # base_offset, batch_length
LOG_OVERHEAD = LENGTH_PREFIX.size  # 12: bytes before batch_length counts
CRC_START = 21
CRC_FIELD = struct.Struct(">I")
CRC_OFFSET = 17
LEADER_EPOCH = struct.Struct(">i")
LEADER_EPOCH_OFFSET = 12
MAX_TIMESTAMP = struct.Struct(">q")
MAX_TIMESTAMP_OFFSET = 35
BASE_OFFSET = struct.Struct(">q")

CODEC_MASK = 0x07
TIMESTAMP_TYPE_LOG_APPEND = 0x08
TRANSACTIONAL_FLAG = 0x10
CONTROL_FLAG = 0x20

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1

Header = tuple[tuple[str, bytes], ...] | list[tuple[str, bytes]]


class CorruptBatch(Exception):
    """A batch failed a structural or CRC check; it must not be stored or served."""


class BatchHeader(NamedTuple):
    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> Compression:
        return Compression(self.attributes & CODEC_MASK)

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_LOG_APPEND)


class Record(NamedTuple):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


def build_batch(
    records: Sequence[Sequence[Any]],
    first_timestamp: int,
    max_timestamp: int,
    **options: Any,
) -> bytes:
    """Encode records given as ``[offset_delta, timestamp_delta, key, value, headers]``.

    Options are those of :func:`build_batch_parts`.
    """
    return b"".join(build_batch_parts(records, first_timestamp, max_timestamp, **options))


def build_batch_parts(
    records: Sequence[Sequence[Any]],
    first_timestamp: int,
    max_timestamp: int,
    *,
    compression: Compression = Compression.NONE,
    base_offset: int = 0,
    leader_epoch: int = -1,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    log_append_time: bool = False,
    last_offset_delta: int | None = None,
) -> tuple[bytes, bytes]:
    """The batch as (header, records section), so a sender can write both without joining.

    One msgpack call packs the whole list; ``last_offset_delta`` defaults to
    ``len(records) - 1`` (dense offsets), compaction passes its own.
    """
    body = _packer.pack(records)
    if compression is not Compression.NONE:
        body = compress(compression, body)
    attributes = int(compression) | (TIMESTAMP_TYPE_LOG_APPEND if log_append_time else 0)
    count = len(records)
    if last_offset_delta is None:
        last_offset_delta = count - 1
    head = bytearray(HEADER.pack(
        base_offset, HEADER_SIZE - LOG_OVERHEAD + len(body), leader_epoch, MAGIC, 0,
        attributes, last_offset_delta, first_timestamp, max_timestamp,
        producer_id, producer_epoch, base_sequence, count))
    crc = crc32c(body, crc32c(memoryview(head)[CRC_START:]))
    CRC_FIELD.pack_into(head, CRC_OFFSET, crc)
    return bytes(head), body


def read_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Parse the header at ``pos``; raises CorruptBatch if it is truncated or has a bad magic."""
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptBatch(f"truncated batch header: {len(buf) - pos} of {HEADER_SIZE} bytes")
    header = BatchHeader._make(HEADER.unpack_from(buf, pos))
    if header.magic != MAGIC:
        raise CorruptBatch(f"unknown batch magic {header.magic}")
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise CorruptBatch(f"batch length {header.batch_length} is shorter than a header")
    return header


def validate_batch(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Check one complete batch at ``pos``: size, magic, counts, CRC. Returns its header."""
    header = read_header(buf, pos)
    end = pos + header.size
    if end > len(buf):
        raise CorruptBatch(f"batch claims {header.size} bytes but only {len(buf) - pos} remain")
    if header.records_count <= 0 or header.last_offset_delta < 0:
        raise CorruptBatch(f"batch has {header.records_count} records and last offset delta "
                           f"{header.last_offset_delta}")
    if header.attributes & CODEC_MASK not in _CODECS:
        raise CorruptBatch(f"unknown compression codec {header.attributes & CODEC_MASK}")
    view = memoryview(buf)[pos + CRC_START:end]
    if crc32c(view) != header.crc:
        raise CorruptBatch("batch CRC mismatch")
    return header


_CODECS = frozenset(int(c) for c in Compression)


def iter_batches(buf: bytes | bytearray | memoryview,
                 pos: int = 0) -> Iterator[tuple[BatchHeader, int]]:
    """Yield (header, position) of every complete batch; a trailing partial batch is skipped.

    Headers are parsed but not CRC-checked; call ``validate_batch`` where trust is needed.
    """
    end = len(buf)
    while end - pos >= HEADER_SIZE:
        header = read_header(buf, pos)
        if pos + header.size > end:
            return
        yield header, pos
        pos += header.size


def stamp(batch: bytearray | memoryview, pos: int, base_offset: int, leader_epoch: int) -> None:
    """Write the leader-assigned base offset and epoch into a batch in place (CRC unaffected)."""
    BASE_OFFSET.pack_into(batch, pos, base_offset)
    LEADER_EPOCH.pack_into(batch, pos + LEADER_EPOCH_OFFSET, leader_epoch)


def set_log_append_time(batch: bytearray | memoryview, pos: int, size: int, ts: int) -> None:
    """Rewrite max_timestamp and the timestamp-type bit for LogAppendTime, then the CRC."""
    MAX_TIMESTAMP.pack_into(batch, pos + MAX_TIMESTAMP_OFFSET, ts)
    attrs = struct.unpack_from(">h", batch, pos + CRC_START)[0]
    struct.pack_into(">h", batch, pos + CRC_START, attrs | TIMESTAMP_TYPE_LOG_APPEND)
    crc = crc32c(memoryview(batch)[pos + CRC_START:pos + size])
    CRC_FIELD.pack_into(batch, pos + CRC_OFFSET, crc)


def decode_records(buf: bytes | bytearray | memoryview, pos: int = 0,
                   header: BatchHeader | None = None) -> list[Record]:
    """Decode a batch's records (decompressing if needed). Raises CorruptBatch on bad data."""
    if header is None:
        header = read_header(buf, pos)
    section = memoryview(buf)[pos + HEADER_SIZE:pos + header.size]
    raw = decode_raw_records(section, header.attributes)
    base = header.base_offset
    first_ts = header.first_timestamp
    if header.attributes & TIMESTAMP_TYPE_LOG_APPEND:
        ts = header.max_timestamp
        return [Record(base + r[0], ts, r[2], r[3], r[4]) for r in raw]
    return [Record(base + r[0], first_ts + r[1], r[2], r[3], r[4]) for r in raw]


def declared_record_count(section: bytes | memoryview, attributes: int) -> int:
    """How many records a records section holds, read from its msgpack array header alone:
    no record is decoded, and of a compressed section only the first 5 bytes are inflated.
    -1 when the section does not start with an array header."""
    codec = attributes & CODEC_MASK
    if codec:
        try:
            section = decompress_prefix(codec, section, 5)
        except CompressionError as exc:
            raise CorruptBatch(str(exc)) from None
    if not len(section):
        return -1
    first = section[0]
    if 0x90 <= first <= 0x9F:
        return first & 0x0F
    if first == 0xDC and len(section) >= 3:
        return int.from_bytes(section[1:3], "big")
    if first == 0xDD and len(section) >= 5:
        return int.from_bytes(section[1:5], "big")
    return -1  # not an array


def check_records(buf: bytes | bytearray | memoryview, pos: int, header: BatchHeader, *,
                  keys_required: bool) -> None:
    """Decode a batch's records (bounded decompression) and check them against the header:
    as many records as ``records_count``, offset deltas 0..n-1, and with ``keys_required``
    (a compacted topic) a key on each. Raises CorruptBatch naming the first problem."""
    section = memoryview(buf)[pos + HEADER_SIZE:pos + header.size]
    raw = decode_raw_records(section, header.attributes)
    if len(raw) != header.records_count:
        raise CorruptBatch(f"batch header says {header.records_count} records but it holds "
                           f"{len(raw)}")
    for i, rec in enumerate(raw):
        if not (isinstance(rec, tuple) and len(rec) == 5 and rec[0] == i
                and type(rec[1]) is int and isinstance(rec[2], (bytes, type(None)))
                and isinstance(rec[3], (bytes, type(None)))):
            raise CorruptBatch(f"record {i} of the batch is not [offset delta {i}, timestamp "
                               f"delta, key, value, headers]")
        if keys_required and rec[2] is None:
            raise CorruptBatch(f"record {i} has no key; a compacted topic (cleanup.policy="
                               f"compact) keeps records by key, so every record needs one")


def decode_raw_records(section: bytes | memoryview, attributes: int) -> tuple[Any, ...]:
    """The records section as a tuple of ``(offset_delta, ts_delta, key, value, headers)``;
    a compressed section inflates at most to ``inflation_limit`` of its size."""
    codec = attributes & CODEC_MASK
    try:
        data = section if codec == 0 else decompress(codec, section)
    except CompressionError as exc:
        raise CorruptBatch(str(exc)) from None
    # Unpacking allocates many small objects; a GC pass in the middle costs ~2x.
    enabled = gc.isenabled()
    gc.disable()
    try:
        raw = msgpack.unpackb(data, use_list=False, raw=False)
    except Exception as exc:
        raise CorruptBatch(f"records section is not valid msgpack: {exc}") from None
    finally:
        if enabled:
            gc.enable()
    if not isinstance(raw, tuple):
        raise CorruptBatch("records section is not an array")
    return raw
