"""File naming and the durable-write primitives every on-disk structure shares."""

from __future__ import annotations

import os
from collections.abc import Sequence

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
DELETED_SUFFIX = ".deleted"
CLEANED_SUFFIX = ".cleaned"
TMP_SUFFIX = ".tmp"
DELETE_DIR_SUFFIX = "-delete"


def segment_name(base_offset: int) -> str:
    """The 20-digit zero-padded base offset every segment file starts with."""
    return f"{base_offset:020d}"


def parse_segment_name(filename: str) -> tuple[int, str] | None:
    """``(base_offset, suffix)`` for ``00000000000000000042.log`` and friends, else None."""
    stem, dot, suffix = filename.partition(".")
    if not dot or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem), "." + suffix


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def parse_partition_dir(name: str) -> tuple[str, int] | None:
    """``(topic, partition)`` for ``orders-3``; None for anything else (deletions included)."""
    if name.endswith(DELETE_DIR_SUFFIX) or name.startswith("."):
        return None
    topic, dash, index = name.rpartition("-")
    if not dash or not topic or not index.isdigit():
        return None
    return topic, int(index)


def fsync_path(path: str, *, directory: bool = False) -> None:
    """Fsync the file (or directory) at ``path``."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """Make renames and creations inside ``path`` durable."""
    fsync_path(path, directory=True)


def write_synced(path: str, chunks: Sequence[bytes], *, sync: bool = True) -> None:
    """Create or truncate ``path``, write every chunk fully and fsync it (not its directory;
    not at all with ``sync=False``, for callers that fsync later)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data``: after a crash the old or the new content is there."""
    tmp = path + TMP_SUFFIX
    write_synced(tmp, (data,))
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
