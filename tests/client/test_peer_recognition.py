"""Each side recognises the other at the first exchange. Before, a client pointed at the
coordination service's port printed nothing (exit 0), `KeyError: 'topics'`, or hung; the
coordination client pointed at a broker printed `KeyError: 'session_id'`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from klamm.broker.server import BrokerServer
from klamm.client import Admin, Producer
from klamm.client.connection import BrokerConnection
from klamm.client.errors import KlammConnectionError, NoBrokersAvailable, NotABrokerError
from klamm.zk.client import ZkClient
from klamm.zk.errors import NotACoordinationServiceError
from klamm.zk.server import ZkServer


@pytest.fixture
async def coordination(tmp_path: Path) -> AsyncIterator[ZkServer]:
    server = ZkServer({"port": 0, "data.dir": str(tmp_path / "zk")})
    await server.start()
    yield server
    await server.stop()


async def _server(answer: bytes | None) -> asyncio.Server:
    """A TCP server that answers any first bytes with ``answer`` (None: never answers)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        if answer is not None:
            writer.write(answer)
            await writer.drain()
            writer.close()
        else:
            await reader.read()  # silent until the client gives up

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def klamm(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "klamm.broker.cli", *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


async def test_a_client_at_the_coordination_port_is_told_so(coordination: ZkServer) -> None:
    address = f"127.0.0.1:{coordination.port}"
    with pytest.raises(NotABrokerError, match="it looks like a coordination service"):
        await BrokerConnection.open("127.0.0.1", coordination.port)
    with pytest.raises(NoBrokersAvailable, match=f"{address} is not a Klamm broker"):
        async with Admin(bootstrap_servers=address, request_timeout_ms=3000) as admin:
            await admin.list_topics()
    producer = Producer(bootstrap_servers=address, max_block_ms=3000)
    with pytest.raises(NoBrokersAvailable, match="is not a Klamm broker"):
        await producer.start()
    await producer.stop()
    for args in (["topics", "list"], ["produce", "t"], ["consume", "t", "--timeout-ms", "500"]):
        code, output = await klamm(*args, "-b", address)
        assert code == 1, (args, output)
        assert "is not a Klamm broker (it looks like a coordination service" in output, output
        assert "Traceback" not in output and "KeyError" not in output


@pytest.mark.parametrize("answer, error, why", [
    (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", NotABrokerError,
     "is not a Klamm broker \\(its answer is not Klamm's protocol\\)"),
    (b"", KlammConnectionError, "the first exchange failed .*; is a Klamm broker listening"),
    (None, KlammConnectionError, "did not answer its first request within 1 s \\(a stalled "
                                 "broker, or not a Klamm broker\\)"),
])
async def test_a_client_at_another_protocol_or_a_silent_server_is_told_so(
        answer: bytes | None, error: type[Exception], why: str) -> None:
    server = await _server(answer)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(error, match=f"127.0.0.1:{port}:? {why}"):
            await BrokerConnection.open("127.0.0.1", port, timeout=1.0)
    finally:
        server.close()


async def test_the_coordination_client_at_a_broker_port_is_told_so(
        broker: BrokerServer) -> None:
    client = ZkClient(broker.bootstrap, session_timeout_ms=1000)
    started = asyncio.get_running_loop().time()
    with pytest.raises(NotACoordinationServiceError,
                       match=f"{broker.bootstrap} is not a coordination service \\(it looks "
                             f"like a Klamm broker"):
        await client.start(timeout=30.0)
    assert asyncio.get_running_loop().time() - started < 10  # said at once, not retried
    await client.close()
    code, output = await klamm("zk", "ls", "/", "-z", broker.bootstrap, "--timeout-ms", "1000")
    assert code == 1, output
    assert "is not a coordination service (it looks like a Klamm broker" in output, output
    assert "KeyError" not in output and "Traceback" not in output
