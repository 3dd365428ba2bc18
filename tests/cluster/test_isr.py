"""The ISR follows the followers: a stalled one leaves it and acks=all goes on; too few in
sync refuses acks=all writes (NOT_ENOUGH_REPLICAS) but not acks=1; the ISR grows back."""

from __future__ import annotations

from tests.support.cluster import (Cluster, VerifiableConsumer, VerifiableProducer,
                                   assert_no_loss, read_everything)


async def test_a_stalled_follower_leaves_the_isr_and_rejoins_after_catching_up(
        cluster: Cluster) -> None:
    await cluster.create_topic("t")
    [part] = await cluster.describe("t")
    follower = next(b for b in part.replicas if b != part.leader)
    producer = VerifiableProducer(cluster.bootstrap, "t", throughput=800, linger_ms=1)
    watcher = VerifiableConsumer(cluster.bootstrap, "t")
    try:
        await producer.wait_acked(200)
        cluster.pause(follower)  # SIGSTOP: no fetches, no heartbeats
        await cluster.wait_for("t", lambda ps: follower not in ps[0].isr)
        before = len(producer.acked)
        await producer.wait_acked(before + 500)  # acks=all goes on with 2 in sync
        cluster.resume(follower)  # SIGCONT
        await cluster.wait_for("t", lambda ps: follower in ps[0].isr)
        await producer.wait_acked(len(producer.acked) + 200)
        assert producer.stop() == 0
    finally:
        producer.kill()
        watcher.stop()
    assert producer.failed == []
    await cluster.settled("t")
    assert_no_loss(producer.acked, read_everything(cluster.bootstrap, "t"), watcher.records)


async def test_too_few_in_sync_replicas_refuse_acks_all_but_not_acks_1(
        cluster: Cluster) -> None:
    await cluster.create_topic("t")
    [part] = await cluster.describe("t")
    followers = [b for b in part.replicas if b != part.leader]
    first = VerifiableProducer(cluster.bootstrap, "t", max_messages=100)
    assert first.wait_exit() == 0 and len(first.acked) == 100
    for b in followers:
        assert cluster.terminate(b) == 0
    await cluster.wait_for("t", lambda ps: list(ps[0].isr) == [part.leader])
    refused = VerifiableProducer(cluster.bootstrap, "t", max_messages=5, retries=0,
                                 value_prefix="refused")
    assert refused.wait_exit() == 0
    assert len(refused.failed) == 5 and not refused.acked
    assert all("NOT_ENOUGH_REPLICAS" in e["message"] for e in refused.failed), refused.failed
    relaxed = VerifiableProducer(cluster.bootstrap, "t", max_messages=50, acks="1",
                                 value_prefix="acks1")
    assert relaxed.wait_exit() == 0 and len(relaxed.acked) == 50 and not relaxed.failed
    for b in followers:
        cluster.restart(b)
    await cluster.in_sync("t")
    again = VerifiableProducer(cluster.bootstrap, "t", max_messages=100, value_prefix="again")
    assert again.wait_exit() == 0 and len(again.acked) == 100 and not again.failed
    await cluster.settled("t")
    final = read_everything(cluster.bootstrap, "t")
    acked = {**first.acked, **relaxed.acked, **again.acked}
    assert_no_loss(acked, final)
    assert not any(v.startswith("refused") for v in final.values())
