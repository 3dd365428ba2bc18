"""LogDirHealth: whether a log dir can still be written, and the one line saying it cannot.

A disk that fills up comes back when space is freed, so ENOSPC (and EDQUOT) fails only the
request that met it. A filesystem that turned read-only (EROFS: the kernel remounts a
failing disk so) or that answers EIO does not come back while the broker runs: the dir goes
offline, as Kafka's log-dir failure handling does. From then on every partition in it
answers STORAGE_ERROR (Kafka's KAFKA_STORAGE_ERROR) without touching the disk, background
work there stops, and a shutdown writes nothing more to it. The transition is logged once,
naming the dir, the failed operation and what to do; a restart once the disk is fixed
brings the dir back (recovery then checks what the failure left).

Pure state, no I/O: the log code reports what failed, and asks before it writes.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

from .errors import LogStorageError

log = logging.getLogger(__name__)

# Errors that mean the disk will not take writes again while this process runs.
FATAL_ERRNOS = frozenset({errno.EROFS, errno.EIO})


class LogDirOffline(LogStorageError):
    """The partition's log dir is offline; nothing is read or written there."""


class LogDirHealth:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.offline_reason: str | None = None
        self.on_offline: Callable[[], None] | None = None  # called once, at the transition

    @property
    def offline(self) -> bool:
        return self.offline_reason is not None

    def check(self) -> None:
        """Raise LogDirOffline when the dir is offline."""
        if self.offline_reason is not None:
            raise self.offline_error()

    def offline_error(self) -> LogDirOffline:
        return LogDirOffline(f"log dir {self.directory} is offline ({self.offline_reason}); "
                             f"restart the broker once the disk is fixed")

    def observe(self, exc: BaseException) -> bool:
        """Note a failure met while using the dir; True when it takes (or took) the dir
        offline. Looks through the exception's causes for the OSError."""
        if self.offline:
            return True
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__
        if cause is None or cause.errno not in FATAL_ERRNOS:
            return False
        self.offline_reason = f"{cause.strerror or cause}" + (
            f" on {cause.filename}" if cause.filename else "")
        log.error("log dir %s is now OFFLINE: %s. Its partitions answer STORAGE_ERROR, "
                  "nothing more is written there; fix the disk and restart the broker",
                  self.directory, self.offline_reason)
        if self.on_offline is not None:
            self.on_offline()
        return True
