"""DataDirLock: one broker process per data dir.

Two brokers on one dir corrupt each other's logs: each appends at offsets the other does not
know, and a starting one "recovers" the live one's segments, rewriting its indexes and
checkpoints. A broker therefore takes an exclusive ``flock`` on ``<dir>/.lock`` before it reads
or writes anything else there (Kafka's lock file has the same name) and holds it for the
process's life. The kernel drops the lock when the process dies, so a crash leaves nothing
stale to remove. The holder writes its pid into the file, so a refused broker can name it.
"""

from __future__ import annotations

import fcntl
import os

FILE_NAME = ".lock"


class DataDirLocked(RuntimeError):
    pass


class DataDirLock:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, FILE_NAME)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Lock the dir (creating it) or raise DataDirLocked naming the holder's pid."""
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirLocked(
                f"data dir {self.directory} is in use by another broker"
                f"{f' (pid {holder})' if holder else ''}; stop that one first, or give this one "
                f"its own --data-dir (log.dir)") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
