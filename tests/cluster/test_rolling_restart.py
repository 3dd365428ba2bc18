"""A rolling restart with SIGTERM: each broker hands its leaderships over first (controlled
shutdown), so an acks=all producer sees no failed send at all."""

from __future__ import annotations

from tests.support.cluster import (Cluster, VerifiableConsumer, VerifiableProducer,
                                   assert_no_loss, read_everything)


async def test_rolling_restart_under_acks_all_load_fails_no_send(cluster: Cluster) -> None:
    await cluster.create_topic("t", partitions=3)
    producer = VerifiableProducer(cluster.bootstrap, "t", throughput=600, linger_ms=1)
    watcher = VerifiableConsumer(cluster.bootstrap, "t")
    try:
        await producer.wait_acked(200)
        for broker in (1, 2, 3):
            led = [p.partition for p in await cluster.describe("t") if p.leader == broker]
            assert cluster.terminate(broker) == 0
            log = cluster.brokers[broker].log_text()
            assert "controlled shutdown: leaderships moved" in log, log[-3000:]
            parts = await cluster.describe("t")
            assert all(parts[p].leader not in (broker, -1) for p in led)
            await producer.wait_acked(len(producer.acked) + 200)
            cluster.restart(broker)
            await cluster.in_sync("t")
        await producer.wait_acked(len(producer.acked) + 200)
        assert producer.stop() == 0
    finally:
        producer.kill()
        watcher.stop()
    assert producer.failed == [], producer.failed[:3]
    await cluster.settled("t", partitions=3)
    assert_no_loss(producer.acked, read_everything(cluster.bootstrap, "t"), watcher.records)
