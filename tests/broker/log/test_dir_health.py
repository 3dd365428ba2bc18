"""LogDirHealth: a full disk fails requests and recovers; a read-only or failing one takes the
dir offline once, for good."""

from __future__ import annotations

import errno
import logging

import pytest

from klamm.broker.log.dir_health import LogDirHealth, LogDirOffline
from klamm.broker.log.errors import LogStorageError


def _wrapped(code: int) -> LogStorageError:
    try:
        try:
            raise OSError(code, errno.errorcode[code], "/data/t-0/0.log")
        except OSError as exc:
            raise LogStorageError("write failed") from exc
    except LogStorageError as outer:
        return outer


def test_a_full_disk_does_not_take_the_dir_offline() -> None:
    health = LogDirHealth("/data")
    assert not health.observe(_wrapped(errno.ENOSPC))
    assert not health.observe(_wrapped(errno.EDQUOT))
    assert not health.observe(ValueError("not storage"))
    assert not health.offline
    health.check()


@pytest.mark.parametrize("code", [errno.EROFS, errno.EIO])
def test_a_read_only_or_failing_disk_takes_it_offline_once(
        code: int, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    health = LogDirHealth("/data")
    health.on_offline = lambda: calls.append(1)
    with caplog.at_level(logging.ERROR):
        assert health.observe(_wrapped(code))
        assert health.observe(_wrapped(code))  # still offline, said once
        assert health.observe(_wrapped(errno.ENOSPC))
    assert calls == [1]
    assert [r.message for r in caplog.records if "OFFLINE" in r.message] == [
        f"log dir /data is now OFFLINE: {errno.errorcode[code]} on /data/t-0/0.log. Its "
        f"partitions answer STORAGE_ERROR, nothing more is written there; fix the disk and "
        f"restart the broker"]
    with pytest.raises(LogDirOffline, match="log dir /data is offline .*restart the broker"):
        health.check()
