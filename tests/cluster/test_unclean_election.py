"""When the last in-sync replica dies: with unclean.leader.election.enable off the partition
waits offline for it and loses nothing; on, an out-of-sync replica leads and the loss is
reported (by the controller, and by the old leader when it truncates committed records)."""

from __future__ import annotations

from tests.support.cluster import (Cluster, VerifiableConsumer, VerifiableProducer,
                                   assert_no_loss, read_everything)
from tests.support.polling import until


async def _only_the_leader_has_the_latest(
        cluster: Cluster, unclean: bool,
        watcher: list[VerifiableConsumer] | None = None
) -> tuple[int, int, dict[str, tuple[int, int]]]:
    """Leave partition t-0 with the leader as its only ISR member and a stopped, stale
    follower; returns (leader, stale follower, acknowledged values). A consumer put in
    ``watcher`` has read everything before the leader dies."""
    await cluster.create_topic("t", configs={"unclean.leader.election.enable": unclean})
    leader = await cluster.leader("t")
    stale, other = [b for b in (1, 2, 3) if b != leader]
    first = VerifiableProducer(cluster.bootstrap, "t", max_messages=100, value_prefix="first")
    assert first.wait_exit() == 0 and len(first.acked) == 100
    await cluster.in_sync("t")
    assert cluster.terminate(stale) == 0
    second = VerifiableProducer(cluster.bootstrap, "t", max_messages=100, value_prefix="second")
    assert second.wait_exit() == 0 and len(second.acked) == 100
    assert cluster.terminate(other) == 0
    await cluster.wait_for("t", lambda ps: list(ps[0].isr) == [leader])
    third = VerifiableProducer(cluster.bootstrap, "t", max_messages=100, acks="1",
                               value_prefix="third")
    assert third.wait_exit() == 0 and len(third.acked) == 100
    if watcher is not None:
        watcher.append(VerifiableConsumer(cluster.bootstrap, "t"))
        await until(lambda: len(watcher[0].records) >= 300, 30)
    cluster.kill(leader)
    cluster.restart(stale)  # alive, but without 'second' and 'third'
    return leader, stale, {**first.acked, **second.acked, **third.acked}


async def test_unclean_election_off_keeps_the_partition_offline_until_the_isr_returns(
        cluster: Cluster) -> None:
    leader, stale, acked = await _only_the_leader_has_the_latest(cluster, unclean=False)
    await cluster.wait_for("t", lambda ps: ps[0].leader == -1)
    refused = VerifiableProducer(cluster.live_bootstrap, "t", max_messages=1,
                                 delivery_timeout_ms=3000, value_prefix="offline")
    assert refused.wait_exit() == 0 and len(refused.failed) == 1
    assert "LEADER_NOT_AVAILABLE" in refused.failed[0]["message"], refused.failed
    [part] = await cluster.describe("t")
    assert part.leader == -1 and list(part.isr) == [leader]  # the stale one was not chosen
    cluster.restart(leader)
    await cluster.wait_for("t", lambda ps: ps[0].leader == leader)
    cluster.restart(next(b for b in (1, 2, 3) if b not in (leader, stale)))
    await cluster.settled("t")
    assert_no_loss(acked, read_everything(cluster.bootstrap, "t"))


async def test_unclean_election_on_elects_a_stale_replica_and_reports_the_loss(
        cluster: Cluster) -> None:
    watching: list[VerifiableConsumer] = []
    leader, stale, acked = await _only_the_leader_has_the_latest(cluster, unclean=True,
                                                                 watcher=watching)
    await cluster.wait_for("t", lambda ps: ps[0].leader == stale)
    controller = await cluster.controller()
    assert "unclean.leader.election.enable=true); records committed" in \
        cluster.brokers[controller].log_text()
    assert "from outside the ISR (an unclean election) at log end offset " \
           "100" in cluster.brokers[stale].log_text()
    # the new leader is alone in the ISR: only acks=1 writes are accepted for now
    after = VerifiableProducer(cluster.live_bootstrap, "t", max_messages=50, acks="1",
                               value_prefix="after")
    assert after.wait_exit() == 0 and len(after.acked) == 50
    # the consumer's position (300) is past the new leader's log end: it resets and says so
    await until(lambda: "out of the leader's log" in "".join(watching[0].stderr), 30)
    watching[0].stop()
    cluster.restart(leader)  # comes back as a follower and gives up what the new leader lacks
    cluster.restart(next(b for b in (1, 2, 3) if b not in (leader, stale)))
    await cluster.settled("t")
    final = read_everything(cluster.bootstrap, "t")
    lost = [v for v, where in acked.items() if final.get(where) != v]
    assert lost and all(not v.startswith("first") for v in lost)  # the stale one had 'first'
    assert_no_loss(after.acked, final)
    # the old leader, back as a follower, names the range it gave up
    assert "truncated from 300 to 100" in cluster.brokers[leader].log_text()
