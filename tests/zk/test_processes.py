"""Real processes killed with SIGKILL: the server mid-write, and an elected leader."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from klamm.zk import ConnectionLossError, LeaderElection, ZkClient
from klamm.zk.txnlog import log_files
from tests.zk.processes import ZkProcess
from tests.support.polling import until
from tests.zk.test_sessions import read_line, spawn_client


async def test_server_killed_during_writes_keeps_every_acknowledged_write(
        tmp_path: Path) -> None:
    server = ZkProcess(str(tmp_path / "zk")).start()
    acked: set[str] = set()
    try:
        writers = [ZkClient(server.hosts, session_timeout_ms=2000) for _ in range(4)]
        for w in writers:
            await w.start()
        await writers[0].create("/acked")

        async def write(w: ZkClient, n: int) -> None:
            i = 0
            while True:
                path = f"/acked/w{n}-{i}"
                try:
                    await w.create(path, b"v" * 64)
                except ConnectionLossError:
                    return
                acked.add(path)
                i += 1

        tasks = [asyncio.ensure_future(write(w, n)) for n, w in enumerate(writers)]

        await until(lambda: len(acked) >= 300, 20)
        server.kill()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        for w in writers:
            assert w._supervisor is not None
            w._supervisor.cancel()
    finally:
        server.kill()
    restarted = ZkProcess(str(tmp_path / "zk")).start()
    try:
        reader = ZkClient(restarted.hosts, session_timeout_ms=2000)
        await reader.start()
        present = {f"/acked/{c}" for c in await reader.get_children("/acked")}
        assert acked <= present, sorted(acked - present)[:5]
        await reader.close()
    finally:
        restarted.kill()


async def test_truncated_log_tail_is_cut_when_the_server_restarts(tmp_path: Path) -> None:
    data = tmp_path / "zk"
    server = ZkProcess(str(data)).start()
    client = ZkClient(server.hosts, session_timeout_ms=2000)
    await client.start()
    for i in range(20):
        await client.create(f"/n{i}", b"x" * 200)
    assert client._supervisor is not None
    client._supervisor.cancel()
    server.kill()
    (_, path), = log_files(data)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 100)
    restarted = ZkProcess(str(data)).start()
    try:
        assert any("cutting" in line for line in restarted.output)
        reader = ZkClient(restarted.hosts, session_timeout_ms=2000)
        await reader.start()
        children = await reader.get_children("/")
        assert "n18" in children and "n19" not in children
        assert await reader.create("/n19") == "/n19"
        await reader.close()
    finally:
        restarted.kill()


async def test_election_hands_over_within_the_session_timeout_when_the_leader_dies(
        tmp_path: Path) -> None:
    server = ZkProcess(str(tmp_path / "zk")).start()
    leader = spawn_client(server.port, 1000, "elect", "/controller", "one")
    follower = None
    try:
        assert await read_line(leader) == "campaigning"
        assert await read_line(leader) == "leader one"
        follower = spawn_client(server.port, 1000, "elect", "/controller", "two")
        assert await read_line(follower) == "campaigning"
        observer = ZkClient(server.hosts, session_timeout_ms=1000)
        await observer.start()
        assert await LeaderElection(observer, "/controller").leader() == b"one"
        killed = time.monotonic()
        leader.send_signal(signal.SIGKILL)
        assert await read_line(follower, 10) == "leader two"
        handover = time.monotonic() - killed
        assert handover < 1.0 + 1.0, handover  # session timeout plus slack on a loaded box
        assert await LeaderElection(observer, "/controller").leader() == b"two"
        await observer.close()
    finally:
        for p in (leader, follower):
            if p is not None:
                p.kill()
                p.wait()
        server.kill()


async def test_election_recipe_hands_over_on_resign_and_notices_a_removed_node(
        tmp_path: Path) -> None:
    server = ZkProcess(str(tmp_path / "zk")).start()
    try:
        a = ZkClient(server.hosts, session_timeout_ms=800)
        b = ZkClient(server.hosts, session_timeout_ms=800)
        await a.start()
        await b.start()
        ea, eb = LeaderElection(a, "/ctl", b"a"), LeaderElection(b, "/ctl", b"b")
        await ea.campaign()
        waiting = asyncio.ensure_future(eb.campaign())
        await asyncio.sleep(0)
        assert ea.is_leader and not waiting.done()
        await ea.resign()
        await asyncio.wait_for(waiting, 5)
        assert eb.is_leader and await ea.leader() == b"b"
        lost = asyncio.ensure_future(eb.wait_lost())
        await a.delete("/ctl")  # someone removes the node: the leader must notice
        await asyncio.wait_for(lost, 5)
        assert not eb.is_leader
        await a.close()
        await b.close()
    finally:
        server.kill()
