"""A bare protocol client for tests that must send exactly the bytes they choose."""

from __future__ import annotations

import asyncio
from typing import Any

from klamm.protocol.api import ApiKey
from klamm.protocol.frame import (FrameDecoder, RequestHeader, Response, encode_request,
                                  parse_response)
from klamm.protocol.peer_auth import OPENER, PeerAuthRequest, new_nonce, proof
from klamm.protocol.wire import to_wire


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()
        self.pending: list[Response] = []
        self.next_id = 0

    @classmethod
    async def open(cls, address: str) -> "RawConnection":
        host, port = address.rsplit(":", 1)
        return cls(*await asyncio.open_connection(host, int(port)))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def send(self, api_key: int, body: Any, payload: bytes = b"", version: int = 0) -> int:
        self.next_id += 1
        self.writer.write(encode_request(RequestHeader(api_key, version, self.next_id, "raw"),
                                         body, payload))
        return self.next_id

    async def receive(self, timeout: float = 10.0) -> Response:
        async with asyncio.timeout(timeout):
            while not self.pending:
                data = await self.reader.read(1 << 20)
                if not data:
                    raise ConnectionError("connection closed by broker")
                self.pending.extend(parse_response(m, p) for m, p in self.decoder.feed(data))
        return self.pending.pop(0)

    async def call(self, api_key: int, body: Any, payload: bytes = b"",
                   version: int = 0) -> Response:
        cid = self.send(api_key, body, payload, version)
        response = await self.receive()
        assert response.correlation_id == cid
        return response

    async def closed_by_peer(self, timeout: float = 10.0) -> bool:
        """True when the broker closes the connection within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    data = await self.reader.read(65536)
                    if not data:
                        return True
        except (ConnectionError, OSError):
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def batch(values: list[bytes], *, key: bytes | None = None, ts: int = 1_700_000_000_000,
          **kwargs: Any) -> bytes:
    """A producer-side batch of ``values`` (offsets unassigned)."""
    from klamm.protocol.records import build_batch

    records = [[i, 0, key, v, ()] for i, v in enumerate(values)]
    return build_batch(records, ts, ts, **kwargs)


def produce_body(topic: str, partition: int, size: int, acks: int = 1) -> dict[str, Any]:
    return {"acks": acks, "timeout_ms": 5000,
            "topics": [{"topic": topic, "partitions": [{"partition": partition, "size": size}]}]}


def fetch_body(topic: str, partition: int, offset: int, *, max_wait_ms: int = 0,
               min_bytes: int = 1, max_bytes: int = 50 << 20,
               partition_max_bytes: int = 1 << 20) -> dict[str, Any]:
    return {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": min_bytes,
            "max_bytes": max_bytes,
            "topics": [{"topic": topic, "partitions": [
                {"partition": partition, "fetch_offset": offset,
                 "partition_max_bytes": partition_max_bytes}]}]}


async def create_topic(conn: RawConnection, name: str, partitions: int = 1,
                       configs: dict[str, Any] | None = None) -> None:
    from klamm.protocol.api import ApiKey

    r = await conn.call(ApiKey.CREATE_TOPICS, {"topics": [
        {"topic": name, "num_partitions": partitions, "replication_factor": 1,
         "configs": configs or {}}], "timeout_ms": 5000, "validate_only": False})
    code = r.body["topics"][0]["error_code"]
    assert code == 0, r.body


async def fetch_records(address: str, topic: str, partition: int = 0) -> list[Any]:
    """Every committed record of a partition (protocol.records.Record), read with raw fetches."""
    from klamm.protocol.api import ApiKey
    from klamm.protocol.records import decode_records, iter_batches

    conn = await RawConnection.open(address)
    out: list[Any] = []
    offset = 0
    try:
        while True:
            r = await conn.call(ApiKey.FETCH, fetch_body(topic, partition, offset,
                                                         partition_max_bytes=8 << 20))
            part = r.body["topics"][0]["partitions"][0]
            if part["error_code"] or part["records_size"] == 0:
                assert part["error_code"] == 0, part
                return out
            payload = bytes(r.payload)
            for header, pos in iter_batches(payload):
                out.extend(rec for rec in decode_records(payload, pos, header)
                           if rec.offset >= offset)
                offset = header.next_offset
    finally:
        await conn.close()


async def read_all(address: str, topic: str) -> dict[int, bytes]:
    """Partition 0 of ``topic`` as ``{offset: value}``."""
    return {rec.offset: rec.value for rec in await fetch_records(address, topic)}


async def open_as_broker(address: str, cluster_id: str, secret: bytes,
                         broker_id: int) -> RawConnection:
    """A connection that proved, with the cluster's peer secret, to be broker ``broker_id``:
    the broker serves inter-broker requests that claim that id on it."""
    conn = await RawConnection.open(address)
    ours = new_nonce()
    r = await conn.call(ApiKey.SASL_AUTHENTICATE, to_wire(PeerAuthRequest(broker_id, nonce=ours)))
    assert r.body["error_code"] == 0, r.body
    mine = proof(secret, OPENER, cluster_id, broker_id, r.body["broker_id"], ours, r.body["nonce"])
    r = await conn.call(ApiKey.SASL_AUTHENTICATE, to_wire(PeerAuthRequest(broker_id, proof=mine)))
    assert r.body["error_code"] == 0, r.body
    return conn
