"""Sending file regions to a client socket without copying them through Python.

uvloop implements neither ``loop.sendfile`` nor ``loop.sock_sendfile``, so this module drives
``os.sendfile`` itself. The invariant that keeps the byte stream intact: nothing may sit in the
transport's write buffer when sendfile writes to the socket, and nothing may be written through
the transport while a sendfile is in progress. ``ZeroCopyWriter`` therefore waits for the
transport buffer to drain (write-buffer limits 0/0 make ``resume_writing`` mean "empty") before
each region, and the connection sends nothing else until ``send_regions`` returns.

Writability is awaited on an ``os.dup()`` of the socket fd because the loop refuses
``add_writer`` on a fd it already manages for the transport. Transports without a plain socket
(TLS), or brokers configured with sendfile off, use a chunked pread + write fallback that never
holds more than one chunk in memory.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from typing import Protocol

FALLBACK_CHUNK = 256 * 1024


class Region(Protocol):
    @property
    def fd(self) -> int: ...
    @property
    def position(self) -> int: ...
    @property
    def size(self) -> int: ...


class ZeroCopyWriter:
    """One per connection; not shareable between connections. Owns a dup of the socket fd."""

    def __init__(self, transport: asyncio.Transport, use_sendfile: bool,
                 on_sendfile_bytes: Callable[[int], None],
                 on_copied_bytes: Callable[[int], None]) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._drained = asyncio.Event()
        self._drained.set()
        self._on_bytes = on_sendfile_bytes
        self._on_copied = on_copied_bytes
        self._sock_fd = -1
        sock = transport.get_extra_info("socket")
        if use_sendfile and sock is not None and transport.get_extra_info("sslcontext") is None:
            try:
                self._sock_fd = os.dup(sock.fileno())
            except OSError:
                self._sock_fd = -1

    @property
    def zero_copy(self) -> bool:
        return self._sock_fd >= 0

    # Called by the connection's pause_writing/resume_writing.
    def paused(self) -> None:
        self._drained.clear()

    def resumed(self) -> None:
        self._drained.set()

    async def send_regions(self, head: bytes, regions: Sequence[Region]) -> None:
        """Write ``head`` then every region, in order, fully; raises ConnectionError on loss."""
        self._transport.write(head)
        if not regions:
            return
        if self._sock_fd < 0:
            await self._send_copying(regions)
            return
        transport = self._transport
        transport.set_write_buffer_limits(high=0, low=0)
        try:
            await self._wait_transport_empty()
            for region in regions:
                await self._sendfile(region)
        finally:
            transport.set_write_buffer_limits()

    async def _wait_transport_empty(self) -> None:
        while self._transport.get_write_buffer_size():
            if self._transport.is_closing():
                raise ConnectionError("connection closed while sending")
            self._drained.clear()
            if self._transport.get_write_buffer_size():
                await self._drained.wait()

    async def _sendfile(self, region: Region) -> None:
        offset, remaining, fd = region.position, region.size, region.fd
        while remaining > 0:
            if self._transport.is_closing():
                raise ConnectionError("connection closed while sending")
            try:
                sent = os.sendfile(self._sock_fd, fd, offset, remaining)
            except BlockingIOError:
                await self._writable()
                continue
            except OSError as exc:
                raise ConnectionError(f"sendfile failed: {exc}") from exc
            if sent == 0:
                raise ConnectionError(f"file region ended early at offset {offset}")
            offset += sent
            remaining -= sent
            self._on_bytes(sent)

    async def _writable(self) -> None:
        fut = self._loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        self._loop.add_writer(self._sock_fd, ready)
        try:
            await fut
        finally:
            self._loop.remove_writer(self._sock_fd)

    async def _send_copying(self, regions: Sequence[Region]) -> None:
        transport = self._transport
        for region in regions:
            offset, remaining = region.position, region.size
            while remaining > 0:
                chunk = os.pread(region.fd, min(FALLBACK_CHUNK, remaining), offset)
                if not chunk:
                    raise ConnectionError(f"file region ended early at offset {offset}")
                if transport.is_closing():
                    raise ConnectionError("connection closed while sending")
                transport.write(chunk)
                self._on_copied(len(chunk))
                offset += len(chunk)
                remaining -= len(chunk)
                if not self._drained.is_set():
                    await self._drained.wait()

    def close(self) -> None:
        if self._sock_fd >= 0:
            try:
                self._loop.remove_writer(self._sock_fd)
            except Exception:
                pass
            os.close(self._sock_fd)
            self._sock_fd = -1
        self._drained.set()
