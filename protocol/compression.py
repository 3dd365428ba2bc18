"""Whole-batch compression codecs, numbered as in the batch attributes (Kafka's numbering)."""

from __future__ import annotations

import zlib
from enum import IntEnum

import lz4.frame
import zstandard

# A batch never inflates past this: a bound against decompression bombs from a bad peer.
MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024


class Compression(IntEnum):
    NONE = 0
    GZIP = 1
    LZ4 = 3
    ZSTD = 4

    @classmethod
    def parse(cls, name: "str | int | Compression | None") -> "Compression":
        if name is None:
            return cls.NONE
        if isinstance(name, int):
            return cls(name)
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown compression {name!r}; use one of none, gzip, lz4, zstd") from None


class CompressionError(Exception):
    """A compressed records section could not be inflated (corrupt or too large)."""


_zstd_c = zstandard.ZstdCompressor(level=3)
_zstd_d = zstandard.ZstdDecompressor()


def compress(codec: Compression, data: bytes) -> bytes:
    if codec is Compression.NONE:
        return data
    if codec is Compression.GZIP:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    if codec is Compression.LZ4:
        return lz4.frame.compress(data)
    if codec is Compression.ZSTD:
        return _zstd_c.compress(data)
    raise ValueError(f"unsupported compression codec {codec}")


def decompress(codec: int, data: bytes | memoryview) -> bytes:
    try:
        if codec == Compression.NONE:
            return bytes(data)
        if codec == Compression.GZIP:
            d = zlib.decompressobj(31)
            out = d.decompress(data, MAX_DECOMPRESSED_BYTES)
            if d.unconsumed_tail:
                raise CompressionError("gzip records section inflates past the size limit")
            return out
        if codec == Compression.LZ4:
            return lz4.frame.decompress(data)
        if codec == Compression.ZSTD:
            return _zstd_d.decompress(data, max_output_size=MAX_DECOMPRESSED_BYTES)
    except CompressionError:
        raise
    except Exception as exc:
        raise CompressionError(f"cannot decompress records section: {exc}") from None
    raise CompressionError(f"unknown compression codec {codec}")
