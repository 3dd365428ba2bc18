"""Directory helpers the transaction log and the snapshots share."""

from __future__ import annotations

import os
from pathlib import Path


def numbered_files(directory: Path, prefix: str) -> list[tuple[int, Path]]:
    """``(number, path)`` of every ``<prefix><number>`` file, oldest (lowest) first."""
    out = []
    for p in directory.glob(prefix + "*"):
        suffix = p.name[len(prefix):]
        if suffix.isdigit():
            out.append((int(suffix), p))
    return sorted(out)


def fsync_dir(directory: Path) -> None:
    """Make creations, renames and deletions in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
