"""Mapping broker-side exceptions to wire error codes."""

from __future__ import annotations

import logging
import time

from klamm.protocol.errors import ErrorCode, KlammError
from klamm.protocol.records import CorruptBatch
from klamm.zk.errors import ZkError

from .log import LogStorageError, OffsetOutOfRange, RecordTooLarge
from .log.errors import InvalidRecord, InvalidTimestamp
from .log.dir_health import LogDirOffline
from .report_limiter import ReportLimiter

log = logging.getLogger(__name__)

STORAGE_LOG_INTERVAL = 10.0  # s between two reports of failing storage
INVALID_REQUEST_LOG_INTERVAL = 10.0  # s between two reports of malformed requests

_storage_reports = ReportLimiter(STORAGE_LOG_INTERVAL)


def held_back(count: int) -> str:
    return f" ({count} more since the last report)" if count else ""


def report_storage_error(exc: BaseException) -> None:
    """Tell the operator about failing storage without a line per retried request."""
    held = _storage_reports.admit(time.monotonic())
    if held is not None:
        log.error("storage error: %s%s; requests that write there fail with STORAGE_ERROR "
                  "until it is fixed (a full disk: free space, nothing needs a restart)",
                  exc, held_back(held))


def report_invalid_request(limiter: ReportLimiter, peer: str, api: str, message: str) -> None:
    """One line, at most every INVALID_REQUEST_LOG_INTERVAL, for requests answered
    INVALID_REQUEST (a client bug or a probe; the client gets the full reason)."""
    held = limiter.admit(time.monotonic())
    if held is not None:
        log.warning("invalid %s request from %s: %s%s", api, peer, message[:500], held_back(held))


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
    if isinstance(exc, InvalidRecord):
        return ErrorCode.INVALID_RECORD, str(exc)
    if isinstance(exc, InvalidTimestamp):
        return ErrorCode.INVALID_TIMESTAMP, str(exc)
    if isinstance(exc, LogDirOffline):  # said once, when the dir went offline
        return ErrorCode.STORAGE_ERROR, str(exc)
    if isinstance(exc, LogStorageError):
        report_storage_error(exc)
        return ErrorCode.STORAGE_ERROR, str(exc)
    if isinstance(exc, ZkError):  # the coordination service is away or refused
        return ErrorCode.REQUEST_TIMED_OUT, f"the coordination service is unavailable: {exc}"
    log.error("unexpected error while handling a request", exc_info=exc)
    return ErrorCode.UNKNOWN_SERVER_ERROR, f"{type(exc).__name__}: {exc}"
