"""`klamm leader-election` against real brokers, with automatic rebalancing off so only the
operator moves leaders: a preferred election brings leadership back to a returned broker, an
unclean one gives an offline partition its live out-of-sync replica (and the loss is logged)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from klamm.client import NewTopic
from klamm.protocol.api import ApiKey
from klamm.protocol.errors import ErrorCode
from tests.support.cluster import Cluster
from tests.support.raw import RawConnection


@pytest.fixture
def manual(tmp_path: Path) -> Iterator[Cluster]:
    started = Cluster(tmp_path, overrides={"auto.leader.rebalance.enable": False}).start()
    try:
        yield started
    finally:
        started.stop()


async def _klamm(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "klamm.broker.cli", *args], capture_output=True,
        text=True, timeout=60)


async def test_preferred_and_unclean_elections_on_demand(manual: Cluster) -> None:
    cluster = manual
    async with cluster.admin() as admin:
        await admin.create_topics([
            NewTopic("pe", replica_assignment={0: [1, 2, 3], 1: [2, 3, 1], 2: [3, 1, 2]}),
            NewTopic("uc", replica_assignment={0: [2, 3]},
                     configs={"min.insync.replicas": 1})])
    await cluster.in_sync("pe")
    await cluster.in_sync("uc")
    cluster.kill(1)
    await cluster.wait_for("pe", lambda ps: ps[0].leader == 2)
    cluster.restart(1)
    await cluster.in_sync("pe")
    assert (await cluster.describe("pe"))[0].leader == 2  # nothing moves it back by itself

    done = await _klamm("leader-election", "--election-type", "preferred",
                        "--all-topic-partitions", "-b", cluster.live_bootstrap)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "Successfully completed leader election (PREFERRED) for partitions pe-0"]
    await cluster.wait_for("pe", lambda ps: [p.leader for p in ps] == [1, 2, 3])
    again = await _klamm("leader-election", "--election-type", "preferred", "--topic", "pe",
                         "-b", cluster.live_bootstrap)
    assert again.returncode == 0 and again.stdout.splitlines() == [
        "Valid replica already elected for partitions pe-0, pe-1, pe-2"]

    # uc-0: broker 2 leads alone in the ISR, then dies; broker 3 is live but out of sync
    assert cluster.terminate(3) == 0
    await cluster.wait_for("uc", lambda ps: list(ps[0].isr) == [2])
    cluster.kill(2)
    await cluster.wait_for("uc", lambda ps: ps[0].leader == -1)
    cluster.restart(3)
    await cluster.wait_for("pe", lambda ps: all(3 in p.isr for p in ps))
    assert (await cluster.describe("uc"))[0].leader == -1  # unclean election is off
    refused = await _klamm("leader-election", "--election-type", "preferred", "--topic", "uc",
                           "-b", cluster.live_bootstrap)
    assert refused.returncode == 1
    assert "uc-0: PREFERRED_LEADER_NOT_AVAILABLE" in refused.stderr, refused.stderr
    forced = await _klamm("leader-election", "--election-type", "unclean", "--topic", "uc",
                          "--partition", "0", "-b", cluster.live_bootstrap)
    assert forced.returncode == 0, forced.stderr
    assert "Successfully completed leader election (UNCLEAN) for partitions uc-0" in \
        forced.stdout
    await cluster.wait_for("uc", lambda ps: ps[0].leader == 3)
    controller = await cluster.controller()
    assert "uc-0: unclean leader election: broker 3 leads from outside the ISR [2] (asked " \
           "for with ElectLeaders)" in cluster.brokers[controller].log_text()
    cluster.restart(2)  # returns as a follower of the new leader
    await cluster.in_sync("uc")

    # only the controller answers; the admin client finds it, a raw request to another does not
    other = next(b for b in (1, 2, 3) if b != controller)
    conn = await RawConnection.open(cluster.brokers[other].bootstrap)
    try:
        answer = await conn.call(ApiKey.ELECT_LEADERS, {"election_type": 0,
                                                        "topic_partitions": None})
        assert answer.body["error_code"] == ErrorCode.NOT_CONTROLLER
        bad = await conn.call(ApiKey.ELECT_LEADERS, {"election_type": 7})
        assert bad.body["error_code"] == ErrorCode.INVALID_REQUEST
        assert "election_type" in bad.body["error_message"]
    finally:
        await conn.close()
