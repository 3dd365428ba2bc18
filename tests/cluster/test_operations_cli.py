"""The operator's view through the CLI: explicit replica assignments, `topics describe` with
its filters as brokers die, `cluster describe` with live and dead brokers."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from tests.support.cluster import Cluster


async def _klamm(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "klamm.broker.cli", *args], capture_output=True,
        text=True, timeout=60)


async def test_describe_and_its_filters_follow_dying_brokers(cluster: Cluster) -> None:
    b = cluster.bootstrap
    created = await _klamm("topics", "create", "audit", "--replica-assignment", "1:2:3,2:3:1",
                           "-b", b)
    assert created.returncode == 0, created.stderr
    solo = await _klamm("topics", "create", "solo", "--replica-assignment", "3", "-b", b)
    assert solo.returncode == 0, solo.stderr
    await cluster.in_sync("audit")
    await cluster.in_sync("solo")

    described = await _klamm("topics", "describe", "audit", "-b", b)
    assert described.stdout.splitlines()[1:] == [
        "\tTopic: audit\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2,3",
        "\tTopic: audit\tPartition: 1\tLeader: 2\tReplicas: 2,3,1\tIsr: 2,3,1"]
    assert described.stdout.startswith("Topic: audit\tPartitionCount: 2\tReplicationFactor: 3")
    healthy = await _klamm("topics", "describe", "--under-replicated-partitions",
                           "--unavailable-partitions", "-b", b)
    assert healthy.returncode == 0 and healthy.stdout == ""

    whole = await _klamm("cluster", "describe", "-b", b)
    lines = whole.stdout.splitlines()
    controller = await cluster.controller()
    assert lines[0].startswith("Cluster: ") and f"\tController: {controller}\t" in lines[0]
    assert [line.split("\t")[1:3] for line in lines[1:]] == [
        [f"Broker: {i}", "Host: 127.0.0.1"] for i in (1, 2, 3)]
    assert all(line.endswith("State: live") for line in lines[1:])

    port_of_3 = cluster.brokers[3].port
    cluster.kill(3)
    await cluster.wait_for("audit", lambda ps: all(3 not in p.isr for p in ps))
    b = cluster.live_bootstrap
    under = await _klamm("topics", "describe", "--under-replicated-partitions", "-b", b)
    assert under.stdout.splitlines() == [
        "\tTopic: audit\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2",
        "\tTopic: audit\tPartition: 1\tLeader: 2\tReplicas: 2,3,1\tIsr: 2,1"]
    # An offline partition keeps its last ISR member (as Kafka's does): unavailable, not
    # under-replicated.
    unavailable = await _klamm("topics", "describe", "--unavailable-partitions", "-b", b)
    assert unavailable.stdout.splitlines() == [
        "\tTopic: solo\tPartition: 0\tLeader: none\tReplicas: 3\tIsr: 3"]
    after = (await _klamm("cluster", "describe", "-b", b)).stdout.splitlines()
    assert after[3] == (f"\tBroker: 3\tHost: 127.0.0.1\tPort: {port_of_3}\tRack: none\t"
                        f"State: dead")


async def test_a_bad_replica_assignment_is_refused_naming_the_flag(cluster: Cluster) -> None:
    b = cluster.bootstrap
    twice = await _klamm("topics", "create", "t", "--replica-assignment", "1:1", "-b", b)
    assert twice.returncode != 0 and "names a broker twice" in twice.stderr
    unknown = await _klamm("topics", "create", "t", "--replica-assignment", "1:9", "-b", b)
    assert unknown.returncode != 0 and "broker(s) [9]" in unknown.stderr
    garbage = await _klamm("topics", "create", "t", "--replica-assignment", "1:x", "-b", b)
    assert garbage.returncode == 2 and "--replica-assignment" in garbage.stderr
    both = await _klamm("topics", "create", "t", "--replica-assignment", "1:2",
                        "--partitions", "2", "-b", b)
    assert both.returncode == 2 and "drop --partitions" in both.stderr
    listed = await _klamm("topics", "list", "-b", b)
    assert "t" not in listed.stdout.split()
