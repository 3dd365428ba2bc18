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

import mmap
import struct
from dataclasses import dataclass
from typing import Any, Protocol

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
    return encode_request_head(header, body, len(payload)) + payload


def encode_request_head(header: RequestHeader, body: Any, payload_size: int = 0) -> bytes:
    """Prefix and metadata of a request; the caller sends ``payload_size`` raw bytes after."""
    meta = _packer.pack([header.api_key, header.api_version, header.correlation_id,
                         header.client_id, body])
    return frame_prefix(len(meta), payload_size) + meta


def encode_response_head(correlation_id: int, body: Any, payload_size: int = 0) -> bytes:
    """Prefix and metadata of a response; the caller sends ``payload_size`` raw bytes after."""
    meta = _packer.pack([correlation_id, body])
    return frame_prefix(len(meta), payload_size) + meta


def encode_response(correlation_id: int, body: Any, payload: bytes = b"") -> bytes:
    return encode_response_head(correlation_id, body, len(payload)) + payload


def check_prefix(length: int, meta_len: int, max_frame_bytes: int) -> None:
    """Refuse a frame from its prefix alone, before anything is allocated for it."""
    if length > max_frame_bytes:
        raise FrameTooLarge(length, max_frame_bytes)
    if length < 4 or meta_len > length - 4:
        raise FrameError(f"frame length {length} cannot hold metadata of {meta_len} bytes")


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
            check_prefix(length, meta_len, self._max)
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


class FrameBudget(Protocol):
    """Memory that large frames reserve their declared size from (see FrameReader)."""

    def try_reserve(self, nbytes: int) -> bool: ...

    def release(self, nbytes: int) -> None: ...


class FrameReader:
    """Receive-side framing for an ``asyncio.BufferedProtocol``: the socket reads straight
    into buffers this class hands out, and complete frames come back as (meta, payload).

    Small frames land in one reusable scratch buffer and are copied out once. A frame that
    is larger than ``direct_threshold`` and not yet complete gets a buffer of its own, taken
    when its declared length has passed the limit check, and the socket fills it directly:
    a large fetch response is never copied in user space, and the payload handed out is a
    view of that frame's buffer. Those buffers are reused once no view of them is left (a
    fresh multi-megabyte buffer per response costs page faults and zeroing on every fetch).
    After ``spare_idle_reads`` reads without a large frame the spares nobody views are let go,
    so a consumer that caught up does not keep its catch-up buffers for ever; buffers over
    ``spare_max_bytes`` are never kept (a broker does not hold a 60 MB request's buffer for
    the connection's life).

    A large frame's buffer is an anonymous memory map: the kernel gives it pages as bytes
    arrive, so a peer that declares 100 MB and sends 9 bytes costs 9 bytes, not 100 MB. With
    a ``budget`` the declared size is reserved from it before the buffer is taken (and given
    back when the frame is complete, or by ``abandon``); when the budget refuses, ``blocked``
    is set and nothing more is parsed: the owner stops reading, and once the budget can
    grant the frame calls ``buffer_updated(0)`` to go on.
    Pure state machine: no I/O, no event loop.
    """

    __slots__ = ("_scratch", "_view", "_start", "_end", "_max", "_direct", "_big",
                 "_big_view", "_big_filled", "_big_meta", "_spares", "_spare_limit",
                 "_idle_reads", "_idle_limit", "_budget", "_reserved", "blocked",
                 "_spare_max")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 scratch_bytes: int = 256 * 1024, direct_threshold: int = 64 * 1024,
                 spare_buffers: int = 4, spare_idle_reads: int = 1024,
                 budget: FrameBudget | None = None, spare_max_bytes: int | None = None
                 ) -> None:
        self._scratch = bytearray(scratch_bytes)
        self._view = memoryview(self._scratch)
        self._start = 0  # first unparsed byte in scratch
        self._end = 0  # end of received bytes in scratch
        self._max = max_frame_bytes
        self._direct = min(direct_threshold, scratch_bytes // 2)
        self._big: mmap.mmap | None = None
        self._big_view: memoryview | None = None
        self._big_filled = 0
        self._big_meta = 0
        self._spares: list[mmap.mmap] = []  # large-frame buffers, reusable when unviewed
        self._budget = budget
        self._spare_max = spare_max_bytes  # larger buffers are not kept once their frame ends
        self._reserved = 0  # reserved from the budget for the large frame being read
        self.blocked = False  # the budget refused the next frame: read nothing more
        self._spare_limit = spare_buffers
        self._idle_reads = 0  # reads since the last large frame began
        self._idle_limit = spare_idle_reads

    @property
    def buffered(self) -> int:
        """Bytes received that do not form a complete frame yet."""
        return self._big_filled if self._big is not None else self._end - self._start

    @property
    def spare_bytes(self) -> int:
        """Memory kept in large-frame buffers for reuse."""
        return sum(map(len, self._spares))

    def get_buffer(self) -> memoryview:
        """Where the next read goes: the rest of a large frame, else free scratch space."""
        if self._big_view is not None:
            return self._big_view[self._big_filled:]
        return self._view[self._end:]

    def buffer_updated(self, nbytes: int) -> list[tuple[memoryview, memoryview]]:
        """Account for ``nbytes`` read into the last buffer; returns completed frames."""
        if self._big_view is not None:
            self._big_filled += nbytes
            if self._big_filled < len(self._big_view):
                return []
            frame = self._big_view
            meta = self._big_meta
            self._big = self._big_view = None
            self._big_filled = 0
            self._give_back()
            return [(frame[:meta], frame[meta:])]
        self._end += nbytes
        if self._spares:
            self._idle_reads += 1
            if self._idle_reads >= self._idle_limit:
                self._idle_reads = 0
                self._spares = [buf for buf in self._spares if not _unviewed(buf)]
        frames: list[tuple[memoryview, memoryview]] = []
        view = self._view
        start, end = self._start, self._end
        while end - start >= PREFIX_SIZE:
            length, meta_len = PREFIX.unpack_from(view, start)
            check_prefix(length, meta_len, self._max)
            stop = start + 4 + length
            if stop <= end:
                frame = memoryview(bytes(view[start + PREFIX_SIZE:stop]))
                frames.append((frame[:meta_len], frame[meta_len:]))
                start = stop
                continue
            if 4 + length > self._direct:  # read the rest of it straight into its own buffer
                if self._budget is not None:
                    if not self._budget.try_reserve(length - 4):
                        self.blocked = True
                        break
                    self._reserved = length - 4
                self.blocked = False
                self._big, self._big_view = self._large_buffer(length - 4)
                have = end - start - PREFIX_SIZE
                self._big_view[:have] = view[start + PREFIX_SIZE:end]
                self._big_filled = have
                self._big_meta = meta_len
                start = end
            break
        if start == end:
            start = end = 0
        elif len(view) - end < self._direct:  # make room for the rest of a small frame
            self._scratch[:end - start] = self._scratch[start:end]  # same size: no resize
            end -= start
            start = 0
        self._start, self._end = start, end
        return frames

    def abandon(self) -> None:
        """The connection is gone: give back what the frame being read had reserved."""
        self._big = self._big_view = None
        self._big_filled = 0
        self._give_back()

    def _give_back(self) -> None:
        if self._reserved and self._budget is not None:
            self._budget.release(self._reserved)
        self._reserved = 0

    def _large_buffer(self, size: int) -> tuple[mmap.mmap, memoryview]:
        """A spare nobody views any more if one is big enough, else a new one (kept as a
        spare, up to ``spare_buffers`` of them, replacing a smaller idle one when full)."""
        self._idle_reads = 0
        smaller = -1
        for i, buf in enumerate(self._spares):
            if not _unviewed(buf):
                continue
            if len(buf) >= size:
                return buf, memoryview(buf)[:size]
            smaller = i
        buf = mmap.mmap(-1, size)  # pages arrive as the bytes do
        if self._spare_max is not None and size > self._spare_max:
            return buf, memoryview(buf)  # used once: its pages go back when its views do
        if len(self._spares) < self._spare_limit:
            self._spares.append(buf)
        elif smaller >= 0:
            self._spares[smaller] = buf
        return buf, memoryview(buf)


def _unviewed(buf: mmap.mmap) -> bool:
    """True when no memoryview of ``buf`` is alive (a map with views cannot be resized)."""
    try:
        buf.resize(len(buf))
    except BufferError:
        return False
    return True
