"""Mapping broker-side exceptions to wire error codes."""

from __future__ import annotations

import logging

from klamm.protocol.errors import ErrorCode, KlammError
from klamm.protocol.records import CorruptBatch

from .log import LogStorageError, OffsetOutOfRange, RecordTooLarge

log = logging.getLogger(__name__)


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
    if isinstance(exc, LogStorageError):
        return ErrorCode.STORAGE_ERROR, str(exc)
    log.error("unexpected error while handling a request", exc_info=exc)
    return ErrorCode.UNKNOWN_SERVER_ERROR, f"{type(exc).__name__}: {exc}"
