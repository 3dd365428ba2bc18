"""Bad input on the wire: each gets a clear error, and other sessions keep being served."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from klamm.protocol.frame import (FrameDecoder, RequestHeader, encode_request,
                                  parse_response)
from klamm.zk import EventType, WatchedEvent, WatchQueue
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


async def test_every_kind_of_bad_input_gets_a_clear_error_while_others_are_served(
        zk_server: ZkServer, zk: ClientFactory) -> None:
    bystander, observer = await zk(), await zk()
    await bystander.create("/live", ephemeral=True)
    await observer.create("/watched", b"0")
    seen = WatchQueue()
    await bystander.get("/watched", watch=seen)
    raw = await Raw.open(zk_server.port)
    assert (await raw.call(ZkApi.CONNECT, {"session_id": 0, "timeout_ms": 1000}))["error"] == 0
    limit = zk_server.config.max_node_bytes
    cases: list[tuple[int, Any, ZkErrorCode, str]] = [
        (ZkApi.CREATE, {"path": "/a/../b"}, ZkErrorCode.BAD_ARGUMENTS, "'..'"),
        (ZkApi.CREATE, {"path": "/a/"}, ZkErrorCode.BAD_ARGUMENTS, "end with '/'"),
        (ZkApi.GET, {"path": "relative"}, ZkErrorCode.BAD_ARGUMENTS, "starting with '/'"),
        (ZkApi.EXISTS, {"path": "/a\x00b"}, ZkErrorCode.BAD_ARGUMENTS, "control character"),
        (ZkApi.CREATE, {"path": "/" + "x" * 1100}, ZkErrorCode.BAD_ARGUMENTS, "longer than"),
        (ZkApi.DELETE, {"path": "//a"}, ZkErrorCode.BAD_ARGUMENTS, "empty"),
        (ZkApi.CREATE, {"path": "/big", "data": b"x" * (limit + 1)},
         ZkErrorCode.DATA_TOO_LARGE, f"exceeds max.node.bytes ({limit})"),
        (ZkApi.SET, {"path": "/watched", "data": b"x" * (limit + 1)},
         ZkErrorCode.DATA_TOO_LARGE, "max.node.bytes"),
        (ZkApi.MULTI, {"ops": [{"op": "create", "path": "/m"},
                               {"op": "set", "path": "/m", "data": b"x" * (limit + 1)}]},
         ZkErrorCode.DATA_TOO_LARGE, "max.node.bytes"),
        (4242, {}, ZkErrorCode.UNKNOWN_OP, "unknown operation 4242"),
        (ZkApi.MULTI, {"ops": [{"op": "create", "path": "/m"}, {"op": "rename", "path": "/m"}]},
         ZkErrorCode.UNKNOWN_OP, "'rename'"),
        (ZkApi.MULTI, {"ops": []}, ZkErrorCode.BAD_ARGUMENTS, "at least one op"),
        (ZkApi.MULTI, {"ops": [7]}, ZkErrorCode.INVALID_REQUEST, "must be a map"),
        (ZkApi.SET, {"path": "/watched", "data": "text, not bytes"},
         ZkErrorCode.INVALID_REQUEST, "'data' must be bytes"),
        (ZkApi.DELETE, {"path": "/watched", "version": "1"},
         ZkErrorCode.INVALID_REQUEST, "'version' must be int"),
        (ZkApi.GET, None, ZkErrorCode.INVALID_REQUEST, "'path'"),
        (ZkApi.CONNECT, {"session_id": 0}, ZkErrorCode.INVALID_REQUEST, "already has a session"),
    ]
    for api, body, code, words in cases:
        reply = await raw.call(api, body)
        assert (reply["error"], api) == (code, api) and words in reply["message"], reply
    assert "index" in (await raw.call(*cases[8][:2])) and zk_server.db.tree.exists("/m") is None
    garbage = await Raw.open(zk_server.port)
    garbage.writer.write(struct.pack(">II", 6, 2) + b"\x91\xc1" + b"zz")
    assert (await garbage.next())[1]["event"] == "error" and await garbage.closed()
    # the connection that sent bad requests, and every other session, are still served
    assert (await raw.call(ZkApi.CREATE, {"path": "/fine"}))["error"] == 0
    await observer.set("/watched", b"1")
    assert await seen.get(5) == WatchedEvent(EventType.CHANGED, "/watched")
    assert (await observer.exists("/live")).ephemeral_owner == bystander.session_id  # type: ignore[union-attr]
    assert zk_server.expired_sessions == 0
