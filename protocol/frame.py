"""Length-prefixed frames: the only unit that crosses a Klamm connection.

Layout of one frame (all integers big-endian)::

    u32 length        bytes that follow this field (= 4 + meta_length + payload length)
    u32 meta_length   bytes of msgpack metadata that follow
    meta              msgpack: request  [api_key, api_version, correlation_id, client_id, body]
                               response [correlation_id, body]
    payload           raw bytes (record batches) the body describes by size, in order

Record batches travel in the payload untouched so the broker can write them to disk and
send them back out with sendfile; everything else lives in the msgpack body. The decoder is
a pure state machine (bytes in, frames out) and refuses a frame whose declared length is over
the limit before allocating anything for it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgpack

PREFIX = struct.Struct(">II")
PREFIX_SIZE = PREFIX.size
DEFAULT_MAX_FRAME_BYTES = 100 * 1024 * 1024


class FrameError(Exception):
    """The peer sent bytes that are not a valid frame; the connection cannot continue."""


class FrameTooLarge(FrameError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"frame of {size} bytes exceeds the limit of {limit} bytes "
            f"(socket.request.max.bytes)")
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str


@dataclass(frozen=True, slots=True)
class Request:
    header: RequestHeader
    body: Any
    payload: memoryview


@dataclass(frozen=True, slots=True)
class Response:
    correlation_id: int
    body: Any
    payload: memoryview


_packer = msgpack.Packer(use_bin_type=True)


def pack(obj: Any) -> bytes:
    return _packer.pack(obj)


def unpack(data: bytes | memoryview) -> Any:
    return msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=False)


def frame_prefix(meta_size: int, payload_size: int) -> bytes:
    return PREFIX.pack(4 + meta_size + payload_size, meta_size)


def encode_request(header: RequestHeader, body: Any, payload: bytes = b"") -> bytes:
    meta = _packer.pack([header.api_key, header.api_version, header.correlation_id,
                         header.client_id, body])
    return b"".join((frame_prefix(len(meta), len(payload)), meta, payload))


def encode_response_head(correlation_id: int, body: Any, payload_size: int = 0) -> bytes:
    """Prefix and metadata of a response; the caller sends ``payload_size`` raw bytes after."""
    meta = _packer.pack([correlation_id, body])
    return frame_prefix(len(meta), payload_size) + meta


def encode_response(correlation_id: int, body: Any, payload: bytes = b"") -> bytes:
    return encode_response_head(correlation_id, body, len(payload)) + payload


class FrameDecoder:
    """Turns a byte stream into (meta, payload) pairs; never buffers more than one frame.

    ``feed`` returns every complete frame; a frame over ``max_frame_bytes`` or a frame
    whose metadata length is impossible raises :class:`FrameError` at once.
    """

    __slots__ = ("_buf", "_max")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_frame_bytes

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[memoryview, memoryview]]:
        buf = self._buf
        buf += data
        frames: list[tuple[memoryview, memoryview]] = []
        pos = 0
        end = len(buf)
        while end - pos >= PREFIX_SIZE:
            length, meta_len = PREFIX.unpack_from(buf, pos)
            if length > self._max:
                raise FrameTooLarge(length, self._max)
            if length < 4 or meta_len > length - 4:
                raise FrameError(f"frame length {length} cannot hold metadata of {meta_len} bytes")
            stop = pos + 4 + length
            if stop > end:
                break
            frame = memoryview(bytes(memoryview(buf)[pos + PREFIX_SIZE:stop]))
            frames.append((frame[:meta_len], frame[meta_len:]))
            pos = stop
        if pos:
            del buf[:pos]
        return frames


def parse_request(meta: memoryview, payload: memoryview) -> Request:
    """Decode request metadata; raises FrameError when it is not a valid request header."""
    try:
        obj = unpack(meta)
    except Exception as exc:  # msgpack raises several unrelated types
        raise FrameError(f"request metadata is not valid msgpack: {exc}") from None
    if not (isinstance(obj, tuple) and len(obj) == 5):
        raise FrameError("request metadata must be [api_key, api_version, correlation_id, "
                         "client_id, body]")
    api_key, api_version, correlation_id, client_id, body = obj
    if not (isinstance(api_key, int) and isinstance(api_version, int)
            and isinstance(correlation_id, int) and isinstance(client_id, str)):
        raise FrameError("request header fields have the wrong types")
    return Request(RequestHeader(api_key, api_version, correlation_id, client_id), body, payload)


def parse_response(meta: memoryview, payload: memoryview) -> Response:
    try:
        obj = unpack(meta)
    except Exception as exc:
        raise FrameError(f"response metadata is not valid msgpack: {exc}") from None
    if not (isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], int)):
        raise FrameError("response metadata must be [correlation_id, body]")
    return Response(obj[0], obj[1], payload)
