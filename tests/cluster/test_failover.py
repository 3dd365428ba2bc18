"""Leaders and controllers die mid-production: nothing acknowledged with acks=all is lost
(RF 3, min.insync.replicas 2), and replicas end byte-identical."""

from __future__ import annotations

import asyncio

from klamm.client import Producer
from klamm.client.producer import RecordFuture
from tests.support.cluster import (Cluster, VerifiableConsumer, VerifiableProducer,
                                   assert_no_loss, read_everything)


async def test_leader_killed_three_times_in_a_row_loses_no_acknowledged_record(
        cluster: Cluster) -> None:
    await cluster.create_topic("t", partitions=2)
    producer = VerifiableProducer(cluster.bootstrap, "t", throughput=800, linger_ms=1)
    watcher = VerifiableConsumer(cluster.bootstrap, "t")
    try:
        await producer.wait_acked(200)
        for _ in range(3):
            leader = await cluster.leader("t", 0)
            before = len(producer.acked)
            cluster.kill(leader)
            await cluster.wait_for("t", lambda ps, dead=leader: ps[0].leader not in (dead, -1))
            await producer.wait_acked(before + 400)  # production goes on at the new leader
            cluster.restart(leader)
            await cluster.in_sync("t")  # the returning broker caught up and rejoined
        assert producer.stop() == 0
    finally:
        producer.kill()
        watcher.stop()
    assert producer.failed == [] and producer.tool_data()["acked"] == len(producer.acked)
    await cluster.settled("t", partitions=2)
    assert_no_loss(producer.acked, read_everything(cluster.bootstrap, "t"), watcher.records)


async def test_a_new_controller_takes_over_and_handles_the_next_leader_death(
        cluster: Cluster) -> None:
    await cluster.create_topic("t", partitions=3)
    producer = VerifiableProducer(cluster.bootstrap, "t", throughput=800, linger_ms=1)
    try:
        await producer.wait_acked(200)
        old = await cluster.controller()
        cluster.kill(old)
        new = await cluster.wait_controller(lambda c: c != old)
        await cluster.wait_for("t", lambda ps: all(p.leader not in (old, -1) for p in ps))
        await producer.wait_acked(len(producer.acked) + 300)
        cluster.restart(old)
        parts = await cluster.in_sync("t")
        # a leader death the new controller must handle (not a second controller failover)
        victim = next(p for p in parts if p.leader != new)
        cluster.kill(victim.leader)
        await cluster.wait_for(
            "t", lambda ps: ps[victim.partition].leader not in (victim.leader, -1))
        assert await cluster.controller() == new
        await producer.wait_acked(len(producer.acked) + 300)
        cluster.restart(victim.leader)
        await cluster.in_sync("t")
        assert producer.stop() == 0
    finally:
        producer.kill()
    assert producer.failed == []
    await cluster.settled("t", partitions=3)
    assert_no_loss(producer.acked, read_everything(cluster.bootstrap, "t"))


async def test_the_producer_follows_a_new_leader_without_waiting_out_the_old_ones_backoff(
        cluster: Cluster) -> None:
    """The dead leader's reconnect backoff (here a minute) is the broker's, not the batch's:
    the producer keeps refreshing its metadata while it waits and sends to the new leader as
    soon as one is elected. Before, the batch itself waited the whole backoff (a second at
    the default reconnect.backoff.max.ms, on top of the election, every failover)."""
    await cluster.create_topic("b")
    async with Producer(bootstrap_servers=cluster.bootstrap, acks="all", linger_ms=0,
                        retry_backoff_ms=50, reconnect_backoff_ms=60_000,
                        reconnect_backoff_max_ms=60_000, request_timeout_ms=5000) as producer:
        await producer.send_and_wait("b", b"before", partition=0)
        dead = await cluster.leader("b")
        cluster.kill(dead)
        fut = await producer.send("b", b"after", partition=0)
        metadata = await asyncio.wait_for(_result(fut), timeout=30)
    assert metadata.offset == 1 and fut.attempts >= 2  # it did meet the dead leader first
    assert await cluster.leader("b") not in (dead, -1)
    assert read_everything(cluster.live_bootstrap, "b") == {(0, 0): "before", (0, 1): "after"}


async def _result(fut: RecordFuture) -> object:
    return await fut
