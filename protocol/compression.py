"""Whole-batch compression codecs, numbered as in the batch attributes (Kafka's numbering)."""

from __future__ import annotations

import io
import zlib
from enum import IntEnum

import lz4.frame
import zstandard

# A records section never inflates past inflation_limit(its compressed size): a bound
# against decompression bombs (a 2 KB batch declaring gigabytes) from a bad peer.
MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024
MIN_INFLATION_LIMIT = 1 << 20
INFLATION_RATIO = 256


def inflation_limit(compressed_size: int) -> int:
    """The most a compressed section of ``compressed_size`` bytes may inflate to: 256 times
    its size, at least 1 MiB (a batch of repeated bytes), at most MAX_DECOMPRESSED_BYTES."""
    return min(MAX_DECOMPRESSED_BYTES,
               max(MIN_INFLATION_LIMIT, INFLATION_RATIO * compressed_size))


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


def decompress(codec: int, data: bytes | memoryview, limit: int | None = None) -> bytes:
    """Inflate a records section; CompressionError when it is corrupt or would inflate past
    ``limit`` (default ``inflation_limit(len(data))``). The output is never allocated past
    the limit, whatever size the compressed stream declares."""
    if limit is None:
        limit = inflation_limit(len(data))
    try:
        if codec == Compression.NONE:
            return bytes(data)
        if codec == Compression.GZIP:
            d = zlib.decompressobj(31)
            out = d.decompress(data, limit)
            if d.unconsumed_tail or not d.eof:
                raise _too_large("gzip", limit)
            return out
        if codec == Compression.LZ4:
            lz = lz4.frame.LZ4FrameDecompressor()
            out = lz.decompress(data, max_length=limit)
            if not lz.eof:
                raise _too_large("lz4", limit)
            return out
        if codec == Compression.ZSTD:
            declared = zstandard.frame_content_size(data)
            if declared > limit:
                raise _too_large("zstd", limit)
            if declared >= 0:  # decompress allocates what the frame declares: checked above
                return _zstd_d.decompress(data)
            with _zstd_d.stream_reader(io.BytesIO(data)) as reader:
                out = reader.read(limit + 1)
            if len(out) > limit:
                raise _too_large("zstd", limit)
            return out
    except CompressionError:
        raise
    except Exception as exc:
        raise CompressionError(f"cannot decompress records section: {exc}") from None
    raise CompressionError(f"unknown compression codec {codec}")


def decompress_prefix(codec: int, data: bytes | memoryview, size: int) -> bytes:
    """The first ``size`` bytes of the inflated section (fewer if it is shorter), inflating
    nothing more: enough to read a header of the records without paying for the rest."""
    try:
        if codec == Compression.NONE:
            return bytes(data[:size])
        if codec == Compression.GZIP:
            return zlib.decompressobj(31).decompress(data, size)
        if codec == Compression.LZ4:
            return lz4.frame.LZ4FrameDecompressor().decompress(data, max_length=size)
        if codec == Compression.ZSTD:
            with _zstd_d.stream_reader(io.BytesIO(data)) as reader:
                return reader.read(size)
    except Exception as exc:
        raise CompressionError(f"cannot decompress records section: {exc}") from None
    raise CompressionError(f"unknown compression codec {codec}")


def _too_large(codec: str, limit: int) -> CompressionError:
    return CompressionError(f"{codec} records section inflates past {limit} bytes (a "
                            f"decompression bomb, or a batch compressed more than "
                            f"{INFLATION_RATIO}:1)")
