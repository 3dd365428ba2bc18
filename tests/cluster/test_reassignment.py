"""Moving partitions to other brokers under acks=all load, with the operator's tool: the new
replicas copy the data, leadership leaves a removed broker for an in-sync new one, the old
replicas delete theirs, and no acknowledged record is lost or send failed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from klamm.client import NewPartitions
from klamm.client.errors import ReassignmentInProgressError
from tests.support.cluster import Cluster, VerifiableProducer, assert_no_loss, read_everything
from tests.support.polling import until


async def _klamm(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "klamm.broker.cli", *args], capture_output=True,
        text=True, timeout=60)


async def _topic(cluster: Cluster, name: str, assignment: str) -> None:
    made = await _klamm("topics", "create", name, "--replica-assignment", assignment, "-b",
                        cluster.bootstrap)
    assert made.returncode == 0, made.stderr
    await cluster.in_sync(name)


def _plan(tmp_path: Path, topic: str, moves: dict[int, list[int]]) -> Path:
    """A reassignment file, as kafka-reassign-partitions takes it."""
    plan = tmp_path / f"{topic}.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": p, "replicas": r} for p, r in moves.items()]}))
    return plan


def _holds(cluster: Cluster, broker: int, topic: str) -> bool:
    return any(p.name.startswith(f"{topic}-") for p in (cluster.root / f"b{broker}").iterdir())


async def test_partitions_move_to_other_brokers_under_load(cluster: Cluster,
                                                           tmp_path: Path) -> None:
    b = cluster.bootstrap
    await _topic(cluster, "move", "1:2,2:1")
    producer = VerifiableProducer(b, "move", max_messages=3000, throughput=600)
    await producer.wait_acked(300)

    plan = _plan(tmp_path, "move", {0: [2, 3], 1: [3, 2]})
    started = await _klamm("reassign-partitions", "--reassignment-json-file", str(plan),
                           "--execute", "-b", b)
    assert started.returncode == 0, started.stderr
    lines = started.stdout.splitlines()
    assert json.loads(lines[2]) == {"version": 1, "partitions": [
        {"topic": "move", "partition": 0, "replicas": [1, 2], "log_dirs": ["any", "any"]},
        {"topic": "move", "partition": 1, "replicas": [2, 1], "log_dirs": ["any", "any"]}]}
    assert lines[-1] == "Successfully started partition reassignments for move-0,move-1"

    parts = await cluster.wait_for("move", lambda ps: [list(p.replicas) for p in ps] == [
        [2, 3], [3, 2]] and all(sorted(p.isr) == sorted(p.replicas) for p in ps), 60)
    assert [p.leader for p in parts] == [2, 2]  # 1 left: the first new in-sync replica leads
    verified = await _klamm("reassign-partitions", "--reassignment-json-file", str(plan),
                            "--verify", "-b", b)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.splitlines()[1:] == [
        "Reassignment of partition move-0 is completed.",
        "Reassignment of partition move-1 is completed."]
    await until(lambda: not _holds(cluster, 1, "move"), 30)

    assert producer.wait_exit(120) == 0
    assert len(producer.acked) == 3000 and not producer.failed, producer.failed[:3]
    await cluster.settled("move", partitions=2)
    assert_no_loss(producer.acked, read_everything(cluster.bootstrap, "move"))


async def test_a_new_controller_finishes_a_move_its_predecessor_started(
        cluster: Cluster, tmp_path: Path) -> None:
    b = cluster.bootstrap
    await _topic(cluster, "resume", "1:2")
    before = VerifiableProducer(b, "resume", max_messages=500)
    assert before.wait_exit() == 0 and len(before.acked) == 500
    cluster.pause(3)  # the new replica cannot catch up: the move stays half done
    plan = _plan(tmp_path, "resume", {0: [2, 3]})
    started = await _klamm("reassign-partitions", "--reassignment-json-file", str(plan),
                           "--execute", "-b", cluster.live_bootstrap)
    assert started.returncode == 0, started.stderr
    if 3 not in cluster.paused:  # a started move is in the grown replica list
        raise AssertionError("broker 3 should still be paused")
    controller = await cluster.wait_controller(lambda c: c != 3)
    await cluster.wait_for("resume", lambda ps: list(ps[0].replicas) == [2, 3, 1])
    # while it moves: the same move again, or partitions added to the topic, are refused
    again = await _klamm("reassign-partitions", "--reassignment-json-file", str(plan),
                         "--execute", "-b", cluster.live_bootstrap)
    assert again.returncode == 1 and "REASSIGNMENT_IN_PROGRESS" in again.stderr, again.stderr
    async with cluster.admin() as admin:
        with pytest.raises(ReassignmentInProgressError, match="being moved"):
            await admin.create_partitions({"resume": NewPartitions(2)})
    cluster.kill(controller)
    cluster.resume(3)
    await cluster.wait_controller(lambda c: c != controller)
    cluster.restart(controller)
    parts = await cluster.wait_for("resume", lambda ps: list(ps[0].replicas) == [2, 3] and
                                   sorted(ps[0].isr) == [2, 3], 60)
    assert parts[0].leader in (2, 3)
    verified = await _klamm("reassign-partitions", "--reassignment-json-file", str(plan),
                            "--verify", "-b", b)
    assert "Reassignment of partition resume-0 is completed." in verified.stdout
    await cluster.settled("resume")
    assert_no_loss(before.acked, read_everything(cluster.bootstrap, "resume"))
    await until(lambda: not _holds(cluster, 1, "resume"), 30)


async def test_deleting_a_topic_while_it_moves_drops_the_move(cluster: Cluster,
                                                              tmp_path: Path) -> None:
    await _topic(cluster, "doomed", "1")
    cluster.pause(3)
    plan = _plan(tmp_path, "doomed", {0: [3]})
    started = await _klamm("reassign-partitions", "--reassignment-json-file", str(plan),
                           "--execute", "-b", cluster.live_bootstrap)
    assert started.returncode == 0, started.stderr
    await cluster.wait_for("doomed", lambda ps: list(ps[0].replicas) == [3, 1])
    async with cluster.admin() as admin:
        await admin.delete_topics(["doomed"], timeout_ms=0)  # broker 3 must confirm: later

        async def dropped() -> bool:
            return not await admin.list_partition_reassignments()
        await until(dropped, 30)
    cluster.resume(3)

    async def gone() -> bool:
        async with cluster.admin() as admin:
            return "doomed" not in await admin.list_topics()
    await until(gone, 30)


async def test_a_move_whose_leader_dies_midway_finishes_under_the_next_leader(
        cluster: Cluster, tmp_path: Path) -> None:
    await _topic(cluster, "orphan", "1:2")
    before = VerifiableProducer(cluster.bootstrap, "orphan", max_messages=500)
    assert before.wait_exit() == 0 and len(before.acked) == 500
    cluster.pause(3)
    plan = _plan(tmp_path, "orphan", {0: [2, 3]})
    started = await _klamm("reassign-partitions", "--reassignment-json-file", str(plan),
                           "--execute", "-b", cluster.live_bootstrap)
    assert started.returncode == 0, started.stderr
    await cluster.wait_for("orphan", lambda ps: list(ps[0].replicas) == [2, 3, 1])
    cluster.kill(1)  # the leader, which the move removes, dies before it hands over
    await cluster.wait_for("orphan", lambda ps: ps[0].leader == 2)
    cluster.resume(3)
    await cluster.wait_for("orphan", lambda ps: list(ps[0].replicas) == [2, 3] and
                           sorted(ps[0].isr) == [2, 3], 60)
    cluster.restart(1)  # it was down when the move ended: it deletes its copy now
    await until(lambda: not _holds(cluster, 1, "orphan"), 30)
    await cluster.settled("orphan")
    assert_no_loss(before.acked, read_everything(cluster.bootstrap, "orphan"))
