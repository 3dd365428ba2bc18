"""The coordination service goes away, for everyone or for one broker: brokers keep serving
the leaders they know; a broker out of touch for longer than its session is replaced as leader
and comes back as a follower; starting needs the service but waits for it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.cluster import Cluster, VerifiableProducer, assert_no_loss, read_everything
from tests.support.polling import until
from tests.support.processes import BrokerProcess
from tests.support.proxy import FaultProxy


async def test_brokers_keep_serving_while_the_coordination_service_restarts(
        tmp_path: Path) -> None:
    # a session that outlives the restart: the brokers' sessions re-attach afterwards
    cluster = Cluster(tmp_path, overrides={"zookeeper.session.timeout.ms": 6000}).start()
    try:
        await cluster.create_topic("t", partitions=2)
        before = await cluster.describe("t")
        producer = VerifiableProducer(cluster.bootstrap, "t", throughput=600, linger_ms=1)
        try:
            await producer.wait_acked(200)
            cluster.zk.kill()
            await producer.wait_acked(len(producer.acked) + 300)  # while it is down
            cluster.zk.start()
            assert await cluster.describe("t") == before  # the same leaders throughout
            leader = before[0].leader
            cluster.kill(leader)  # and elections work again
            await cluster.wait_for("t", lambda ps: ps[0].leader not in (leader, -1), 30)
            await producer.wait_acked(len(producer.acked) + 300)
            cluster.restart(leader)
            await cluster.in_sync("t")
            assert producer.stop() == 0
        finally:
            producer.kill()
        assert producer.failed == []
        await cluster.settled("t", partitions=2)
        assert_no_loss(producer.acked, read_everything(cluster.bootstrap, "t"))
    finally:
        cluster.stop()


async def _cut_off_cluster(tmp_path: Path) -> tuple[Cluster, FaultProxy]:
    cluster = Cluster(tmp_path)
    cluster.zk.start()
    proxy = await FaultProxy("127.0.0.1", cluster.zk.port).start()
    # in a thread: the proxy lives on this event loop, which must keep running meanwhile
    await asyncio.to_thread(cluster.start_brokers, {3: proxy.address})
    return cluster, proxy


async def test_a_coordination_outage_shorter_than_the_session_changes_nothing(
        tmp_path: Path) -> None:
    cluster, proxy = await _cut_off_cluster(tmp_path)
    try:
        await cluster.create_topic("t", partitions=3)
        before = await cluster.describe("t")
        producer = VerifiableProducer(cluster.bootstrap, "t", throughput=600, linger_ms=1)
        try:
            await producer.wait_acked(200)
            proxy.refusing = True
            proxy.cut()
            await asyncio.sleep(0.5)  # the outage itself (a third of the session timeout)
            proxy.refusing = False
            await until(lambda: proxy.open_connections > 0, 10)  # re-attached
            await producer.wait_acked(len(producer.acked) + 300)
            assert producer.stop() == 0
        finally:
            producer.kill()
        assert await cluster.describe("t") == before
        assert "expired" not in cluster.brokers[3].log_text()
        assert producer.failed == []
        await cluster.settled("t", partitions=3)
        assert_no_loss(producer.acked, read_everything(cluster.bootstrap, "t"))
    finally:
        cluster.stop()
        await proxy.stop()


async def test_a_broker_out_of_touch_longer_than_its_session_rejoins_as_a_follower(
        tmp_path: Path) -> None:
    cluster, proxy = await _cut_off_cluster(tmp_path)
    try:
        await cluster.create_topic("t", partitions=3)
        producer = VerifiableProducer(cluster.bootstrap, "t", throughput=600, linger_ms=1)
        try:
            await producer.wait_acked(200)
            proxy.refusing = True
            proxy.cut()
            # its session expires: its partitions are led elsewhere, without it in the ISR
            await cluster.wait_for("t", lambda ps: all(p.leader != 3 and 3 not in p.isr
                                                       for p in ps))
            await producer.wait_acked(len(producer.acked) + 300)
            proxy.refusing = False
            await until(lambda: cluster.brokers[3].log_text().count("registered as broker 3")
                        == 2, 30)
            await cluster.in_sync("t")  # back, as a follower that caught up
            await producer.wait_acked(len(producer.acked) + 200)
            assert producer.stop() == 0
        finally:
            producer.kill()
        await cluster.settled("t", partitions=3)
        # acks=all writes to the cut-off leader could only fail, never be acknowledged and lost
        assert_no_loss(producer.acked, read_everything(cluster.bootstrap, "t"))
    finally:
        cluster.stop()
        await proxy.stop()


async def test_a_broker_waits_for_a_coordination_service_that_is_not_up_yet(
        tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, size=1)
    cluster.zk.start()
    port = cluster.zk.port
    cluster.zk.kill()
    broker = BrokerProcess(str(tmp_path / "b1"), broker_id=1, zk=f"127.0.0.1:{port}/k",
                           overrides=cluster.overrides)
    broker.launch()
    try:
        await until(lambda: "cannot reach the coordination service" in broker.log_text(), 30)
        assert broker.alive
        cluster.zk.start()
        await asyncio.to_thread(broker.wait_ready, 30)
        assert broker.terminate() == 0
    finally:
        broker.kill()
        cluster.zk.kill()


def _refused(args: list[str], timeout: float = 60) -> str:
    done = subprocess.run([sys.executable, "-m", "klamm.broker", *args], capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


async def test_a_taken_broker_id_or_another_clusters_data_dir_refuses_to_start(
        cluster: Cluster) -> None:
    zk = cluster.zk.hosts + cluster.chroot
    common = ["--listen", "127.0.0.1:0", "--override", "zookeeper.session.timeout.ms=1000"]
    clash = await asyncio.to_thread(_refused, ["--zk", zk, "--broker-id", "1", "--data-dir",
                                               str(cluster.root / "other"), *common])
    assert "broker.id=1 is already registered by a live broker" in clash
    assert "another broker.id" in clash
    # b1's own dir is locked by the live broker 1; a copy of what identifies it is not
    copied = cluster.root / "b1-copy"
    copied.mkdir()
    shutil.copy(cluster.root / "b1" / "meta.properties", copied / "meta.properties")
    foreign = await asyncio.to_thread(_refused, ["--zk", cluster.zk.hosts + "/elsewhere",
                                                 "--broker-id", "1", "--data-dir",
                                                 str(copied), *common])
    assert "belongs to cluster" in foreign and "/elsewhere" in foreign
