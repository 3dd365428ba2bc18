"""One TCP connection to a broker, with many requests in flight.

The broker answers requests in the order it received them, so the in-flight futures form a FIFO;
the correlation id double-checks the pairing. Framing is ``klamm.protocol.frame`` (no I/O there);
this class owns the transport, write flow control and one future per request. ``open`` returns
only after the first exchange (ApiVersions) proved the peer a Klamm broker; anything else (a
coordination service, another protocol, silence) fails there with a message naming what it
is. Not thread-safe: one event loop owns a connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence
from typing import Any, cast

from klamm.protocol.api import ApiKey
from klamm.protocol.frame import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameError,
    FrameReader,
    RequestHeader,
    Response,
    encode_request_head,
    parse_response,
)

from .errors import ClientError, KlammConnectionError, KlammTimeoutError, NotABrokerError

log = logging.getLogger(__name__)


class _BadData(KlammConnectionError):
    """The peer sent bytes that are not frames of Klamm's protocol."""


class BrokerConnection(asyncio.BufferedProtocol):
    def __init__(self, host: str, port: int, client_id: str,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self._reader = FrameReader(max_frame_bytes)
        self._in_flight: collections.deque[tuple[int, asyncio.Future[Response]]] = (
            collections.deque())
        self._next_id = 0
        self._transport: asyncio.Transport | None = None
        self._closed: asyncio.Future[None] | None = None
        self._write_ready: asyncio.Event = asyncio.Event()
        self._write_ready.set()
        self._error: Exception | None = None
        self.api_keys: dict[int, tuple[int, int]] = {}  # from ApiVersions: key -> versions

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    async def open(cls, host: str, port: int, *, client_id: str = "klamm",
                   timeout: float = 10.0,
                   max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> "BrokerConnection":
        loop = asyncio.get_running_loop()
        conn = cls(host, port, client_id, max_frame_bytes)
        conn._closed = loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: conn, host, port)
        except (OSError, TimeoutError) as exc:
            raise KlammConnectionError(
                f"cannot connect to broker {host}:{port}: {exc or 'timed out'}") from None
        await conn._identify(timeout)
        return conn

    async def _identify(self, timeout: float) -> None:
        """The first exchange is ApiVersions: a peer that is not a Klamm broker (the
        coordination service's port, another protocol, a silent server) is named as such
        here, instead of failing later on a field its answers lack."""
        try:
            response = await self.request(ApiKey.API_VERSIONS, {}, timeout=timeout)
        except _BadData:
            self.close()
            raise NotABrokerError(f"{self.address} is not a Klamm broker (its answer is not "
                                  f"Klamm's protocol)") from None
        except KlammTimeoutError:
            self.close()
            raise KlammConnectionError(f"{self.address} did not answer its first request "
                                       f"within {timeout:g} s (a stalled broker, or not a "
                                       f"Klamm broker)") from None
        except ClientError as exc:
            self.close()
            raise KlammConnectionError(f"{self.address}: the first exchange failed ({exc}); "
                                       f"is a Klamm broker listening there?") from None
        body = response.body
        if isinstance(body, dict) and "api_keys" in body:
            self.api_keys = {int(k): (int(lo), int(hi)) for k, lo, hi in body["api_keys"]}
            return
        self.close()
        if isinstance(body, dict) and "zxid" in body:
            looks = "it looks like a coordination service; brokers listen on another port"
        else:
            looks = "it answered something that is not a broker's ApiVersions"
        raise NotABrokerError(f"{self.address} is not a Klamm broker ({looks})")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._transport is not None and self._error is None

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await asyncio.shield(self._closed)

    # ----------------------------------------------------------------- requests
    def send(self, api_key: int, body: Any, payload: bytes | Sequence[bytes] = b"", *,
             api_version: int = 0,
             expect_response: bool = True) -> "asyncio.Future[Response] | None":
        """Write one request now; returns the future of its response (None if none is expected).

        A payload given as several buffers goes out in one writev, never joined: at 1 KiB
        records the producer's copies cost more than its per-record work.
        """
        if not self.connected:
            raise self._error or KlammConnectionError(f"not connected to {self.address}")
        self._next_id = cid = (self._next_id + 1) & 0x7FFFFFFF
        header = RequestHeader(api_key, api_version, cid, self.client_id)
        transport = self._transport
        assert transport is not None
        if isinstance(payload, bytes):
            transport.write(encode_request_head(header, body, len(payload)) + payload)
        else:
            transport.writelines([encode_request_head(header, body, sum(map(len, payload))),
                                  *payload])
        if not expect_response:
            return None
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._in_flight.append((cid, fut))
        return fut

    async def request(self, api_key: int, body: Any, payload: bytes | Sequence[bytes] = b"", *,
                      api_version: int = 0, timeout: float | None = 30.0) -> Response:
        """Send and wait; a timeout closes the connection (later answers would be misaligned).

        The wait is the response future itself plus one timer: cancelling the caller leaves
        the request's slot in the FIFO, so the pairing of later answers stays right.
        """
        if not self._write_ready.is_set() or self._error is not None:
            await self.drain()
        fut = self.send(api_key, body, payload, api_version=api_version)
        assert fut is not None
        timer = None if timeout is None else \
            asyncio.get_running_loop().call_later(timeout, self._time_out, fut, timeout)
        try:
            return await fut
        finally:
            if timer is not None:
                timer.cancel()

    def _time_out(self, fut: "asyncio.Future[Response]", timeout: float) -> None:
        if not fut.done():
            self._fail(KlammTimeoutError(
                f"no answer from {self.address} within {timeout}s (request.timeout.ms)"))
            self.close()

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        if not self._write_ready.is_set():
            await self._write_ready.wait()
        if self._error is not None:
            raise self._error

    # ----------------------------------------------------------------- protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._reader.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        """The socket read into our buffer; large responses land in their final buffer."""
        try:
            frames = self._reader.buffer_updated(nbytes)
            for meta, payload in frames:
                response = parse_response(meta, payload)
                if not self._in_flight:
                    raise FrameError(f"unexpected response {response.correlation_id} "
                                     f"with no request in flight")
                cid, fut = self._in_flight.popleft()
                if cid != response.correlation_id:
                    raise FrameError(f"response {response.correlation_id} does not match "
                                     f"request {cid}")
                if not fut.done():
                    fut.set_result(response)
        except FrameError as exc:
            if self.api_keys:  # a broker that spoke the protocol before: worth a log line
                log.error("closing connection to %s: %s", self.address, exc)
            self._fail(_BadData(f"bad data from {self.address}: {exc}"))
            assert self._transport is not None
            self._transport.abort()

    def pause_writing(self) -> None:
        self._write_ready.clear()

    def resume_writing(self) -> None:
        self._write_ready.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(KlammConnectionError(
            f"connection to {self.address} lost" + (f": {exc}" if exc else "")))
        self._write_ready.set()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        while self._in_flight:
            _, fut = self._in_flight.popleft()
            if not fut.done():
                fut.set_exception(self._error)
                fut.exception()  # a cancelled waiter may never look; do not log it as lost
