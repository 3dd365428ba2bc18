"""Fetched bytes -> ConsumerRecords: the consumer's hot path (pure, no I/O).

A fetched partition's bytes are a run of whole batches; a trailing partial batch (the broker
cut the response at a byte limit) is ignored and fetched again next time. ``PartitionRecords``
decodes lazily, one batch at a time, only when the application asks for records: a CRC check
per batch (C), one msgpack call per batch with the garbage collector paused, then one list
comprehension whose per-record work is C calls only (``tuple.__new__`` on the ConsumerRecord
NamedTuple). Deserializers run only when configured: ``None`` (bytes) skips the call entirely.

Invariant: records are handed out in offset order and never below ``position``; a batch that
fails its CRC, does not decode, or holds a value the deserializer rejects stops the partition
*at* the offending offset: records before it are still delivered, then the error is raised
with nothing lost, and the caller decides whether to ``seek`` past it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import msgpack
from crc32c import crc32c

from klamm.protocol.compression import CompressionError, decompress
from klamm.protocol.errors import CorruptMessageError
from klamm.protocol.records import CODEC_MASK, CONTROL_FLAG, CRC_START, HEADER, HEADER_SIZE, \
    LOG_OVERHEAD, MAGIC, TIMESTAMP_TYPE_LOG_APPEND

from ..errors import RecordDeserializationError  # noqa: F401 - raised here, public there
from ..structs import ConsumerRecord, TopicPartition

Deserializer = Callable[[bytes], Any]

_new = tuple.__new__
_unpackb = msgpack.unpackb
_timestamp_delta = itemgetter(1)  # of a raw record tuple
_MIN_LENGTH = HEADER_SIZE - LOG_OVERHEAD
_CODECS = frozenset((0, 1, 3, 4))
CREATE_TIME = 0
LOG_APPEND_TIME = 1


def corrupt(tp: TopicPartition, offset: int, why: str) -> CorruptMessageError:
    """The error for a batch at ``offset`` that cannot be trusted; says how to move on."""
    return CorruptMessageError(f"{tp.topic}-{tp.partition} batch at offset {offset}: {why}; "
                               f"records before it were delivered, seek past it to skip")


def scan_batches(data: memoryview, tp: TopicPartition
                 ) -> tuple[list[int], int, CorruptMessageError | None]:
    """Start positions of the complete batches in ``data``, the offset after the last one (-1
    when there is none) and, if framing broke down at an impossible header, the error to raise
    once the batches before it are delivered (nothing after a bad header can be framed)."""
    unpack_from = HEADER.unpack_from
    end = len(data)
    positions: list[int] = []
    next_offset = -1
    pos = 0
    while end - pos >= HEADER_SIZE:
        h = unpack_from(data, pos)
        if h[3] != MAGIC or h[1] < _MIN_LENGTH:
            return positions, next_offset, corrupt(
                tp, h[0], f"bad batch header (magic {h[3]}, length {h[1]})")
        stop = pos + LOG_OVERHEAD + h[1]
        if stop > end:
            break
        positions.append(pos)
        next_offset = h[0] + h[6] + 1
        pos = stop
    return positions, next_offset, None


class PartitionRecords:
    """Undelivered records of one partition from one fetch response.

    ``take`` hands out records in order; ``next_offset`` is where the partition's next fetch
    starts (after the last complete batch). Safe only within one event loop.
    """

    __slots__ = ("tp", "epoch", "data", "nbytes", "next_offset", "_positions", "_batch",
                 "_pending", "_index", "_error", "_tail_error", "_check_crcs", "_kd", "_vd")

    def __init__(self, tp: TopicPartition, epoch: int, data: memoryview, positions: list[int],
                 next_offset: int, *, error: Exception | None = None, check_crcs: bool = True,
                 key_deserializer: Deserializer | None = None,
                 value_deserializer: Deserializer | None = None) -> None:
        self.tp = tp
        self.epoch = epoch
        self.data = data
        self.nbytes = len(data)
        self.next_offset = next_offset
        self._positions = positions
        self._batch = 0
        self._pending: list[ConsumerRecord] = []
        self._index = 0  # records of _pending before it were handed out
        self._error: Exception | None = None
        self._tail_error = error  # raised after the complete batches before it
        self._check_crcs = check_crcs
        self._kd = key_deserializer
        self._vd = value_deserializer

    @property
    def exhausted(self) -> bool:
        """Every record was handed out and no error is left to raise."""
        return (self._index >= len(self._pending) and self._error is None
                and self._batch >= len(self._positions) and self._tail_error is None)

    def take(self, max_records: int, position: int) -> list[ConsumerRecord]:
        """Up to ``max_records`` records at or after ``position`` (the consumer's position).

        Raises the partition's error once every record before it has been handed out.
        """
        out: list[ConsumerRecord] = []
        while True:
            pending = self._pending
            i = self._index
            if i < len(pending):
                room = max_records - len(out)
                if i == 0 and len(pending) <= room and not out:
                    out = pending  # the common case: a whole batch, no copy
                    self._pending = []
                    self._index = 0
                else:
                    out += pending[i:i + room]
                    self._index = min(len(pending), i + room)
                if len(out) >= max_records:
                    return out
            if self._error is not None:
                if out:
                    return out
                raise self._error
            if self._batch >= len(self._positions):
                if self._tail_error is not None:
                    self._error, self._tail_error = self._tail_error, None
                    continue
                return out
            pos = self._positions[self._batch]
            self._batch += 1
            self._pending = self._decode(pos, position)
            self._index = 0

    def next_pending(self) -> ConsumerRecord | None:
        """The next already-decoded record, or None (then ``take`` decodes the next batch)."""
        i = self._index
        pending = self._pending
        if i >= len(pending):
            return None
        self._index = i + 1
        return pending[i]

    def _decode(self, pos: int, position: int) -> list[ConsumerRecord]:
        data = self.data
        (base, length, _epoch, _magic, crc, attrs, last_delta, first_ts, max_ts, _pid, _pe,
         _seq, count) = HEADER.unpack_from(data, pos)
        if base + last_delta < position or attrs & CONTROL_FLAG:
            return []
        end = pos + LOG_OVERHEAD + length
        tp = self.tp
        if self._check_crcs and crc32c(data[pos + CRC_START:end]) != crc:
            self._error = corrupt(tp, base, "CRC mismatch (corrupted in transit or on disk)")
            return []
        codec = attrs & CODEC_MASK
        section: bytes | memoryview = data[pos + HEADER_SIZE:end]
        enabled = gc.isenabled()
        gc.disable()  # unpacking and building allocate many objects; a GC pass costs ~2x
        try:
            if codec:
                if codec not in _CODECS:
                    raise CorruptBatchError(f"unknown compression codec {codec}")
                section = decompress(codec, section)
            raw = _unpackb(section, use_list=False, raw=False)
            if type(raw) is not tuple or len(raw) != count:
                raise CorruptBatchError(f"records section holds {len(raw)} of {count} records"
                                        if type(raw) is tuple else "records are not an array")
            topic, part = tp
            if attrs & TIMESTAMP_TYPE_LOG_APPEND or (
                    first_ts == max_ts and not any(map(_timestamp_delta, raw))):
                # One timestamp for the whole batch: share one int object. first == max
                # alone does not prove it: a record given an earlier timestamp than the
                # first one has a negative delta (checking costs ~20 ns a record, C only).
                ts_type = LOG_APPEND_TIME if attrs & TIMESTAMP_TYPE_LOG_APPEND else CREATE_TIME
                records = [_new(ConsumerRecord, (topic, part, base + o, max_ts, ts_type, k, v, h))
                           for o, _, k, v, h in raw]
            else:
                records = [_new(ConsumerRecord, (topic, part, base + o, first_ts + t, CREATE_TIME,
                                                 k, v, h))
                           for o, t, k, v, h in raw]
        except (CorruptBatchError, CompressionError, ValueError, TypeError, LookupError) as exc:
            self._error = corrupt(tp, base, f"records do not decode: {exc}")
            return []
        finally:
            if enabled:
                gc.enable()
        if base < position:
            if last_delta == count - 1:  # dense offsets: cut by index
                records = records[position - base:]
            else:
                records = [r for r in records if r.offset >= position]
        if self._kd is not None or self._vd is not None:
            records = self._deserialize(records)
        return records

    def _deserialize(self, records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        kd, vd = self._kd, self._vd
        CR = ConsumerRecord
        try:
            if kd is None and vd is not None:
                return [_new(CR, (t, p, o, ts, tt, k, None if v is None else vd(v), h))
                        for t, p, o, ts, tt, k, v, h in records]
            if vd is None and kd is not None:
                return [_new(CR, (t, p, o, ts, tt, None if k is None else kd(k), v, h))
                        for t, p, o, ts, tt, k, v, h in records]
            if kd is not None and vd is not None:
                return [_new(CR, (t, p, o, ts, tt, None if k is None else kd(k),
                                  None if v is None else vd(v), h))
                        for t, p, o, ts, tt, k, v, h in records]
        except Exception:
            pass
        # Find the record that failed: deliver those before it, stop at it.
        out: list[ConsumerRecord] = []
        for r in records:
            key, value = r.key, r.value
            try:
                if kd is not None and key is not None:
                    key = kd(key)
            except Exception as exc:
                self._error = RecordDeserializationError(self.tp, r.offset, "key", exc)
                break
            try:
                if vd is not None and value is not None:
                    value = vd(value)
            except Exception as exc:
                self._error = RecordDeserializationError(self.tp, r.offset, "value", exc)
                break
            out.append(r._replace(key=key, value=value))
        return out


class CorruptBatchError(Exception):
    """Internal: a batch passed its CRC but its records section is malformed."""
