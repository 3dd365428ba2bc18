"""Forged record batches: a valid header and CRC around whatever records section a test
chooses, to reach the checks behind the CRC."""

from __future__ import annotations

import zstandard
from crc32c import crc32c

from klamm.protocol.records import (CRC_FIELD, CRC_OFFSET, CRC_START, HEADER, HEADER_SIZE,
                                    LOG_OVERHEAD, MAGIC)


def forged_batch(section: bytes, *, count: int, attributes: int = 0, first_ts: int = 0,
                 max_ts: int = 0, base_offset: int = 0,
                 last_offset_delta: int | None = None) -> bytes:
    head = bytearray(HEADER.pack(
        base_offset, HEADER_SIZE - LOG_OVERHEAD + len(section), -1, MAGIC, 0, attributes,
        count - 1 if last_offset_delta is None else last_offset_delta, first_ts, max_ts,
        -1, -1, -1, count))
    CRC_FIELD.pack_into(head, CRC_OFFSET, crc32c(section, crc32c(memoryview(head)[CRC_START:])))
    return bytes(head) + section


def zstd_bomb(inflated_bytes: int) -> bytes:
    """A zstd frame of zeros that declares its (large) size, made without holding it."""
    compressor = zstandard.ZstdCompressor().compressobj(size=inflated_bytes)
    chunk = bytes(1 << 20)
    out = [compressor.compress(chunk[:min(len(chunk), inflated_bytes - done)])
           for done in range(0, inflated_bytes, len(chunk))]
    return b"".join(out) + compressor.flush()
