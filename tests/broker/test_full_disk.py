"""A real broker process on a really full disk: a 4 MiB tmpfs of its own.

The broker runs inside a private user and mount namespace (``unshare``) that mounts a small
tmpfs over its data dir; the test reaches that filesystem through ``/proc/PID/root`` to add
and remove a ballast file. What must hold: the producer gets an error that says the disk is
full, nothing acknowledged is lost, the broker keeps serving reads, and once space is freed
appends continue at the next offset.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from klamm.client import Producer
from klamm.client.errors import ClientError, KlammError
from tests.support.processes import BrokerProcess
from tests.support.raw import read_all

TMPFS_BYTES = 4 << 20


def _tmpfs_prefix(mountpoint: str) -> list[str]:
    script = f'mount -t tmpfs -o size={TMPFS_BYTES} klamm-test "$0" && exec "$@"'
    return ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private",
            "sh", "-c", script, mountpoint]


def _can_mount_tmpfs(tmp: Path) -> str:
    """Empty when this machine lets an unprivileged namespace mount a tmpfs, else why not."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = tmp / "probe"
    probe.mkdir()
    out = subprocess.run([*_tmpfs_prefix(str(probe)), "true"], capture_output=True, text=True,
                         timeout=30)
    return "" if out.returncode == 0 else f"cannot mount a tmpfs in a namespace: {out.stderr}"


async def test_full_disk_fails_produce_clearly_and_loses_nothing(tmp_path: Path) -> None:
    why = _can_mount_tmpfs(tmp_path)
    if why:
        pytest.skip(why)
    data = tmp_path / "data"
    data.mkdir()
    broker = BrokerProcess(str(data), prefix=_tmpfs_prefix(str(data)),
                           overrides={"log.segment.bytes": 256 * 1024})
    await asyncio.to_thread(broker.start)
    try:
        assert broker.proc is not None
        inside = Path(f"/proc/{broker.proc.pid}/root") / str(data).lstrip("/")
        (inside / "ballast").write_bytes(os.urandom(1 << 20))

        acked: dict[int, bytes] = {}
        async with Producer(bootstrap_servers=broker.bootstrap, acks=1, linger_ms=1,
                            delivery_timeout_ms=3000, request_timeout_ms=2000,
                            retry_backoff_ms=50) as producer:
            failure: BaseException | None = None
            for group in range(TMPFS_BYTES // 1000 // 20 + 1):  # more than fits
                values = [b"%06d-" % (group * 20 + i) + os.urandom(993) for i in range(20)]
                futures = [await producer.send("full", v, partition=0) for v in values]
                results = await asyncio.gather(*futures, return_exceptions=True)
                for value, result in zip(values, results, strict=True):
                    if isinstance(result, BaseException):
                        failure = failure or result
                    else:
                        acked[result.offset] = value
                if failure is not None:
                    break
            assert isinstance(failure, (KlammError, ClientError)), failure
            # Retried until delivery.timeout.ms, then failed naming the cause and the remedy.
            assert "No space left on device" in str(failure), failure
            assert "free disk space" in str(failure), failure
            assert len(acked) > 1000  # the disk filled up, not something else

            assert broker.proc.poll() is None
            stored = await read_all(broker.bootstrap, "full")
            assert sorted(stored) == list(range(len(stored)))  # dense, from 0
            assert {o: stored[o] for o in acked} == acked  # every acknowledged record intact

            (inside / "ballast").unlink()  # the operator frees space
            after = await producer.send_and_wait("full", b"after the disk had room again",
                                                 partition=0)
            assert after.offset == len(stored)
        final = await read_all(broker.bootstrap, "full")
        assert final[after.offset] == b"after the disk had room again"
        assert await asyncio.to_thread(broker.terminate) == 0
        # The operator was told, once, not once per retried request.
        reports = [line for line in broker.output if "storage error" in line]
        assert len(reports) == 1 and "No space left on device" in reports[0], reports
    finally:
        broker.kill()
