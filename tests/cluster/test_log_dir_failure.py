"""A broker's disk turns read-only while it leads under acks=all load: its log dir goes
offline, its leaderships move to the other in-sync replicas (as a controlled shutdown moves
them), production carries on with no failed send, and after the disk is repaired and the
broker restarted every replica holds the same bytes and nothing acknowledged is lost."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.broker.test_failing_log_dir import _make_image, _own_ext4, _why_not
from tests.support.cluster import (Cluster, VerifiableConsumer, VerifiableProducer,
                                   assert_no_loss, read_everything)


async def test_a_failing_disk_moves_the_brokers_leaderships_and_loses_nothing(
        tmp_path: Path) -> None:
    why = _why_not(tmp_path)
    if why:
        pytest.skip(why)
    image = tmp_path / "b1.img"
    _make_image(image)
    (tmp_path / "b1").mkdir()
    cluster = Cluster(tmp_path)
    cluster.zk.start()
    cluster.start_brokers(prefix_of={1: _own_ext4(image, tmp_path / "b1")})
    try:
        await cluster.create_topic("t", partitions=3)
        led_by_one = [p.partition for p in await cluster.describe("t") if p.leader == 1]
        assert led_by_one, "broker 1 leads none of the partitions"
        producer = VerifiableProducer(cluster.bootstrap, "t", throughput=800, linger_ms=1)
        watcher = VerifiableConsumer(cluster.bootstrap, "t")
        try:
            await producer.wait_acked(200)
            one = cluster.brokers[1]
            assert one.proc is not None
            subprocess.run(["nsenter", "-t", str(one.proc.pid), "-m", "mount", "-o",
                            "remount,abort", str(tmp_path / "b1")], check=True, timeout=30)
            await cluster.wait_for("t", lambda ps: all(p.leader not in (1, -1) and
                                                       1 not in p.isr for p in ps))
            assert one.alive  # it stays up, answering STORAGE_ERROR
            await producer.wait_acked(len(producer.acked) + 400)
            assert producer.stop() == 0
        finally:
            producer.kill()
            watcher.stop()
        assert producer.failed == []
        log = one.log_text()
        assert log.count("is now OFFLINE") == 1 and "Traceback" not in log, log
        assert cluster.terminate(1) == 0
        cluster.restart(1)  # the same image, mounted again: the disk was "repaired"
        await cluster.settled("t", partitions=3)
        assert_no_loss(producer.acked, read_everything(cluster.bootstrap, "t"),
                       watcher.records)
    finally:
        cluster.stop()
