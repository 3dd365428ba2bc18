"""Clients that try to take the broker's memory, time or file descriptors: one real
standalone broker per module, attacked over real sockets, with its resident memory read
from /proc. Each case asserts that the broker bounds what the client can make it hold and
keeps serving an honest client meanwhile."""

from __future__ import annotations

import asyncio
import os
import re
import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from klamm.broker.connection import MAX_FETCHES_HELD
from klamm.protocol.api import ApiKey
from klamm.protocol.frame import RequestHeader, encode_request
from tests.support.polling import until
from tests.support.processes import BrokerProcess
from tests.support.raw import RawConnection, batch, create_topic, fetch_body, produce_body
from tests.support.scrape import metric

MB = 1 << 20
RECEIVE_TIMEOUT_MS = 1000
QUEUED_MAX = 8 * MB


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(str(tmp_path_factory.mktemp("hostile") / "data"), overrides={
        "request.receive.timeout.ms": RECEIVE_TIMEOUT_MS,
        "queued.max.request.bytes": QUEUED_MAX, "metrics.port": 0})
    proc.start()

    async def seed() -> None:
        conn = await RawConnection.open(proc.bootstrap)
        await create_topic(conn, "t")
        data = batch([b"v" * 1000] * 8)  # 8 KiB: fetch answers are copied, not sendfile'd
        r = await conn.call(ApiKey.PRODUCE, produce_body("t", 0, len(data)), data)
        assert r.body["topics"][0]["partitions"][0]["error_code"] == 0, r.body
        await conn.close()

    asyncio.run(seed())
    yield proc
    proc.terminate()


def _metrics_port(broker: BrokerProcess) -> int:
    found = re.search(r"metrics on :(\d+)", broker.log_text())
    assert found, broker.log_text()
    return int(found.group(1))


def _pid(broker: BrokerProcess) -> int:
    assert broker.proc is not None
    return broker.proc.pid


async def _answers_an_honest_client(broker: BrokerProcess) -> None:
    conn = await RawConnection.open(broker.bootstrap)
    try:
        r = await conn.call(ApiKey.METADATA, {"topics": ["t"]})
        assert r.body["topics"][0]["error_code"] == 0
    finally:
        await conn.close()


def _unread_socket(broker: BrokerProcess) -> socket.socket:
    """A connection whose owner never reads: a small receive buffer, so the broker's
    answers back up on the broker's side at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", broker.port))
    sock.setblocking(False)
    return sock


def _send_until_blocked(sock: socket.socket, chunk: bytes, limit_bytes: int,
                        seconds: float) -> int:
    """Send ``chunk`` over and over until the peer stops taking bytes for a second, or
    ``limit_bytes`` or ``seconds`` is reached; returns the bytes sent."""
    sent = 0
    deadline = time.monotonic() + seconds
    blocked_since: float | None = None
    while sent < limit_bytes and time.monotonic() < deadline:
        try:
            sent += sock.send(chunk)
            blocked_since = None
        except BlockingIOError:
            now = time.monotonic()
            blocked_since = blocked_since or now
            if now - blocked_since > 1.0:
                break
            select.select([], [sock], [], 0.05)  # until the broker takes bytes again
    return sent


def test_a_client_that_pipelines_fetches_and_never_reads_is_not_read_from(
        broker: BrokerProcess) -> None:
    """Before, reading resumed whenever the reply queue drained into the transport's buffer,
    so the broker took every request and held every answer: 617-655 MB."""
    request = encode_request(RequestHeader(ApiKey.FETCH, 0, 1, "hostile"),
                             fetch_body("t", 0, 0, partition_max_bytes=MB))
    before = rss_bytes(_pid(broker))
    sock = _unread_socket(broker)
    try:
        # 8 MB of requests is ~50,000 fetches: ~400 MB of answers if the broker took them all
        sent = _send_until_blocked(sock, request * 200, 8 * MB, seconds=20)
        grown = rss_bytes(_pid(broker)) - before
        assert grown < 64 * MB, f"broker grew by {grown >> 20} MB after taking {sent} bytes"
        asyncio.run(_answers_an_honest_client(broker))
    finally:
        sock.close()


def _claim(broker: BrokerProcess, declared: int, first: bytes = b"x") -> socket.socket:
    """A connection that sent a frame header declaring ``declared`` bytes, then ``first``."""
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=20)
    sock.sendall(struct.pack(">II", declared + 4, 0) + first)
    return sock


def _closed_by_broker(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_declared_frame_sizes_cost_nothing_and_stalled_frames_are_closed(
        broker: BrokerProcess) -> None:
    """Before, each 9-byte header claiming 100 MB made the broker allocate 100 MB at once,
    and a frame that never completed held its connection for ever."""
    stalled_before = broker.log_text().count("did not arrive whole")
    before = rss_bytes(_pid(broker))
    socks = [_claim(broker, 100_000_000) for _ in range(3)]
    try:
        asyncio.run(_answers_an_honest_client(broker))
        assert rss_bytes(_pid(broker)) - before < 30 * MB
        # One claim at a time holds the request memory; each is closed a receive timeout
        # after the broker began reading it, and the next then gets its turn.
        assert all(_closed_by_broker(s) for s in socks)
        asyncio.run(until(lambda: broker.log_text().count("did not arrive whole")
                          == stalled_before + 3))
        assert f"request.receive.timeout.ms={RECEIVE_TIMEOUT_MS}" in broker.log_text()
        asyncio.run(_answers_an_honest_client(broker))
    finally:
        for s in socks:
            s.close()


def _metadata_frame(padding: int) -> bytes:
    """A valid METADATA request made large by a payload the handler ignores."""
    return encode_request(RequestHeader(ApiKey.METADATA, 0, 7, "big"), {"topics": ["t"]},
                          b"\0" * padding)


def test_queued_max_request_bytes_holds_a_frame_back_until_memory_is_given_back(
        broker: BrokerProcess) -> None:
    port = _metrics_port(broker)

    async def reserved() -> float:
        return await metric(port, "klamm_broker_request_memory_bytes")

    async def waiting() -> float:
        return await metric(port, "klamm_broker_request_memory_waiting_connections")

    big, medium, small = _metadata_frame(6 * MB), _metadata_frame(3 * MB), _metadata_frame(MB)
    a = socket.create_connection(("127.0.0.1", broker.port), timeout=20)
    b = socket.create_connection(("127.0.0.1", broker.port), timeout=20)
    c = socket.create_connection(("127.0.0.1", broker.port), timeout=20)
    try:
        a.sendall(big[:MB])
        asyncio.run(until(lambda: _at_least(reserved, 6 * MB)))
        b.sendall(medium[:MB])  # 2 MB were left: granted, the pool is now over by one frame
        asyncio.run(until(lambda: _at_least(reserved, 9 * MB)))
        c.sendall(small)  # whole, but no memory is left: not read until some is given back
        asyncio.run(until(lambda: _at_least(waiting, 1)))
        a.sendall(big[MB:])
        assert _response_of(a)["topics"][0]["topic"] == "t"
        assert _response_of(c)["topics"][0]["topic"] == "t"  # c's turn came
        asyncio.run(until(lambda: _exactly(waiting, 0)))
        b.sendall(medium[MB:])
        assert _response_of(b)["topics"][0]["topic"] == "t"
        asyncio.run(until(lambda: _exactly(reserved, 0)))
    finally:
        for s in (a, b, c):
            s.close()


async def _at_least(read, value: float) -> bool:
    return await read() >= value


async def _exactly(read, value: float) -> bool:
    return await read() == value


def _response_of(sock: socket.socket) -> dict:
    from klamm.protocol.frame import FrameDecoder, parse_response

    decoder = FrameDecoder()
    while True:
        data = sock.recv(1 << 16)
        assert data, "closed by the broker"
        for meta, payload in decoder.feed(data):
            return parse_response(meta, payload).body


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_fetch_naming_one_partition_20000_times_is_answered_once(
        broker: BrokerProcess) -> None:
    """Before, each of the 20,200 entries dup'ed the segment's descriptor: the broker ran
    out of them and reset new connections."""
    body = fetch_body("t", 0, 0)
    body["topics"][0]["partitions"] *= 20_200
    before = _open_fds(_pid(broker))
    sock = _unread_socket(broker)
    try:
        sock.setblocking(True)
        sock.sendall(encode_request(RequestHeader(ApiKey.FETCH, 0, 1, "hostile"), body))
        asyncio.run(_answers_an_honest_client(broker))
        assert _open_fds(_pid(broker)) - before < 20
    finally:
        sock.close()

    async def answered_once() -> None:
        conn = await RawConnection.open(broker.bootstrap)
        r = await conn.call(ApiKey.FETCH, body)
        assert len(r.body["topics"][0]["partitions"]) == 1
        await conn.close()

    asyncio.run(answered_once())


def test_pipelined_unread_fetches_hold_few_descriptors(broker: BrokerProcess) -> None:
    """Each answer holds a descriptor per partition with data until it is sent; before, one
    read's worth of pipelined fetches (about 60) was answered at once, ~1,200 descriptors."""
    async def seed() -> None:
        conn = await RawConnection.open(broker.bootstrap)
        await create_topic(conn, "wide", partitions=20)
        data = batch([b"w" * 1000])
        for p in range(20):
            r = await conn.call(ApiKey.PRODUCE, produce_body("wide", p, len(data)), data)
            assert r.body["topics"][0]["partitions"][0]["error_code"] == 0
        await conn.close()

    asyncio.run(seed())
    body = fetch_body("wide", 0, 0)
    body["topics"][0]["partitions"] = [
        {"partition": p, "fetch_offset": 0, "partition_max_bytes": MB} for p in range(20)]
    request = encode_request(RequestHeader(ApiKey.FETCH, 0, 1, "hostile"), body)
    before = _open_fds(_pid(broker))
    sock = _unread_socket(broker)
    try:
        _send_until_blocked(sock, request * 50, 4 * MB, seconds=20)
        held = _open_fds(_pid(broker)) - before
        # at most MAX_FETCHES_HELD answers queued and one being sent, 20 descriptors each
        assert held <= 20 * (MAX_FETCHES_HELD + 1) + 5, f"{held} descriptors held"
        asyncio.run(_answers_an_honest_client(broker))
    finally:
        sock.close()


def test_a_parked_fetch_of_a_half_closed_client_is_answered_then_closed(
        broker: BrokerProcess) -> None:
    """Before, a client that shut down its sending side lost its parked fetch unanswered."""
    from klamm.protocol.frame import FrameDecoder, parse_response

    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=20)
    try:
        sock.sendall(encode_request(RequestHeader(ApiKey.FETCH, 0, 42, "half"),
                                    fetch_body("t", 0, 8, max_wait_ms=300, min_bytes=1)))
        sock.shutdown(socket.SHUT_WR)
        decoder, answers, data = FrameDecoder(), [], b"x"
        while data:
            data = sock.recv(1 << 16)
            answers += [parse_response(m, p) for m, p in decoder.feed(data)]
        assert [a.correlation_id for a in answers] == [42]  # answered, then closed
        assert answers[0].body["topics"][0]["partitions"][0]["error_code"] == 0
    finally:
        sock.close()
