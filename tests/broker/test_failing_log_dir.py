"""A real broker whose disk turns read-only while it runs: an ext4 image of its own, which
the test aborts (``mount -o remount,abort``: the kernel's emergency read-only remount, what a
failing disk gets).

Before, the broker logged a traceback every 5 s and exited 1 on SIGTERM. Now the log dir
goes offline: one ERROR line naming it, STORAGE_ERROR for its partitions (reads too, as
Kafka's offline log dirs), no background work there, SIGTERM exits 0, and a restart on the
repaired disk serves every acknowledged record.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from klamm.broker.log.manager import CHECKPOINT_INTERVAL_MS
from klamm.client import Admin, NewTopic, Producer
from klamm.protocol.api import ApiKey
from klamm.protocol.errors import ErrorCode, KlammError
from tests.support.processes import BrokerProcess
from tests.support.raw import RawConnection, fetch_body, fetch_records

IMAGE_BYTES = 64 << 20


def _own_ext4(image: Path, mountpoint: Path) -> list[str]:
    """Run the broker in a private mount namespace with ``image`` mounted on its data dir
    (the mount ends with the namespace, so a failed test leaves nothing mounted)."""
    script = 'mount -o loop "$0" "$1" && shift && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(image),
            str(mountpoint)]


def _why_not(tmp: Path) -> str:
    if os.geteuid() != 0:
        return "needs root to mount a loop device"
    for tool in ("unshare", "nsenter", "mkfs.ext4"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    image, probe = tmp / "probe.img", tmp / "probe"
    probe.mkdir()
    _make_image(image)
    out = subprocess.run([*_own_ext4(image, probe), "true"], capture_output=True, text=True,
                         timeout=30)
    return "" if out.returncode == 0 else f"cannot loop-mount an image: {out.stderr}"


def _make_image(image: Path) -> None:
    with open(image, "wb") as fh:
        fh.truncate(IMAGE_BYTES)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, timeout=60)


async def test_a_disk_that_turns_read_only_takes_the_dir_offline_cleanly(
        tmp_path: Path) -> None:
    why = _why_not(tmp_path)
    if why:
        pytest.skip(why)
    image, data = tmp_path / "disk.img", tmp_path / "data"
    data.mkdir()
    _make_image(image)
    overrides = {"log.flush.interval.messages": 1, "log.flush.scheduler.interval.ms": 100,
                 "log.retention.check.interval.ms": 100}
    broker = BrokerProcess(str(data), prefix=_own_ext4(image, data), overrides=overrides)
    await asyncio.to_thread(broker.start)
    try:
        async with Admin(bootstrap_servers=broker.bootstrap) as admin:
            await admin.create_topics([NewTopic("t", 2)])
        async with Producer(bootstrap_servers=broker.bootstrap, acks=1, linger_ms=0,
                            delivery_timeout_ms=2000, request_timeout_ms=1000,
                            retry_backoff_ms=50) as producer:
            acked = {}
            for i in range(20):
                md = await producer.send_and_wait("t", b"kept-%d" % i, partition=i % 2)
                acked[(md.partition, md.offset)] = b"kept-%d" % i
            assert broker.proc is not None
            subprocess.run(["nsenter", "-t", str(broker.proc.pid), "-m", "mount", "-o",
                            "remount,abort", str(data)], check=True, timeout=30)
            with pytest.raises(Exception, match="STORAGE_ERROR") as failed:
                await producer.send_and_wait("t", b"refused", partition=0)
            assert f"log dir {data} is offline (Read-only file system" in str(failed.value)

        conn = await RawConnection.open(broker.bootstrap)
        r = await conn.call(ApiKey.FETCH, fetch_body("t", 1, 0))
        assert r.body["topics"][0]["partitions"][0]["error_code"] == ErrorCode.STORAGE_ERROR
        await conn.close()
        # Auto-creation needs the same disk (the embedded coordination data is there too):
        # the producer hears why, not a silent wait ending in "unknown topic".
        async with Producer(bootstrap_servers=broker.bootstrap, max_block_ms=1000) as producer:
            with pytest.raises(KlammError) as refused:
                await producer.send_and_wait("fresh", b"x")
        assert refused.value.code == ErrorCode.STORAGE_ERROR
        assert f"log dir {data} is offline" in str(refused.value)
        assert "the topic was not created" in str(refused.value)
        # Background work (flush and retention every 100 ms, checkpoints every 5 s) must stay
        # quiet: no event marks "nothing happened", so this waits for a checkpoint round.
        await asyncio.sleep(CHECKPOINT_INTERVAL_MS / 1000 + 1)
        assert broker.terminate() == 0
        log = broker.log_text()
        assert log.count("is now OFFLINE") == 1, log
        assert "Traceback" not in log, log
        assert "closed 2 log(s) without flushing or checkpointing" in log
    finally:
        broker.kill()

    again = BrokerProcess(str(data), prefix=_own_ext4(image, data))
    await asyncio.to_thread(again.start)
    try:
        stored = {(p, r.offset): r.value for p in (0, 1)
                  for r in await fetch_records(again.bootstrap, "t", p)}
        assert {k: stored.get(k) for k in acked} == acked
        assert again.terminate() == 0
    finally:
        again.kill()
