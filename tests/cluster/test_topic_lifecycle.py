"""A topic deleted while one of its replicas is down is removed from that broker when it
returns; partitions added to a replicated topic are led and replicated, also after a
controller change; the replication metrics follow a follower's stall and return."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

from klamm.client import NewPartitions, NewTopic, Producer, TopicPartition
from tests.support.cluster import Cluster, VerifiableProducer
from tests.support.polling import until


async def test_a_topic_deleted_while_a_replica_is_down_leaves_it_when_it_returns(
        cluster: Cluster) -> None:
    await cluster.create_topic("gone", partitions=2)
    cluster.kill(3)
    async with cluster.admin() as admin:
        await admin.delete_topics(["gone"])

    async def listed() -> list[str]:
        async with cluster.admin() as admin:
            return await admin.list_topics()
    await until(lambda: _no_dirs(cluster, "gone", (1, 2)), 30)
    assert _dirs(cluster, 3, "gone")  # broker 3 was down: its replicas are still on disk

    cluster.restart(3)
    await until(lambda: _no_dirs(cluster, "gone", (1, 2, 3)), 30)

    async def forgotten() -> bool:
        return "gone" not in await listed()
    await until(forgotten, 30)
    # The name is free again: a new topic of that name starts empty on every broker.
    await cluster.create_topic("gone", partitions=1)
    async with cluster.admin() as admin:
        offsets = await admin.list_offsets({_tp("gone", 0): "latest"})
    assert offsets[_tp("gone", 0)][0] == 0


async def test_added_partitions_are_replicated_and_a_new_controller_adds_more(
        cluster: Cluster) -> None:
    await cluster.create_topic("grow", partitions=2)
    async with cluster.admin() as admin:
        await admin.create_partitions({"grow": NewPartitions(4)})
    parts = await cluster.in_sync("grow")
    assert [p.partition for p in parts] == [0, 1, 2, 3]
    assert all(len(set(p.replicas)) == 3 for p in parts)
    assert {p.replicas[0] for p in parts} == {1, 2, 3}  # the round robin went on

    async def produce_to_every_partition(count: int) -> None:
        async with Producer(bootstrap_servers=cluster.live_bootstrap, acks="all",
                            linger_ms=0) as producer:
            for p in range(count):
                md = await producer.send_and_wait("grow", b"v%d" % p, partition=p)
                assert md.partition == p
    await produce_to_every_partition(4)

    # The new controller arms its own watch on the topic: it starts the next partitions.
    old = await cluster.controller()
    other = next(b for b in (1, 2, 3) if b != old)
    async with cluster.admin() as admin:
        await admin.create_topics([NewTopic("solo", replica_assignment={0: [old]})])
    cluster.kill(old)
    await cluster.wait_controller(lambda c: c != old)
    # growing a topic waits for the new partitions only: "solo"'s first one is offline now
    async with cluster.admin() as admin:
        await admin.create_partitions({"solo": NewPartitions(2, [[other]])})
    assert (await cluster.describe("solo"))[1].leader == other
    cluster.restart(old)
    await cluster.in_sync("grow")
    async with cluster.admin() as admin:
        await admin.create_partitions({"grow": NewPartitions(6)})
    parts = await cluster.in_sync("grow")
    assert [p.partition for p in parts] == list(range(6))
    await produce_to_every_partition(6)
    await cluster.settled("grow", partitions=6)


def _tp(topic: str, partition: int) -> TopicPartition:
    return TopicPartition(topic, partition)


def _dirs(cluster: Cluster, broker: int, topic: str) -> list[Path]:
    root = cluster.root / f"b{broker}"
    return [p for p in root.iterdir() if re.fullmatch(re.escape(topic) + r"-\d+", p.name)]


def _no_dirs(cluster: Cluster, topic: str, brokers: tuple[int, ...]) -> bool:
    return all(not _dirs(cluster, b, topic) for b in brokers)


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def test_replication_metrics_follow_a_follower_stall_and_return(tmp_path: Path) -> None:
    # The lag runs out long before the session: the leader shrinks the ISR itself (the
    # controller's removal of a dead broker is not a shrink the leader counts).
    cluster = Cluster(tmp_path, overrides={"metrics.port": 0, "replica.lag.time.max.ms": 1000,
                                           "zookeeper.session.timeout.ms": 8000}).start()
    try:
        ports = {i: await _metrics_port(cluster, i) for i in cluster.brokers}
        async with cluster.admin() as admin:
            await admin.create_topics([NewTopic("m", replica_assignment={0: [1, 2, 3],
                                                                         1: [1, 3, 2]})])
        await cluster.in_sync("m")
        controller = await cluster.controller()
        assert [_metrics(ports[i])["klamm_controller_active"] for i in (1, 2, 3)] == [
            1.0 if i == controller else 0.0 for i in (1, 2, 3)]
        assert _metrics(ports[1])["klamm_broker_leader_count"] == 2

        producer = VerifiableProducer(cluster.bootstrap, "m", max_messages=200)
        assert producer.wait_exit() == 0

        await _wait_metrics(
            cluster, ports, lambda m: m[1]["klamm_broker_replication_bytes_out_total"] > 0 and
            m[2]["klamm_broker_replication_bytes_in_total"] > 0)

        victim = 2 if controller != 2 else 3
        # SIGSTOP while records arrive: the follower falls behind, and the leader shrinks
        # the ISR after the lag time (an idle follower at the log end stays in sync, as in
        # Kafka).
        cluster.pause(victim)
        load = VerifiableProducer(cluster.live_bootstrap, "m", throughput=200, linger_ms=1)
        try:
            # (the producer's batches need not reach both partitions in that time)
            await _wait_metrics(cluster, {1: ports[1]}, lambda m: (
                m[1]["klamm_broker_isr_shrinks_total"] >= 1 and
                m[1]["klamm_broker_under_replicated_partitions"] ==
                m[1]["klamm_broker_isr_shrinks_total"]))
            shrinks = _metrics(ports[1])["klamm_broker_isr_shrinks_total"]
        finally:
            assert load.stop() == 0
        cluster.resume(victim)
        await _wait_metrics(cluster, {1: ports[1]}, lambda m: (
            m[1]["klamm_broker_under_replicated_partitions"],
            m[1]["klamm_broker_isr_expands_total"]) == (0, shrinks))
    finally:
        cluster.stop()


async def _wait_metrics(cluster: Cluster, ports: dict[int, int],
                        check: Callable[[dict[int, dict[str, float]]], bool]) -> None:
    seen: list[dict[int, dict[str, float]]] = []

    def holds() -> bool:
        seen[:] = [{i: _metrics(port) for i, port in ports.items()}]
        return check(seen[0])
    try:
        await until(holds, 30)
    except AssertionError:
        raise AssertionError(f"metrics never matched; last {seen}\n{cluster.logs()}") from None


async def _metrics_port(cluster: Cluster, broker: int) -> int:
    """The port from the broker's ready line (printed just after its log says it listens)."""
    def found() -> list[str]:
        return re.findall(r"metrics on :(\d+)", cluster.brokers[broker].log_text())
    await until(lambda: bool(found()), 10)
    return int(found()[-1])


async def test_leadership_returns_to_the_preferred_replica_after_it_rejoins(
        tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, overrides={"leader.imbalance.check.interval.seconds": 0.5,
                                           "leader.imbalance.per.broker.percentage": 0}).start()
    try:
        async with cluster.admin() as admin:
            await admin.create_topics([NewTopic("p", replica_assignment={0: [1, 2, 3],
                                                                         1: [1, 3, 2]})])
        await cluster.in_sync("p")
        cluster.kill(1)
        await cluster.wait_for("p", lambda ps: all(p.leader in (2, 3) for p in ps))
        cluster.restart(1)
        # Back in the ISR, broker 1 is each partition's preferred (first) replica again.
        parts = await cluster.wait_for("p", lambda ps: all(p.leader == 1 for p in ps))
        assert all(sorted(p.isr) == [1, 2, 3] for p in parts)
    finally:
        cluster.stop()
