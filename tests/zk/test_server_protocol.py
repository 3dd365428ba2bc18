"""Bad input on the wire: each gets a clear error, and other sessions keep being served."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from klamm.protocol.frame import (FrameDecoder, RequestHeader, encode_request,
                                  parse_response)
from klamm.zk.api import EVENT_CORRELATION_ID, ZkApi
from klamm.zk.errors import ZkErrorCode
from klamm.zk.server import ZkServer
from tests.zk.conftest import ClientFactory


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()
        self.frames: list[tuple[int, Any]] = []
        self.corr = 0

    @classmethod
    async def open(cls, port: int) -> "Raw":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def next(self) -> tuple[int, Any]:
        while not self.frames:
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            if not data:
                raise EOFError
            for meta, payload in self.decoder.feed(data):
                resp = parse_response(meta, payload)
                self.frames.append((resp.correlation_id, resp.body))
        return self.frames.pop(0)

    async def call(self, api: int, body: Any) -> Any:
        self.corr += 1
        self.writer.write(encode_request(RequestHeader(api, 0, self.corr, "raw"), body))
        corr, reply = await self.next()
        assert corr == self.corr
        return reply

    async def closed(self) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(1), 5) == b""
        except ConnectionError:
            return True


async def test_requests_before_connect_are_refused(zk_server: ZkServer) -> None:
    raw = await Raw.open(zk_server.port)
    reply = await raw.call(ZkApi.GET, {"path": "/"})
    assert reply["error"] == ZkErrorCode.INVALID_REQUEST and "CONNECT" in reply["message"]


async def test_unknown_op_and_malformed_bodies_get_errors_on_a_live_connection(
        zk_server: ZkServer) -> None:
    raw = await Raw.open(zk_server.port)
    hello = await raw.call(ZkApi.CONNECT, {"session_id": 0, "timeout_ms": 1000})
    assert hello["error"] == 0 and hello["session_id"] > 0
    assert (await raw.call(999, {}))["error"] == ZkErrorCode.UNKNOWN_OP
    reply = await raw.call(ZkApi.CREATE, {"path": 5})
    assert reply["error"] == ZkErrorCode.INVALID_REQUEST and "'path'" in reply["message"]
    assert (await raw.call(ZkApi.SET, [1, 2]))["error"] == ZkErrorCode.INVALID_REQUEST
    reply = await raw.call(ZkApi.MULTI, {"ops": [{"op": "frobnicate", "path": "/"}]})
    assert reply["error"] == ZkErrorCode.UNKNOWN_OP and reply["index"] == 0
    assert (await raw.call(ZkApi.CREATE, {"path": "/fine"}))["error"] == 0


async def test_garbage_frame_closes_only_that_connection(zk_server: ZkServer,
                                                         zk: ClientFactory) -> None:
    client = await zk()
    raw = await Raw.open(zk_server.port)
    raw.writer.write(struct.pack(">II", 8, 4) + b"\xc1\xc1\xc1\xc1" + b"zzzz")
    corr, body = await raw.next()
    assert corr == EVENT_CORRELATION_ID and body["event"] == "error"
    assert "msgpack" in body["message"] or "header" in body["message"]
    assert await raw.closed()
    raw2 = await Raw.open(zk_server.port)
    raw2.writer.write(struct.pack(">II", 1 << 30, 4))
    corr, body = await raw2.next()
    assert "exceeds the limit" in body["message"]
    assert await raw2.closed()
    assert await client.create("/still-serving") == "/still-serving"
