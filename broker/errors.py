"""Mapping broker-side exceptions to wire error codes."""

from __future__ import annotations

import logging
import time

from klamm.protocol.errors import ErrorCode, KlammError
from klamm.protocol.records import CorruptBatch
from klamm.zk.errors import ZkError

from .log import LogStorageError, OffsetOutOfRange, RecordTooLarge
from .log.dir_health import LogDirOffline

log = logging.getLogger(__name__)

STORAGE_LOG_INTERVAL = 10.0  # s between two reports of failing storage


class _StorageErrorLog:
    """Reports storage failures to the operator without a line per retried request."""

    def __init__(self) -> None:
        self.last = -STORAGE_LOG_INTERVAL
        self.suppressed = 0

    def report(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self.last < STORAGE_LOG_INTERVAL:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more since the last report)" if self.suppressed else ""
        log.error("storage error: %s%s; requests that write there fail with STORAGE_ERROR "
                  "until it is fixed (a full disk: free space, nothing needs a restart)",
                  exc, more)
        self.last = now
        self.suppressed = 0


_storage_errors = _StorageErrorLog()


def error_code_of(exc: BaseException) -> tuple[ErrorCode, str]:
    """The code and message a client should see for ``exc``; unexpected errors are logged."""
    if isinstance(exc, KlammError):
        return exc.code, exc.detail or ""
    if isinstance(exc, CorruptBatch):
        return ErrorCode.CORRUPT_MESSAGE, str(exc)
    if isinstance(exc, OffsetOutOfRange):
        return ErrorCode.OFFSET_OUT_OF_RANGE, str(exc)
    if isinstance(exc, RecordTooLarge):
        return ErrorCode.MESSAGE_TOO_LARGE, str(exc)
    if isinstance(exc, LogDirOffline):  # said once, when the dir went offline
        return ErrorCode.STORAGE_ERROR, str(exc)
    if isinstance(exc, LogStorageError):
        _storage_errors.report(exc)
        return ErrorCode.STORAGE_ERROR, str(exc)
    if isinstance(exc, ZkError):  # the coordination service is away or refused
        return ErrorCode.REQUEST_TIMED_OUT, f"the coordination service is unavailable: {exc}"
    log.error("unexpected error while handling a request", exc_info=exc)
    return ErrorCode.UNKNOWN_SERVER_ERROR, f"{type(exc).__name__}: {exc}"
