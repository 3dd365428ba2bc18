"""Creating many replicas at once shares the event loop: requests and the coordination
session's heartbeats run between partitions (before, 1,000 new partitions held a broker's
loop for seconds, and three-broker clusters lost sessions to it)."""

from __future__ import annotations

import asyncio

from klamm.broker.server import BrokerServer
from klamm.client import Admin, NewTopic


async def test_the_loop_runs_while_a_broker_creates_hundreds_of_replicas(
        broker: BrokerServer) -> None:
    total = 300
    seen: list[int] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            seen.append(sum(1 for key in broker.replicas.partitions if key[0] == "wide"))
            await asyncio.sleep(0)

    ticker = asyncio.ensure_future(tick())
    try:
        async with Admin(bootstrap_servers=broker.bootstrap) as admin:
            await admin.create_topics([NewTopic("wide", total)], timeout_ms=60_000)
    finally:
        done.set()
        await ticker
    assert seen[-1] == total
    partway = [n for n in seen if 0 < n < total]
    assert partway, "the loop never ran while the replicas were being created"
