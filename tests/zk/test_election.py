"""The election recipe against an in-process server: expiry loses leadership, run() re-runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from klamm.zk import Coordination, LeaderElection, SessionState, ZkClient
from klamm.zk.server import ZkServer
from tests.support.proxy import FaultProxy
from tests.zk.conftest import ClientFactory


@pytest.fixture
async def proxy(zk_server: ZkServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", zk_server.port) as p:
        yield p


async def test_zk_client_satisfies_the_coordination_interface(zk: ClientFactory) -> None:
    client: Coordination = await zk()
    assert isinstance(client, Coordination) and isinstance(client, ZkClient)


async def test_session_expiry_loses_leadership_and_the_other_candidate_takes_over(
        zk: ClientFactory, proxy: FaultProxy) -> None:
    a = await zk(hosts=proxy.address, session_timeout_ms=500)
    b = await zk(session_timeout_ms=500)
    ea, eb = LeaderElection(a, "/controller", b"a"), LeaderElection(b, "/controller", b"b")
    await ea.campaign()
    b_wins = asyncio.ensure_future(eb.campaign())
    lost = asyncio.ensure_future(ea.wait_lost())
    proxy.refusing = True
    proxy.cut()
    await asyncio.wait_for(lost, 5)  # out of touch for a whole timeout: a stops leading
    assert not ea.is_leader and a.state is SessionState.EXPIRED
    await asyncio.wait_for(b_wins, 5)
    assert await eb.leader() == b"b"
    proxy.refusing = False

    async def back() -> None:
        while not a.connected:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(back(), 5)  # with a new session
    assert await eb.leader() == b"b"


async def test_run_cancels_the_leader_work_on_loss_and_campaigns_again(
        zk: ClientFactory) -> None:
    a, admin = await zk(), await zk()
    election = LeaderElection(a, "/ctl", b"a")
    terms: list[asyncio.Event] = []
    cancelled = asyncio.Event()

    async def lead() -> None:
        terms.append(asyncio.Event())
        terms[-1].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runner = asyncio.ensure_future(election.run(lead))
    try:
        async def term(n: int) -> None:
            while len(terms) < n:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(term(1), 5)
        await admin.delete("/ctl")  # leadership is taken away from under the leader
        await asyncio.wait_for(cancelled.wait(), 5)
        await asyncio.wait_for(term(2), 5)
        assert election.is_leader and await election.leader() == b"a"
    finally:
        runner.cancel()


async def test_the_leader_keeps_watching_its_node_when_a_check_is_cut_off(
        zk: ClientFactory, proxy: FaultProxy) -> None:
    a = await zk(hosts=proxy.address, session_timeout_ms=2000)
    admin = await zk()
    election = LeaderElection(a, "/ctl", b"a")
    await election.campaign()
    real_exists = a.exists
    cut_off: list[bool] = []

    async def exists_cut_off_once(path: str, watch=None):  # type: ignore[no-untyped-def]
        call = asyncio.ensure_future(real_exists(path, watch=watch))
        if not cut_off:
            cut_off.append(True)
            await asyncio.sleep(0)  # the request is on its way ...
            proxy.cut()  # ... and its reply will never come
        return await call

    a.exists = exists_cut_off_once  # type: ignore[method-assign]
    await admin.set("/ctl", b"touched")  # the leader's watch fires; its re-check is cut off
    lost = asyncio.ensure_future(election.wait_lost())

    async def rechecked() -> None:
        while not (cut_off and a.connected and "/ctl" in a._data_watches):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(rechecked(), 5)
    assert election.is_leader and not lost.done()
    await admin.delete("/ctl")  # the re-armed watch still tells the leader
    await asyncio.wait_for(lost, 5)
    assert not election.is_leader


async def test_a_campaign_cut_off_mid_create_still_ends_with_one_leader(
        zk: ClientFactory, proxy: FaultProxy) -> None:
    a = await zk(hosts=proxy.address, session_timeout_ms=2000)
    observer = await zk()
    real_create = a.create
    cut_off: list[bool] = []

    async def create_cut_off_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        call = asyncio.ensure_future(real_create(*args, **kwargs))
        if not cut_off:
            cut_off.append(True)
            await asyncio.sleep(0)
            proxy.cut()
        return await call

    a.create = create_cut_off_once  # type: ignore[method-assign]
    election = LeaderElection(a, "/ctl", b"a")
    await asyncio.wait_for(election.campaign(), 5)
    assert cut_off and election.is_leader
    stat = await observer.exists("/ctl")
    assert stat is not None and stat.ephemeral_owner == a.session_id


async def test_stopping_run_stops_the_leader_work_too(zk: ClientFactory) -> None:
    """Cancelled while leading, run() cancels the leader's work and waits for it: before,
    the work ran on after the client closed and died with 'Task exception was never
    retrieved' (seen on a broker that won the election as it shut down)."""
    a = await zk()
    election = LeaderElection(a, "/ctl", b"a")
    leading, ended = asyncio.Event(), asyncio.Event()

    async def lead() -> None:
        leading.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    runner = asyncio.ensure_future(election.run(lead))
    await asyncio.wait_for(leading.wait(), 5)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert ended.is_set()  # finished before run() returned
