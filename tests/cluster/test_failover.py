"""Leaders and controllers die mid-production: nothing acknowledged with acks=all is lost
(RF 3, min.insync.replicas 2), and replicas end byte-identical."""

from __future__ import annotations

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
