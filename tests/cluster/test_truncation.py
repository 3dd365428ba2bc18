"""Replicas that come back truncate by leader epoch to where they agree with the leader
(KIP-101 with KIP-279), never to their possibly stale high watermark."""

from __future__ import annotations

from klamm.broker.log.checkpoints import HIGH_WATERMARK_FILE, OffsetCheckpointFile
from tests.support.cluster import Cluster, VerifiableProducer, assert_no_loss, read_everything


async def test_a_returning_leader_truncates_what_only_it_had(cluster: Cluster) -> None:
    await cluster.create_topic("t")
    committed = VerifiableProducer(cluster.bootstrap, "t", max_messages=300)
    assert committed.wait_exit() == 0 and len(committed.acked) == 300
    await cluster.settled("t")
    old = await cluster.leader("t")
    followers = [b for b in (1, 2, 3) if b != old]
    for b in followers:  # stalled briefly: in the ISR still, but fetching nothing
        cluster.pause(b)
    # many small batches: a fetch the followers had parked is answered by the first one, and
    # nothing after it reaches them
    only_leader = VerifiableProducer(cluster.live_bootstrap, "t", max_messages=300, acks="1",
                                     throughput=1500, value_prefix="acks1")
    assert only_leader.wait_exit() == 0 and len(only_leader.acked) == 300
    cluster.kill(old)
    diverged = cluster.log_bytes(old, "t", 0)
    for b in followers:
        cluster.resume(b)
    await cluster.wait_for("t", lambda ps: ps[0].leader in followers)
    later = VerifiableProducer(cluster.bootstrap, "t", max_messages=300, value_prefix="later")
    assert later.wait_exit() == 0 and len(later.acked) == 300
    cluster.restart(old)
    await cluster.settled("t")
    final = read_everything(cluster.bootstrap, "t")
    assert_no_loss({**committed.acked, **later.acked}, final)
    lost = [v for v, where in only_leader.acked.items() if final.get(where) != v]
    assert lost, "the old leader's acks=1 tail should have diverged from the new leader"
    assert cluster.log_bytes(old, "t", 0) != diverged  # it gave up its own tail
    assert "truncated from" in cluster.brokers[old].log_text()


async def test_followers_restarting_with_stale_high_watermarks_lose_nothing(
        cluster: Cluster) -> None:
    """KIP-101's scenario: followers come back with a checkpointed high watermark behind their
    log, then the leader dies; truncating to the high watermark would lose committed records."""
    await cluster.create_topic("t")
    producer = VerifiableProducer(cluster.bootstrap, "t", throughput=800, linger_ms=1)
    try:
        await producer.wait_acked(300)
        leader = await cluster.leader("t")
        followers = [b for b in (1, 2, 3) if b != leader]
        for b in followers:
            cluster.kill(b)
        stale = []
        for b in followers:
            hw = OffsetCheckpointFile(str(cluster.root / f"b{b}"),
                                      HIGH_WATERMARK_FILE).read().get(("t", 0), 0)
            stale.append(hw < len(cluster.log_bytes(b, "t", 0)) and hw < len(producer.acked))
        assert any(stale), "a follower's high watermark checkpoint should lag its log"
        for b in followers:
            cluster.restart(b)
        await cluster.in_sync("t")
        cluster.kill(leader)
        await cluster.wait_for("t", lambda ps: ps[0].leader in followers)
        await producer.wait_acked(len(producer.acked) + 300)
        cluster.restart(leader)
        await cluster.in_sync("t")
        assert producer.stop() == 0
    finally:
        producer.kill()
    assert producer.failed == []
    await cluster.settled("t")
    assert_no_loss(producer.acked, read_everything(cluster.bootstrap, "t"))
