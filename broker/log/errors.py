"""Errors the storage layer raises; the server maps each to a protocol error code.

``klamm.protocol.records.CorruptBatch`` is raised unchanged for a batch failing validation
(-> CORRUPT_MESSAGE).
"""

from __future__ import annotations


class OffsetOutOfRange(Exception):
    """A fetch offset outside ``[log_start_offset, log_end_offset]`` (-> OFFSET_OUT_OF_RANGE)."""


class RecordTooLarge(Exception):
    """One batch exceeds the topic's ``max.message.bytes`` (-> MESSAGE_TOO_LARGE)."""


class InvalidRecord(Exception):
    """A producer batch breaks a rule no retry can fix: flags of a transactional producer,
    records that do not match the header, a record without a key on a compacted topic
    (-> INVALID_RECORD)."""


class InvalidTimestamp(Exception):
    """A producer batch's timestamp is beyond ``message.timestamp.difference.max.ms``
    (-> INVALID_TIMESTAMP)."""


class LogStorageError(Exception):
    """An OSError while writing or syncing (ENOSPC, EIO); nothing partial remains in the log."""


class UnexpectedAppendOffset(Exception):
    """A follower append whose batches do not continue the log (offsets behind its end)."""
