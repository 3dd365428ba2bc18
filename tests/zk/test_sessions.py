"""Sessions: ephemerals live exactly as long as the session, across reconnects, not past expiry."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from klamm.zk import (ConnectionLossError, EventType, NodeExistsError, SessionExpiredError,
                      SessionState, WatchedEvent, ZkClient)
from klamm.zk.server import ZkServer
from tests.support.polling import until
from tests.support.proxy import FaultProxy
from tests.zk.conftest import ClientFactory

ROOT = Path(__file__).resolve().parents[2]


def spawn_client(port: int, timeout_ms: int, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.zk.client_process",
                             f"127.0.0.1:{port}", str(timeout_ms), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def read_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout)
    return line.strip()


@pytest.fixture
async def proxy(zk_server: ZkServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", zk_server.port) as p:
        yield p


async def test_ephemeral_node_goes_after_the_timeout_when_its_process_is_killed(
        zk_server: ZkServer, zk: ClientFactory) -> None:
    observer = await zk()
    proc = spawn_client(zk_server.port, 800, "ephemeral", "/brokers/ids/1", "b1")
    try:
        assert await read_line(proc) == "ready"
        assert await observer.exists("/brokers/ids/1") is not None
        killed = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        async def gone() -> bool:
            return await observer.exists("/brokers/ids/1") is None

        await until(gone, 10)
        elapsed = time.monotonic() - killed
        assert 0.4 <= elapsed <= 3.0, elapsed
    finally:
        proc.kill()
        proc.wait()


async def test_ephemeral_node_survives_a_reconnect_inside_the_timeout(
        zk: ClientFactory, proxy: FaultProxy) -> None:
    observer = await zk()
    client = await zk(hosts=proxy.address, session_timeout_ms=1500)
    states: list[SessionState] = []
    client.add_listener(states.append)
    session = client.session_id
    await client.create("/eph", ephemeral=True)
    proxy.cut()

    await until(lambda: SessionState.CONNECTED in states, 5)
    assert states == [SessionState.SUSPENDED, SessionState.CONNECTED]
    assert client.session_id == session
    assert (await observer.exists("/eph")).ephemeral_owner == session  # type: ignore[union-attr]
    assert (await client.get("/eph"))[1].ephemeral_owner == session


async def test_a_session_that_stays_away_past_its_timeout_expires(
        zk_server: ZkServer, zk: ClientFactory, proxy: FaultProxy) -> None:
    observer = await zk()
    client = await zk(hosts=proxy.address, session_timeout_ms=500)
    old_session = client.session_id
    await client.create("/eph", ephemeral=True)
    events = client.session_events()
    first = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(0)
    proxy.refusing = True
    proxy.cut()
    assert await asyncio.wait_for(first, 5) is SessionState.SUSPENDED

    async def gone() -> bool:
        return await observer.exists("/eph") is None

    await until(gone, 5)
    proxy.refusing = False
    assert await asyncio.wait_for(events.__anext__(), 10) is SessionState.EXPIRED
    assert await asyncio.wait_for(events.__anext__(), 10) is SessionState.CONNECTED
    assert client.session_id != old_session
    assert await client.create("/eph", ephemeral=True) == "/eph"
    await events.aclose()


async def test_close_removes_ephemerals_at_once(zk: ClientFactory) -> None:
    observer = await zk()
    client = await zk(session_timeout_ms=60000)
    await client.create("/a/e", ephemeral=True, makepath=True)
    await client.close()
    assert await observer.exists("/a/e") is None


async def test_re_attaching_to_an_expired_session_is_refused(
        zk_server: ZkServer, zk: ClientFactory) -> None:
    client = await zk()
    session, password = client.session_id, client._password
    await client.close()
    other = ZkClient(f"127.0.0.1:{zk_server.port}")
    other.session_id, other._password = session, password
    with pytest.raises(SessionExpiredError):
        await other._open_session(new=False)


async def test_restart_keeps_live_sessions_and_expires_the_ones_that_do_not_return(
        tmp_path: Path) -> None:
    config = {"port": 0, "data.dir": str(tmp_path / "zk"), "min.session.timeout.ms": 100,
              "session.check.interval.ms": 20}
    server = ZkServer(config)
    await server.start()
    port = server.port
    staying = ZkClient(f"127.0.0.1:{port}", session_timeout_ms=1500)
    leaving = ZkClient(f"127.0.0.1:{port}", session_timeout_ms=600)
    await staying.start()
    await leaving.start()
    await staying.create("/stay", ephemeral=True)
    await leaving.create("/leave", ephemeral=True)
    assert leaving._supervisor is not None
    leaving._supervisor.cancel()  # the process "dies": no CLOSE, no reconnect
    assert leaving._conn is not None
    leaving._conn.close()
    await server.stop()
    server = ZkServer({**config, "port": port})
    await server.start()
    try:
        assert server.db.tree.exists("/leave") is not None  # restored; owner gets a timeout

        await until(lambda: server.db.tree.exists("/leave") is None, 5)

        await until(lambda: staying.connected, 5)
        assert (await staying.exists("/stay")).ephemeral_owner == staying.session_id  # type: ignore[union-attr]
    finally:
        await staying.close()
        await server.stop()


async def test_watch_event_raised_while_disconnected_arrives_after_reattach(
        zk: ClientFactory, proxy: FaultProxy) -> None:
    other = await zk()
    client = await zk(hosts=proxy.address, session_timeout_ms=1500)
    await other.create("/x", b"0")
    events: list[WatchedEvent] = []
    await client.get("/x", watch=events.append)
    proxy.refusing = True
    proxy.cut()
    await other.set("/x", b"1")
    proxy.refusing = False
    data, _ = await client.get("/x")  # waits for the re-attach
    assert data == b"1" and events == [WatchedEvent(EventType.CHANGED, "/x")]


async def test_requests_made_while_suspended_wait_for_the_reconnect(
        zk: ClientFactory, proxy: FaultProxy) -> None:
    client = await zk(hosts=proxy.address, session_timeout_ms=1500)
    proxy.refusing = True
    proxy.cut()

    await until(lambda: client.state is SessionState.SUSPENDED, 5)
    pending = asyncio.ensure_future(client.create("/made-while-away"))
    await asyncio.sleep(0.05)
    assert not pending.done()
    proxy.refusing = False
    assert await asyncio.wait_for(pending, 5) == "/made-while-away"


async def test_a_request_in_flight_when_the_connection_drops_fails_with_connection_loss(
        zk: ClientFactory, proxy: FaultProxy) -> None:
    client = await zk(hosts=proxy.address, session_timeout_ms=1500)
    proxy.stall("down")
    in_flight = asyncio.ensure_future(client.create("/maybe"))
    await asyncio.sleep(0.05)
    proxy.cut()
    proxy.resume()
    with pytest.raises(ConnectionLossError):
        await asyncio.wait_for(in_flight, 5)
    assert await client.exists("/maybe") is not None  # the outcome was unknown, not lost


async def test_exists_and_child_watches_catch_up_after_reattach(
        zk: ClientFactory, proxy: FaultProxy) -> None:
    other = await zk()
    client = await zk(hosts=proxy.address, session_timeout_ms=1500)
    await other.create("/p")
    created: list[WatchedEvent] = []
    children: list[WatchedEvent] = []
    untouched: list[WatchedEvent] = []
    assert await client.exists("/p/new", watch=created.append) is None
    assert await client.get_children("/p", watch=children.append) == []
    await other.create("/q")
    await client.get("/q", watch=untouched.append)
    proxy.refusing = True
    proxy.cut()
    await other.create("/p/new")
    proxy.refusing = False
    await client.exists("/p")  # waits for the re-attach; missed events come before its reply
    assert created == [WatchedEvent(EventType.CREATED, "/p/new")]
    assert children == [WatchedEvent(EventType.CHILD, "/p")]
    assert untouched == []
    await other.set("/q", b"now")  # the unchanged watch was re-registered and still works
    await client.exists("/q")
    assert untouched == [WatchedEvent(EventType.CHANGED, "/q")]


async def test_heartbeats_keep_an_idle_session_and_its_ephemerals_alive(
        zk_server: ZkServer, zk: ClientFactory) -> None:
    observer = await zk(session_timeout_ms=5000)
    idle = await zk(session_timeout_ms=400)
    session = idle.session_id
    await idle.create("/idle", ephemeral=True)
    idle_until = time.monotonic() + 4 * 0.4  # the idle period under test: 4 timeouts
    while time.monotonic() < idle_until:
        await asyncio.sleep(0.05)
    assert idle.session_id == session and zk_server.expired_sessions == 0
    assert (await observer.exists("/idle")).ephemeral_owner == session  # type: ignore[union-attr]


async def test_ephemeral_node_is_kept_through_an_outage_shorter_than_the_timeout(
        zk: ClientFactory, proxy: FaultProxy) -> None:
    observer = await zk()
    client = await zk(hosts=proxy.address, session_timeout_ms=2000)
    session = client.session_id
    await client.create("/eph", ephemeral=True)
    proxy.refusing = True
    proxy.cut()
    outage_until = time.monotonic() + 0.6  # about a third of the timeout: well inside it
    while time.monotonic() < outage_until:
        assert client.state is not SessionState.EXPIRED
        assert (await observer.exists("/eph")).ephemeral_owner == session  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
    assert client.state is SessionState.SUSPENDED
    proxy.refusing = False

    await until(lambda: client.connected, 5)
    assert client.session_id == session
    assert (await observer.exists("/eph")).ephemeral_owner == session  # type: ignore[union-attr]


async def test_a_failed_read_does_not_drop_the_same_watch_set_by_an_earlier_read(
        zk: ClientFactory, proxy: FaultProxy) -> None:
    other = await zk()
    client = await zk(hosts=proxy.address, session_timeout_ms=2000)
    await other.create("/a", b"0")
    events: list[WatchedEvent] = []
    await client.get("/a", watch=events.append)
    again = asyncio.ensure_future(client.get("/a", watch=events.append))
    await asyncio.sleep(0)  # the second read is on its way ...
    proxy.cut()  # ... and fails with ConnectionLoss
    with pytest.raises(ConnectionLossError):
        await again
    await client.exists("/a")  # re-attached, with the first read's watch re-sent
    await other.set("/a", b"1")
    await client.exists("/a")
    assert events == [WatchedEvent(EventType.CHANGED, "/a")]


async def test_a_retry_made_the_moment_a_request_fails_waits_for_the_reattach(
        zk: ClientFactory, proxy: FaultProxy) -> None:
    client = await zk(hosts=proxy.address, session_timeout_ms=2000)
    session = client.session_id
    failures: list[ConnectionLossError] = []

    async def create_retrying(path: str) -> str:
        try:
            return await client.create(path)
        except ConnectionLossError as exc:  # outcome unknown: retry at once, as callers do
            failures.append(exc)
            try:
                return await client.create(path)
            except NodeExistsError:
                return path  # the first attempt did land

    first = asyncio.ensure_future(create_retrying("/retried"))
    await asyncio.sleep(0)  # the request is written ...
    proxy.cut()  # ... and the connection dies under it
    assert await asyncio.wait_for(first, 5) == "/retried"
    assert len(failures) == 1 and client.session_id == session
